"""Run by tests/test_distributed.py, once plainly and once under torchrun: trains a
small linear model with core.classifier.fit and writes the result (main process)."""
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import distributed as dist  # noqa: E402
from core.classifier import fit  # noqa: E402
from core.config import TrainConfig  # noqa: E402
from core.losses import XentLoss  # noqa: E402

g = torch.Generator().manual_seed(0)
x = torch.randn(48, 6, generator=g)
y = (x @ torch.randn(6, generator=g) > 0).float()
targets = torch.stack([1 - y, y], 1)
model = torch.nn.Linear(6, 2)
torch.nn.init.zeros_(model.weight)
torch.nn.init.zeros_(model.bias)
tcfg = TrainConfig(epochs=3, batch_size=8, grad_accum=2, lr=0.05, warmup_frac=0.1)
history = fit(model, lambda m, idx: m(x[idx]), targets, XentLoss(), tcfg, seed=0, desc="ddp check")
if dist.is_main():
    Path(sys.argv[1]).write_text(json.dumps({
        "world": dist.world(), "steps": len(history),
        "weight": model.weight.detach().tolist(), "bias": model.bias.detach().tolist()}))
