"""Scoring a run: test accuracy of every weak labeller, student and the ceiling;
PGR of every student against the plain weak model, gated on a significant
weak-ceiling gap; every student compared, paired, with the student on plain weak
labels; where each student's accuracy comes from. The definitions of every
interval and verdict are in w2s_run/report/statistics.py.

PGR is always measured against the plain (no-debate) weak labeller, as in the
paper, so debate-trained labellers and their students compete on one scale.
"""
from __future__ import annotations

import numpy as np

from w2s_run.report import statistics as st
from w2s_base.config import GOLD
from w2s_run.report.metrics import accuracy, bootstrap_acc, ece
from data.splits import Splits
from strong.stage import Preds, StudentKey
from weak.labels import LabellerResult

from w2s_run.report.model import CeilingRow, Comparison, MemberScore, Report, RunMeta, StudentRow, WeakRow


def build_report(name: str, splits: Splits, labellers: dict[str, LabellerResult],
                 students: dict[StudentKey, Preds], reference: str = "weak",
                 meta: RunMeta | None = None) -> Report:
    """Rows in the paper's order: weak labellers (the reference first), the students
    (those on the reference's labels first), the ceiling. A student trained with
    several seeds is scored by its per-sample correctness averaged over the seeds,
    so its accuracy is the seed mean and the bootstrap resamples test samples."""
    ids = [s.id for s in splits.test]
    y = np.array([s.label for s in splits.test])

    def pred(p: Preds) -> np.ndarray:
        return (np.array([p[i] for i in ids]) > 0.5).astype(float)

    def correct(p: Preds) -> np.ndarray:
        return (pred(p) == y).astype(float)

    # {(labeller, loss): {seed: preds}}: one row per student over its seeds
    by_run: dict[tuple[str, str], dict[int, Preds]] = {}
    for key, p in students.items():
        by_run.setdefault((key.labeller, key.loss), {})[key.seed] = p
    is_ceiling = {run: run[0] == GOLD for run in by_run}
    ceiling = next(v for run, v in by_run.items() if is_ceiling[run])

    def seed_mean(by_seed: dict[int, Preds], f=correct) -> np.ndarray:
        return np.mean([f(p) for p in by_seed.values()], axis=0)

    def seed_accs(by_seed: dict[int, Preds]) -> list[float]:
        return [float(correct(p).mean()) for p in by_seed.values()]

    tids = [s.id for s in splits.transfer]
    ty = np.array([s.label for s in splits.transfer])
    order = [reference] + [n for n in labellers if n != reference]
    weak_c = correct(labellers[reference].test_p1)
    ceil_c = seed_mean(ceiling)
    weak_acc, ceil_acc = float(weak_c.mean()), float(ceil_c.mean())
    rows: list = []
    for lab in (labellers[n] for n in order):
        p = np.array([lab.test_p1[i] for i in ids])
        members = {}
        for m, mp in lab.member_test_p1.items():
            q = np.array([mp[i] for i in ids])
            members[m] = MemberScore(accuracy=accuracy(q, y), ece=ece(q, y))
        # The supervision the student actually gets: the soft labels on transfer,
        # scored against the gold labels hidden from training.
        soft = np.array([lab.transfer_p1[i] for i in tids])
        c = correct(lab.test_p1)
        vs = None if lab.name == reference else st.paired_difference(c, weak_c, weak_c, ceil_c)
        rows.append(WeakRow(name=lab.name, protocol=lab.protocol, control=lab.control, vs_reference=vs,
                            aggregate=lab.aggregate,
                            accuracy=accuracy(p, y), acc_ci=bootstrap_acc(correct(lab.test_p1)),
                            ece=ece(p, y), label_accuracy=accuracy(soft, ty), label_ece=ece(soft, ty),
                            members=members))

    runs = [run for run in by_run if not is_ceiling[run]]
    runs.sort(key=lambda r: order.index(r[0]) if r[0] in order else len(order))  # stable: config order within
    student_c = {run: seed_mean(by_run[run]) for run in runs}
    for lab, loss in runs:
        c, teacher = student_c[(lab, loss)], labellers[lab].test_p1
        pgr = st.pgr_stat(c, weak_c, ceil_c)
        rows.append(StudentRow(
            labeller=lab, loss=loss, accuracy=float(c.mean()), acc_ci=bootstrap_acc(c),
            seeds=len(by_run[(lab, loss)]), seed_accuracy=seed_accs(by_run[(lab, loss)]),
            seed_spread=st.seed_spread(seed_accs(by_run[(lab, loss)])), pgr=pgr,
            errors=st.error_breakdown(c, correct(teacher), seed_mean(by_run[(lab, loss)], pred), pred(teacher))))
    rows.append(CeilingRow(accuracy=ceil_acc, acc_ci=bootstrap_acc(ceil_c), seeds=len(ceiling),
                           seed_accuracy=seed_accs(ceiling), seed_spread=st.seed_spread(seed_accs(ceiling))))

    # The paper's question: each student against the student on the plain weak labels
    # trained with the same loss (or, failing that, the reference's first loss).
    comparisons = []
    ref_losses = [loss for lab, loss in runs if lab == reference]
    for lab, loss in runs:
        if lab == reference or not ref_losses:
            continue
        ref_run = (reference, loss if loss in ref_losses else ref_losses[0])
        comparisons.append(Comparison(
            labeller=lab, loss=loss, reference_labeller=reference,
            result=st.paired_difference(student_c[(lab, loss)], student_c[ref_run], weak_c, ceil_c)))

    gap = st.gap(weak_c, ceil_c)
    report = Report(run=name, n_test=len(ids), reference=reference, weak_accuracy=weak_acc,
                    ceiling_accuracy=ceil_acc, pgr_defined=ceil_acc > weak_acc, gap=gap, rows=rows,
                    comparisons=comparisons, meta=meta)
    report.warnings = _warnings(report)
    return report


def _warnings(report: Report) -> list[str]:
    g, out = report.gap, []
    if not report.pgr_defined:
        out.append("the strong ceiling does not beat the weak model on this test set: PGR is undefined")
    elif not g.significant:
        out.append(f"the ceiling-weak gap ({100 * g.gap:.1f} points, 95 % CI {100 * g.ci[0]:.1f} to "
                   f"{100 * g.ci[1]:.1f}) is not significant on {report.n_test} test samples: PGR is "
                   "not reported as a number (a ratio over a gap that may be zero means nothing)")
    for r in report.weak_rows():  # the negative control must show no gain: a gain is a leak
        if r.control and r.control.startswith("shuffled") and r.vs_reference and r.vs_reference.direction == st.BETTER:
            d = r.vs_reference
            out.append(f"NEGATIVE CONTROL FAILED: `{r.name}` reads transcripts of OTHER samples yet beats the "
                       f"plain weak model by {100 * d.acc_diff:+.1f} points (95 % CI {100 * d.acc_diff_ci[0]:+.1f} "
                       f"to {100 * d.acc_diff_ci[1]:+.1f}): information about the label leaks into the weak input")
    students = report.student_rows()
    above = [s for s in students if s.pgr.above_100]
    if above:
        out.append("W2S beats the ceiling (PGR above 100 %) for " + ", ".join(
            f"{s.labeller}|{s.loss}" for s in above) + ": a weak ceiling or too small a test set")
    if g.significant and any(s.pgr.ci and s.pgr.ci[1] - s.pgr.ci[0] > 1.0 for s in students):
        out.append(f"some PGR intervals are wider than 100 points: {report.n_test} test samples "
                   "and this weak-ceiling gap are too few to tell those methods apart")
    return out
