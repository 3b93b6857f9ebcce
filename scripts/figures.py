#!/usr/bin/env python
"""Regenerates README's demo and controls figures from this checkout.

    .venv/bin/python scripts/figures.py                 # demo and controls, R = 3, debate.seed 0 and 1
    .venv/bin/python scripts/figures.py --configs controls --replicates 3 --seeds 0 1

For every config and every `debate.seed` it runs `run.py` with `replicates: R` (a fresh
draw of every replicate per seed: replicate r adds 1000 r to each seed) into
runs/figures/<config>-seed<s>/, then writes runs/figures/FIGURES.md: the commit, the
machine, the environment, and per config the pooled comparisons (estimate, 95 % interval
of the two-level procedure, each replicate's value, stability) for each seed, and whether
the seeds' pooled verdicts contradict each other and each estimate lies inside the
other's interval (issue 20's check). Every number README quotes comes from that file.
Sampled debate text differs between machines (CPU kernels and threads under sampling), so
another machine draws other debates: compare the pooled figures, not one draw's.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run_one(config: str, seed: int, replicates: int, out: Path) -> Path:
    name = f"{config}-seed{seed}"
    cmd = [sys.executable, str(ROOT / "run.py"), "--config", str(ROOT / "configs" / f"{config}.yaml"),
           "--quiet", "--set", f"output_dir={out}", "--set", f"name={name}",
           "--set", f"replicates={replicates}", "--set", f"debate.seed={seed}"]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    return out / name / "report.json"


def pct(x: float) -> str:
    return f"{100 * x:+.1f}"


def section(config: str, reports: dict[int, dict]) -> list[str]:
    lines = [f"## {config}", ""]
    pooled = {s: {(p["kind"], p["name"]): p for p in (r.get("pooled") or [])} for s, r in reports.items()}
    keys = list(next(iter(pooled.values())))
    lines += ["| comparison | debate.seed | pooled (95 % CI) | per replicate | stability |",
              "|---|---:|---:|---|---|"]
    for key in keys:
        for s, by in pooled.items():
            res = by[key]["result"]
            per = ", ".join(pct(v) for v in res["per_replicate"])
            dirs = res["per_replicate_direction"]
            stab = ", ".join(f"{d} in {dirs.count(d)}" for d in dict.fromkeys(dirs)) + f" of {len(dirs)}"
            lines.append(f"| {key[0]}: {key[1].replace('|', '/')} vs {by[key]['reference'].replace('|', '/')} | {s} "
                         f"| {pct(res['estimate'])} ({pct(res['ci'][0])} to {pct(res['ci'][1])}) {res['direction']} "
                         f"| {per} | {stab} |")
    lines.append("")
    seeds = list(pooled)
    for a, b in zip(seeds, seeds[1:]):
        for key in keys:
            ra, rb = pooled[a][key]["result"], pooled[b][key]["result"]
            contradict = {ra["direction"], rb["direction"]} == {"better", "worse"}
            inside = (rb["ci"][0] <= ra["estimate"] <= rb["ci"][1]) and (ra["ci"][0] <= rb["estimate"] <= ra["ci"][1])
            lines.append(f"- {key[0]} {key[1].replace('|', '/')}: seeds {a} and {b} "
                         f"{'CONTRADICT' if contradict else 'do not contradict'}; each estimate "
                         f"{'inside' if inside else 'NOT inside'} the other's interval")
    lines.append("")
    for s, r in reports.items():
        accs: dict[str, list[float]] = {}
        for rep in r.get("replicates") or [r]:
            for row in rep["rows"]:
                label = row.get("name") or (f"w2s[{row['labeller']}/{row['loss']}]" if row["kind"] == "w2s" else "ceiling")
                accs.setdefault(label, []).append(row["accuracy"])
        lines.append(f"debate.seed {s}, test accuracy per replicate (n_test {r['n_test']}): " + "; ".join(
            f"{k} {', '.join(f'{100 * v:.1f}' for v in vs)}" for k, vs in accs.items()))
        lines.append("")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["controls", "demo"])
    p.add_argument("--replicates", type=int, default=3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--out", default=str(ROOT / "runs" / "figures"))
    a = p.parse_args()
    if a.replicates < 3:
        print("error: README figures are pooled over at least 3 replicates", file=sys.stderr)
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    from w2s_base.runfolder.environment import environment
    env = environment()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    lines = ["# Figures", "", f"`scripts/figures.py --configs {' '.join(a.configs)} --replicates {a.replicates} "
             f"--seeds {' '.join(map(str, a.seeds))}` at commit {commit}; machine: {platform.machine()}, "
             f"{os.cpu_count()} CPUs, {platform.platform()}; environment: runs/figures/environment.json", ""]
    (out / "environment.json").write_text(json.dumps(env, indent=1, default=str))
    for config in a.configs:
        reports = {s: json.loads(run_one(config, s, a.replicates, out).read_text()) for s in a.seeds}
        lines += section(config, reports)
        (out / "FIGURES.md").write_text("\n".join(lines) + "\n")  # after each config: a partial run keeps its part
    print(f"[figures] {out / 'FIGURES.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
