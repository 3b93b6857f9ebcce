"""A capability-gap sweep: the pipeline once per (weak model, strong model) pair of the
config's `sweep:` section, then one PGR-vs-gap table and plot (w2s_run/report/sweep.py).

    runs/<name>/config.yaml            the sweep's config of record
    runs/<name>/sweep/<pair>/          each pair's own run folder (a whole run: its report,
                                       caches, lock; `run.py verify --config` its config.yaml)
    runs/<name>/sweep.json, .md, .png  the summary

Each pair's run is this config with `weak.model` and `strong.model` (and, with
`sweep.debater: strong`, `debate.model`) set to the pair's, and `data.fit_also` naming
every pair, so that over-long texts are handled for all the sweep's models at once:
every pair draws the same pool, split and test ids. Each pair runs through
`run_pipeline`, so it is resumable as any run: a killed sweep, rerun, reuses every
pair's finished work. Every pair's models, files and prompts are checked before the
first pair starts (`check_sweep`: one line per problem, nothing loaded).

Caches are per run folder: a weak model shared by two pairs trains once per pair
(the members' store lives in each pair's folder).

Importing this module imports no torch: the pipeline is imported when a pair runs.
"""
from __future__ import annotations

from w2s_base import console
from w2s_base.config import ConfigError, RunConfig, SweepPair, validate_config
from w2s_base.runfolder import faults
from w2s_base.runfolder.runlock import RunLock, describe, write_config_of_record
from w2s_run.services.preflight import problems


def pair_configs(cfg: RunConfig) -> list[tuple[SweepPair, RunConfig]]:
    """Every pair with the config of its run (validated), in the sweep's order."""
    if cfg.sweep is None:
        raise ValueError("pair_configs needs a config with a sweep: section")
    base = cfg.model_dump(mode="json")
    base.pop("sweep", None)
    fit_also = [{"weak": p.weak, "strong": p.strong} for p in cfg.sweep.pairs]
    out = []
    for i, pair in enumerate(cfg.sweep.pairs):
        data = {**base, "name": pair.folder, "output_dir": str(cfg.layout.sweep_runs),
                "data": {**base["data"], "fit_also": fit_also},
                "weak": {**base["weak"], "model": pair.weak},
                "strong": {**base["strong"], "model": pair.strong}}
        if cfg.sweep.debater == "strong":
            data["debate"] = {**base["debate"], "model": pair.strong}
        out.append((pair, validate_config(data, f"sweep.pairs[{i}] ({pair.weak} → {pair.strong})")))
    return out


def check_sweep(cfg: RunConfig, until: str | None = None) -> list[tuple[SweepPair, RunConfig]]:
    """Every pair's run checked before any pair starts (preflight: models, files, folders;
    the debaters' prompt set): a ConfigError with one line per problem, each naming the
    pair, else the pairs' configs."""
    pairs = pair_configs(cfg)
    found: list[str] = []
    own = {"weak.model": "weak", "strong.model": "strong"}
    if cfg.sweep.debater == "strong":
        own["debate.model"] = "strong"  # the pair's strong model debates
    for i, (pair, c) in enumerate(pairs):
        for line in problems(c, until):
            # a pair's own models are named by its sweep entry; the rest is every pair's config
            key, _, why = line.partition(": ")
            found.append(f"sweep.pairs[{i}].{own[key]}: {why}" if key in own else line)
        if c.debates_needed():
            from debate.prompts import prompts_for
            prompts_for(c.debate, tuple(c.debates_needed()))
    if found:
        raise ConfigError("; ".join(dict.fromkeys(found)) if len(found) == 1 else
                          f"the sweep cannot start ({len(found)} problems; nothing was loaded or generated):\n"
                          + "\n".join(f"  {line}" for line in dict.fromkeys(found)))
    return pairs


def run_sweep(cfg: RunConfig, until: str | None = None):
    """Every pair's run, then the summary (returned; None under `until` or on a rank other
    than the main one of a multi-process launch)."""
    from w2s_base.training import distributed as dist
    from w2s_run.pipeline import run_pipeline
    from w2s_run.report.sweep import build_sweep, render_sweep, write_sweep
    pairs = check_sweep(cfg, until)
    layout = cfg.layout
    # One sweep per folder (each pair's run also locks its own folder).
    with faults.under(layout.root), RunLock(layout.root, enabled=dist.is_main()) as lock:
        if lock.stale and dist.is_main():
            console.info(f"[sweep] the last sweep here ({describe(lock.stale)}) was killed; resuming its pairs")
        if dist.is_main():
            write_config_of_record(cfg, layout)
        reports = []
        for i, (pair, c) in enumerate(pairs):
            if dist.is_main():
                console.info(f"[sweep] pair {i + 1} of {len(pairs)}: weak {pair.weak}, strong {pair.strong} "
                             f"-> {c.run_dir}")
            reports.append((pair.folder, run_pipeline(c, until)))
        if until is not None or not dist.is_main():
            return None
        summary = build_sweep(cfg.name, reports, layout.root, [c.layout.report_json for _, c in pairs])
        path = write_sweep(summary, layout)
    print(render_sweep(summary))
    console.info(f"[sweep] {path} ({layout.sweep_md.name}, {layout.sweep_png.name} beside it)")
    return summary
