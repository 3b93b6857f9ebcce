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

from w2s_base.config import ControlKind
from w2s_base.decision import predicted_labels
from w2s_run.report import statistics as st
from w2s_run.report.metrics import accuracy, ece
from data.splits import Splits
from strong.stage import Preds, StudentKey
from weak.labels import LabellerResult

from w2s_run.report.model import (CeilingRow, Comparison, MemberScore, PerSample, PooledComparison, PooledPGRRow,
                                  Report, RunMeta, StudentRow, WeakRow, row_id)

Run = tuple[str, str]            # a student over its seeds: (labeller, loss)
BySeed = dict[int, Preds]        # {seed: test predictions}


class _Test:
    """The test split's gold labels, and per-sample predictions and correctness of any
    predictions on it (in test order)."""

    def __init__(self, splits: Splits):
        self.ids = [s.id for s in splits.test]
        self.y = np.array([s.label for s in splits.test])

    def p1(self, p: Preds) -> np.ndarray:
        return np.array([p[i] for i in self.ids])

    def pred(self, p: Preds) -> np.ndarray:
        return predicted_labels(self.p1(p)).astype(float)

    def correct(self, p: Preds) -> np.ndarray:
        return (self.pred(p) == self.y).astype(float)

    def seed_mean(self, by_seed: BySeed, f=None) -> np.ndarray:
        """Per sample, the mean over seeds of f (correctness unless given)."""
        return np.mean([(f or self.correct)(p) for p in by_seed.values()], axis=0)

    def seed_accs(self, by_seed: BySeed) -> list[float]:
        return [float(self.correct(p).mean()) for p in by_seed.values()]


def _group_by_run(students: dict[StudentKey, Preds]) -> tuple[BySeed, dict[Run, BySeed]]:
    """The ceiling's predictions per seed, and every other student's, one entry per
    (labeller, loss) over its seeds, in the order trained."""
    ceiling: BySeed = {}
    by_run: dict[Run, BySeed] = {}
    for key, p in students.items():
        if key.is_ceiling:
            ceiling[key.seed] = p
        else:
            by_run.setdefault((key.labeller, key.loss), {})[key.seed] = p
    return ceiling, by_run


def _weak_row(t: _Test, splits: Splits, lab: LabellerResult, reference: str,
              weak_c: np.ndarray, ceil_c: np.ndarray) -> WeakRow:
    p = t.p1(lab.test_p1)
    members = {}
    for m, mp in lab.member_test_p1.items():
        q = t.p1(mp)
        members[m] = MemberScore(accuracy=accuracy(q, t.y), ece=ece(q, t.y))
    # The supervision the student actually gets: the soft labels on transfer,
    # scored against the gold labels hidden from training.
    soft = np.array([lab.transfer_p1[s.id] for s in splits.transfer])
    ty = np.array([s.label for s in splits.transfer])
    c = t.correct(lab.test_p1)
    vs = None if lab.name == reference else st.paired_difference(c, weak_c, weak_c, ceil_c)
    return WeakRow(name=lab.name, protocol=lab.protocol, control=lab.control, mislead=lab.mislead, vs_reference=vs,
                   aggregate=lab.aggregate, accuracy=accuracy(p, t.y), acc_ci=st.accuracy_interval(c),
                   ece=ece(p, t.y), label_accuracy=accuracy(soft, ty), label_ece=ece(soft, ty), members=members)


def _student_row(t: _Test, run: Run, by_seed: BySeed, c: np.ndarray, teacher: Preds,
                 weak_c: np.ndarray, ceil_c: np.ndarray) -> StudentRow:
    lab, loss = run
    accs = t.seed_accs(by_seed)
    return StudentRow(
        labeller=lab, loss=loss, accuracy=float(c.mean()), acc_ci=st.accuracy_interval(c),
        seeds=len(by_seed), seed_accuracy=accs, seed_spread=st.seed_spread(accs),
        pgr=st.pgr_stat(c, weak_c, ceil_c),
        errors=st.error_breakdown(c, t.correct(teacher), t.seed_mean(by_seed, t.pred), t.pred(teacher)))


def _ceiling_row(t: _Test, ceiling: BySeed, ceil_c: np.ndarray) -> CeilingRow:
    accs = t.seed_accs(ceiling)
    return CeilingRow(accuracy=float(ceil_c.mean()), acc_ci=st.accuracy_interval(ceil_c), seeds=len(ceiling),
                      seed_accuracy=accs, seed_spread=st.seed_spread(accs))


def _comparisons(runs: list[Run], student_c: dict[Run, np.ndarray], reference: str,
                 weak_c: np.ndarray, ceil_c: np.ndarray) -> list[Comparison]:
    """The paper's question: each student against the student on the plain weak labels
    trained with the same loss (the config refuses a loss the reference lacks)."""
    if not any(lab == reference for lab, _ in runs):
        return []  # no student on the reference's labels (e.g. a report of weak labellers only)
    out = []
    for lab, loss in runs:
        if lab == reference:
            continue
        if (reference, loss) not in student_c:
            raise ValueError(f"no student on {reference}'s labels with loss {loss} to compare "
                             f"{lab}'s with (the config must train one: RunConfig._check)")
        out.append(Comparison(
            labeller=lab, loss=loss, reference_labeller=reference, reference_loss=loss,
            result=st.paired_difference(student_c[(lab, loss)], student_c[(reference, loss)], weak_c, ceil_c)))
    return out


class _Scores:
    """One draw's per-test-sample correctness: the reference labeller (weak_c), the ceiling
    (ceil_c, seed mean), every labeller (lab_c) and every student (student_c, seed mean),
    with the labellers and students in the paper's order."""

    def __init__(self, splits: Splits, labellers: dict[str, LabellerResult],
                 students: dict[StudentKey, Preds], reference: str):
        self.t = t = _Test(splits)
        self.ceiling, self.by_run = _group_by_run(students)
        self.order = [reference] + [n for n in labellers if n != reference]
        self.weak_c = t.correct(labellers[reference].test_p1)
        self.ceil_c = t.seed_mean(self.ceiling)
        self.lab_c = {n: t.correct(labellers[n].test_p1) for n in self.order}
        self.runs = sorted(self.by_run, key=lambda r: self.order.index(r[0]) if r[0] in self.order
                           else len(self.order))  # stable: config order within
        self.student_c = {run: t.seed_mean(self.by_run[run]) for run in self.runs}


def build_report(name: str, splits: Splits, labellers: dict[str, LabellerResult],
                 students: dict[StudentKey, Preds], reference: str = "weak",
                 meta: RunMeta | None = None) -> Report:
    """Rows in the paper's order: weak labellers (the reference first), the students
    (those on the reference's labels first), the ceiling. A student trained with
    several seeds is scored by its per-sample correctness averaged over the seeds,
    so its accuracy is the seed mean and the bootstrap resamples test samples."""
    sc = _Scores(splits, labellers, students, reference)
    t, ceiling, by_run, order, runs, student_c = sc.t, sc.ceiling, sc.by_run, sc.order, sc.runs, sc.student_c
    weak_c, ceil_c = sc.weak_c, sc.ceil_c
    weak_acc, ceil_acc = float(weak_c.mean()), float(ceil_c.mean())

    rows: list = [_weak_row(t, splits, labellers[n], reference, weak_c, ceil_c) for n in order]
    rows += [_student_row(t, run, by_run[run], student_c[run], labellers[run[0]].test_p1, weak_c, ceil_c)
             for run in runs]
    rows.append(_ceiling_row(t, ceiling, ceil_c))

    report = Report(run=name, n_test=len(t.ids), reference=reference, weak_accuracy=weak_acc,
                    ceiling_accuracy=ceil_acc, pgr_defined=ceil_acc > weak_acc, gap=st.gap(weak_c, ceil_c),
                    rows=rows, comparisons=_comparisons(runs, student_c, reference, weak_c, ceil_c), meta=meta,
                    per_sample=_per_sample(sc, rows))
    report.warnings = _warnings(report)
    return report


def _per_sample(sc: "_Scores", rows: list) -> PerSample:
    """Every row's per-sample correctness (rows in report order: labellers, students,
    ceiling), as scored above: the seed mean for students and the ceiling."""
    t = sc.t
    arrays = [sc.lab_c[n] for n in sc.order] + [sc.student_c[r] for r in sc.runs] + [sc.ceil_c]
    return PerSample(ids=list(t.ids), gold=[int(y) for y in t.y],
                     correct={row_id(r): [round(float(v), 4) for v in c] for r, c in zip(rows, arrays, strict=True)})


def pool_reports(reports: list[Report], draws: list[tuple[Splits, dict[str, LabellerResult],
                                                        dict[StudentKey, Preds]]]) -> Report:
    """The run's report over its replicates: replicate 0's fields, every replicate's
    Report, and every comparison the report makes pooled over the replicates
    (statistics.pooled_difference): each weak labeller against the reference labeller,
    each student against its reference student, and the ceiling against the reference;
    and every student's PGR pooled over them (statistics.pooled_pgr)."""
    first = reports[0]
    ref = first.reference
    scores = [_Scores(splits, labs, students, ref) for splits, labs, students in draws]
    ids = [sc.t.ids for sc in scores]

    def pooled(kind: str, name: str, reference: str, x, y) -> PooledComparison:
        return PooledComparison(kind=kind, name=name, reference=reference,
                                result=st.pooled_difference([x(sc) for sc in scores], [y(sc) for sc in scores], ids))

    out = [pooled("weak", r.name, ref, lambda sc, n=r.name: sc.lab_c[n], lambda sc: sc.weak_c)
           for r in first.weak_rows() if r.name != ref]
    for c in first.comparisons:
        ref_run = (ref, c.reference_loss)
        out.append(pooled("student", f"{c.labeller}|{c.loss}", "|".join(ref_run),
                          lambda sc, run=(c.labeller, c.loss): sc.student_c[run],
                          lambda sc, run=ref_run: sc.student_c[run]))
    out.append(pooled("gap", "ceiling", ref, lambda sc: sc.ceil_c, lambda sc: sc.weak_c))
    pgr = [PooledPGRRow(labeller=r.labeller, loss=r.loss, reference=ref, result=st.pooled_pgr(
        [sc.student_c[(r.labeller, r.loss)] for sc in scores], [sc.weak_c for sc in scores],
        [sc.ceil_c for sc in scores], ids)) for r in first.student_rows()]
    pooled_report = first.model_copy(update={"replicates": reports, "pooled": out, "pooled_pgr": pgr})
    # The negative control is judged on the pooled comparison: one draw's interval does
    # not cover the training noise between two differently-fed weak models.
    pooled_report.warnings = [w for w in first.warnings if not w.startswith(NEGATIVE_CONTROL)] + [
        _negative_control_line(c.name, c.result.estimate, c.result.ci,
                               f"pooled over {c.result.n_replicates} replicates")
        for c in out if c.kind == "weak" and _is_shuffled(first, c.name) and c.result.direction == st.Direction.BETTER]
    return pooled_report


NEGATIVE_CONTROL = "NEGATIVE CONTROL"


def _is_shuffled(report: Report, labeller: str) -> bool:
    spec = report.control_of(labeller)
    return bool(spec and spec.kind == ControlKind.SHUFFLED)


def _negative_control_line(name: str, diff: float, ci, scope: str) -> str:
    """The negative control beat the plain weak model. Pooled over replicates that is a
    failure (information about the label reaches the weak input); in one draw it may also
    be training noise, which that draw's test-sample interval does not cover."""
    head = (f"{NEGATIVE_CONTROL} FAILED ({scope})" if scope.startswith("pooled")
            else f"{NEGATIVE_CONTROL} ALERT ({scope})")
    tail = (": information about the label leaks into the weak input" if scope.startswith("pooled") else
            ": a leak, or the training noise between two weak models with different inputs, which this "
            "interval (test samples only) does not cover; decide with `replicates: 3` or more")
    return (f"{head}: `{name}` reads transcripts of OTHER samples yet beats the plain weak model by "
            f"{100 * diff:+.1f} points (95 % CI {100 * ci[0]:+.1f} to {100 * ci[1]:+.1f}){tail}")


def _warnings(report: Report) -> list[str]:
    g, out = report.gap, []
    if not report.pgr_defined:
        out.append("the strong ceiling does not beat the weak model on this test set: PGR is undefined")
    elif not g.significant:
        out.append(f"the ceiling-weak gap ({100 * g.gap:.1f} points, 95 % CI {100 * g.ci[0]:.1f} to "
                   f"{100 * g.ci[1]:.1f}) is not significant on {report.n_test} test samples: PGR is "
                   "not reported as a number (a ratio over a gap that may be zero means nothing)")
    for r in report.weak_rows():  # the negative control must show no gain (judged pooled: pool_reports)
        if (_is_shuffled(report, r.name) and r.vs_reference
                and r.vs_reference.direction == st.Direction.BETTER):
            d = r.vs_reference
            out.append(_negative_control_line(r.name, d.acc_diff, d.acc_diff_ci, "this draw only"))
    students = report.student_rows()
    above = [s for s in students if s.pgr.above_100]
    if above:
        out.append("W2S beats the ceiling (PGR above 100 %) for " + ", ".join(
            f"{s.labeller}|{s.loss}" for s in above) + ": a weak ceiling or too small a test set")
    if g.significant and any(s.pgr.ci and s.pgr.ci[1] - s.pgr.ci[0] > 1.0 for s in students):
        out.append(f"some PGR intervals are wider than 100 points: {report.n_test} test samples "
                   "and this weak-ceiling gap are too few to tell those methods apart")
    return out
