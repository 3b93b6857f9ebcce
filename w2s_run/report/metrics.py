"""Accuracy, calibration, and the bootstrap interval of one accuracy over test samples
(PGR and every paired comparison: w2s_run/report/statistics.py)."""
from __future__ import annotations

import numpy as np


def accuracy(p1: np.ndarray, y: np.ndarray) -> float:
    return float(((np.asarray(p1) > 0.5).astype(int) == np.asarray(y)).mean())


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
