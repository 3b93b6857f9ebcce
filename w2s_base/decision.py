"""The decision rule: a P(label = 1) read as a predicted label.

One rule for every place that turns a probability into a label (the report's
accuracy and calibration, the ensemble vote, the consultant's placement), so they
cannot drift apart. A tie (exactly 0.5) reads as label 0.

The transcript viewer and the inspect_ai export read a tie as label 1
(`predicted_label_tie_as_1`): that is how they have always shown it, kept as it
is so their output does not change; no P(1) of exactly 0.5 reaches them from a
trained model in practice, but the two rules do disagree there.
"""
from __future__ import annotations

import numpy as np

THRESHOLD = 0.5


def predicted_label(p1: float) -> int:
    """1 iff P(label = 1) > 0.5."""
    return int(p1 > THRESHOLD)


def predicted_labels(p1) -> np.ndarray:
    """`predicted_label` elementwise: an int array of 0/1."""
    return (np.asarray(p1) > THRESHOLD).astype(int)


def predicted_label_tie_as_1(p1: float) -> int:
    """1 iff P(label = 1) >= 0.5 (the viewer's and the inspect export's reading)."""
    return int(p1 >= THRESHOLD)
