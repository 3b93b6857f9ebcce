from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from w2s_base.training.classifier import ModelTrainer
from w2s_base.config import TrainConfig, load_config
from w2s_base.losses import XentLoss
from data.dedupe import text_key
from data.demo_task import CATEGORIES, MAX_SAMPLES, make_demo_samples
from data.schema import DataError


def test_demo_is_deterministic_and_balanced():
    a, b = make_demo_samples(400, seed=1), make_demo_samples(400, seed=1)
    assert a == b and a != make_demo_samples(400, seed=2)
    assert 0.4 < np.mean([s.label for s in a]) < 0.6
    for kind in ("category", "comparison"):  # exactly balanced within each kind
        assert Counter(s.label for s in a if s.meta["kind"] == kind) == {0: 100, 1: 100}
    assert make_demo_samples(10, seed=1) == a[:10]  # prefix-stable
    for s in a[:50]:
        if s.meta["kind"] == "comparison":
            x, y = [int(w) for w in s.text.replace(".", "").split() if w.isdigit()]
            assert s.label == int(x > y)
        else:
            item, cat = s.text.removesuffix(".").split()[2], s.text.removesuffix(".").split()[-1]
            assert s.label == int(item in CATEGORIES[cat])


def test_demo_never_repeats_a_text_and_refuses_past_its_capacity():
    """Drawn without replacement: at the largest size it can make, no two texts are the
    same after normalising (nor are two comparisons of the same pair of numbers), and
    one more is a one-line error, not a silent repeat."""
    assert MAX_SAMPLES >= 2000
    items = [w for ws in CATEGORIES.values() for w in ws]
    assert len(items) == len(set(items)) and not set(items) & set(CATEGORIES)  # one category per item
    for seed in (0, 5):
        s = make_demo_samples(MAX_SAMPLES, seed=seed)
        assert len({text_key(x.text) for x in s}) == MAX_SAMPLES
        pairs = [frozenset(w for w in x.text.replace(".", "").split() if w.isdigit())
                 for x in s if x.meta["kind"] == "comparison"]
        assert len(set(pairs)) == len(pairs)
        for kind in ("category", "comparison"):
            assert Counter(x.label for x in s if x.meta["kind"] == kind) == {0: MAX_SAMPLES // 4, 1: MAX_SAMPLES // 4}
    with pytest.raises(DataError, match=f"at most {MAX_SAMPLES} distinct samples"):
        make_demo_samples(MAX_SAMPLES + 1)


def test_every_demo_config_fits_the_generator():
    """Every shipped config on the demo task asks for no more samples than the generator
    can make distinct (a config sized past it would fail at its data stage)."""
    sizes = {}
    for path in sorted(Path("configs").glob("*.yaml")):
        d = load_config(str(path), []).data
        if d.task == "demo":
            sizes[path.name] = d.limit or d.n_weak_train + d.n_transfer + d.n_test
    assert sizes and max(sizes.values()) <= MAX_SAMPLES, sizes


@pytest.mark.slow
def test_strong_ceiling_beats_weak_with_a_margin():
    """The reason the demo task exists: trained on the same gold labels, the strong
    model must beat the weak one clearly, or PGR on the demo would mean nothing."""
    samples = make_demo_samples(400, seed=7)
    tr, te = samples[:200], samples[200:]
    y = np.array([s.label for s in tr], dtype=np.float32)
    yt = np.array([s.label for s in te])
    tcfg = TrainConfig(mode="linear_probe", epochs=20, lr=1e-2, batch_size=32, max_length=64)
    acc = {}
    for m in ("minilm-l6", "smollm2-135m"):
        clf = ModelTrainer(m, tcfg).train([s.text for s in tr], y, XentLoss(), seed=0)
        acc[m] = ((clf.predict([s.text for s in te]) > 0.5) == yt).mean()
    assert acc["smollm2-135m"] - acc["minilm-l6"] > 0.15, acc
