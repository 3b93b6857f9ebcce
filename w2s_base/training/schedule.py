"""The learning rate of each optimiser step, from a TrainConfig: one definition, read by
the training loop (classifier.fit, through torch's LambdaLR) and by the tracking curves
(w2s_run/services/tracking.py). Pure Python: no torch import.

Step s of `steps` trains with lr * factor(s): a linear warm-up from 0 over the first
w = int(warmup_frac * steps) steps (factor s / w), then, with progress
p = (s - w) / (steps - w), cosine: (1 + cos(pi * p)) / 2; linear: 1 - p; constant: 1.
With warmup_frac 0, cosine is torch's CosineAnnealingLR(T_max=steps, eta_min=0), the
reference's schedule (openai/weak-to-strong, train.py), stepped once per optimiser step.
"""
from __future__ import annotations

import math


def warmup_steps(tcfg, steps: int) -> int:
    return int(tcfg.warmup_frac * steps)


def lr_factor(schedule: str, step: int, steps: int, warmup: int) -> float:
    """The multiplier of the base rate at optimiser step `step` (0-based) of `steps`."""
    if step < warmup:
        return step / warmup
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, steps - warmup)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":
        return max(0.0, 1.0 - progress)
    raise ValueError(f"unknown learning-rate schedule {schedule!r}")


def lr_schedule(tcfg, steps: int) -> list[float]:
    """The learning rate each of `steps` optimiser steps of `fit` trains with."""
    warm = warmup_steps(tcfg, steps)
    return [tcfg.lr * lr_factor(tcfg.schedule, s, steps, warm) for s in range(steps)]
