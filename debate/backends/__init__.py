"""Debate backends behind one interface; vLLM is imported only when chosen."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Backend, Generation, SamplingParams

if TYPE_CHECKING:
    from core.config import DebateConfig


def make_backend(cfg: "DebateConfig") -> Backend:
    if cfg.backend == "transformers":
        from .transformers_backend import TransformersBackend
        return TransformersBackend(cfg.model, batch_size=cfg.batch_size, cpu_int8=cfg.cpu_int8)
    raise NotImplementedError(f"debate backend {cfg.backend!r} is not available in this build")


__all__ = ["Backend", "Generation", "SamplingParams", "make_backend"]
