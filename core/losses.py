"""Losses on soft labels, with the semantics of openai/weak-to-strong `loss.py`.

Each loss takes logits [B, 2], target probabilities [B, 2] and the fraction of
training done, and returns a scalar. Targets are probabilities, so gold labels
are one-hot and weak labels are the weak model's (aggregated) soft predictions.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class XentLoss:
    name = "xent"

    def __call__(self, logits: torch.Tensor, target: torch.Tensor, step_frac: float) -> torch.Tensor:
        return F.cross_entropy(logits.float(), target.float())


@dataclass
class ProductLoss:
    """Target ∝ student^beta · weak^alpha, detached (Burns et al.'s `product`)."""
    alpha: float = 1.0
    beta: float = 1.0
    name = "product"

    def __call__(self, logits: torch.Tensor, target: torch.Tensor, step_frac: float) -> torch.Tensor:
        preds = torch.softmax(logits.float(), dim=-1)
        t = preds.pow(self.beta) * target.float().pow(self.alpha)
        t = (t / t.sum(dim=-1, keepdim=True)).detach()
        return F.cross_entropy(logits.float(), t)


@dataclass
class LogConfLoss:
    """Auxiliary confidence loss (Burns et al.'s `logconf`).

    target = (1 - c) * weak + c * hardened student prediction, where the student's
    prediction is hardened at the batch quantile of its class-0 probability taken
    at the weak labels' mean class-1 rate (so the hardened labels keep the weak
    positive rate). c = step_frac * aux_coef during the first warmup_frac of
    training, then aux_coef: exactly the reference's schedule, which jumps from
    warmup_frac * aux_coef to aux_coef when warm-up ends.
    """
    aux_coef: float = 0.5
    warmup_frac: float = 0.1
    name = "logconf"

    def coef(self, step_frac: float) -> float:
        return (step_frac if step_frac <= self.warmup_frac else 1.0) * self.aux_coef

    def __call__(self, logits: torch.Tensor, target: torch.Tensor, step_frac: float) -> torch.Tensor:
        logits, target = logits.float(), target.float()
        c = self.coef(step_frac)
        preds = torch.softmax(logits, dim=-1)
        threshold = torch.quantile(preds[:, 0], target.mean(dim=0)[1])
        hard = torch.stack([preds[:, 0] >= threshold, preds[:, 0] < threshold], dim=1).float()
        mixed = target * (1 - c) + hard.detach() * c
        return F.cross_entropy(logits, mixed)


def make_loss(name: str, *, aux_coef: float = 0.5, warmup_frac: float = 0.1,
              alpha: float = 1.0, beta: float = 1.0):
    if name == "xent":
        return XentLoss()
    if name == "logconf":
        return LogConfLoss(aux_coef=aux_coef, warmup_frac=warmup_frac)
    if name == "product":
        return ProductLoss(alpha=alpha, beta=beta)
    raise ValueError(f"unknown loss {name!r}: choose xent, logconf or product")
