"""A capability-gap sweep's summary: PGR against the weak-ceiling gap, one point per
(pair, student), read off each pair's own Report (w2s_run/sweep.py runs the pairs).

Nothing is re-estimated here: a point's gap and PGR are the pair's report's own, with
their intervals and verdicts (w2s_run/report/statistics.py): with one draw the
bootstrap gap and PGR of each student row; with `replicates` > 1 the pooled PGR
(Fieller interval, gated on the pooled gap) of the report's `pooled_pgr`. As in the
report, a PGR is printed only when its gap is significant ("n.s." otherwise) and the
plot draws no PGR for such a point (a ratio over a gap that may be zero means nothing).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from w2s_base.config import ControlTag
from w2s_base.runfolder.jsonl import save_json, write_text_atomic
from w2s_base.runfolder.layout import RunLayout
from w2s_run.report.model import Report
from w2s_run.report.plot import save_figure
from w2s_run.report.render import ci_text, control_mark, pgr_cell
from w2s_run.report.statistics import Verdict

SWEEP_SCHEMA_VERSION = 1


class SweepPoint(BaseModel):
    """One student of one pair: its gap (the pair's ceiling − its plain weak model, test
    accuracy) and its PGR against that weak model, each with its interval."""
    model_config = ConfigDict(extra="forbid")
    pair: str                          # the pair's run folder, <run>/sweep/<pair>/
    weak_model: str
    strong_model: str
    labeller: str
    loss: str
    control: ControlTag | None = None  # a control labeller: calibration, never a method's result
    replicates: int                    # draws behind the point (pooled when > 1)
    n_test: int
    gap: float                         # ceiling − reference weak accuracy (pooled mean over replicates)
    gap_ci: list[float]
    gap_significant: bool              # gap_ci[0] > 0: the PGR may be read
    verdict: Verdict                   # the PGR's: ok, not significant, undefined
    pgr: float | None                  # only when verdict is ok (never a number over an n.s. gap)
    ci: list[float] | None             # the PGR's interval (bootstrap; pooled: Fieller), when ok
    above_100: bool
    pgr_per_replicate: list[float | None]  # each draw's own point PGR (pooled runs; [] for one draw)


class PairRun(BaseModel):
    """One pair of the sweep as it ran: its models, its report, its test set."""
    model_config = ConfigDict(extra="forbid")
    pair: str
    weak_model: str
    strong_model: str
    reference: str                     # the plain weak labeller every PGR of the pair is against
    report: str                        # its report.json, relative to the sweep's run folder
    test_ids_sha: str                  # sha256 of its test ids in order: equal over the pairs


class SweepSummary(BaseModel):
    """sweep.json: every pair, every point, and what the reader must know (warnings)."""
    model_config = ConfigDict(extra="forbid")
    schema_version: int = SWEEP_SCHEMA_VERSION
    run: str
    level: float
    pairs: list[PairRun]
    points: list[SweepPoint]
    warnings: list[str] = []


def _test_ids_sha(report: Report) -> str:
    ids = report.per_sample.ids if report.per_sample is not None else []
    return hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:16]


def sweep_points(pair: str, report: Report) -> list[SweepPoint]:
    """The pair's students as points: pooled over its replicates when it has several."""
    meta = report.meta
    common = dict(pair=pair, weak_model=meta.weak_model if meta else "?",
                  strong_model=meta.strong_model if meta else "?", n_test=report.n_test)
    if report.pooled_pgr:
        out = []
        for row in report.pooled_pgr:
            p, g = row.result, row.result.gap
            ok = p.verdict == Verdict.OK
            out.append(SweepPoint(
                **common, labeller=row.labeller, loss=row.loss, control=report.control_of(row.labeller),
                replicates=g.n_replicates, gap=g.estimate, gap_ci=g.ci, gap_significant=g.ci[0] > 0,
                verdict=p.verdict, pgr=p.pgr if ok else None, ci=p.ci if ok else None, above_100=p.above_100,
                pgr_per_replicate=p.per_replicate))
        return out
    out = []
    for s in report.student_rows():
        p, g = s.pgr, s.pgr.gap
        ok = p.verdict == Verdict.OK
        out.append(SweepPoint(
            **common, labeller=s.labeller, loss=s.loss, control=report.control_of(s.labeller), replicates=1,
            gap=g.gap, gap_ci=g.ci, gap_significant=g.significant, verdict=p.verdict,
            pgr=p.pgr if ok else None, ci=p.ci if ok else None, above_100=p.above_100, pgr_per_replicate=[]))
    return out


def build_sweep(run: str, reports: list[tuple[str, Report]], root: Path | None = None,
                report_paths: list[Path] | None = None) -> SweepSummary:
    """The summary of a sweep's pairs, each given as (its folder name, its Report), in the
    config's order; `report_paths` (each pair's report.json) are recorded relative to `root`."""
    if not reports:
        raise ValueError("a sweep summary needs at least one pair's report")
    paths = report_paths or [Path("sweep") / name / "report.json" for name, _ in reports]
    pairs = [PairRun(pair=name, weak_model=r.meta.weak_model if r.meta else "?",
                       strong_model=r.meta.strong_model if r.meta else "?", reference=r.reference,
                       report=str(p.relative_to(root)) if root is not None and p.is_relative_to(root) else str(p),
                       test_ids_sha=_test_ids_sha(r)) for (name, r), p in zip(reports, paths)]
    points = [pt for name, r in reports for pt in sweep_points(name, r)]
    warnings = []
    if len({p.test_ids_sha for p in pairs}) > 1:
        warnings.append("the pairs were scored on different test samples (" + ", ".join(
            f"{p.pair}: {r.n_test}" for p, (_, r) in zip(pairs, reports)) + "): their gaps and PGRs are not "
            "paired across pairs")
    if len({p.reference for p in pairs}) > 1:
        warnings.append("the pairs measure PGR against differently named weak labellers")
    return SweepSummary(run=run, level=reports[0][1].gap.level, pairs=pairs, points=points, warnings=warnings)


def _series(p: SweepPoint) -> str:
    return f"{p.labeller}{control_mark(p.control)} ({p.loss})"


def render_sweep(s: SweepSummary) -> str:
    """sweep.md: the PGR-vs-gap table, one row per (pair, student)."""
    pct = round(100 * s.level)
    lines = [f"# Capability-gap sweep {s.run}: PGR against the weak-ceiling gap", "",
             f"Each pair (weak model → strong model) is its own run (sweep/<pair>/report.md) on the same test "
             f"samples. Gap = the strong ceiling's test accuracy − the plain weak model's, in points; PGR = "
             f"(W2S student − weak) / (ceiling − weak), against the plain weak model, with its {pct} % interval "
             "(one draw: bootstrap over test samples; several replicates: pooled, Fieller), printed only when the "
             "gap is significant (n.s. otherwise). Replicates: the draws behind each point.", "",
             f"| pair (weak → strong) | W2S on … labels (loss) | gap, points ({pct}% CI) | PGR % ({pct}% CI) | "
             "replicates |", "|---|---|---:|---:|---:|"]
    for p in s.points:
        gap = f"{100 * p.gap:+.1f}{ci_text(p.gap_ci, True)}" + ("" if p.gap_significant else " n.s.")
        lines.append(f"| {p.pair} ({p.weak_model} → {p.strong_model}) | {_series(p)} | {gap} | {pgr_cell(p)} | "
                     f"{p.replicates} |")
    lines += [""] + [f"**Warning:** {w}" for w in s.warnings]
    return "\n".join(lines).rstrip() + "\n"


def draw_sweep(s: SweepSummary):
    """sweep.png: PGR against the gap, one series (colour, marker) per student, error bars
    both ways; a point whose gap is not significant has no PGR to draw and is marked on
    the gap axis instead (a hollow marker under it, with its gap interval)."""
    import matplotlib.pyplot as plt
    from matplotlib.transforms import blended_transform_factory
    fig, ax = plt.subplots(figsize=(7.2, 5.2))
    under = blended_transform_factory(ax.transData, ax.transAxes)  # x in points of gap, y in the axes' height
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = "osD^vP*X"
    series = list(dict.fromkeys(_series(p) for p in s.points))
    for i, name in enumerate(series):
        colour, marker = colours[i % len(colours)], markers[i % len(markers)]
        pts = [p for p in s.points if _series(p) == name]
        shown = [p for p in pts if p.verdict == Verdict.OK]
        if shown:
            x = [100 * p.gap for p in shown]
            y = [100 * p.pgr for p in shown]
            ax.errorbar(x, y, xerr=[[100 * (p.gap - p.gap_ci[0]) for p in shown],
                                    [100 * (p.gap_ci[1] - p.gap) for p in shown]],
                        yerr=[[100 * (p.pgr - p.ci[0]) for p in shown], [100 * (p.ci[1] - p.pgr) for p in shown]],
                        fmt=marker, color=colour, capsize=3, label=name, gid="pgr")
            for p, xi, yi in zip(shown, x, y):
                ax.annotate(f"{p.pair} (R={p.replicates})", (xi, yi), fontsize=6, xytext=(4, 4),
                            textcoords="offset points")
        for j, p in enumerate(p for p in pts if p.verdict != Verdict.OK):
            # one row per series along the gap axis, so the series of one pair do not hide each other
            ax.errorbar([100 * p.gap], [0.03 + 0.035 * i], xerr=[[100 * (p.gap - p.gap_ci[0])],
                                                                  [100 * (p.gap_ci[1] - p.gap)]],
                        fmt=marker, mfc="none", color=colour, capsize=2, transform=under, gid="ns",
                        label=name if not shown and j == 0 else None)
    ax.axhline(0, color="#7f7f7f", ls=":", lw=1)
    ax.axhline(100, color="#7f7f7f", ls="--", lw=1)
    ax.axvline(0, color="#7f7f7f", ls=":", lw=1)
    ax.set_xlabel(f"gap: strong ceiling − plain weak model, test accuracy points ({round(100 * s.level)} % CI)")
    ax.set_ylabel("PGR % (shown only where the gap is significant)")
    n_ns = sum(p.verdict != Verdict.OK for p in s.points)
    title = f"{s.run}: PGR against the capability gap ({len(s.pairs)} pairs)"
    if n_ns:
        title += f"\n{n_ns} point(s) with no significant gap: hollow, on the gap axis, no PGR"
    ax.set_title(title, fontsize=9)
    if series:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def write_sweep(s: SweepSummary, layout: RunLayout) -> Path:
    """sweep.json, sweep.md and sweep.png in the sweep's run folder."""
    save_json(layout.sweep_json, s.model_dump(mode="json"))
    write_text_atomic(layout.sweep_md, render_sweep(s))
    save_figure(lambda: draw_sweep(s), layout.sweep_png)
    return layout.sweep_json


def read_sweep(layout: RunLayout) -> SweepSummary:
    return SweepSummary.model_validate_json(layout.sweep_json.read_text())
