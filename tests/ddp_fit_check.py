"""Run by tests/test_distributed.py, once plainly and once under torchrun: trains a
small linear model with w2s_base.training.classifier.fit and writes the results (main process).

    python tests/ddp_fit_check.py OUT [LOSS:BATCH:ACCUM ...]   (default xent:8:2)

One fit per LOSS:BATCH:ACCUM (LOSS: xent or logconf), each from the same zero
initialisation on the same data (soft targets). A plain (one-process) run also fits
the full optimiser batch in one piece (batch BATCH * ACCUM, accumulation 1), written
under the key `full`: what every split of that batch must reproduce."""
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from w2s_base.training import distributed as dist  # noqa: E402
from w2s_base.training.classifier import fit  # noqa: E402
from w2s_base.config import TrainConfig  # noqa: E402
from w2s_base.losses import LOSSES  # noqa: E402

g = torch.Generator().manual_seed(0)
x = torch.randn(48, 6, generator=g)
p1 = torch.sigmoid(2 * x @ torch.randn(6, generator=g) + torch.randn(48, generator=g))
targets = torch.stack([1 - p1, p1], 1)


def run(loss: str, batch: int, accum: int) -> dict:
    model = torch.nn.Linear(6, 2)
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.zeros_(model.bias)
    tcfg = TrainConfig(epochs=3, batch_size=batch, grad_accum=accum, lr=0.05, warmup_frac=0.1)
    history = fit(model, lambda m, idx: m(x[idx]), targets, LOSSES[loss](), tcfg, seed=0,
                  desc="ddp check")
    return {"world": dist.world(), "steps": len(history), "history": history,
            "weight": model.weight.detach().tolist(), "bias": model.bias.detach().tolist()}


results = {}
for spec in sys.argv[2:] or ["xent:8:2"]:
    loss, batch, accum = spec.split(":")
    batch, accum = int(batch), int(accum)
    results[spec] = run(loss, batch, accum)
    if dist.world() == 1:
        results[spec]["full"] = run(loss, batch * accum, 1)
if dist.is_main():
    Path(sys.argv[1]).write_text(json.dumps(results))
