"""From a data config to samples: the built-in demo task or a loaded benchmark."""
from __future__ import annotations

from core.config import DataConfig

from .demo_task import make_demo_samples
from .loading import load_samples
from .schema import Sample


def samples_for(cfg: DataConfig) -> list[Sample]:
    if cfg.task == "demo":
        n = cfg.limit or (cfg.n_weak_train + cfg.n_transfer + cfg.n_test)
        return make_demo_samples(n, seed=cfg.seed)
    return load_samples(cfg.task, path=cfg.path, split=cfg.split, seed=cfg.seed, limit=cfg.limit)
