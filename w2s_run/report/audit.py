"""The audit, computed and logged before any student trains: can debate be expected to
help on this pair of models? Three measurements on the TRANSFER split (the split whose
weak labels the students learn from), each with its interval (definitions in
statistics.py), and an expectation worded from the literature, never as a result:

- the capability gap: the strong ceiling's and each weak labeller's accuracy, paired.
  The ceiling trains on transfer's gold labels, so its own transfer predictions would be
  training predictions: the audit uses an out-of-fold ceiling (strong/stage.py
  ceiling_out_of_fold), trained before the students;
- error similarity: CAPA (Goel et al. 2025) between the members of a labeller and
  between each labeller and the ceiling;
- judge sensitivity: how often a labeller that reads transcripts predicts the side its
  transcript favours, the gold label, and the transcript's side where that side is
  wrong (the weak judge's "summarises vs verifies", Elasky et al. 2026).
"""
from __future__ import annotations

from itertools import combinations

import numpy as np

from w2s_base.decision import predicted_label, predicted_labels
from w2s_run.report import statistics as st
from w2s_run.report.model import Audit, AuditCapa, AuditGap, AuditSensitivity
from data.splits import Splits
from debate.controls import POSITIVE_LOSER_TEXT
from debate.transcript import Transcript
from weak.labels import LabellerResult

Transcripts = dict[tuple[str, int], Transcript]  # {(sample id, k): transcript} of one source


def favoured_label(t: Transcript) -> int:
    """The label a transcript favours: the position of its last turn that does not
    concede. A one-sided protocol (consultancy, market-making) has one speaker, so this is
    the consultant's position (`a_label`); in a debate it is the side of the final turn's
    speaker, unless that turn concedes (the scripted controls' loser says
    POSITIVE_LOSER_TEXT), when it is the side of the last turn before it that argues.
    A transcript whose every turn concedes favours side A's label."""
    argued = [x for x in t.turns if x.text.strip() != POSITIVE_LOSER_TEXT]
    return argued[-1].position_label if argued else t.a_label


def _sensitivity(lab: LabellerResult, splits: Splits, transcripts: Transcripts) -> AuditSensitivity:
    """Every (member, transfer sample) pair, each member reading its own transcript k;
    a labeller file without per-member labels: its aggregate, on transcript 0."""
    members = ({m: (p, lab.member_debate.get(m, 0)) for m, p in lab.member_transfer_p1.items()}
               or {lab.name: (lab.transfer_p1, 0)})
    counts = np.zeros((5, len(splits.transfer)))  # transcript right, follows, gold, wrong, follows wrong
    for i, x in enumerate(splits.transfer):
        for p1, k in members.values():
            side, pred = favoured_label(transcripts[(x.id, k)]), predicted_label(p1[x.id])
            counts[:, i] += (side == x.label, pred == side, pred == x.label, side != x.label,
                             side != x.label and pred == side)
    trials = np.full(len(splits.transfer), float(len(members)))
    right, follows, gold, wrong, follows_wrong = counts
    return AuditSensitivity(labeller=lab.name, protocol=lab.protocol, control=lab.control, mislead=lab.mislead,
                            transcript_right=st.rate(right, trials), follows_transcript=st.rate(follows, trials),
                            follows_gold=st.rate(gold, trials), follows_wrong_transcript=st.rate(follows_wrong, wrong))


def build_audit(splits: Splits, labellers: dict[str, LabellerResult], ceiling_p1: dict[str, float],
                transcripts: dict[str, Transcripts], reference: str, ceiling: str) -> Audit:
    """The audit of one draw. `ceiling_p1`: the out-of-fold ceiling's P(label = 1) per
    transfer sample; `transcripts`: {labeller name: the transcripts it reads}, for the
    labellers that read them; `ceiling`: how ceiling_p1 was made, in words."""
    ids = [x.id for x in splits.transfer]
    y = np.array([x.label for x in splits.transfer])
    p = lambda d: np.array([d[i] for i in ids])
    correct = lambda d: (predicted_labels(p(d)) == y).astype(float)
    ceil_c = correct(ceiling_p1)
    order = [reference] + [n for n in labellers if n != reference]
    gaps = [AuditGap(labeller=n, control=labellers[n].control, mislead=labellers[n].mislead, accuracy=float(correct(labellers[n].transfer_p1).mean()),
                     acc_ci=st.accuracy_interval(correct(labellers[n].transfer_p1)),
                     result=st.accuracy_difference(ceil_c, correct(labellers[n].transfer_p1)))
            for n in order]
    capa = [AuditCapa(kind="ceiling", labeller=n, a=n, b="ceiling",
                      result=st.capa(p(labellers[n].transfer_p1), p(ceiling_p1), y)) for n in order]
    for n in order:
        mp = labellers[n].member_transfer_p1
        capa += [AuditCapa(kind="members", labeller=n, a=a, b=b, result=st.capa(p(mp[a]), p(mp[b]), y))
                 for a, b in combinations(mp, 2)]
    sens = [_sensitivity(labellers[n], splits, transcripts[n]) for n in order if n in transcripts]
    audit = Audit(n=len(ids), ceiling=ceiling, ceiling_accuracy=float(ceil_c.mean()),
                  ceiling_acc_ci=st.accuracy_interval(ceil_c), gaps=gaps, capa=capa, sensitivity=sens,
                  expectation=[])
    audit.expectation = expectation(audit, reference)
    return audit


def _pts(v: float) -> str:
    return f"{100 * v:+.1f}"


def _interval(ci: list[float] | None, f=lambda v: f"{100 * v:.1f}") -> str:
    return f" ({f(ci[0])} to {f(ci[1])})" if ci else ""


def expectation(audit: Audit, reference: str) -> list[str]:
    """What the literature leads one to expect under the audited conditions, with the
    reasoning: an expectation, never a result (the students have not trained)."""
    ref_gap = next(g for g in audit.gaps if g.labeller == reference)
    d = ref_gap.result
    gap = f"gap {_pts(d.acc_diff)}{_interval(d.acc_diff_ci, _pts)} points"
    if d.direction == st.Direction.BETTER:
        out = [f"Capability gap: the ceiling beats the plain weak model `{reference}` on transfer, {gap}: there "
               "is a gap for weak-to-strong training to recover (PGR is a share of it, Burns et al. 2023)."]
    else:
        out = [f"Capability gap: no detectable gap between the ceiling and the plain weak model `{reference}` on "
               f"transfer ({gap}): expect PGR to be undefined or not significant; Engels et al. 2025 read "
               "oversight results across several gaps, and this pair is one point without one."]
    c = next((x.result for x in audit.capa if x.kind == "ceiling" and x.labeller == reference), None)
    if c is not None and c.capa is not None:
        out.append(f"Error similarity: CAPA(`{reference}`, ceiling) {c.capa:.2f}"
                   f"{_interval(c.ci, lambda v: f'{v:.2f}')} (0: independent errors, 1: identical). Goel et al. "
                   "2025 found the weak-to-strong gain larger the less alike the weak supervisor's and the "
                   "strong student's mistakes (lower CAPA).")
    for s in audit.sensitivity:
        if s.control or s.mislead is not None:
            tag = s.control.tag if s.control else f"mislead:{s.mislead:g}"
            out.append(f"`{s.labeller}` [CONTROL {tag}]: calibration of the instrument, not a method; "
                       "no expectation is stated for it.")
            continue
        critic, judge = s.transcript_right, ref_gap
        better = critic.ci is not None and critic.ci[0] > judge.acc_ci[1]
        fw = s.follows_wrong_transcript
        verifies = fw.ci is not None and fw.ci[1] < 0.5
        summarises = fw.ci is not None and fw.ci[0] > 0.5
        judge_word = ("verifies (follows a wrong transcript less than half the time)" if verifies else
                      "summarises (follows a wrong transcript more than half the time)" if summarises else
                      "cannot be told to verify or summarise" + ("" if fw.ci else " (no wrong transcript)"))
        met = better and verifies
        out.append(
            f"`{s.labeller}` ({s.protocol}): its transcripts favour the gold label in "
            f"{100 * (critic.rate or 0):.1f} %{_interval(critic.ci)} against the plain weak judge's "
            f"{100 * judge.accuracy:.1f} %{_interval(judge.acc_ci)} ("
            + ("the critic out-classifies the judge" if better else "the critic does not detectably out-classify the judge")
            + f"); the judge {judge_word}: P(follows | transcript wrong) {100 * (fw.rate or 0):.1f} %{_interval(fw.ci)}. "
            + ("These are the conditions under which debate helped in the literature (Elasky et al. 2026: a critic "
               "that out-classifies the judge, and a judge that verifies): an expectation, not a result."
               if met else
               "These are not the conditions under which debate helped in the literature (Elasky et al. 2026 "
               "needed a critic that out-classifies the judge and a judge that verifies): expect little gain "
               "over the plain weak labels; an expectation, not a result."))
    return out
