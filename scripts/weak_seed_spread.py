#!/usr/bin/env python
"""How much one weak model's test accuracy moves with its seed alone.

    .venv/bin/python scripts/weak_seed_spread.py --config controls --seeds 6
    .venv/bin/python scripts/weak_seed_spread.py --config demo --seeds 6 --set weak.train.lr=3e-3

Trains the config's plain weak model (no transcripts) once per seed on the same split
(`run.py --until weak` with one labeller `weak` whose members are seeds 0..S-1, into
runs/seed-spread/<name>/) and prints every member's test accuracy, the spread of its P(1)
(near 0: the model predicts one value for every sample, i.e. it stayed at chance) and the
mean, standard deviation and range over seeds. One draw's comparison interval covers test
samples only; this spread is the training noise it does not cover, and a seed that stays
at chance is a recipe that does not learn reliably.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STUCK_SPREAD = 0.02  # P(1) standard deviation below which a member predicts one value for all


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="controls", help="a config file or a shipped config's name")
    p.add_argument("--seeds", type=int, default=6)
    p.add_argument("--name", help="run name (default: seed-spread-<config>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    a = p.parse_args()
    name = a.name or f"seed-spread-{Path(a.config).stem}"
    out = ROOT / "runs" / "seed-spread"
    labeller = json.dumps([{"name": "weak", "seeds": list(range(a.seeds))}])
    cmd = [sys.executable, str(ROOT / "run.py"), "--config", a.config, "--until", "weak", "--no-debate",
           "--set", f"output_dir={out}", "--set", f"name={name}", "--set", "replicates=1",
           "--set", f"weak.labellers={labeller}", *[x for o in a.overrides for x in ("--set", o)]]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)

    from data.source import samples_for
    from w2s_base.config import load_config
    from w2s_base.runfolder.layout import RunLayout
    from w2s_run.report.metrics import accuracy
    import numpy as np
    layout = RunLayout(out / name)
    cfg = load_config(layout.root / "config.yaml", [])
    gold = {s.id: s.label for s in samples_for(cfg.data)}
    members = json.loads(layout.labeller_json("weak").read_text())["member_test_p1"]
    accs = []
    for member, p1 in members.items():
        acc = float(accuracy(np.array(list(p1.values())), np.array([gold[i] for i in p1])))
        spread = statistics.pstdev(p1.values())
        accs.append(acc)
        print(f"{member}: test accuracy {acc:.3f} on {len(p1)}, sd of P(1) {spread:.3f}"
              + ("  <- predicts one value for all (at chance)" if spread < STUCK_SPREAD else ""))
    print(f"over {len(accs)} seeds (lr {cfg.weak.train.lr}, {cfg.data.n_weak_train} training samples): "
          f"mean {statistics.mean(accs):.3f}, sd {statistics.stdev(accs):.3f}, "
          f"range {min(accs):.3f}-{max(accs):.3f}")


if __name__ == "__main__":
    main()
