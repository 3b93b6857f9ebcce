"""Debate backends behind one interface, made from their registry
(w2s_base/backend_specs.py); vLLM and Ray are imported only when chosen."""
from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING

from w2s_base.backend_specs import BACKENDS, BackendSpec, backend_spec
from w2s_base.config import ConfigError

from .base import Backend, Generation, SamplingParams

if TYPE_CHECKING:
    from w2s_base.config import DebateConfig

log = logging.getLogger(__name__)


def _warn_unused_batch_size(cfg: "DebateConfig", spec: BackendSpec) -> None:
    if "batch_size" in cfg.model_fields_set and "batch_size" not in spec.reads:
        users = " / ".join(s.name for s in BACKENDS.values() if "batch_size" in s.reads)
        log.warning("debate.batch_size is the %s backend's batch and is not used by %s (%s)",
                    users, spec.name, spec.summary)


def _require(spec: BackendSpec) -> None:
    """Its packages imported now, so a missing one fails with how to install it."""
    for need in spec.needs:
        try:
            importlib.import_module(need.module)
        except ImportError as e:
            raise ImportError(f"debate.backend={spec.name} needs {need.what}, which is not "
                              f"importable here: {need.install}") from e


def make_backend(cfg: "DebateConfig") -> Backend:
    spec = backend_spec(cfg.backend)
    _warn_unused_batch_size(cfg, spec)
    problems = spec.config_problems(cfg)
    if problems:
        raise ConfigError("; ".join(problems))
    _require(spec)
    return spec.load_factory()(cfg)


__all__ = ["Backend", "Generation", "SamplingParams", "make_backend"]
