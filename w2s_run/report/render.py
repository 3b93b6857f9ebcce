"""The report as text: the markdown table (report.md, printed at the end of a
run). Runs side by side (`run.py compare`): compare.py."""
from __future__ import annotations

from w2s_base.config import ControlSpec
from w2s_base.runfolder.environment import one_line
from w2s_run.report.statistics import Direction, Verdict

from w2s_run.report.model import Audit, CeilingRow, Report, StudentRow, WeakRow


def control_mark(control: ControlSpec | None, mislead: float | None = None) -> str:
    """A control's label: its tag, or for real debates told to mislead (debate.mislead) their rate."""
    if control:
        return f" [CONTROL {control.tag}]"
    return f" [CONTROL mislead:{mislead:g}]" if mislead is not None else ""


def _label(report: Report, labeller: str) -> str:
    return control_mark(report.control_of(labeller), report.mislead_of(labeller))


def row_title(r) -> str:
    if isinstance(r, StudentRow):
        return f"W2S on {r.labeller} labels ({r.loss})"
    if isinstance(r, CeilingRow):
        return "strong ceiling (gold labels)"
    n = len(r.members)
    return f"weak: {r.name}" + (f" ({n} members, {r.aggregate})" if n > 1 else "") + control_mark(r.control, r.mislead)


def fmt(v: float | None, pct: bool = True) -> str:
    if v is None:
        return "n/a"
    return f"{100 * v:.1f}" if pct else f"{v:.3f}"


def ci_text(ci: list[float] | None, signed: bool = False) -> str:
    if not ci:
        return ""
    f = (lambda v: f"{100 * v:+.1f}") if signed else fmt
    return f" ({f(ci[0])} to {f(ci[1])})"


# What the PGR column prints instead of a number (an interval over the resamples that
# happen to define the ratio would mislead).
_NO_PGR = {Verdict.UNDEFINED: "undefined", Verdict.NOT_SIGNIFICANT: "n.s. (gap not significant)"}


def _pgr_cell(r) -> str:
    """A PGR number only when the weak-ceiling gap is significant; otherwise the verdict."""
    if not isinstance(r, StudentRow):
        return ""
    p = r.pgr
    if p.verdict != Verdict.OK:
        return _NO_PGR[p.verdict]
    flag = " ⚠ >100 %" if p.above_100 else ""
    return f"{fmt(p.pgr)}{ci_text(p.ci)}{flag}; {100 * p.dropped_frac:.0f} % dropped"


def _seeds_cell(r) -> str:
    sp = getattr(r, "seed_spread", None)
    if sp is None or sp.n_seeds < 2:
        return ""
    return f"{sp.n_seeds}: sd {100 * sp.std:.1f}, {fmt(sp.min)}–{fmt(sp.max)}"


def _acc_diff(d) -> str:
    return f"{100 * d.acc_diff:+.1f}{ci_text(d.acc_diff_ci, True)}"


# Every verdict of one draw says so: it is conditional on that draw of debates and seeds
# (and of the split), and another draw can read otherwise; only `pooled` speaks for the method.
DRAW_ONLY = "this draw only"


def _pooled_comparisons(report: Report) -> list[str]:
    if not report.pooled:
        return []
    p0 = report.pooled[0].result
    n = p0.n_replicates
    test = ("the same test samples in every replicate" if p0.shared_test
            else "a different split (and test set) in every replicate")

    def title(c) -> str:
        if c.kind == "gap":
            return f"strong ceiling vs weak: {c.reference}"
        if c.kind == "weak":
            return f"weak: {c.name}{_label(report, c.name)} vs {c.reference}"
        (lab, loss), (ref, ref_loss) = c.name.split("|", 1), c.reference.split("|", 1)
        losses = loss if loss == ref_loss else f"{loss} vs {ref_loss}"
        return f"W2S on {lab}{_label(report, lab)} vs on {ref} labels ({losses})"

    lines = [f"# Run {report.run}: pooled over {n} replicates", "",
             f"Each replicate re-draws the debates, the weak members' and the students' seeds; {test}. "
             f"Pooled difference = mean of the {n} replicates' differences; {round(100 * p0.level)} % interval "
             "from the two-level procedure (test samples × replicates; w2s_run/report/statistics.py). "
             "Stability: each replicate's own verdict.", "",
             f"| comparison | pooled difference, points ({round(100 * p0.level)}% CI) | pooled verdict | "
             "per replicate, points | stability |", "|---|---:|---|---:|---|"]
    for c in report.pooled:
        d = c.result
        per = ", ".join(f"{100 * v:+.1f}" for v in d.per_replicate)
        lines.append(f"| {title(c)} | {100 * d.estimate:+.1f}{ci_text(d.ci, True)} | {d.direction} | {per} | "
                     f"{d.describe_stability()} |")
    lines += _pooled_pgr_table(report)
    return lines


def _pooled_table(report: Report) -> list[str]:
    if not report.pooled:
        return []
    n = report.pooled[0].result.n_replicates
    return _pooled_comparisons(report) + [
        "", f"## Replicate 1 of {n} ({DRAW_ONLY}; every replicate: replicates/r<r>/report.md)", ""]


def pgr_cell(p) -> str:
    """A PGR and its interval only when its gap is significant; otherwise the verdict. `p`:
    anything with verdict, pgr, ci and above_100 (a pooled PGR, one draw's, a sweep point)."""
    if p.verdict != Verdict.OK:
        return _NO_PGR[p.verdict]
    return f"{fmt(p.pgr)}{ci_text(p.ci)}" + (" ⚠ >100 %" if p.above_100 else "")


def _pooled_pgr_table(report: Report) -> list[str]:
    if not report.pooled_pgr:
        return []
    g = report.pooled_pgr[0].result.gap
    lines = ["", f"Pooled PGR = mean over replicates of (W2S − weak) / mean over replicates of (ceiling − weak), "
                 f"against the plain weak model `{report.reference}`; its {round(100 * g.level)} % interval is every PGR "
                 "value the pooled two-level test does not reject (Fieller), printed only when the pooled ceiling − "
                 f"weak gap is significant (here {100 * g.estimate:+.1f} points{ci_text(g.ci, True)}: "
                 + ("significant" if g.direction == Direction.BETTER else "**not significant**") + ").", "",
             f"| student on … labels (loss) | pooled PGR % ({round(100 * g.level)}% CI) | per replicate, % |",
             "|---|---:|---:|"]
    for row in report.pooled_pgr:
        per = ", ".join(fmt(v) for v in row.result.per_replicate)
        lines.append(f"| {row.labeller}{_label(report, row.labeller)} ({row.loss}) | "
                     f"{pgr_cell(row.result)} | {per} |")
    return lines


def _mislead_banner(report: Report) -> list[str]:
    """A run with debate.mislead is a control run: said before any of its numbers."""
    rates = sorted({r.mislead for r in report.weak_rows() if r.mislead is not None})
    if not rates:
        return []
    return [f"**[CONTROL] debate.mislead {', '.join(f'{d:g}' for d in rates)}**: on that share of the transfer and "
            "test debates the debater arguing the wrong label was told to mislead (its prompt set's mislead.jinja); "
            "the labellers reading them measure deception, never the method.", ""]


def _main_table(report: Report) -> list[str]:
    g = report.gap
    lines = [f"# Run {report.run}: {report.n_test} test samples" + ("" if report.pooled else f" ({DRAW_ONLY})"), "",
             *_mislead_banner(report),
             f"Ceiling − weak gap: {100 * g.gap:+.1f} points{ci_text(g.ci, True)}, "
             + ("significant" if g.significant else "**not significant**: PGR is not reported as a number")
             + f" ({DRAW_ONLY})", "",
             f"| model | test acc % (95% CI) | PGR % (95% CI; resamples dropped; {DRAW_ONLY}) | seeds: sd, range | "
             "test ECE | transfer labels acc % / ECE |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in report.rows:
        weak = isinstance(r, WeakRow)
        lab = f"{fmt(r.label_accuracy)} / {fmt(r.label_ece, False)}" if weak else ""
        lines.append(f"| {row_title(r)} | {fmt(r.accuracy)}{ci_text(r.acc_ci)} | {_pgr_cell(r)} | {_seeds_cell(r)} | "
                     f"{fmt(r.ece, False) if weak else ''} | {lab} |")
    for w in report.warnings:
        lines += ["", f"**Warning:** {w}"]
    return lines


def _vs_reference_table(report: Report) -> list[str]:
    vs = [r for r in report.weak_rows() if r.vs_reference]
    if not vs:
        return []
    lines = ["", f"Each weak labeller against the plain weak model `{report.reference}` (test accuracy, "
                 "paired):", "", "| weak labeller | acc difference, points (95% CI) | verdict |", "|---|---:|---|"]
    for r in vs:
        lines.append(f"| {r.name}{control_mark(r.control, r.mislead)} | {_acc_diff(r.vs_reference)} | "
                     f"{r.vs_reference.direction} ({DRAW_ONLY}) |")
    return lines


def _comparisons_table(report: Report) -> list[str]:
    if not report.comparisons:
        return []
    lines = ["", f"Each student against the student on plain weak labels (`{report.reference}`, same "
                 "loss), paired over test samples (the paper's question):", "",
             "| student on … labels (loss) | acc difference, points (95% CI) | verdict | PGR difference, points (95% CI) |",
             "|---|---:|---|---:|"]
    for c in report.comparisons:
        d = c.result
        pgr_d = f"{100 * d.pgr_diff:+.1f}{ci_text(d.pgr_diff_ci, True)}" if d.pgr_verdict == Verdict.OK else d.pgr_verdict
        loss = c.loss if c.reference_loss == c.loss else f"{c.loss} vs {c.reference_loss}"
        lines.append(f"| {c.labeller}{_label(report, c.labeller)} ({loss}) | {_acc_diff(d)} | "
                     f"{d.direction} ({DRAW_ONLY}) | {pgr_d} |")
    return lines


def _errors_table(report: Report) -> list[str]:
    students = report.student_rows()
    if not students:
        return []
    lines = ["", "Where each student's accuracy comes from (test samples, split by whether its own "
                 "weak labeller was right; agreement = imitation of the teacher):", "",
             "| student on … labels (loss) | acc % where weak right (n) | acc % where weak wrong (n) | "
             "agreement with weak % | P(wrong given weak right) | P(wrong given weak wrong) |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in students:
        e = r.errors
        lines.append(f"| {r.labeller}{_label(report, r.labeller)} ({r.loss}) | "
                     f"{fmt(e.student_acc_on_weak_right)} ({e.n_weak_right}) | "
                     f"{fmt(e.student_acc_on_weak_wrong)} ({e.n_weak_wrong}) | {fmt(e.agreement)} | "
                     f"{fmt(e.student_wrong_given_weak_right, False)} | "
                     f"{fmt(e.student_wrong_given_weak_wrong, False)} |")
    return lines


def _deception_table(report: Report) -> list[str]:
    """The deceptive-debater control's dose-response: per rate d, the weak labeller's and
    each of its students' test accuracy, and the deception view (the students' error
    where the weak labeller is right vs wrong), in one table."""
    rows = report.deceptive_rows()
    if not rows:
        return []
    lines = ["", f"[CONTROL] Deceptive debater, dose-response ({DRAW_ONLY}): each labeller reads debates in "
                 "which a side argues the WRONG label on purpose on a share d of the transfer and test samples "
                 "(honest on weak_train, where the weak judge trains against gold): scripted debates whose "
                 "confident winner argues it (scripted; debate/controls.py), or real debates whose wrong side's "
                 "debater was told to mislead (real; debate.mislead). Against the plain weak model "
                 f"`{report.reference}`, paired; deception view: P(student wrong | weak right) vs "
                 "P(student wrong | weak wrong).", "",
             "| d | debates | weak labeller | weak acc % (95% CI) | vs plain weak, points (95% CI) | student (loss) | "
             "student acc % (95% CI) | P(wrong given weak right) | P(wrong given weak wrong) |",
             "|---:|---|---|---:|---:|---|---:|---:|---:|"]
    for w in rows:
        d, kind = (w.control.rate, "scripted") if w.control else (w.mislead, f"real ({w.protocol})")
        head = (f"| {d:g} | {kind} | {w.name} | {fmt(w.accuracy)}{ci_text(w.acc_ci)} | "
                + (_acc_diff(w.vs_reference) if w.vs_reference else "") + " | ")
        students = [s for s in report.student_rows() if s.labeller == w.name]
        if not students:
            lines.append(head + "no student | | | |")
        for s in students:
            e = s.errors
            lines.append(head + f"{s.loss} | {fmt(s.accuracy)}{ci_text(s.acc_ci)} | "
                         f"{fmt(e.student_wrong_given_weak_right, False)} | "
                         f"{fmt(e.student_wrong_given_weak_wrong, False)} |")
    return lines


def _members_table(report: Report) -> list[str]:
    lines = ["", "Weak ensemble members (test):", "", "| labeller | member | acc % | ECE |", "|---|---|---:|---:|"]
    for r in report.weak_rows():
        for m, v in r.members.items():
            lines.append(f"| {r.name} | {m} | {fmt(v.accuracy)} | {fmt(v.ece, False)} |")
    return lines


def _capa_cell(c) -> str:
    if c.capa is None:
        return "n/a (neither model errs)"
    return f"{c.capa:.2f}" + (f" ({c.ci[0]:.2f} to {c.ci[1]:.2f})" if c.ci else "")


def _rate_cell(r) -> str:
    return "n/a" if r.rate is None else f"{fmt(r.rate)}{ci_text(r.ci)} (n {r.trials:.0f})"


def render_audit(audit: Audit) -> list[str]:
    """The audit (w2s_run/report/audit.py) as a report section, also logged by the pipeline
    before any student trains."""
    lines = ["", f"## Audit, before any student trained ({audit.split} split, {audit.n} samples)", "",
             f"Strong ceiling: {audit.ceiling}: {fmt(audit.ceiling_accuracy)}{ci_text(audit.ceiling_acc_ci)} %.", "",
             "| weak labeller | transfer acc % (95% CI) | ceiling − labeller, points (95% CI) |", "|---|---:|---:|"]
    for g in audit.gaps:
        lines.append(f"| {g.labeller}{control_mark(g.control, g.mislead)} | {fmt(g.accuracy)}{ci_text(g.acc_ci)} | {_acc_diff(g.result)} |")
    lines += ["", "Error similarity, CAPA (Goel et al. 2025; 0: independent errors, 1: identical; 95% CI):", "",
              "| labeller | between | CAPA (95% CI) |", "|---|---|---:|"]
    for c in audit.capa:
        lines.append(f"| {c.labeller} | {c.a} and {c.b} | {_capa_cell(c.result)} |")
    if audit.sensitivity:
        lines += ["", "Judge sensitivity to the transcript (each member with its own transcript; the side a "
                      "transcript favours: the position of its last turn that does not concede, for consultancy "
                      "the consultant's):", "",
                  "| labeller | transcript favours gold % | prediction = transcript side % | prediction = gold % | "
                  "prediction = transcript side where it is wrong % |", "|---|---:|---:|---:|---:|"]
        for s in audit.sensitivity:
            lines.append(f"| {s.labeller}{control_mark(s.control, s.mislead)} | {_rate_cell(s.transcript_right)} | "
                         f"{_rate_cell(s.follows_transcript)} | {_rate_cell(s.follows_gold)} | "
                         f"{_rate_cell(s.follows_wrong_transcript)} |")
    lines += ["", "What the literature leads one to expect here (an expectation stated before training, not a result):", ""]
    lines += [f"- {e}" for e in audit.expectation]
    return lines


def _audit_section(report: Report) -> list[str]:
    return render_audit(report.audit) if report.audit else []


def _quotes_table(report: Report) -> list[str]:
    """weak.verify_quotes: each source's quotes by grade, per debater and per transcript."""
    tallies = report.meta.quotes if report.meta else {}
    if not tallies:
        return []
    threshold = next(iter(tallies.values())).fuzzy_threshold
    lines = ["", "Quotes the weak judge read, graded against the passage (verified: verbatim after "
                 f"normalisation; fuzzy: word similarity ≥ {threshold:g} to a passage window; debate/quotes.py):",
             "", "| source | debater | quotes | verified | fuzzy | unverified |", "|---|---|---:|---:|---:|---:|"]
    for source, t in tallies.items():
        for side, c in t.by_side.items():
            lines.append(f"| {source} | {side} | {c.total} | {c.verified} | {c.fuzzy} | {c.unverified} |")
        n, total = t.transcripts, t.total
        mean = [f"{x / n:.2f}" if n else "–" for x in (total.total, total.verified, total.fuzzy, total.unverified)]
        lines.append(f"| {source} | per transcript (mean of {n}) | " + " | ".join(mean) + " |")
        w = t.with_any
        lines.append(f"| {source} | transcripts with any | | {w.verified} | {w.fuzzy} | {w.unverified} |")
    return lines


def gold_side_line(protocol: str, rates: dict[str, float]) -> str:
    """Market-making's placement per split, as the report and the [debate] log say it."""
    return (f"{protocol}: the consultant argues the gold label in "
            + ", ".join(f"{name} {100 * r:.0f} %" for name, r in rates.items())
            + " of samples (placed against out-of-fold weak models on weak_train, against the "
            "plain weak model on transfer and test).")


def _notes(report: Report) -> list[str]:
    """Definitions, then what the run's record says (fitting, wall time, environment, seeds)."""
    lines = ["", f"PGR = (W2S − weak) / (ceiling − weak), against the plain weak model "
                 f"`{report.reference}`; 95 % paired bootstrap intervals over test samples (1000 "
                 "resamples); a PGR interval is taken over the resamples where the ceiling beats the "
                 "weak model, and the share dropped is shown beside it. Definitions: w2s_run/report/statistics.py.",
             f"Every interval and verdict of one draw ({DRAW_ONLY}) covers test-sample noise only, for "
             "this draw of debates, weak and strong seeds: another draw can read otherwise. "
             + ("Only the pooled table speaks for the method." if report.pooled else
                "A claim about the method needs replicates (config `replicates`, ≥ 3), pooled.")]
    meta = report.meta
    if meta and meta.fit and meta.fit["n_overlong"]:
        f = meta.fit
        per = ", ".join(f"{n} ≤ {r['budget']} tokens: {r['n_overlong']}" for n, r in f["readers"].items())
        lines.append(f"Over-long texts: {f['n_overlong']} of {f['n_in']} ({per}); policy `{f['policy']}`: "
                     f"{f['n_dropped']} dropped before splitting, {f['n_cut']} cut in the middle.")
    for protocol, rates in (meta.consultant_gold_side if meta else {}).items():
        lines.append(gold_side_line(protocol, rates))
    dd = (meta.fit or {}).get("dedupe") if meta else None
    if dd and (dd["n_duplicates"] or dd["n_conflicting"]):
        lines.append(f"Duplicate texts (data/dedupe.py): {dd['n_duplicates']} copies dropped before "
                     f"splitting, and {dd['n_conflicting']} samples of {dd['n_conflicting_texts']} texts "
                     "whose copies disagree on the label.")
    if meta and meta.seconds:
        secs = ", ".join(f"{k} {v:.0f} s" for k, v in meta.seconds.items())
        mem = meta.peak_rss_mb_after
        lines.append(f"Wall time: {secs}" + (f"; peak RSS {max(mem.values()):.0f} MB" if mem else "") + ".")
    if meta and meta.environment:
        lines.append(f"Environment: {one_line(meta.environment)}.")
    seeds = max((getattr(r, "seeds", 1) for r in report.rows), default=1)
    if seeds > 1:
        lines.append(f"Students and ceiling: mean over {seeds} strong seeds (per-sample correctness "
                     "averaged over seeds before resampling).")
    return lines


def render_table(report: Report) -> str:
    sections = (_pooled_table, _main_table, _vs_reference_table, _comparisons_table, _errors_table, _deception_table,
                _members_table, _quotes_table, _audit_section, _notes)
    return "\n".join(line for section in sections for line in section(report)) + "\n"


def render_summary(report: Report) -> str:
    """The final table alone (`--quiet`): the pooled comparisons of a run with replicates
    (the table that speaks for the method), else the main table (accuracy and PGR per
    model, with the run's warnings)."""
    return "\n".join(_pooled_comparisons(report) or _main_table(report)) + "\n"
