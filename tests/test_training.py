"""Short real trainings with the embedded models (no mocks)."""
import numpy as np
import pytest
import torch

from w2s_base.training.classifier import FeatureExtractor, LoraBase, train_lora, train_probe
from w2s_base.config import TrainConfig
from w2s_base.losses import XentLoss
from data.demo_task import make_demo_samples

TEXTS = [s.text for s in make_demo_samples(8)]
LABELS = np.array([s.label for s in make_demo_samples(8)], dtype=np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["minilm-l6", "smollm2-135m"])
def test_one_real_lora_step_changes_only_adapter_and_head(model):
    tcfg = TrainConfig(mode="lora", epochs=1, batch_size=8, lr=1e-2, max_length=32)
    base = LoraBase(model, tcfg)
    clf = train_lora(base, TEXTS, LABELS, XentLoss(), tcfg, seed=0)
    assert len(clf.history) == 1 and np.isfinite(clf.history[0])
    trainable = {n for n, p in base.peft.named_parameters() if p.requires_grad}
    assert any("lora_" in n for n in trainable)
    # SEQ_CLS keeps the classification head trainable (and saved with the adapter)
    assert any(("score" in n or "classifier" in n) and "lora_" not in n for n in trainable)
    assert not any("embed" in n and "lora_" not in n for n in trainable)
    # a zero-initialised head predicts exactly 0.5 before training; one step moves it
    p = clf.predict(TEXTS)
    assert p.shape == (8,) and np.all((p >= 0) & (p <= 1)) and np.abs(p - 0.5).max() > 1e-4


@pytest.mark.slow
def test_lora_adapter_saves(tmp_path):
    tcfg = TrainConfig(mode="lora", epochs=1, batch_size=8, max_length=32)
    clf = train_lora(LoraBase("minilm-l6", tcfg), TEXTS, LABELS, XentLoss(), tcfg, seed=0)
    clf.save(tmp_path)
    files = {p.name for p in (tmp_path / "adapter").iterdir()}
    assert "adapter_config.json" in files and any(f.startswith("adapter_model") for f in files)


def test_probe_learns_a_separable_task_and_caches_features(tmp_path, monkeypatch):
    monkeypatch.setenv("W2SD_CACHE", str(tmp_path))
    samples = make_demo_samples(120, seed=3)
    tr, te = samples[:80], samples[80:]
    tcfg = TrainConfig(mode="linear_probe", epochs=30, lr=1e-2, batch_size=16, max_length=64)
    ex = FeatureExtractor("minilm-l6", 64)
    # texts that leak the label through a keyword: any working probe separates them
    txt = lambda s: ("Wonderful, excellent, great. " if s.label else "Terrible, awful, bad. ") + s.text
    y = np.array([s.label for s in tr], dtype=np.float32)
    clf = train_probe(ex, [txt(s) for s in tr], y, XentLoss(), tcfg, 0)
    acc = ((clf.predict([txt(s) for s in te]) > 0.5) == np.array([s.label for s in te])).mean()
    assert acc > 0.9
    assert ex.cache_file.exists()
    again = FeatureExtractor("minilm-l6", 64)
    again._lazy_model = lambda: (_ for _ in ()).throw(AssertionError("features were recomputed"))
    assert again([txt(s) for s in tr]).shape[0] == 80


@pytest.mark.slow
def test_members_share_one_base_without_interfering(tmp_path):
    tcfg = TrainConfig(mode="lora", epochs=2, batch_size=4, lr=1e-2, max_length=32)
    shared = LoraBase("minilm-l6", tcfg)
    a = train_lora(shared, TEXTS, LABELS, XentLoss(), tcfg, 0, adapter="a")
    base_before = {n: p.clone() for n, p in shared.peft.named_parameters() if "lora_" not in n
                   and "modules_to_save" not in n and "original_module" not in n}
    pa = a.predict(TEXTS)
    b = train_lora(shared, TEXTS, 1 - LABELS, XentLoss(), tcfg, 1, adapter="second")
    pb = b.predict(TEXTS)
    np.testing.assert_allclose(a.predict(TEXTS), pa, rtol=1e-5)  # training b left a intact
    assert not np.allclose(pa, pb)
    for n, p in shared.peft.named_parameters():
        if n in base_before:
            assert torch.equal(p, base_before[n]), n  # LoRA never touches the base
    a.save(tmp_path / "a")
    assert (tmp_path / "a" / "adapter").exists()


@pytest.mark.slow
def test_a_member_trains_the_same_whether_or_not_another_trained_before_it():
    """Resume equals an uninterrupted run: member b on a shared base after member a
    (the uninterrupted run) equals member b alone on a fresh base (the resumed run)."""
    tcfg = TrainConfig(mode="lora", epochs=2, batch_size=4, lr=1e-2, max_length=32)
    shared = LoraBase("minilm-l6", tcfg)
    train_lora(shared, TEXTS, LABELS, XentLoss(), tcfg, 5, adapter="first")
    after_a = train_lora(shared, TEXTS, 1 - LABELS, XentLoss(), tcfg, 1, adapter="second")
    alone = train_lora(LoraBase("minilm-l6", tcfg), TEXTS, 1 - LABELS, XentLoss(), tcfg, 1, adapter="second")
    np.testing.assert_allclose(after_a.history, alone.history, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(after_a.predict(TEXTS), alone.predict(TEXTS), rtol=1e-5, atol=1e-6)


def test_held_out_evaluation_per_epoch_leaves_training_as_it_was(tmp_path, monkeypatch):
    """The curves' held-out loss and accuracy after each epoch: one entry per epoch, the
    last one the trained probe's own accuracy on those texts, and the training (its
    loss per step, its predictions) the same as without the evaluation."""
    monkeypatch.setenv("W2SD_CACHE", str(tmp_path))
    samples = make_demo_samples(120, seed=3)
    tr, te = samples[:80], samples[80:]
    tcfg = TrainConfig(mode="linear_probe", epochs=5, lr=1e-2, batch_size=16, max_length=64)
    ex = FeatureExtractor("minilm-l6", 64)
    y = np.array([s.label for s in tr], dtype=np.float32)
    gold = np.array([s.label for s in te])
    texts, held = [s.text for s in tr], [s.text for s in te]
    with_eval = train_probe(ex, texts, y, XentLoss(), tcfg, 0, held_out=(held, gold))
    without = train_probe(ex, texts, y, XentLoss(), tcfg, 0)
    assert with_eval.history == pytest.approx(without.history, rel=1e-6, abs=1e-7)
    np.testing.assert_allclose(with_eval.predict(held), without.predict(held), rtol=1e-5, atol=1e-6)
    steps = len(with_eval.history)  # 5 epochs of 80 samples in batches of 16: 25 steps
    assert [e["step"] for e in with_eval.eval_history] == [5, 10, 15, 20, 25] and steps == 25
    last = with_eval.eval_history[-1]
    assert last["accuracy"] == pytest.approx(((with_eval.predict(held) >= 0.5) == gold).mean())
    assert all(e["loss"] > 0 and 0 <= e["accuracy"] <= 1 for e in with_eval.eval_history)
    assert without.eval_history == []


@pytest.mark.parametrize("epochs, n, batch, expected", [(3, 10, 4, [3, 6, 8]), (1.5, 16, 4, [4, 6]),
                                                        (0.5, 16, 4, [2])])
def test_on_epoch_runs_after_each_epochs_last_step(epochs, n, batch, expected):
    from w2s_base.training.classifier import fit, soft_targets
    head = torch.nn.Linear(3, 2)
    x = torch.randn(n, 3, generator=torch.Generator().manual_seed(0))
    seen = []
    tcfg = TrainConfig(mode="linear_probe", epochs=epochs, batch_size=batch)
    fit(head, lambda m, idx: m(x[idx]), soft_targets(np.full(n, 0.7)), XentLoss(), tcfg, 0, "t",
        ddp=False, on_epoch=seen.append)
    assert seen == expected
