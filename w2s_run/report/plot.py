"""report.png: grouped bars per labeller (its weak accuracy, then its students'
per loss) and the ceiling, with 95 % bootstrap intervals; dashed lines at the
reference weak labeller's and the ceiling's accuracy, a dotted one at chance (the
majority label's share of the test set: what always answering it scores), and each
student's PGR written at its bar's foot when it means something. Everything drawn
has a legend entry; the legend sits under the axes, where it hides no bar."""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Callable

from w2s_base.runfolder.artifacts import save_artifact
from w2s_run.report.statistics import Verdict

from w2s_run.report.model import CeilingRow, Report, StudentRow, WeakRow

WEAK, CEILING, CHANCE = "#8da0cb", "#fc8d62", "#7f7f7f"


def chance_accuracy(report: Report) -> float:
    """What always answering the test set's majority label scores (0.5 when the
    report does not carry the test labels)."""
    gold = report.per_sample.gold if report.per_sample is not None else []
    if not gold:
        return 0.5
    ones = sum(gold) / len(gold)
    return max(ones, 1 - ones)


def plot_report(report: Report, out: Path) -> Path | None:
    """Write report.png (None when matplotlib is not installed)."""
    return save_figure(lambda: draw_report(report), out)


def save_figure(draw: Callable[[], Any], out: Path) -> Path | None:
    """Write the figure `draw()` makes as a PNG at `out`, whole or not at all (None when
    matplotlib is not installed: a plot is never worth failing a run for)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig = draw()
    try:
        save_artifact(out, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    finally:
        plt.close(fig)
    return out


def draw_report(report: Report):
    """The figure of report.png (matplotlib needed)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    students = report.student_rows()
    groups = [(r.name, [r] + [s for s in students if s.labeller == r.name]) for r in report.weak_rows()]
    groups.append(("ceiling", [report.ceiling_row()]))
    losses = sorted({r.loss for r in students})
    greens = dict(zip(losses, ["#66c2a5", "#1b9e77", "#a6dba0", "#00441b"]))
    width = 0.8 / max(len(g) for _, g in groups)
    fig, ax = plt.subplots(figsize=(max(6.4, 0.45 * len(report.rows) + 2.4), 5.2))
    handles: dict[str, object] = {}
    pgr_drawn = False
    for gi, (_, members) in enumerate(groups):
        for j, r in enumerate(members):
            x = gi + (j - (len(members) - 1) / 2) * width
            if isinstance(r, StudentRow):
                colour, label = greens.get(r.loss, "#66c2a5"), f"W2S student ({r.loss})"
            elif isinstance(r, CeilingRow):
                colour, label = CEILING, "strong ceiling"
            else:
                assert isinstance(r, WeakRow)
                colour, label = WEAK, "weak labeller"
            ci = r.acc_ci
            ax.bar(x, r.accuracy, width * 0.95, color=colour,
                   yerr=[[r.accuracy - ci[0]], [ci[1] - r.accuracy]], capsize=2, ecolor="#333333")
            handles.setdefault(label, Patch(color=colour, label=label))
            if isinstance(r, StudentRow) and r.pgr.verdict == Verdict.OK:  # a number only when it means one
                ax.text(x, 0.02, f"{100 * r.pgr.pgr:.0f}%", ha="center", va="bottom", fontsize=6, rotation=90)
                pgr_drawn = True
    chance = chance_accuracy(report)
    lines = [
        (report.weak_accuracy, WEAK, "--", f"reference weak labeller ({report.reference}): {report.weak_accuracy:.2f}"),
        (report.ceiling_accuracy, CEILING, "--", f"strong ceiling: {report.ceiling_accuracy:.2f}"),
        (chance, CHANCE, ":", f"chance (majority label): {chance:.2f}"),
    ]
    for y, colour, style, label in lines:
        ax.axhline(y, color=colour, ls=style, lw=1.0, zorder=0, gid="level")
        handles[label] = Line2D([], [], color=colour, ls=style, lw=1.0, label=label)
    handles["95 % bootstrap interval"] = Line2D([], [], color="#333333", marker="|", ls="-", lw=1.0,
                                                markersize=8, label="95 % bootstrap interval")
    if pgr_drawn:
        handles["pgr"] = Line2D([], [], ls="none", marker="$\\%$", color="black", markersize=7,
                                label="student's PGR, at the bar foot")
    ax.set_xticks(range(len(groups)), [g for g, _ in groups], rotation=25, ha="right", fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_ylabel("test accuracy")
    # Wrapped to the figure's width (about 11 characters per inch at 10 pt), so that a
    # long run name is never cut off at the edges.
    title = (f"{report.run}: weak labellers, their weak-to-strong students and the ceiling "
             f"({report.n_test} test samples)")
    ax.set_title(textwrap.fill(title, width=int(11 * fig.get_figwidth()), break_on_hyphens=False),
                 fontsize=10)
    fig.legend(handles=list(handles.values()), fontsize=7, loc="lower center", ncol=3, frameon=False)
    rows = -(-len(handles) // 3)
    fig.tight_layout(rect=(0, 0.045 * rows + 0.02, 1, 1))  # room for the legend under the axes
    return fig
