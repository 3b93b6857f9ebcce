"""Debate-augmented weak-to-strong pipeline: the command line (see pipeline.py for the stages).

  w2s-debate --config demo                       # the whole pipeline (resumable); `run` is the default verb
  w2s-debate plan --config paper_sciq_gpu        # counts, GPU memory per job, fits?
  w2s-debate --config demo --set data.n_test=100 --prompts terse
  w2s-debate --config demo --until debate        # stop after a stage; it prints what it made and what next
  w2s-debate show --config demo --sample demo-3
  w2s-debate list --config demo --gold 1 --side A
  w2s-debate view --config demo                  # writes runs/demo/debates.html
  w2s-debate export --config demo --format inspect   # inspect_ai logs (`inspect view`)
  w2s-debate compare runs/demo runs/demo-paper
  w2s-debate --config sweep_cpu                  # a capability-gap sweep: one run per (weak, strong) pair

`--config` takes a YAML file, or the name of a config shipped in the repository's
configs/ folder (a path that exists wins). Every stage writes under <output_dir>/<name>/
(runs/ under the working directory by default) and reuses finished work on rerun.
`python run.py ...` and `python -m w2s_run.cli ...` are the same command.

Each verb has its own flags (`w2s-debate VERB -h`). Adding a verb is one entry in VERBS.
Nothing here imports torch or transformers before the config is read and checked: a
config error is one line, in well under a second.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from w2s_base.config import RunConfig
    from w2s_base.runfolder.layout import RunLayout

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The configs shipped with the code, reachable by name from any directory: found beside
# the package (the repository's configs/ folder), never through the working directory.
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
DEFAULT_CONFIG = "demo"
STAGES = ("debate", "weak", "audit", "strong")  # in the order they run (w2s_run/pipeline.py)


# ---------------------------------------------------------------- configs by name
def shipped_configs() -> list[str]:
    return sorted(p.stem for p in CONFIGS.glob("*.yaml"))


def resolve_config(value: str) -> Path:
    """`--config`: a file that exists is taken as given; a bare name (`demo`, `demo.yaml`)
    is a shipped config; anything else is an error naming the shipped ones."""
    from w2s_base.config import ConfigError
    p = Path(value).expanduser()
    if p.exists():
        return p
    names = ", ".join(shipped_configs()) or "none"
    if len(p.parts) == 1:
        name = p.stem if p.suffix in (".yaml", ".yml") else p.name
        if (CONFIGS / f"{name}.yaml").is_file():
            return CONFIGS / f"{name}.yaml"
        raise ConfigError(f"--config {value!r}: no such file, and no shipped config of that name "
                          f"(shipped: {names})")
    raise ConfigError(f"--config {value!r}: no such file (or give a shipped config by name: {names})")


# ---------------------------------------------------------------- flag groups
def _config_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", default=DEFAULT_CONFIG,
                   help=f"run config: a YAML file, or a shipped config's name ({', '.join(shipped_configs())}; "
                        f"default {DEFAULT_CONFIG})")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set debate.num_turns=4 (repeatable)")
    p.add_argument("--name", help="run name (folder under output_dir)")


def _debate_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prompts", help="debater prompt set: a built-in name or a folder")
    p.add_argument("--no-debate", action="store_true", help="skip debates (plain weak-to-strong)")


def _until_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--until", choices=STAGES,
                   help="stop after this stage: debate, weak (the weak labellers), audit (the out-of-fold "
                        "ceiling and the audit, before any student trains), strong (e.g. generate the debates "
                        "with vLLM first, then train under accelerate launch); it prints what it made and the "
                        "next command")


def _loudness_flags(p: argparse.ArgumentParser) -> None:
    loud = p.add_mutually_exclusive_group()
    loud.add_argument("--quiet", "-q", action="store_true", help="print only errors and the final table")
    loud.add_argument("--verbose", "-v", action="store_true",
                      help="show the libraries' own output: load reports, warnings, every progress bar")


def _filter_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sample", help="only this sample id (an error when the run has no such sample)")
    p.add_argument("--side", choices=["A", "B"], help="only debates where this side argued the gold label")
    p.add_argument("--gold", type=int, choices=[0, 1], help="only samples with this gold label")
    p.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")


def _plan_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gpu-memory-gib", type=float, help="GPU memory per process (default: the smallest "
                   "visible CUDA device, else 80)")
    p.add_argument("--processes", type=int, help="training processes (default: WORLD_SIZE, else 1)")


def _export_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", dest="export_format", choices=["inspect"], default="inspect",
                   help="inspect: inspect_ai .eval logs, one per protocol and split")
    p.add_argument("--out", help="output folder (default runs/<name>/inspect/)")
    p.add_argument("--max-samples-per-log", type=int, default=1000, help="larger logs are split")


def _runs_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN", help="two or more run folders (or names under runs/); "
                   "each later run against the first, paired on their common test ids")


# ---------------------------------------------------------------- the verbs
def load(args: argparse.Namespace) -> "RunConfig":
    """The validated config the flags name (torch-free)."""
    from w2s_base.config import load_config
    ov = list(args.overrides)
    if args.name is not None:  # quoted: `--name 2024` is the string "2024"
        ov.append(f"name={json.dumps(args.name)}")
    if getattr(args, "prompts", None) is not None:
        ov.append(f"debate.prompts={json.dumps(args.prompts)}")
    if getattr(args, "no_debate", False):
        ov.append("debate.enabled=false")
    return load_config(resolve_config(args.config), ov)


def _existing_run(cfg: "RunConfig") -> "RunLayout":
    """The run folder of a reading verb: it must exist, and it is never created."""
    from w2s_run.report.model import ReportError
    layout = cfg.layout
    if cfg.sweep is not None:  # the sweep's folder holds runs, not one run's stores
        pair = cfg.sweep.pairs[0].folder
        raise ReportError(f"{cfg.name} is a capability-gap sweep (its summary: {layout.sweep_md}); this verb "
                          f"reads one pair's run: --config {layout.sweep_runs / pair / 'config.yaml'} (one per pair)")
    if not layout.root.is_dir():
        raise ReportError(f"no run folder at {layout.root}: run `{_prog()} --config ...` first "
                          "(or check --name, --config and output_dir)")
    return layout


def _idle_run_with_transcripts(cfg: "RunConfig") -> "RunLayout":
    """`view` and `export` read the whole transcript store: a folder a live run holds is
    refused (not read as a snapshot), since that run may still be writing it."""
    from w2s_base.runfolder.runlock import describe, live_holder
    from w2s_run.report.listing import require_store
    from w2s_run.report.model import ReportError
    layout = _existing_run(cfg)
    holder = live_holder(layout.root)
    if holder is not None:
        raise ReportError(f"run folder {layout.root} is in use by a live run ({describe(holder)}); "
                          "rerun this when it has ended")
    require_store(layout)
    return layout


def _verify(args: argparse.Namespace) -> int:
    """0 intact, 1 something damaged, stale or missing, 2 no such run (creates nothing).
    A folder a live run holds is refused: its files are still changing."""
    from w2s_base.runfolder.runlock import describe, live_holder
    from w2s_run.report.model import ReportError
    cfg = load(args)
    layout = _existing_run(cfg)
    holder = live_holder(layout.root)
    if holder is not None:
        raise ReportError(f"run folder {layout.root} is in use by a live run ({describe(holder)}); "
                          "verify it when that run has ended")
    from w2s_run.services.verify import print_verify
    return print_verify(cfg)


def _run(args: argparse.Namespace) -> int:
    cfg = load(args)
    if cfg.sweep is not None:  # a capability-gap sweep: every pair's run, then the summary
        return _run_sweep(cfg, args)
    # every check that needs no model, before torch is imported: models, files, folders
    # (preflight, again in run_pipeline), and the debaters' prompt set (again in the engine)
    from w2s_run.services.preflight import preflight
    preflight(cfg, args.until)
    if cfg.debates_needed():
        from debate.prompts import prompts_for
        prompts_for(cfg.debate, tuple(cfg.debates_needed()))
    from w2s_base.console import quiet_libraries  # imports transformers' logging; before tqdm loads
    quiet_libraries("quiet" if args.quiet else "verbose" if args.verbose else "normal")
    from w2s_run.pipeline import run_pipeline
    report = run_pipeline(cfg, args.until)
    from w2s_base.training import distributed as dist
    if report is None and args.until in ("debate", "weak", "audit") and dist.is_main():
        print(f"next: {_next_command(args.argv)}   (finished stages are reused)")
    return 0


def _run_sweep(cfg: "RunConfig", args: argparse.Namespace) -> int:
    # every pair checked (models, files, prompts) before torch is imported or any pair starts
    from w2s_run.sweep import check_sweep, run_sweep
    check_sweep(cfg, args.until)
    from w2s_base.console import quiet_libraries
    quiet_libraries("quiet" if args.quiet else "verbose" if args.verbose else "normal")
    run_sweep(cfg, args.until)
    from w2s_base.training import distributed as dist
    if args.until in ("debate", "weak") and dist.is_main():
        print(f"next: {_next_command(args.argv)}   (finished stages are reused)")
    return 0


def _plan(args: argparse.Namespace) -> int:
    from w2s_run.services.plan import print_plan
    cfg = load(args)
    if cfg.sweep is None:
        print_plan(cfg, args.gpu_memory_gib, args.processes)
        return 0
    # a sweep's work is the sum of its pairs' plans
    from w2s_run.sweep import pair_configs
    pairs = pair_configs(cfg)
    for i, (pair, c) in enumerate(pairs):
        print(f"# sweep pair {i + 1} of {len(pairs)}: weak {pair.weak}, strong {pair.strong} ({c.run_dir})")
        print_plan(c, args.gpu_memory_gib, args.processes)
        print()
    print(f"sweep {cfg.name}: {len(pairs)} pairs, each a run of the plan above it; the sweep's work is their sum")
    return 0


def _listing(args: argparse.Namespace) -> int:
    layout = _existing_run(load(args))
    from w2s_run.report.listing import print_transcripts
    print_transcripts(layout, args.command == "show", args.sample, args.gold, args.side, args.limit)
    return 0


def _view(args: argparse.Namespace) -> int:
    cfg = load(args)
    _idle_run_with_transcripts(cfg)
    from w2s_run.report.viewer import write_viewer
    print(write_viewer(cfg.replicate_layout(0)))  # replicate 0's labels beside every transcript
    return 0


def _export(args: argparse.Namespace) -> int:
    cfg = load(args)
    _idle_run_with_transcripts(cfg)
    from w2s_run.report.inspect_export import export_inspect
    files = export_inspect(cfg.replicate_layout(0), args.out, max(1, args.max_samples_per_log))
    print("\n".join(map(str, files)) or f"no finished transcripts in {cfg.layout.transcripts}")
    if files:
        from w2s_run.report.inspect_export import view_command
        print(f"view them: {view_command(files)}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from w2s_run.report.compare import compare_runs
    print(compare_runs(args.runs), end="")
    return 0


@dataclass(frozen=True)
class Verb:
    help: str
    flags: tuple[Callable[[argparse.ArgumentParser], None], ...]
    handler: Callable[[argparse.Namespace], int]  # the exit status
    registries: bool = False  # list the losses and debate backends in its --help


_CONFIG = (_config_flags,)
# The verbs, in --help's order; the first is the default (`w2s-debate --config demo`).
# A new verb is one entry here: its help, its flag groups, its handler (args -> exit
# status).
VERBS: dict[str, Verb] = {
    "run": Verb("run the pipeline (the default verb; resumable)",
                _CONFIG + (_debate_flags, _until_flag, _loudness_flags), _run, registries=True),
    "plan": Verb("counts and GPU memory per job, before the spend",
                 _CONFIG + (_debate_flags, _plan_flags), _plan, registries=True),
    "list": Verb("list stored debate transcripts, one line each", _CONFIG + (_filter_flags,), _listing),
    "show": Verb("show stored debate transcripts in full", _CONFIG + (_filter_flags,), _listing),
    "view": Verb("write the run's debate viewer (runs/<name>/debates.html); refused while a live run "
                 "holds the folder", _CONFIG, _view),
    "export": Verb("export the transcripts as inspect_ai eval logs (`inspect view`); refused while a live "
                   "run holds the folder", _CONFIG + (_export_flags,), _export),
    "compare": Verb("compare two or more runs' reports, paired on their common test ids", (_runs_arg,),
                    _compare),
    "verify": Verb("check a run folder's integrity against its config of record: store checksums, members' "
                   "and students' fingerprints, the files the report was built from (0 intact, 1 not); "
                   "refused while a live run holds the folder", _CONFIG + (_debate_flags,), _verify),
}
DEFAULT_VERB = next(iter(VERBS))


def _registries() -> str:
    # the extension points' registries (none imports torch)
    from w2s_base.backend_specs import describe_backends
    from w2s_base.losses import describe_losses
    return (f"losses (strong.losses; hyperparameters: --set strong.loss_settings.<loss>.<key>=...): "
            f"{describe_losses()}\ndebate backends (debate.backend):\n{describe_backends()}")


def _prog() -> str:
    """How the user called us, for the usage line and the next command to run."""
    argv0 = sys.argv[0] if sys.argv else ""
    if argv0.endswith("run.py"):
        return f"python {argv0}"
    return "w2s-debate"


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser and each verb's own."""
    raw = argparse.RawDescriptionHelpFormatter
    registries = _registries()
    p = argparse.ArgumentParser(prog=_prog(), description=__doc__, formatter_class=raw, epilog=registries)
    sub = p.add_subparsers(dest="command", metavar="VERB",
                           title=f"verbs (default: {DEFAULT_VERB}; `VERB -h` for its flags)")
    verbs = {}
    for name, verb in VERBS.items():
        verbs[name] = v = sub.add_parser(name, help=verb.help, description=verb.help, formatter_class=raw,
                                         epilog=registries if verb.registries else None)
        for add in verb.flags:
            add(v)
    return p, verbs


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse; no verb means `run` (`w2s-debate --config demo`). A flag the verb does not
    have is an error (rc 2) in that verb's usage."""
    argv = list(argv)
    if not argv or (argv[0] not in VERBS and argv[0] not in ("-h", "--help")):
        argv = [DEFAULT_VERB] + argv
    parser, verbs = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        verbs[args.command].error(f"unrecognized arguments: {' '.join(extra)} (`{argv[0]} -h` lists its flags)")
    args.argv = argv
    return args


def _next_command(argv: list[str]) -> str:
    """The command that carries on after `--until`: the same one, without --until and the verb."""
    rest, skip = [], False
    for a in argv[1:]:  # argv[0] is the verb
        if skip:
            skip = False
        elif a == "--until":
            skip = True
        elif not a.startswith("--until="):
            rest.append(a)
    return f"{_prog()} {shlex.join(rest)}".rstrip()


def _exit_status(e: BaseException) -> int | None:
    """2: the user's input (config, data, prompts, models, a run or sample that does not
    exist, an optional package not installed); 1: a stage failed (finished work is kept);
    None: a bug, whose traceback is shown. Every class here is importable without torch."""
    from w2s_base.config import ConfigError
    from w2s_base.training.models import ModelNotFound
    from data.schema import DataError
    from debate.prompts import PromptError
    from w2s_base.runfolder.faults import RunFolderError
    from w2s_run.errors import StageFailed
    from w2s_run.report.model import ReportError
    if isinstance(e, (ConfigError, DataError, PromptError, ModelNotFound, ReportError, ImportError)):
        return 2
    if isinstance(e, (StageFailed, RunFolderError)):  # the run folder's OS fault: fix it, rerun to resume
        return 1
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return VERBS[args.command].handler(args)
    except BrokenPipeError:  # `w2s-debate show ... | head`: the reader left; no traceback
        # (the Python docs' recipe: point stdout at devnull so the exit flush cannot fail again)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: finished work is saved; rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as e:
        rc = _exit_status(e)
        if rc is None:
            raise
        print(f"error: {e}", file=sys.stderr)
        return rc


if __name__ == "__main__":  # the guard matters: vLLM's engine spawns worker processes
    sys.exit(main())
