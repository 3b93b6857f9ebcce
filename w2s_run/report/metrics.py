"""Accuracy and calibration of one model's P(label = 1) on test samples (every
bootstrap interval: w2s_run/report/statistics.py)."""
from __future__ import annotations

import numpy as np

from w2s_base.decision import predicted_labels


def accuracy(p1: np.ndarray, y: np.ndarray) -> float:
    return float((predicted_labels(p1) == np.asarray(y)).mean())


def ece(p1: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of the predicted class's confidence, equal-width bins."""
    p1, y = np.asarray(p1, float), np.asarray(y, int)
    pred = predicted_labels(p1)
    conf = np.where(pred == 1, p1, 1 - p1)
    edges = np.linspace(0.5, 1.0, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf >= lo) & ((conf < hi) | (hi == 1.0))
        if m.any():
            total += m.mean() * abs((pred[m] == y[m]).mean() - conf[m].mean())
    return float(total)
