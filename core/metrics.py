"""Accuracy, PGR, calibration and bootstrap intervals over test samples."""
from __future__ import annotations

import numpy as np


def accuracy(p1: np.ndarray, y: np.ndarray) -> float:
    return float(((np.asarray(p1) > 0.5).astype(int) == np.asarray(y)).mean())


def pgr(w2s: float, weak: float, ceiling: float) -> float | None:
    """Performance gap recovered, (W2S - weak) / (ceiling - weak), as in Burns et al.
    None when the ceiling does not beat the weak model: the ratio means nothing then."""
    gap = ceiling - weak
    if gap <= 0:
        return None
    return (w2s - weak) / gap


def ece(p1: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of the predicted class's confidence, equal-width bins."""
    p1, y = np.asarray(p1, float), np.asarray(y, int)
    pred = (p1 > 0.5).astype(int)
    conf = np.where(pred == 1, p1, 1 - p1)
    edges = np.linspace(0.5, 1.0, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf >= lo) & ((conf < hi) | (hi == 1.0))
        if m.any():
            total += m.mean() * abs((pred[m] == y[m]).mean() - conf[m].mean())
    return float(total)


def bootstrap_acc(correct: np.ndarray, n: int = 1000, seed: int = 0, level: float = 0.95) -> list[float]:
    rng = np.random.default_rng(seed)
    m = len(correct)
    accs = [correct[rng.integers(0, m, m)].mean() for _ in range(n)]
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return [float(np.percentile(accs, lo)), float(np.percentile(accs, hi))]


def bootstrap_pgr(correct_w2s: np.ndarray, correct_weak: np.ndarray, correct_ceil: np.ndarray,
                  n: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Paired bootstrap over test samples: resample the same indices for all three models.
    Resamples where the ceiling does not beat the weak model are dropped and counted."""
    rng = np.random.default_rng(seed)
    m = len(correct_w2s)
    vals, acc = [], []
    for _ in range(n):
        i = rng.integers(0, m, m)
        a, w, c = correct_w2s[i].mean(), correct_weak[i].mean(), correct_ceil[i].mean()
        acc.append(a)
        v = pgr(a, w, c)
        if v is not None:
            vals.append(v)
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    out = {"acc_ci": [float(np.percentile(acc, lo)), float(np.percentile(acc, hi))],
           "undefined_frac": 1 - len(vals) / n}
    out["pgr_ci"] = [float(np.percentile(vals, lo)), float(np.percentile(vals, hi))] if vals else None
    return out
