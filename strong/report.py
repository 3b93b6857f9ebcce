"""The run's report: test accuracy of every model and PGR of every student.

PGR is always measured against the plain (no-debate) weak labeller, as in the
paper, so debate-trained labellers and their students compete on one scale.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.jsonl import save_json
from core.metrics import accuracy, bootstrap_acc, bootstrap_pgr, ece, pgr
from data.splits import Splits
from weak.labels import Labeller


def build_report(name: str, splits: Splits, labellers: dict[str, Labeller],
                 students: dict[str, dict[str, float]], meta: dict) -> dict:
    ids = [s.id for s in splits.test]
    y = np.array([s.label for s in splits.test])

    def correct(p: dict[str, float]) -> np.ndarray:
        return ((np.array([p[i] for i in ids]) > 0.5).astype(int) == y).astype(float)

    weak_ref = labellers["weak"].test_p1
    weak_acc = accuracy(np.array([weak_ref[i] for i in ids]), y)
    ceil_acc = accuracy(np.array([students["ceiling"][i] for i in ids]), y)
    rows = []
    for lab in labellers.values():
        p = np.array([lab.test_p1[i] for i in ids])
        members = {}
        for m, mp in lab.member_test_p1.items():
            q = np.array([mp[i] for i in ids])
            members[m] = {"accuracy": accuracy(q, y), "ece": ece(q, y)}
        rows.append({"row": lab.name, "kind": "weak", "accuracy": accuracy(p, y),
                     "acc_ci": bootstrap_acc(correct(lab.test_p1)), "ece": ece(p, y),
                     "members": members})
    for run, p in students.items():
        acc = accuracy(np.array([p[i] for i in ids]), y)
        row = {"row": run, "kind": "ceiling" if run == "ceiling" else "w2s", "accuracy": acc,
               "acc_ci": bootstrap_acc(correct(p))}
        if run != "ceiling":
            row["pgr"] = pgr(acc, weak_acc, ceil_acc)
            row.update(bootstrap_pgr(correct(p), correct(weak_ref), correct(students["ceiling"])))
        rows.append(row)
    report = {"run": name, "n_test": len(ids), "weak_accuracy": weak_acc, "ceiling_accuracy": ceil_acc,
              "pgr_defined": ceil_acc > weak_acc, "rows": rows, **meta}
    if not report["pgr_defined"]:
        report["warning"] = ("the strong ceiling does not beat the weak model on this test set: "
                             "PGR is undefined")
    elif any(r.get("pgr_ci") and r["pgr_ci"][1] - r["pgr_ci"][0] > 1.0 for r in rows):
        report["warning"] = (f"the PGR intervals are wider than 100 points: {len(ids)} test samples "
                             "and this weak-ceiling gap are too few to tell the methods apart")
    return report


def fmt(v: float | None, pct: bool = True) -> str:
    if v is None:
        return "n/a"
    return f"{100 * v:.1f}" if pct else f"{v:.3f}"


def render_table(report: dict) -> str:
    lines = [f"# Run {report['run']}: {report['n_test']} test samples", "",
             "| model | test acc % | PGR % (95% CI) | ECE |", "|---|---:|---:|---:|"]
    for r in report["rows"]:
        ci = r.get("pgr_ci")
        p = "" if r["kind"] != "w2s" else fmt(r.get("pgr")) + (
            f" ({fmt(ci[0])} to {fmt(ci[1])})" if ci else "")
        lines.append(f"| {r['row']} | {fmt(r['accuracy'])} | {p} | {fmt(r.get('ece'), False) if 'ece' in r else ''} |")
    if "warning" in report:
        lines += ["", f"**Warning:** {report['warning']}"]
    lines += ["", "Weak ensemble members (test):", "", "| labeller | member | acc % | ECE |", "|---|---|---:|---:|"]
    for r in report["rows"]:
        for m, v in r.get("members", {}).items():
            lines.append(f"| {r['row']} | {m} | {fmt(v['accuracy'])} | {fmt(v['ece'], False)} |")
    lines += ["", "PGR = (W2S − weak) / (ceiling − weak), against the plain no-debate weak model."]
    return "\n".join(lines) + "\n"


def plot_report(report: dict, out: Path) -> Path | None:
    """Bar plot of test accuracy per model with 95 % bootstrap intervals."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = report["rows"]
    colours = {"weak": "#8da0cb", "w2s": "#66c2a5", "ceiling": "#fc8d62"}
    acc = [r["accuracy"] for r in rows]
    err = [[a - r["acc_ci"][0] for a, r in zip(acc, rows)], [r["acc_ci"][1] - a for a, r in zip(acc, rows)]]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(rows)), 4))
    ax.bar(range(len(rows)), acc, yerr=err, capsize=3, color=[colours[r["kind"]] for r in rows])
    for i, r in enumerate(rows):
        if r.get("pgr") is not None:
            ax.text(i, 0.02, f"PGR\n{100 * r['pgr']:.0f}%", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(rows)), [r["row"] for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("test accuracy")
    ax.axhline(report["weak_accuracy"], color="#8da0cb", ls="--", lw=0.8)
    ax.axhline(report["ceiling_accuracy"], color="#fc8d62", ls="--", lw=0.8)
    ax.set_title(f"{report['run']}: weak, weak-to-strong and ceiling ({report['n_test']} test samples)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def write_report(report: dict, run_dir: Path) -> Path:
    save_json(run_dir / "report.json", report)
    (run_dir / "report.md").write_text(render_table(report))
    plot_report(report, run_dir / "report.png")
    return run_dir / "report.json"


def compare_reports(a: dict, b: dict) -> str:
    """Two runs side by side (e.g. two prompt sets): accuracy and PGR per shared row."""
    ra = {r["row"]: r for r in a["rows"]}
    rb = {r["row"]: r for r in b["rows"]}
    lines = [f"| model | {a['run']} acc % | {b['run']} acc % | {a['run']} PGR % | {b['run']} PGR % |",
             "|---|---:|---:|---:|---:|"]
    for name in list(ra) + [n for n in rb if n not in ra]:
        x, y = ra.get(name, {}), rb.get(name, {})
        lines.append(f"| {name} | {fmt(x.get('accuracy'))} | {fmt(y.get('accuracy'))} | "
                     f"{fmt(x.get('pgr')) if 'pgr' in x else ''} | {fmt(y.get('pgr')) if 'pgr' in y else ''} |")
    return "\n".join(lines) + "\n"
