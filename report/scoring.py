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


# The one home of a student's run name: the stage names runs, the report reads them.
def run_name(labeller: str, loss: str) -> str:
    return f"w2s[{labeller}|{loss}]"


def parse_run_name(name: str) -> tuple[str, str]:
    """(labeller, loss) of a student's run name (labeller names may not hold '|')."""
    labeller, loss = name[len("w2s["):-1].rsplit("|", 1)
    return labeller, loss


def build_report(name: str, splits: Splits, labellers: dict[str, Labeller],
                 students: dict[str, dict[int, dict[str, float]]], reference: str = "weak",
                 meta: dict | None = None) -> dict:
    """Rows in the paper's order: weak labellers (the reference first), the students
    (those on the reference's labels first), the ceiling. A student trained with
    several seeds is scored by its per-sample correctness averaged over the seeds,
    so its accuracy is the seed mean and the bootstrap resamples test samples."""
    ids = [s.id for s in splits.test]
    y = np.array([s.label for s in splits.test])

    def correct(p: dict[str, float]) -> np.ndarray:
        return ((np.array([p[i] for i in ids]) > 0.5).astype(int) == y).astype(float)

    def seed_mean(by_seed: dict[int, dict[str, float]]) -> np.ndarray:
        return np.mean([correct(p) for p in by_seed.values()], axis=0)

    tids = [s.id for s in splits.transfer]
    ty = np.array([s.label for s in splits.transfer])
    order = [reference] + [n for n in labellers if n != reference]
    weak_c = correct(labellers[reference].test_p1)
    ceil_c = seed_mean(students["ceiling"])
    weak_acc, ceil_acc = float(weak_c.mean()), float(ceil_c.mean())
    rows = []
    for lab in (labellers[n] for n in order):
        p = np.array([lab.test_p1[i] for i in ids])
        members = {}
        for m, mp in lab.member_test_p1.items():
            q = np.array([mp[i] for i in ids])
            members[m] = {"accuracy": accuracy(q, y), "ece": ece(q, y)}
        # The supervision the student actually gets: the soft labels on transfer,
        # scored against the gold labels hidden from training.
        soft = np.array([lab.transfer_p1[i] for i in tids])
        rows.append({"row": lab.name, "kind": "weak", "protocol": lab.protocol, "aggregate": lab.aggregate,
                     "accuracy": accuracy(p, y), "acc_ci": bootstrap_acc(correct(lab.test_p1)),
                     "ece": ece(p, y), "label_accuracy": accuracy(soft, ty), "label_ece": ece(soft, ty),
                     "members": members})

    def student_rank(run: str) -> int:
        lab = parse_run_name(run)[0]
        return order.index(lab) if lab in order else len(order)

    for run in sorted((r for r in students if r != "ceiling"), key=student_rank):
        c = seed_mean(students[run])
        lab, loss = parse_run_name(run)
        acc = float(c.mean())
        row = {"row": run, "kind": "w2s", "labeller": lab, "loss": loss, "accuracy": acc,
               "seeds": len(students[run]), "seed_accuracy": [float(correct(p).mean()) for p in students[run].values()],
               "pgr": pgr(acc, weak_acc, ceil_acc)}
        row.update(bootstrap_pgr(c, weak_c, ceil_c))
        rows.append(row)
    rows.append({"row": "ceiling", "kind": "ceiling", "accuracy": ceil_acc, "acc_ci": bootstrap_acc(ceil_c),
                 "seeds": len(students["ceiling"]),
                 "seed_accuracy": [float(correct(p).mean()) for p in students["ceiling"].values()]})
    report = {"run": name, "n_test": len(ids), "reference": reference, "weak_accuracy": weak_acc,
              "ceiling_accuracy": ceil_acc, "pgr_defined": ceil_acc > weak_acc, "rows": rows, **(meta or {})}
    if not report["pgr_defined"]:
        report["warning"] = ("the strong ceiling does not beat the weak model on this test set: "
                             "PGR is undefined")
    elif any(r.get("pgr_ci") and r["pgr_ci"][1] - r["pgr_ci"][0] > 1.0 for r in rows):
        report["warning"] = (f"the PGR intervals are wider than 100 points: {len(ids)} test samples "
                             "and this weak-ceiling gap are too few to tell the methods apart")
    return report


def row_title(r: dict) -> str:
    if r["kind"] == "w2s":
        return f"W2S on {r['labeller']} labels ({r['loss']})"
    if r["kind"] == "ceiling":
        return "strong ceiling (gold labels)"
    n = len(r.get("members", {}))
    return f"weak: {r['row']}" + (f" ({n} members, {r['aggregate']})" if n > 1 else "")


def fmt(v: float | None, pct: bool = True) -> str:
    if v is None:
        return "n/a"
    return f"{100 * v:.1f}" if pct else f"{v:.3f}"


def render_table(report: dict) -> str:
    seeds = max((r.get("seeds", 1) for r in report["rows"]), default=1)
    lines = [f"# Run {report['run']}: {report['n_test']} test samples", "",
             "| model | test acc % (95% CI) | PGR % (95% CI) | test ECE | transfer labels acc % / ECE |",
             "|---|---:|---:|---:|---:|"]
    for r in report["rows"]:
        acc = fmt(r["accuracy"]) + (f" ({fmt(r['acc_ci'][0])} to {fmt(r['acc_ci'][1])})" if r.get("acc_ci") else "")
        ci = r.get("pgr_ci")
        if r["kind"] != "w2s":
            p = ""
        elif r.get("pgr") is None:  # an interval over the resamples that happen to define it would mislead
            p = "undefined"
        else:
            p = fmt(r["pgr"]) + (f" ({fmt(ci[0])} to {fmt(ci[1])})" if ci else "")
        lab = (f"{fmt(r['label_accuracy'])} / {fmt(r['label_ece'], False)}" if "label_accuracy" in r else "")
        lines.append(f"| {row_title(r)} | {acc} | {p} | {fmt(r['ece'], False) if 'ece' in r else ''} | {lab} |")
    if "warning" in report:
        lines += ["", f"**Warning:** {report['warning']}"]
    lines += ["", "Weak ensemble members (test):", "", "| labeller | member | acc % | ECE |", "|---|---|---:|---:|"]
    for r in report["rows"]:
        for m, v in r.get("members", {}).items():
            lines.append(f"| {r['row']} | {m} | {fmt(v['accuracy'])} | {fmt(v['ece'], False)} |")
    lines += ["", f"PGR = (W2S − weak) / (ceiling − weak), against the plain weak model "
                  f"`{report.get('reference', 'weak')}`; 95 % paired bootstrap intervals over test samples."]
    if "seconds" in report:
        secs = ", ".join(f"{k} {v:.0f} s" for k, v in report["seconds"].items())
        mem = report.get("peak_rss_mb_after", {})
        lines.append(f"Wall time: {secs}" + (f"; peak RSS {max(mem.values())} MB" if mem else "") + ".")
    if seeds > 1:
        lines.append(f"Students and ceiling: mean over {seeds} strong seeds (per-sample correctness "
                     "averaged over seeds before resampling).")
    return "\n".join(lines) + "\n"


def plot_report(report: dict, out: Path) -> Path | None:
    """Grouped bars per labeller (its weak accuracy, then its students' per loss) and
    the ceiling, with 95 % bootstrap intervals; dashed lines at the reference weak
    model and the ceiling, PGR written under each student's bar."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = report["rows"]
    weak = [r for r in rows if r["kind"] == "weak"]
    groups = [(r["row"], [r] + [s for s in rows if s["kind"] == "w2s" and s["labeller"] == r["row"]])
              for r in weak] + [("ceiling", [r for r in rows if r["kind"] == "ceiling"])]
    losses = sorted({r["loss"] for r in rows if r["kind"] == "w2s"})
    greens = dict(zip(losses, ["#66c2a5", "#1b9e77", "#a6dba0", "#00441b"]))
    width = 0.8 / max(len(g) for _, g in groups)
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(rows) + 2), 4.5))
    seen = set()
    for gi, (_, members) in enumerate(groups):
        for j, r in enumerate(members):
            x = gi + (j - (len(members) - 1) / 2) * width
            colour, label = {"weak": ("#8da0cb", "weak labeller"),
                             "ceiling": ("#fc8d62", "strong ceiling")}.get(r["kind"], (None, None))
            if r["kind"] == "w2s":
                colour, label = greens.get(r["loss"], "#66c2a5"), f"W2S ({r['loss']})"
            ci = r["acc_ci"]
            ax.bar(x, r["accuracy"], width * 0.95, color=colour, label=None if label in seen else label,
                   yerr=[[r["accuracy"] - ci[0]], [ci[1] - r["accuracy"]]], capsize=2)
            seen.add(label)
            if r.get("pgr") is not None:
                ax.text(x, 0.02, f"{100 * r['pgr']:.0f}%", ha="center", va="bottom", fontsize=6, rotation=90)
    ax.set_xticks(range(len(groups)), [g for g, _ in groups], rotation=25, ha="right", fontsize=8)
    ax.set_ylim(0, 1.12)  # headroom for the legend
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_ylabel("test accuracy (PGR % at the bar foot)")
    ax.axhline(report["weak_accuracy"], color="#8da0cb", ls="--", lw=0.8)
    ax.axhline(report["ceiling_accuracy"], color="#fc8d62", ls="--", lw=0.8)
    ax.legend(fontsize=7, loc="upper center", ncol=len(seen))
    ax.set_title(f"{report['run']}: weak labellers, their weak-to-strong students and the ceiling "
                 f"({report['n_test']} test samples)", fontsize=10)
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
