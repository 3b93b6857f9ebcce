"""Run each benchmark variant in its own process (so peak RSS is its own) and save
the results under bench/results/."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def run_variants(script: str, variants: list[str], args: list[str]) -> dict[str, dict]:
    """{variant: the JSON line `script --variant V *args` printed last}."""
    res = {}
    for v in variants:
        out = subprocess.run([sys.executable, script, "--variant", v, *args],
                             capture_output=True, text=True, check=True)
        res[v] = json.loads(out.stdout.strip().splitlines()[-1])
    return res


def save_results(name: str, args: dict, res: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"args": args, **res}, indent=2))
    return path
