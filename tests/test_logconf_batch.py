"""logconf's hardening threshold is a statistic of the whole optimiser batch: a batch
that w2s_base.training.classifier.fit splits into micro-batches (grad_accum) or process shares
(DDP; two real processes in tests/test_distributed.py) must train exactly as the
whole batch in one piece."""
import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from w2s_base.training.classifier import _gather_rows, fit
from w2s_base.config import TrainConfig
from w2s_base.losses import LOSSES, LogConfLoss, ProductLoss, XentLoss


def _data(n=56, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    p1 = torch.sigmoid(2 * x @ torch.randn(d, generator=g) + torch.randn(n, generator=g))
    return x, torch.stack([1 - p1, p1], 1)


def _model(d=5):
    torch.manual_seed(1)  # not zero: the student's predictions differ from the first step
    return torch.nn.Linear(d, 2)


def _fit(model, x, targets, loss, batch, accum, epochs=3):
    tcfg = TrainConfig(epochs=epochs, batch_size=batch, grad_accum=accum, lr=0.05, warmup_frac=0.1)
    return fit(model, lambda m, idx: m(x[idx]), targets, loss, tcfg, seed=0, desc="test", ddp=False)


class OwnRowsLogConf(LogConfLoss):
    """The behaviour before the fix: every call hardens at its own rows' threshold."""

    def __call__(self, logits, target, step_frac, threshold=None):
        return super().__call__(logits, target, step_frac)


class RecordingLogConf(LogConfLoss):
    """Records the hardened labels of every call, by step."""

    def __init__(self):
        super().__init__()
        self.hard: dict[float, list[torch.Tensor]] = {}
        self.own: dict[float, list[torch.Tensor]] = {}  # at each call's own rows' threshold

    def __call__(self, logits, target, step_frac, threshold=None):
        self.hard.setdefault(step_frac, []).append(self.hardened(logits, target, threshold).detach())
        self.own.setdefault(step_frac, []).append(self.hardened(logits, target).detach())
        return super().__call__(logits, target, step_frac, threshold)


def test_threshold_argument_and_single_call_unchanged():
    g = torch.Generator().manual_seed(3)
    logits, p1 = torch.randn(32, 2, generator=g), torch.rand(32, generator=g)
    weak = torch.stack([1 - p1, p1], 1)
    loss = LogConfLoss()
    own = loss.batch_stats(logits, weak)["threshold"]
    assert own.item() == torch.quantile(torch.softmax(logits, -1)[:, 0], p1.mean()).item()
    assert torch.equal(loss(logits, weak, 0.5), loss(logits, weak, 0.5, threshold=own))
    # 4 micro-batches of 8 rows at the whole batch's threshold: their mean is the whole
    # batch's loss; at their own thresholds it is not (the measured bug)
    parts = [loss(logits[i:i + 8], weak[i:i + 8], 0.5, threshold=own) for i in range(0, 32, 8)]
    assert torch.stack(parts).mean().item() == pytest.approx(loss(logits, weak, 0.5).item(), abs=1e-6)
    apart = torch.stack([loss(logits[i:i + 8], weak[i:i + 8], 0.5) for i in range(0, 32, 8)]).mean()
    assert abs(apart.item() - loss(logits, weak, 0.5).item()) > 1e-3
    # per-row losses declare that they need no batch statistics
    assert XentLoss.batch_stats is None and ProductLoss.batch_stats is None


@pytest.mark.parametrize("name", ["xent", "logconf"])
def test_accumulated_fit_equals_full_batch_fit(name):
    x, targets = _data()
    full, split = _model(), _model()
    split.load_state_dict(full.state_dict())
    h_full = _fit(full, x, targets, LOSSES[name](), batch=32, accum=1)
    h_split = _fit(split, x, targets, LOSSES[name](), batch=8, accum=4)
    assert len(h_full) == len(h_split) == 6  # 3 epochs of 56 rows in batches of 32, across epochs
    np.testing.assert_allclose(h_split, h_full, atol=1e-5)  # the history is the whole batch's loss
    for a, b in zip(split.parameters(), full.parameters()):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), atol=1e-5)
    assert (full.weight - _model().weight).abs().sum() > 0.1  # it did train
    if name == "logconf":  # the test can tell: per-micro-batch thresholds train otherwise
        old = _model()
        _fit(old, x, targets, OwnRowsLogConf(), batch=8, accum=4)
        assert (old.weight - full.weight).abs().max() > 1e-3


def test_split_run_hardens_as_the_full_batch():
    x, targets = _data()
    full, split = _model(), _model()
    split.load_state_dict(full.state_dict())
    rec_full, rec_split = RecordingLogConf(), RecordingLogConf()
    _fit(full, x, targets, rec_full, batch=32, accum=1)
    _fit(split, x, targets, rec_split, batch=8, accum=4)
    assert rec_full.hard.keys() == rec_split.hard.keys()
    flipped = 0
    for frac, (hard,) in rec_full.hard.items():
        assert len(rec_split.hard[frac]) == 4
        assert torch.equal(torch.cat(rec_split.hard[frac]), hard), frac
        flipped += int((torch.cat(rec_split.own[frac]) != hard).any(1).sum())
    assert flipped > 0  # hardening each micro-batch at its own threshold would flip labels


def test_gather_rows_restores_single_process_order():
    """Three simulated processes, uneven shares (micro-batches of 7 and 5 rows)."""
    batches = [[10, 11, 12, 13, 14, 15, 16], [20, 21, 22, 23, 24]]
    n_proc = 3
    rows = lambda idx: torch.tensor(idx, dtype=torch.float32)[:, None].repeat(1, 2)
    sent = []
    record = SimpleNamespace(gather=lambda t: sent.append(t) or torch.cat([t] * n_proc))
    for rank in range(n_proc):
        _gather_rows(record, [rows(b[rank::n_proc]) for b in batches], [7, 5], n_proc)
    gathered = SimpleNamespace(gather=lambda t: torch.cat(sent))  # rank order, as accelerate's
    out = _gather_rows(gathered, [rows(b[0::n_proc]) for b in batches], [7, 5], n_proc)
    assert torch.equal(out, rows(batches[0] + batches[1]))
    single = _gather_rows(None, [rows(b) for b in batches], [7, 5], 1)
    assert torch.equal(single, out)


def test_unsplit_logconf_and_xent_skip_the_extra_pass():
    x, targets = _data()
    calls = []

    def forward(m, idx):
        calls.append(torch.is_grad_enabled())
        return m(x[idx])

    for loss, accum, extra in [(XentLoss(), 4, False), (LogConfLoss(), 1, False), (LogConfLoss(), 4, True)]:
        calls.clear()
        tcfg = TrainConfig(epochs=1, batch_size=8, grad_accum=accum, lr=0.05)
        steps = len(fit(copy.deepcopy(_model()), forward, targets, loss, tcfg, seed=0, desc="t", ddp=False))
        assert calls.count(True) == steps * accum
        assert calls.count(False) == (steps * accum if extra else 0)
