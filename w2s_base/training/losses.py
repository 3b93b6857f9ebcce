"""Losses on soft labels, with the semantics of openai/weak-to-strong `loss.py`.

Each loss takes logits [B, 2], target probabilities [B, 2] and the fraction of
training done, and returns a scalar: the mean over the B rows. Targets are
probabilities, so gold labels are one-hot and weak labels are the weak model's
(aggregated) soft predictions.

Batch statistics: a loss whose target depends on a statistic of the whole batch
(logconf's hardening threshold) has a method `batch_stats(logits, target) -> dict`;
the others have `batch_stats = None`. Called with those keyword arguments, the loss
uses the given statistics instead of computing them from its own rows, so that a
batch split over micro-batches or processes (core/classifier.fit) is trained
exactly as the whole batch would be. Called without them, it computes them from
its rows: a single call is unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class XentLoss:
    name = "xent"
    batch_stats = None  # per-row target: nothing to share across a split batch

    def __call__(self, logits: torch.Tensor, target: torch.Tensor, step_frac: float) -> torch.Tensor:
        return F.cross_entropy(logits.float(), target.float())


@dataclass
class ProductLoss:
    """Target ∝ student^beta · weak^alpha, detached (Burns et al.'s `product`)."""
    alpha: float = 1.0
    beta: float = 1.0
    name = "product"
    batch_stats = None  # per-row target: nothing to share across a split batch

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
    warmup_frac * aux_coef to aux_coef when warm-up ends. The batch is the optimiser
    batch: core/classifier.fit passes its threshold to every micro-batch and process
    share of it (batch_stats).
    """
    aux_coef: float = 0.5
    warmup_frac: float = 0.1
    name = "logconf"

    def coef(self, step_frac: float) -> float:
        return (step_frac if step_frac <= self.warmup_frac else 1.0) * self.aux_coef

    def batch_stats(self, logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """The hardening threshold of a batch: the quantile of the student's class-0
        probability at the weak labels' mean class-1 rate, over all its rows."""
        preds = torch.softmax(logits.float(), dim=-1)
        return {"threshold": torch.quantile(preds[:, 0], target.float().mean(dim=0)[1])}

    def hardened(self, logits: torch.Tensor, target: torch.Tensor,
                 threshold: torch.Tensor | None = None) -> torch.Tensor:
        """The student's hardened labels [B, 2] (one-hot) at `threshold` (default: this
        batch's own, from batch_stats)."""
        logits, target = logits.float(), target.float()
        if threshold is None:
            threshold = self.batch_stats(logits, target)["threshold"]
        p0 = torch.softmax(logits, dim=-1)[:, 0]
        return torch.stack([p0 >= threshold, p0 < threshold], dim=1).float()

    def __call__(self, logits: torch.Tensor, target: torch.Tensor, step_frac: float,
                 threshold: torch.Tensor | None = None) -> torch.Tensor:
        """`threshold`: the whole batch's (batch_stats), when these rows are part of it."""
        logits, target = logits.float(), target.float()
        c = self.coef(step_frac)
        hard = self.hardened(logits, target, threshold)
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
