"""Strong stage cost on the embedded strong model: time and peak memory of one
student, linear probe (frozen features: cold cache, warm cache) vs LoRA.
Each variant runs in its own process so its peak RSS is its own.

    .venv/bin/python bench/bench_strong.py [--n 64] [--test 64] [--epochs 4] [--model smollm2-135m]

Prints seconds and peak RSS per variant and the ratios to LoRA; writes
bench/results/strong.json.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("TQDM_DISABLE", "1")

from isolated import run_variants, save_results  # noqa: E402


def one_variant(variant: str, n: int, n_test: int, epochs: float, model: str, max_length: int) -> dict:
    import numpy as np

    from w2s_base.training.classifier import FeatureExtractor, LoraBase, train_lora, train_probe
    from w2s_base.config import TrainConfig
    from w2s_base.losses import XentLoss
    from w2s_base.training.models import resolve_model
    from data.demo_task import make_demo_samples

    resolve_model(model)  # the one-off GGUF conversion is not part of the stage
    # One-off per-process costs (seconds) that are not a student's: importing
    # transformers and setting up accelerate.
    from transformers import get_linear_schedule_with_warmup  # noqa: F401  (pulls in peft, generation)
    from w2s_base.training.distributed import accelerator
    accelerator()
    samples = make_demo_samples(n + n_test, seed=1)
    train, test = samples[:n], samples[n:]
    texts = [s.text for s in train]
    y = np.array([s.label for s in train], dtype=np.float32)
    t = time.perf_counter()
    if variant == "lora":
        tcfg = TrainConfig(mode="lora", epochs=epochs, batch_size=8, lr=2e-3, max_length=max_length)
        clf = train_lora(LoraBase(model, tcfg), texts, y, XentLoss(), tcfg, seed=0)
    else:
        tcfg = TrainConfig(mode="linear_probe", epochs=20, batch_size=32, lr=1e-2, max_length=max_length)
        ex = FeatureExtractor(model, max_length)
        if variant == "probe-cold":
            ex.cache_file = Path(tempfile.mkdtemp()) / "features.pt"
        else:
            ex([s.text for s in samples])  # warm the cache first; not timed
            t = time.perf_counter()
        clf = train_probe(ex, texts, y, XentLoss(), tcfg, seed=0)
    acc = float(((clf.predict([s.text for s in test]) > 0.5) == np.array([s.label for s in test])).mean())
    return {"variant": variant, "seconds": time.perf_counter() - t, "test_acc": acc,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=64, help="transfer (training) samples")
    p.add_argument("--test", type=int, default=64)
    p.add_argument("--epochs", type=float, default=4, help="LoRA epochs (lr 2e-3: 64 samples, 32 steps)")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--variant", choices=["probe-cold", "probe-warm", "lora"])
    a = p.parse_args()
    if a.variant:
        print(json.dumps(one_variant(a.variant, a.n, a.test, a.epochs, a.model, a.max_length)))
        return
    res = run_variants(__file__, ["lora", "probe-cold", "probe-warm"],
                       ["--n", str(a.n), "--test", str(a.test), "--epochs", str(a.epochs),
                        "--max-length", str(a.max_length), "--model", a.model])
    for v, r in res.items():
        print(f"{v:11s} {r['seconds']:7.1f} s  peak RSS {r['peak_rss_mb']:6.0f} MB  test acc {r['test_acc']:.2f}  "
              f"time vs lora {r['seconds'] / res['lora']['seconds']:.3f}x  "
              f"RSS vs lora {r['peak_rss_mb'] / res['lora']['peak_rss_mb']:.2f}x")
    save_results("strong", vars(a), res)


if __name__ == "__main__":
    main()
