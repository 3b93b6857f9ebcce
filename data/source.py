"""From a data config to samples, through the task registry (data/tasks.py):
a built-in task is generated, any other is loaded from a file or the hub."""
from __future__ import annotations

from w2s_base.config import DataConfig

from .loading import load_samples
from .schema import Sample
from .tasks import get_task


def samples_for(cfg: DataConfig) -> list[Sample]:
    spec = get_task(cfg.task)
    if spec.generate is not None:
        n = cfg.limit or (cfg.n_weak_train + cfg.n_transfer + cfg.n_test)
        return spec.generate(n, cfg.seed)
    return load_samples(cfg.task, path=cfg.path, split=cfg.split, seed=cfg.seed, limit=cfg.limit)
