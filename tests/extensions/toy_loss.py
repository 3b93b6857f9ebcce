"""A loss added in one file: cross-entropy on the labels smoothed towards 1/2.

Registering it (importing this module before the config is loaded) is all it takes:
`strong.losses: [xent, smoothed_xent]` then trains its students, and
`strong.loss_settings.smoothed_xent.smoothing` sets its one hyperparameter."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from w2s_base.losses import Loss, register_loss


@register_loss("smoothed_xent")
@dataclass
class SmoothedXentLoss(Loss):
    smoothing: float = 0.1  # the weight of the uniform label mixed into the target

    def __call__(self, logits: torch.Tensor, target: torch.Tensor, step_frac: float) -> torch.Tensor:
        target = target.float() * (1 - self.smoothing) + self.smoothing / 2
        return F.cross_entropy(logits.float(), target)
