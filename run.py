#!/usr/bin/env python
"""Debate-augmented weak-to-strong pipeline (see pipeline.py for the stages).

  python run.py --config configs/demo.yaml            # the whole pipeline (resumable)
  python run.py plan --config configs/paper_sciq_gpu.yaml   # counts, GPU memory per job, fits?
  python run.py --config configs/demo.yaml --set data.n_test=100 --prompts terse
  python run.py show --config configs/demo.yaml --sample demo-3
  python run.py list --config configs/demo.yaml --gold 1 --side A
  python run.py view --config configs/demo.yaml      # writes runs/demo/debates.html
  python run.py export --format inspect --config configs/demo.yaml   # inspect_ai logs (`inspect view`)
  python run.py compare runs/demo runs/demo-paper
  python run.py verify --config configs/demo.yaml   # is the run folder intact? (what to rerun if not)

Every stage writes under runs/<name>/ and reuses finished work on rerun.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def parse_args(argv: list[str]) -> argparse.Namespace:
    # the extension points' registries (none imports torch): --help lists what they hold
    from w2s_base.backend_specs import describe_backends
    from w2s_base.losses import describe_losses
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=f"losses (strong.losses; hyperparameters: --set "
                                       f"strong.loss_settings.<loss>.<key>=...): {describe_losses()}\n"
                                       f"debate backends (debate.backend):\n{describe_backends()}")
    p.add_argument("command", nargs="?", default="run",
                   choices=["run", "plan", "list", "show", "view", "export", "compare", "verify"],
                   help="run the pipeline (default); plan: counts and GPU memory per job, before the "
                        "spend; list or show stored debate transcripts; view: write the run's debate "
                        "viewer; export: inspect_ai eval logs; compare two runs' reports; verify: check the run "
                        "folder's integrity (0 intact, 1 damaged/stale/missing, 2 no run)")
    p.add_argument("runs", nargs="*", help="compare: two or more run folders (or names under runs/); each "
                   "later run against the first, paired on their common test ids")
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
    p.add_argument("--format", dest="export_format", choices=["inspect"], default="inspect",
                   help="export: inspect_ai .eval logs, one per protocol and split")
    p.add_argument("--out", help="export: output folder (default runs/<name>/inspect/)")
    p.add_argument("--max-samples-per-log", type=int, default=1000, help="export: larger logs are split")
    p.add_argument("--gpu-memory-gib", type=float, help="plan: GPU memory per process (default: "
                   "the smallest visible CUDA device, else 80)")
    p.add_argument("--processes", type=int, help="plan: training processes (default: WORLD_SIZE, else 1)")
    loud = p.add_mutually_exclusive_group()
    loud.add_argument("--quiet", "-q", action="store_true", help="print only errors and the final table")
    loud.add_argument("--verbose", "-v", action="store_true",
                      help="show the libraries' own output: load reports, warnings, every progress bar")
    return p.parse_args(argv)


def load(args: argparse.Namespace):
    from w2s_base.config import load_config
    ov = list(args.overrides)
    if args.name is not None:  # quoted: `--name 2024` is the string "2024"
        ov.append(f"name={json.dumps(args.name)}")
    if args.prompts is not None:
        ov.append(f"debate.prompts={json.dumps(args.prompts)}")
    if args.no_debate:
        ov.append("debate.enabled=false")
    return load_config(args.config, ov)


def dispatch(args: argparse.Namespace) -> int | None:
    if args.command == "compare":
        from w2s_run.report.compare import compare_runs
        return print(compare_runs(args.runs), end="")
    cfg = load(args)
    if args.command == "run":
        from w2s_run.pipeline import run_pipeline
        run_pipeline(cfg, args.until)
    elif args.command == "verify":
        from w2s_run.services.verify import print_verify
        return print_verify(cfg)
    elif args.command == "plan":
        from w2s_run.services.plan import print_plan
        print_plan(cfg, args.gpu_memory_gib, args.processes)
    elif args.command == "view":
        from w2s_run.report.viewer import write_viewer
        print(write_viewer(cfg.replicate_layout(0)))  # replicate 0's labels beside every transcript
    elif args.command == "export":
        from w2s_run.report.inspect_export import export_inspect
        files = export_inspect(cfg.replicate_layout(0), args.out, max(1, args.max_samples_per_log))
        print("\n".join(map(str, files)) or f"no finished transcripts in {cfg.layout.transcripts}")
    else:
        from w2s_run.report.listing import print_transcripts
        print_transcripts(cfg.layout, args.command == "show", args.sample, args.gold, args.side, args.limit)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from w2s_base.console import quiet_libraries  # first: tqdm reads TQDM_DISABLE when first imported
    quiet_libraries("quiet" if args.quiet else "verbose" if args.verbose else "normal")
    from w2s_base.config import ConfigError
    from w2s_base.training.models import ModelNotFound
    from data.schema import DataError
    from debate.prompts import PromptError
    from w2s_run.pipeline import StageFailed
    from w2s_run.report import ReportError
    try:
        rc = dispatch(args)
    except (ConfigError, DataError, PromptError, ModelNotFound, ReportError) as e:
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
    return rc or 0


if __name__ == "__main__":  # the guard matters: vLLM's engine spawns worker processes
    sys.exit(main())
