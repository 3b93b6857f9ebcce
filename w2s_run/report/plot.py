"""report.png: grouped bars per labeller (its weak accuracy, then its students'
per loss) and the ceiling, with 95 % bootstrap intervals; dashed lines at the
reference weak model and the ceiling, PGR written at each student's bar."""
from __future__ import annotations

from pathlib import Path

from w2s_run.report.statistics import Verdict

from w2s_run.report.model import CeilingRow, Report, StudentRow, WeakRow


def plot_report(report: Report, out: Path) -> Path | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    students = report.student_rows()
    groups = [(r.name, [r] + [s for s in students if s.labeller == r.name]) for r in report.weak_rows()]
    groups.append(("ceiling", [report.ceiling_row()]))
    losses = sorted({r.loss for r in students})
    greens = dict(zip(losses, ["#66c2a5", "#1b9e77", "#a6dba0", "#00441b"]))
    width = 0.8 / max(len(g) for _, g in groups)
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(report.rows) + 2), 4.5))
    seen = set()
    for gi, (_, members) in enumerate(groups):
        for j, r in enumerate(members):
            x = gi + (j - (len(members) - 1) / 2) * width
            if isinstance(r, StudentRow):
                colour, label = greens.get(r.loss, "#66c2a5"), f"W2S ({r.loss})"
            elif isinstance(r, CeilingRow):
                colour, label = "#fc8d62", "strong ceiling"
            else:
                assert isinstance(r, WeakRow)
                colour, label = "#8da0cb", "weak labeller"
            ci = r.acc_ci
            ax.bar(x, r.accuracy, width * 0.95, color=colour, label=None if label in seen else label,
                   yerr=[[r.accuracy - ci[0]], [ci[1] - r.accuracy]], capsize=2)
            seen.add(label)
            if isinstance(r, StudentRow) and r.pgr.verdict == Verdict.OK:  # a number only when it means one
                ax.text(x, 0.02, f"{100 * r.pgr.pgr:.0f}%", ha="center", va="bottom", fontsize=6, rotation=90)
    ax.set_xticks(range(len(groups)), [g for g, _ in groups], rotation=25, ha="right", fontsize=8)
    ax.set_ylim(0, 1.12)  # headroom for the legend
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_ylabel("test accuracy (PGR % at the bar foot)")
    ax.axhline(report.weak_accuracy, color="#8da0cb", ls="--", lw=0.8)
    ax.axhline(report.ceiling_accuracy, color="#fc8d62", ls="--", lw=0.8)
    ax.legend(fontsize=7, loc="upper center", ncol=len(seen))
    ax.set_title(f"{report.run}: weak labellers, their weak-to-strong students and the ceiling "
                 f"({report.n_test} test samples)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
