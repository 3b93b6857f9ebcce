"""Weak ensemble training: one base reloaded per member vs one shared base with an
adapter per member. Each variant runs in its own process so peak RSS is its own.

    .venv/bin/python bench/bench_weak_ensemble.py [--members 4] [--n 64] [--model minilm-l6]

Prints seconds per member, total seconds and peak RSS per variant, and their ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("TQDM_DISABLE", "1")

from isolated import run_variants, save_results  # noqa: E402


def one_variant(variant: str, members: int, n: int, model: str) -> dict:
    import numpy as np

    from w2s_base.training.classifier import LoraBase, train_lora
    from w2s_base.config import TrainConfig
    from w2s_base.losses import XentLoss
    from data.demo_task import make_demo_samples

    samples = make_demo_samples(n)
    texts = [s.text for s in samples]
    y = np.array([s.label for s in samples], dtype=np.float32)
    tcfg = TrainConfig(mode="lora", epochs=1, batch_size=16, max_length=64)
    shared = LoraBase(model, tcfg) if variant == "shared" else None
    times = []
    for m in range(members):
        t = time.perf_counter()
        base = shared or LoraBase(model, tcfg)  # reload: a fresh base per member
        clf = train_lora(base, texts, y, XentLoss(), tcfg, seed=m, adapter=f"m{m}")
        clf.predict(texts)
        times.append(time.perf_counter() - t)
    return {"variant": variant, "member_s": times, "total_s": sum(times),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--members", type=int, default=4)
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--model", default="minilm-l6")
    p.add_argument("--variant", choices=["reload", "shared"])
    a = p.parse_args()
    if a.variant:
        print(json.dumps(one_variant(a.variant, a.members, a.n, a.model)))
        return
    res = run_variants(__file__, ["reload", "shared"],
                       ["--members", str(a.members), "--n", str(a.n), "--model", a.model])
    for v, r in res.items():
        print(f"{v:7s} total {r['total_s']:.1f}s  per member {[round(x, 1) for x in r['member_s']]}  "
              f"peak RSS {r['peak_rss_mb']:.0f} MB")
    print(f"shared/reload: time {res['shared']['total_s'] / res['reload']['total_s']:.2f}x, "
          f"peak RSS {res['shared']['peak_rss_mb'] / res['reload']['peak_rss_mb']:.2f}x")
    save_results("weak_ensemble", vars(a), res)


if __name__ == "__main__":
    main()
