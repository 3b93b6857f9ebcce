"""Aggregating the ensemble members' probabilities into one soft label per sample."""
from __future__ import annotations

import numpy as np

from w2s_base.decision import predicted_labels


def aggregate(member_p1: np.ndarray, method: str = "mean") -> np.ndarray:
    """member_p1: [members, samples] of P(label = 1). Returns [samples]."""
    p = np.asarray(member_p1, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError("aggregate needs a [members, samples] array with at least one member")
    if method == "mean":
        return p.mean(0)
    if method == "vote":  # fraction of members voting 1: a soft label from hard votes
        return predicted_labels(p).mean(0)
    if method == "logodds":  # confident members count for more than in a plain mean
        q = np.clip(p, 1e-6, 1 - 1e-6)
        return 1 / (1 + np.exp(-np.log(q / (1 - q)).mean(0)))
    raise ValueError(f"unknown aggregation {method!r}: mean, vote or logodds")
