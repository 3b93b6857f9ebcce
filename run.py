#!/usr/bin/env python
"""Debate-augmented weak-to-strong pipeline: debate -> weak -> strong -> report.

  python run.py --config configs/demo.yaml            # the whole pipeline (resumable)
  python run.py --config configs/demo.yaml --set data.n_test=100 --prompts terse
  python run.py show --config configs/demo.yaml --sample demo-3
  python run.py list --config configs/demo.yaml --gold 1 --side A
  python run.py view --config configs/demo.yaml      # writes runs/demo/debates.html
  python run.py compare runs/demo runs/demo-paper

Every stage writes under runs/<name>/ and reuses finished work on rerun.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", nargs="?", default="run", choices=["run", "list", "show", "view", "compare"],
                   help="run the pipeline (default); list or show stored debate transcripts; "
                        "view: write the run's debates as one HTML file; compare two runs' reports")
    p.add_argument("runs", nargs="*", help="compare: two run folders (or names under runs/)")
    p.add_argument("--config", "-c", default="configs/demo.yaml", help="run config (YAML)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set debate.num_turns=4 (repeatable)")
    p.add_argument("--name", help="run name (folder under output_dir)")
    p.add_argument("--prompts", help="debater prompt set: a built-in name or a folder")
    p.add_argument("--no-debate", action="store_true", help="skip debates (plain weak-to-strong)")
    p.add_argument("--until", choices=["debate", "weak", "strong"],
                   help="stop after this stage (e.g. generate the debates with vLLM first, then "
                        "train under accelerate launch)")
    p.add_argument("--sample", help="list/show: only this sample id")
    p.add_argument("--side", choices=["A", "B"], help="list/show: only debates where this side argued the gold label")
    p.add_argument("--gold", type=int, choices=[0, 1], help="list/show: only samples with this gold label")
    p.add_argument("--limit", type=int, default=20, help="list/show: at most this many")
    return p.parse_args(argv)


def load(args: argparse.Namespace):
    from core.config import load_config
    ov = list(args.overrides)
    if args.name:
        ov.append(f"name={args.name}")
    if args.prompts:
        ov.append(f"debate.prompts={args.prompts}")
    if args.no_debate:
        ov.append("debate.enabled=false")
    return load_config(args.config, ov)


class StageFailed(Exception):
    """A stage could not finish; what it finished is saved and a rerun resumes."""


def run_pipeline(cfg, until: str | None = None) -> Path | None:
    import yaml

    from core import distributed as dist
    from data.source import samples_for
    from data.splits import make_splits
    from strong.report import build_report, render_table, write_report
    from strong.stage import run_strong
    from weak.stage import MemberTrainer, run_weak

    run_dir = cfg.run_dir
    main = dist.is_main()  # under a multi-process launcher, one process writes
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    timings: dict[str, float] = {}
    memory: dict[str, float] = {}  # the process's peak RSS (MB) when each stage ends

    def done(stage: str, start: float) -> None:
        import resource
        timings[stage] = time.perf_counter() - start
        memory[stage] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

    t = time.perf_counter()
    d = cfg.data
    splits = make_splits(samples_for(d), d.n_weak_train, d.n_transfer, d.n_test, d.seed, d.balance)
    if main:
        (run_dir / "splits.json").write_text(json.dumps(
            {k: [s.id for s in getattr(splits, k)] for k in ("weak_train", "transfer", "test")}))
    done("data", t)
    log = print if main else (lambda *a, **k: None)
    log(f"[data] {d.task}: weak_train {len(splits.weak_train)}, transfer {len(splits.transfer)}, "
          f"test {len(splits.test)}")

    trainer = MemberTrainer(cfg, splits, run_dir)
    transcripts: dict = {}
    all_samples = splits.weak_train + splits.transfer + splits.test
    need = cfg.debates_needed()
    if need:
        t = time.perf_counter()
        runner = debate_runner(cfg, tuple(need))
        for protocol, k in need.items():
            fixed = None
            if protocol == "market_making":
                # The consultant argues for what the plain weak model did not pick.
                ref = run_weak(cfg, splits, {}, run_dir, only=[cfg.weak.reference], trainer=trainer)
                plain = ref[cfg.weak.reference]
                p1 = {**plain.weak_train_p1, **plain.transfer_p1, **plain.test_p1}
                fixed = {s.id: int(p1[s.id] <= 0.5) for s in all_samples}
            if dist.world() > 1 and cfg.debate.backend == "vllm" and runner.missing(all_samples, protocol, k, fixed):
                raise StageFailed("an in-process vLLM engine cannot start inside a multi-process launch: "
                                  "generate the debates first with `python run.py --until debate ...`, "
                                  "then launch the training")
            with dist.main_first():  # the main process generates; the others then read the store
                transcripts[protocol] = runner.run(all_samples, protocol, k, fixed_a_labels=fixed)
            missing = len(all_samples) * k - len(transcripts[protocol])
            if missing:
                raise StageFailed(f"{missing} {protocol} transcripts failed; rerun to retry them "
                                  "(finished ones are kept)")
        done("debate", t)
    if until == "debate":
        return None

    t = time.perf_counter()
    labellers = run_weak(cfg, splits, transcripts, run_dir, trainer=trainer)
    done("weak", t)
    if until == "weak":
        return None
    t = time.perf_counter()
    students = run_strong(cfg, splits, labellers, run_dir)
    done("strong", t)
    if not main:
        return None
    report = build_report(cfg.name, splits, labellers, students, cfg.weak.reference, {
        "task": d.task, "weak_model": cfg.weak.model, "strong_model": cfg.strong.model,
        "debate": cfg.debate.model_dump(mode="json") if need else None,
        "seconds": {k: round(v, 1) for k, v in timings.items()}, "peak_rss_mb_after": memory})
    path = write_report(report, run_dir)
    # report.json holds this invocation's times (seconds when everything was cached);
    # the log keeps every invocation's, so the cold run's cost stays on record.
    from core.jsonl import JsonlWriter
    with JsonlWriter(run_dir / "timings.jsonl") as f:
        f.write({"finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "seconds": report["seconds"],
                 "peak_rss_mb_after": memory})
    print(render_table(report))
    if need:
        from debate.viewer import write_viewer
        print(f"[view] debates: {write_viewer(run_dir)}")
    print(f"[report] {path}")
    return path


def debate_runner(cfg, protocols: tuple[str, ...] = ("debate",)):
    from debate.backends import make_backend
    from debate.engine import DebateRunner
    return DebateRunner(cfg.debate, cfg.run_dir / "debate" / "transcripts.jsonl",
                        lambda: make_backend(cfg.debate), protocols)


def inspect(cfg, args) -> None:
    from debate.engine import load_transcripts
    store = cfg.run_dir / "debate" / "transcripts.jsonl"
    ts = [t for t in load_transcripts(store).values() if t.ok]
    if args.sample:
        ts = [t for t in ts if t.sample_id == args.sample]
    if args.gold is not None:
        ts = [t for t in ts if t.gold_label == args.gold]
    if args.side:
        ts = [t for t in ts if (t.a_label == t.gold_label) == (args.side == "A")]
    if not ts:
        print(f"no transcripts match in {store}")
        return
    for t in ts[: args.limit]:
        if args.command == "list":
            first = t.turns[0].text.replace("\n", " ")[:70] if t.turns else ""
            print(f"{t.sample_id:>14} k={t.debate_index} gold={t.gold_label} A->{t.a_label} "
                  f"[{t.prompt_set}] {first}")
        else:
            print(f"=== {t.sample_id} (debate {t.debate_index}, gold {t.gold_label}; "
                  f"{t.model}, {t.backend}, prompts {t.prompt_set}@{t.prompt_hash}, seed {t.seed})")
            print(t.sample_text)
            for x in t.turns:
                print(f"--- {x.side} [{t.positions[x.position_label]}] ({x.completion_tokens} tok, {x.finish_reason})")
                print(x.text)
            print()


def compare(paths: list[str]) -> None:
    from core.config import ConfigError
    from strong.report import compare_reports
    if len(paths) != 2:
        raise ConfigError("compare needs two runs: python run.py compare RUN_A RUN_B")
    reports = []
    for p in paths:
        f = Path(p) / "report.json" if Path(p).is_dir() else Path("runs") / p / "report.json"
        if not f.exists():
            raise ConfigError(f"no report at {f}: run the pipeline for {p} first")
        reports.append(json.loads(f.read_text()))
    print(compare_reports(*reports))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from core.config import ConfigError
    from core.models import ModelNotFound
    from data.schema import DataError
    from debate.prompts import PromptError
    try:
        if args.command == "compare":
            compare(args.runs)
            return 0
        cfg = load(args)
        if args.command == "run":
            run_pipeline(cfg, args.until)
        elif args.command == "view":
            from debate.viewer import write_viewer
            print(write_viewer(cfg.run_dir))
        else:
            inspect(cfg, args)
    except (ConfigError, DataError, PromptError, ModelNotFound) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except StageFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ImportError as e:  # an optional backend (vLLM, httpx) that is not installed
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished work is saved; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # the guard matters: vLLM's engine spawns worker processes
    sys.exit(main())
