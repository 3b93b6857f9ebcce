"""Weak ensemble members, trained for real (tiny) with hand-made transcripts."""
import json

import numpy as np
import pytest

from w2s_base.config import RunConfig
from data.demo_task import make_demo_samples
from data.splits import make_splits
from w2s_base.runfolder.layout import RunLayout
from factories import make_transcript
from weak.stage import MemberTrainer, run_weak


def fake_transcripts(samples, k_count):
    out = {}
    for s in samples:
        for k in range(k_count):
            # debate k says something different: members reading different debates must differ
            text = f"debate {k}: " + ("I am sure." if (int(s.id.split("-")[1]) + k) % 2 else "Doubtful, check the digits.")
            out[(s.id, k)] = make_transcript(s.id, [text] * 3, key=f"{s.id}-{k}", task=s.task,
                                             sample_text=s.text, positions=s.positions, gold=s.label, k=k)
    return out


@pytest.mark.slow
def test_members_differ_by_seed_and_debate_and_rerun_skips(tmp_path, monkeypatch):
    samples = make_demo_samples(36)
    splits = make_splits(samples, 12, 12, 12, seed=0)
    cfg = RunConfig.model_validate({
        "output_dir": str(tmp_path),
        "weak": {"labellers": [{"name": "weak", "seeds": [0, 1]},
                               {"name": "single+debate", "protocol": "debate"},
                               {"name": "weak+debate", "protocol": "debate", "seeds": [0, 1], "debates": 2}],
                 "train": {"epochs": 2, "batch_size": 6, "max_length": 64, "lr": 5e-3}}})
    tr = {"debate": fake_transcripts(samples, 2)}
    import w2s_base.training.classifier
    real_fit, calls = w2s_base.training.classifier.fit, []
    monkeypatch.setattr(w2s_base.training.classifier, "fit", lambda *a, **k: calls.append(k) or real_fit(*a, **k))
    labs = run_weak(cfg, MemberTrainer(cfg, splits, RunLayout(tmp_path)), tr)
    assert len(calls) == 2 + 4  # the single weak+debate model is the ensemble's first member: trained once
    assert list(labs) == ["weak", "single+debate", "weak+debate"]
    assert labs["single+debate"].member_test_p1["seed0-debate0"] == labs["weak+debate"].member_test_p1["seed0-debate0"]
    assert labs["weak"].members == ["seed0", "seed1"]
    assert labs["weak+debate"].members == ["seed0-debate0", "seed1-debate0", "seed0-debate1", "seed1-debate1"]
    m = labs["weak+debate"].member_test_p1
    ids = [s.id for s in splits.test]
    vec = {name: np.array([m[name][i] for i in ids]) for name in m}
    assert not np.allclose(vec["seed0-debate0"], vec["seed1-debate0"])   # seeds differ
    assert not np.allclose(vec["seed0-debate0"], vec["seed0-debate1"])   # debates differ
    mean = np.mean([vec[n] for n in vec], axis=0)
    np.testing.assert_allclose([labs["weak+debate"].test_p1[i] for i in ids], mean, rtol=1e-6)
    rows = [json.loads(l) for l in (tmp_path / "weak" / "weak_debate" / "labels.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and all(len(r["members"]) == 4 and len(r["debate_keys"]) == 2 for r in rows)

    monkeypatch.setattr(w2s_base.training.classifier, "fit", lambda *a, **k: pytest.fail("a member was retrained"))
    again = run_weak(cfg, MemberTrainer(cfg, splits, RunLayout(tmp_path)), tr)
    assert again["weak+debate"].test_p1 == labs["weak+debate"].test_p1


@pytest.mark.slow
def test_mixed_architectures_in_one_ensemble(tmp_path):
    """An encoder (MiniLM) and a decoder (SmolLM2, no pad token of its own) in one labeller."""
    samples = make_demo_samples(24)
    splits = make_splits(samples, 8, 8, 8, seed=0)
    cfg = RunConfig.model_validate({
        "output_dir": str(tmp_path),
        "weak": {"labellers": [{"name": "weak", "models": ["minilm-l6", "smollm2-135m"], "seeds": [0]},
                               {"name": "mixed+debate", "protocol": "debate",
                                "models": ["minilm-l6", "smollm2-135m"]}],
                 "train": {"epochs": 1, "batch_size": 4, "max_length": 64, "lr": 5e-3}}})
    labs = run_weak(cfg, MemberTrainer(cfg, splits, RunLayout(tmp_path)), {"debate": fake_transcripts(samples, 1)})
    lab = labs["mixed+debate"]
    assert lab.members == ["minilm-l6-seed0-debate0", "smollm2-135m-seed0-debate0"]
    ids = [s.id for s in splits.test]
    a, b = (np.array([lab.member_test_p1[m][i] for i in ids]) for m in lab.members)
    assert not np.allclose(a, b)
    np.testing.assert_allclose([lab.test_p1[i] for i in ids], (a + b) / 2, rtol=1e-6)
    assert (tmp_path / "weak" / "members" / "debate" / "smollm2-135m" / "seed0-debate0" / "adapter").is_dir()


def test_market_making_placement_on_weak_train_is_out_of_fold(tmp_path, monkeypatch):
    """No weak_train sample is placed by a model that saw its label: each fold's
    model is fit on the other folds only, and every sample is predicted exactly once.
    (The trainer is a recording stand-in: this tests the cross-fitting, not learning.)"""
    import weak.stage

    fits: list[tuple[set, set]] = []

    class Recorder:
        def __init__(self, *a, **k):
            pass

        def train(self, texts, y, loss, seed, desc="", adapter=""):
            fit_on = set(texts)

            class Clf:
                def predict(self, held):
                    fits.append((fit_on, set(held)))
                    return np.full(len(held), 0.25)
            return Clf()

    monkeypatch.setattr(weak.stage, "ModelTrainer", Recorder)
    samples = make_demo_samples(30)
    splits = make_splits(samples, 10, 10, 10, seed=0)
    cfg = RunConfig.model_validate({"output_dir": str(tmp_path), "weak": {"placement_folds": 3}})
    trainer = MemberTrainer(cfg, splits, RunLayout(tmp_path))
    p1 = trainer.out_of_fold("minilm-l6", 0, 3)
    assert set(p1) == {s.id for s in splits.weak_train} and len(fits) == 3
    for fit_on, held in fits:
        assert not fit_on & held  # never predicted by a model that trained on it
    assert sum(len(h) for _, h in fits) == 10  # each sample predicted once
    # cached: a second call trains nothing
    fits.clear()
    assert trainer.out_of_fold("minilm-l6", 0, 3) == p1 and not fits
