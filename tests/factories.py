"""Shared test factories: transcripts and report rows, built one way for every test."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from w2s_base.config import SamplingParams
from debate.transcript import Transcript, Turn


def make_transcript(sample_id: str = "s", texts: list[str] = ("a", "b", "c"), *, protocol: str = "debate",
                    sample_text: str = "a plain review", positions: tuple[str, str] = ("negative", "positive"),
                    gold: int = 1, a_label: int = 0, k: int = 0, key: str | None = None,
                    task: str = "sentiment", error: str | None = None, finish_reason: str = "stop",
                    **extra) -> Transcript:
    """A finished transcript with one turn per text, sides and roles as the protocol
    schedules them (debate: A, B, A, ...; consultancy and market-making: A only)."""
    consult = protocol != "debate"
    turns = [Turn(index=i, side="A" if consult else "AB"[i % 2],
                  role="consult" if consult else ["opening", "counter", "rebuttal"][min(i, 2)],
                  position_label=a_label if consult or i % 2 == 0 else 1 - a_label, text=x,
                  prompt_tokens=50, completion_tokens=len(x.split()), finish_reason=finish_reason)
             for i, x in enumerate(texts)]
    fields = dict(key=key or f"key-{sample_id}-{k}", sample_id=sample_id, task=task, sample_text=sample_text,
                  positions=positions, gold_label=gold, debate_index=k, protocol=protocol,
                  num_turns=len(texts), a_label=a_label, turns=turns, model="smollm2-135m|transformers",
                  backend="transformers", prompt_set="terse", prompt_hash="abc123",
                  sampling=SamplingParams(), seed=7, error=error)
    fields.update(extra)
    return Transcript(**fields)


def report_rows(report: dict) -> dict[str, dict]:
    """report.json's rows by their identity: a labeller's name, w2s[labeller|loss], ceiling."""
    def key(r: dict) -> str:
        if r["kind"] == "w2s":
            return f"w2s[{r['labeller']}|{r['loss']}]"
        return "ceiling" if r["kind"] == "ceiling" else r["name"]
    return {key(r): r for r in report["rows"]}


def _scripted_labeller(name, p, transfer):
    from weak.labels import LabellerResult
    return LabellerResult(name=name, protocol="none", aggregate="mean", members=["m"],
                          transfer_p1=transfer, test_p1=p, member_test_p1={"m": p})


def scripted_draw(n_test=60, data_seed=0, shift=0, deb_right=None, weak_right=30, ceil_right=50):
    """One draw's (splits, labellers, students) with scripted predictions on the demo task's
    splits: weak right on `weak_right` of the test samples and "deb" on 33 (+shift), the
    weak-label student on 36 (+shift), deb's student on `deb_right` (default 36 + shift),
    the ceiling on `ceil_right` (each right on the first k test samples, wrong on the rest)."""
    from data.demo_task import make_demo_samples
    from data.splits import make_splits
    from strong.stage import StudentKey
    splits = make_splits(make_demo_samples(20 + 20 + n_test), 20, 20, n_test, seed=data_seed)
    y = {x.id: x.label for x in splits.test}
    right = lambda k: {i: (float(y[i]) if j < k else 1.0 - y[i]) for j, i in enumerate(y)}
    tr = {x.id: 0.5 for x in splits.transfer}
    labs = {"weak": _scripted_labeller("weak", right(weak_right), tr),
            "deb": _scripted_labeller("deb", right(33 + shift), tr)}
    students = {StudentKey.ceiling(0): right(ceil_right), StudentKey("weak", "xent", 0): right(36 + shift),
                StudentKey("deb", "xent", 0): right(deb_right if deb_right is not None else 36 + shift)}
    return splits, labs, students


def scripted_report(name, n_test=60, data_seed=0, shift=0, deb_right=None):
    """A report scored by the real build_report on scripted_draw's predictions."""
    from w2s_run.report.scoring import build_report
    return build_report(name, *scripted_draw(n_test, data_seed, shift, deb_right))


def scripted_replicated_report(name, draws: list[dict]):
    """A report pooled over replicates by the real pool_reports, replicate r scored on
    scripted_draw(**draws[r])."""
    from w2s_run.report.scoring import build_report, pool_reports
    made = [scripted_draw(**d) for d in draws]
    return pool_reports([build_report(name, *d) for d in made], made)


# A second process that takes a run folder's lock, says so, and holds it: a live run.
_HOLDER = """
import sys, time
from w2s_base.runfolder.runlock import RunLock
lock = RunLock(sys.argv[1], command="python run.py --config holder.yaml").acquire()
print("locked", flush=True)
time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 600)
"""


def start_lock_holder(root: Path) -> subprocess.Popen:
    """A process that holds the run folder `root` (kill it when done)."""
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(root)], cwd=repo,
                            env={**os.environ, "PYTHONPATH": str(repo)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if line.strip() != "locked":
        proc.kill()
        pytest.fail(f"holder did not start: {line!r} {proc.stderr.read()[-2000:]}")
    return proc
