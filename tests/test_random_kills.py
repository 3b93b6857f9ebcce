"""kill -9 at seeded moments in every stage of one tiny run, then the final report
equals an uninterrupted run's.

The run is `run.py` in its own process (and process group) on the demo task with the
real embedded weak and strong models and the fake seeded debater
(tests/extensions/seeded_backend.py: a reply is a function of its conversation and
seed, each taking `delay_s`). Each kill is a point of the run's own progress, as its
files and its log show it (debates stored, "[weak] started" printed by this process,
weak members and labellers saved, "[strong] started", students saved, the report
written), plus a seeded delay. Which stage a kill lands in must not depend on the
machine's speed (on a fast machine the tiny weak and strong stages take well under a
second): one kill per stage has no delay and fires on an event that leaves that stage's
work undone (the stage's first line; every student saved), and the points with a
seeded delay come where overshooting cannot take the next one's stage away. The whole
process group is SIGKILLed (no clean-up runs), and the same command is started again.
What the test asserts last does not depend on where a kill lands: after the last rerun
the transcripts, weak labels and report equal the uninterrupted run's.
"""
from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from factories import report_rows
from kills import run_until_killed, stored_lines

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false", "TQDM_DISABLE": "1"}
N = 8  # samples per split: 24 debates, 2 weak members, 3 students
TINY = [f"data.n_weak_train={N}", f"data.n_transfer={N}", f"data.n_test={N}",
        "extensions=[tests/extensions/seeded_backend.py]", "debate.backend=fake_seeded",
        "debate.fake_seeded.delay_s=0.03", "debate.chunk_size=2",
        "weak.train.epochs=1", "weak.train.max_length=64",
        "strong.train.epochs=60", "strong.train.batch_size=2"]
DEBATES, MEMBERS, LABELLERS, STUDENTS = 3 * N, 2, 2, 3
# The report's fields that do not depend on when or where it was made (not meta:
# seconds, peak memory, paths, environment).
DETERMINISTIC = ("n_test", "reference", "weak_accuracy", "ceiling_accuracy", "pgr_defined", "gap",
                 "rows", "comparisons", "warnings", "per_sample", "replicates", "pooled")


def _args(tmp_path: Path, name: str) -> list[str]:
    args = [sys.executable, str(ROOT / "run.py"), "--config", "configs/demo.yaml", "--name", name,
            "--set", f"output_dir={tmp_path}"]
    for o in TINY:
        args += ["--set", o]
    return args


@dataclass(frozen=True)
class Progress:
    """How far a run has got, from its files alone."""
    debates: int
    members: int
    labellers: int
    students: int
    report_mtime: float | None

    @classmethod
    def of(cls, rd: Path) -> "Progress":
        debates = len(stored_lines(rd / "debate" / "transcripts.jsonl"))
        try:
            report = (rd / "report.json").stat().st_mtime
        except FileNotFoundError:
            report = None
        return cls(debates, len(list((rd / "weak" / "members").glob("*/*/*/result.json"))),
                   len(list((rd / "weak").glob("*/labels.jsonl"))),
                   len(list((rd / "strong").glob("*/*/result.json"))), report)

    @property
    def stage(self) -> str:
        """The stage a run stopped in (its first unfinished one)."""
        if self.debates < DEBATES:
            return "debate"
        if self.members < MEMBERS or self.labellers < LABELLERS:
            return "weak"
        return "strong" if self.students < STUDENTS else "report"


@dataclass(frozen=True)
class KillPoint:
    what: str
    reached: Callable[[Progress, float, str], bool]  # (progress, this process's start time, its log so far)
    delay_s: float


def kill_plan(seed: int) -> list[KillPoint]:
    """11 kills, in the order the run gets there: one in start-up, 3 while debating, 3 in
    the weak stage (the first as it begins), 2 in the audit and strong stage (the second as
    students begin), 2 once every student is saved (the last, once report.json is written,
    may come after the run has ended: then it is no kill)."""
    rng = random.Random(seed)
    u = rng.uniform
    # Start-up: the fresh run dies in imports, data or its first debates (the debates alone
    # take > 2 s of the fake's sleeps, so it cannot get past them).
    plan = [KillPoint("start-up", lambda p, t0, log: True, u(0.3, 2.0))]
    plan += [KillPoint(f"{k} debates stored", lambda p, t0, log, k=k: p.debates >= k, u(0, 0.1))
             for k in sorted(rng.sample(range(2, DEBATES - 4), 3))]  # >= 5 debates (0.3 s of sleeps) remain
    plan += [
        # no delay: the stage's first line, before its first member can be saved
        KillPoint("weak stage begun", lambda p, t0, log: "[weak] started" in log, 0.0),
        KillPoint("1 weak member saved", lambda p, t0, log: p.members >= 1, u(0, 0.05)),
        # no delay: the labels are saved, the audit trains its folds; no student yet
        KillPoint("every weak labeller saved", lambda p, t0, log: p.labellers >= LABELLERS, 0.0),
        KillPoint("strong stage begun", lambda p, t0, log: "[strong] started" in log, 0.0),
        KillPoint("1 student saved", lambda p, t0, log: p.students >= 1, u(0, 0.05)),
        # no delay: the report is not yet written (overshooting could let the run end)
        KillPoint("every student saved", lambda p, t0, log: p.students >= STUDENTS, 0.0),
        KillPoint("report.json written", lambda p, t0, log: (p.report_mtime or 0) >= t0, 0.0),
    ]
    return plan


def _text(log: Path) -> str:
    try:
        return log.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _outputs(rd: Path):
    """What a run produced: every transcript's turns, every labeller's soft labels, the
    report's deterministic fields."""
    from debate.engine import load_transcripts
    ts = {k: (t.sample_id, t.debate_index, [x.text for x in t.turns])
          for k, t in load_transcripts(rd / "debate" / "transcripts.jsonl").items()}
    labels = {f.parent.name: [json.loads(x)["soft_label"] for x in f.read_text().splitlines()]
              for f in sorted((rd / "weak").glob("*/labels.jsonl"))}
    report = json.loads((rd / "report.json").read_text())
    return ts, labels, {k: report[k] for k in DETERMINISTIC}


def _assert_close(a, b, where="report"):
    """Equal; floats to 1e-6 (as the other resume tests: the same sums in another process)."""
    if isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9), (where, a, b)
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), (where, sorted(a), sorted(b))
        for k in a:
            _assert_close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), (where, a, b)
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_close(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


@pytest.mark.slow
def test_seeded_kills_across_every_stage_resume_to_the_uninterrupted_report(tmp_path):
    seed = int(os.environ.get("W2SD_KILL_SEED", "0"))  # another seed: other moments, same assertion
    whole = subprocess.run(_args(tmp_path, "whole"), cwd=ROOT, env=ENV, capture_output=True,
                           text=True, timeout=600)
    assert whole.returncode == 0, whole.stdout[-3000:] + whole.stderr[-3000:]

    args, rd = _args(tmp_path, "killed"), tmp_path / "killed"
    landed: list[tuple[str, str]] = []  # (kill point, the stage the run died in)
    for i, point in enumerate(kill_plan(seed)):
        t0 = time.time() - 1  # file times are not finer than the clock: a second's slack
        log = tmp_path / f"killed-{i}.log"
        rc = run_until_killed(args, ROOT, ENV, lambda: point.reached(Progress.of(rd), t0, _text(log)),
                              log, point.delay_s)
        if rc is None:
            landed.append((point.what, Progress.of(rd).stage))
            continue
        # The run got to its end before the kill (only the last point allows it).
        assert rc == 0, (point.what, (tmp_path / f"killed-{i}.log").read_text()[-3000:])
        break
    print(f"\n[random kills, seed {seed}] {len(landed)} kills: {landed}")
    assert len(landed) >= 10
    assert {stage for _, stage in landed} == {"debate", "weak", "strong", "report"}, landed
    # the kills without a delay land where they were placed, whatever the machine's speed
    where = dict(landed)
    assert (where["weak stage begun"], where["strong stage begun"], where["every student saved"]) == \
        ("weak", "strong", "report"), landed

    last = subprocess.run(args, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert last.returncode == 0, last.stdout[-3000:] + last.stderr[-3000:]
    if len(landed) == len(kill_plan(seed)):  # its last run was killed: it says it resumes a killed run's work
        assert "was killed" in last.stdout + last.stderr
    (ts_a, lab_a, rep_a), (ts_b, lab_b, rep_b) = _outputs(tmp_path / "whole"), _outputs(rd)
    assert len(ts_a) == DEBATES and ts_b == ts_a
    _assert_close(lab_b, lab_a, "labels")
    _assert_close(rep_b, rep_a)
    assert report_rows(rep_b).keys() == {"weak", "weak+debate", "ceiling", "w2s[weak|xent]",
                                          "w2s[weak+debate|xent]"}
