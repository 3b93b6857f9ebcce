"""Losses on soft labels, with the semantics of openai/weak-to-strong `loss.py`.

Each loss takes logits [B, 2], target probabilities [B, 2] and the fraction of
training done, and returns a scalar: the mean over the B rows. Targets are
probabilities, so gold labels are one-hot and weak labels are the weak model's
(aggregated) soft predictions.

LOSSES is the only list of losses: `strong.losses` names and the per-loss sections
of `strong.loss_settings` are validated against it, and a student's cache key is its
built loss's `spec()`. A loss is a dataclass registered with `@register_loss(name)`;
its dataclass fields are its hyperparameters (`strong.loss_settings.<name>.<field>`),
declared nowhere else. To add one, write it here, or in a module of your own that is
imported before the config is loaded (as tests/extensions/toy_loss.py is).

torch is imported inside the computations, not at the top: the config (which must
load without torch, so that its errors come before the slow imports) reads this
registry and the hyperparameters' declarations.

Batch statistics: a loss whose target depends on a statistic of the whole batch
(logconf's hardening threshold) has a method `batch_stats(logits, target) -> dict`;
the others have `batch_stats = None`. Called with those keyword arguments, the loss
uses the given statistics instead of computing them from its own rows, so that a
batch split over micro-batches or processes (training/classifier.fit) is trained
exactly as the whole batch would be. Called without them, it computes them from
its rows: a single call is unchanged.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from pydantic import ConfigDict

from w2s_base.registry import Registry

if TYPE_CHECKING:
    import torch

LOSSES: Registry[type["Loss"]] = Registry("loss")


@dataclass
class Loss:
    """What every loss is: a dataclass whose fields are its hyperparameters, each with
    a default (what a config that leaves it out trains with), called as
    loss(logits, target, step_frac)."""
    # the config validates a loss's settings section against its fields (pydantic):
    # a key that is not one of them is an error, never ignored
    __pydantic_config__: ClassVar = ConfigDict(extra="forbid")
    name: ClassVar[str]   # set by register_loss
    batch_stats = None    # per-row target: nothing to share across a split batch

    def __call__(self, logits: torch.Tensor, target: torch.Tensor, step_frac: float) -> torch.Tensor:
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        """Its name and every hyperparameter: what a model trained with it depends on."""
        return {"name": self.name, **asdict(self)}


def register_loss(name: str) -> Callable[[type[Loss]], type[Loss]]:
    """Class decorator: registers a Loss dataclass as `name` in LOSSES."""
    def add(cls: type[Loss]) -> type[Loss]:
        cls.name = name
        return LOSSES.register(name)(cls)
    return add


def describe_losses() -> str:
    """Every registered loss with its hyperparameters' defaults, e.g. "xent, logconf
    (aux_coef=0.5, warmup_frac=0.1)" (for --help)."""
    def one(name: str, cls: type[Loss]) -> str:
        params = ", ".join(f"{k}={v}" for k, v in asdict(cls()).items())
        return f"{name} ({params})" if params else name
    return ", ".join(one(name, cls) for name, cls in LOSSES.items())


@register_loss("xent")
@dataclass
class XentLoss(Loss):
    def __call__(self, logits: torch.Tensor, target: torch.Tensor, step_frac: float) -> torch.Tensor:
        import torch.nn.functional as F
        return F.cross_entropy(logits.float(), target.float())


@register_loss("product")
@dataclass
class ProductLoss(Loss):
    """Target ∝ student^beta · weak^alpha, detached (Burns et al.'s `product`)."""
    alpha: float = 1.0  # exponent of the weak label
    beta: float = 1.0   # exponent of the student's prediction

    def __call__(self, logits: torch.Tensor, target: torch.Tensor, step_frac: float) -> torch.Tensor:
        import torch
        import torch.nn.functional as F
        preds = torch.softmax(logits.float(), dim=-1)
        t = preds.pow(self.beta) * target.float().pow(self.alpha)
        t = (t / t.sum(dim=-1, keepdim=True)).detach()
        return F.cross_entropy(logits.float(), t)


@register_loss("logconf")
@dataclass
class LogConfLoss(Loss):
    """Auxiliary confidence loss (Burns et al.'s `logconf`).

    target = (1 - c) * weak + c * hardened student prediction, where the student's
    prediction is hardened at the batch quantile of its class-0 probability taken
    at the weak labels' mean class-1 rate (so the hardened labels keep the weak
    positive rate). c = step_frac * aux_coef during the first warmup_frac of
    training, then aux_coef: exactly the reference's schedule, which jumps from
    warmup_frac * aux_coef to aux_coef when warm-up ends. The batch is the optimiser
    batch: training/classifier.fit passes its threshold to every micro-batch and process
    share of it (batch_stats).
    """
    aux_coef: float = 0.5     # the weight of the hardened prediction after warm-up
    warmup_frac: float = 0.1  # the fraction of training during which it is step_frac * aux_coef

    def coef(self, step_frac: float) -> float:
        return (step_frac if step_frac <= self.warmup_frac else 1.0) * self.aux_coef

    def batch_stats(self, logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """The hardening threshold of a batch: the quantile of the student's class-0
        probability at the weak labels' mean class-1 rate, over all its rows."""
        import torch
        preds = torch.softmax(logits.float(), dim=-1)
        return {"threshold": torch.quantile(preds[:, 0], target.float().mean(dim=0)[1])}

    def hardened(self, logits: torch.Tensor, target: torch.Tensor,
                 threshold: torch.Tensor | None = None) -> torch.Tensor:
        """The student's hardened labels [B, 2] (one-hot) at `threshold` (default: this
        batch's own, from batch_stats)."""
        import torch
        logits, target = logits.float(), target.float()
        if threshold is None:
            threshold = self.batch_stats(logits, target)["threshold"]
        p0 = torch.softmax(logits, dim=-1)[:, 0]
        return torch.stack([p0 >= threshold, p0 < threshold], dim=1).float()

    def __call__(self, logits: torch.Tensor, target: torch.Tensor, step_frac: float,
                 threshold: torch.Tensor | None = None) -> torch.Tensor:
        """`threshold`: the whole batch's (batch_stats), when these rows are part of it."""
        import torch.nn.functional as F
        logits, target = logits.float(), target.float()
        c = self.coef(step_frac)
        hard = self.hardened(logits, target, threshold)
        mixed = target * (1 - c) + hard.detach() * c
        return F.cross_entropy(logits, mixed)
