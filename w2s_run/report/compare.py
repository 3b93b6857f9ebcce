"""Runs side by side (`run.py compare RUN_A RUN_B [RUN_C ...]`): every later run against
the first, paired on their common test ids.

Each run's report.json carries every row's per-sample correctness (`Report.per_sample`,
keyed by `model.row_id`). Two runs are paired on the test ids they share (refused when
they share none, or when a shared id has another gold label in each: then one id names
two samples); every row present in both is scored on those ids, each run's accuracy with
its interval and the paired difference B − A with its interval
(`statistics.accuracy_interval`, `statistics.accuracy_difference`). A report carries ids,
not texts, so the runs' `data` configs are compared as well: when they differ, a shared
id may name another text, and the comparison says so. Then the dotted config keys that
differ between the runs' configs of record (`runs/<name>/config.yaml`).

Runs with replicates (`Report.replicates`, R > 1) are compared pooled over them
(`compare_pooled`, `statistics.pooled_difference`): replicate r of A is paired with
replicate r of B on their common test ids, and the per-replicate differences B_r − A_r
are pooled with the two-level procedure (test samples × replicates). Pairing by index is
valid for any two sets of independent draws; when the runs' seeds agree it also pairs
like with like (replicate r adds REPLICATE_STRIDE · r to every seed in both runs, so a
stage whose config is the same in both shares its draw, and its noise cancels). When R
differs, the first min(R_A, R_B) replicates of each are pooled and the rest left out;
when only one run has replicates, the replicated run's draw 0 (its top-level draw: the
seeds of a one-draw run) is compared with the other's one draw, as one draw only. Each
comparison says which of these it is (`DrawPlan`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from w2s_base.config import ConfigError
from w2s_base.runfolder.layout import RunLayout
from w2s_run.report import statistics as st
from w2s_run.report.model import PerSample, Report, ReportError, read_report, row_id
from w2s_run.report.render import fmt, row_title


@dataclass(frozen=True)
class Run:
    """One run as compare reads it: its folder, report and config of record (None when
    the folder has none)."""
    root: Path
    report: Report
    config: dict | None

    @property
    def per_sample(self) -> PerSample:
        assert self.report.per_sample is not None  # load_run refuses reports without it
        return self.report.per_sample

    @property
    def draws(self) -> int:
        """R: the report's replicates (1 for a report without any)."""
        return max(1, len(getattr(self.report, "replicates", None) or []))


def load_run(name_or_path: str, output_dir: str = "runs") -> Run:
    """A run folder (or a name under output_dir) with a report that holds per-sample
    results; a ReportError (one line) naming the path otherwise."""
    layout = RunLayout.find(name_or_path, output_dir)
    if not layout.root.is_dir():
        raise ReportError(f"no run folder at {layout.root} (give a run folder, or a run name under {output_dir}/)")
    report = read_report(layout)
    if report.per_sample is None:
        raise ReportError(f"{layout.report_json} holds no per-sample results (written by an older build): "
                          "rerun the run (finished stages are cached) to rewrite it")
    config = yaml.safe_load(layout.config.read_text()) if layout.config.is_file() else None
    return Run(layout.root, report, config)


@dataclass(frozen=True)
class Pairing:
    """The test ids two runs share, and where each is in either run's per-sample lists."""
    ids: list[str]           # in run A's order
    at_a: np.ndarray
    at_b: np.ndarray
    n_a: int
    n_b: int

    @property
    def complete(self) -> bool:
        return len(self.ids) == self.n_a == self.n_b


def pair_test_sets(a: PerSample, b: PerSample, names: tuple[str, str] = ("A", "B")) -> Pairing:
    """The common test ids; ReportError when there are none, or when a common id has
    another gold label in each run (the id names two different samples)."""
    where_b = {i: k for k, i in enumerate(b.ids)}
    at_a = [k for k, i in enumerate(a.ids) if i in where_b]
    if not at_a:
        raise ReportError(f"runs {names[0]} and {names[1]} share no test id ({len(a.ids)} and {len(b.ids)} test "
                          "samples): nothing to pair")
    ids = [a.ids[k] for k in at_a]
    at_b = [where_b[i] for i in ids]
    clash = sum(a.gold[i] != b.gold[j] for i, j in zip(at_a, at_b))
    if clash:
        raise ReportError(f"runs {names[0]} and {names[1]} give {clash} of their {len(ids)} common test ids "
                          "different gold labels: the same id names different samples (another data file or "
                          "task?); not comparable")
    return Pairing(ids, np.array(at_a), np.array(at_b), len(a.ids), len(b.ids))


@dataclass(frozen=True)
class RowComparison:
    """One row present in both runs, scored on the common test ids."""
    row: str                 # model.row_id
    title: str
    acc_a_ci: list[float]
    acc_b_ci: list[float]
    diff: st.AccuracyDifferenceResult   # B − A, paired


def compare_draws(a: Report, b: Report, pairing: Pairing) -> list[RowComparison]:
    """Every row in both reports (in A's order), on one draw of each run."""
    ca, cb = a.per_sample.correct, b.per_sample.correct
    titles = {row_id(r): row_title(r) for r in a.rows}
    out = []
    for rid in ca:
        if rid not in cb:
            continue
        xa = np.asarray(ca[rid])[pairing.at_a]
        xb = np.asarray(cb[rid])[pairing.at_b]
        out.append(RowComparison(row=rid, title=titles.get(rid, rid), acc_a_ci=st.accuracy_interval(xa),
                                 acc_b_ci=st.accuracy_interval(xb), diff=st.accuracy_difference(xb, xa)))
    return out


@dataclass(frozen=True)
class PooledRowComparison:
    """One row present in both runs, pooled over the paired replicates."""
    row: str                 # model.row_id
    title: str
    acc_a: float             # mean over the paired replicates of A's accuracy on the common ids
    acc_b: float
    diff: st.PooledDifference   # B − A


def replicate_pairings(a: Report, b: Report, k: int, names: tuple[str, str] = ("A", "B")) -> list[Pairing]:
    """Replicate r of A paired with replicate r of B on their common test ids, r < k."""
    out = []
    for r in range(k):
        ra, rb = a.replicates[r], b.replicates[r]
        if ra.per_sample is None or rb.per_sample is None:
            raise ReportError(f"replicate {r + 1} of {names[0] if ra.per_sample is None else names[1]} holds no "
                              "per-sample results (written by an older build): rerun the run to rewrite it")
        out.append(pair_test_sets(ra.per_sample, rb.per_sample,
                                  (f"{names[0]} replicate {r + 1}", f"{names[1]} replicate {r + 1}")))
    return out


def compare_pooled(a: Report, b: Report, pairings: list[Pairing]) -> list[PooledRowComparison]:
    """Every row in every paired replicate of both reports (in A's order), B − A pooled
    over the replicates (statistics.pooled_difference), each replicate paired on its
    common test ids."""
    k = len(pairings)
    reps_a, reps_b = a.replicates[:k], b.replicates[:k]
    titles = {row_id(r): row_title(r) for r in a.rows}
    common = [rid for rid in reps_a[0].per_sample.correct
              if all(rid in x.per_sample.correct for x in reps_a + reps_b)]
    out = []
    for rid in common:
        xa = [np.asarray(x.per_sample.correct[rid])[p.at_a] for x, p in zip(reps_a, pairings)]
        xb = [np.asarray(x.per_sample.correct[rid])[p.at_b] for x, p in zip(reps_b, pairings)]
        out.append(PooledRowComparison(
            row=rid, title=titles.get(rid, rid), acc_a=float(np.mean([x.mean() for x in xa])),
            acc_b=float(np.mean([x.mean() for x in xb])),
            diff=st.pooled_difference(xb, xa, [p.ids for p in pairings])))
    return out


# the config keys that set which draw replicate r is (RunConfig.for_replicate): any
# debate/weak/strong/data seed, and whether the split is re-drawn
_SEED_KEYS = ("seed", "replicate_splits")


@dataclass(frozen=True)
class DrawPlan:
    """Which draws of the two runs a comparison pairs: `pooled` replicate pairs (0: one
    draw of each), and the paragraph that says so."""
    pooled: int
    text: str | None


def draw_plan(a: Run, b: Run) -> DrawPlan:
    ra, rb = a.draws, b.draws
    if ra == rb == 1:
        return DrawPlan(0, None)
    if min(ra, rb) == 1:
        side, r = ("A", ra) if ra > 1 else ("B", rb)
        return DrawPlan(0, f"**Note:** run {side} has {r} replicates, the other run one draw: compared on draw 0 of "
                           f"run {side} (its top-level draw, drawn with the seeds of a one-draw run) against the other "
                           "run's one draw: these draws only. A pooled comparison needs replicates in both runs.")
    k = min(ra, rb)
    if ra == rb:
        what = f"Both runs have {k} replicates: compared pooled over them"
    else:
        more, r = ("A", ra) if ra > rb else ("B", rb)
        what = (f"**Note:** run A has {ra} replicates and run B {rb}: compared pooled over the first {k} of each; "
                f"run {more}'s replicate{f's {k + 1} to {r}' if r > k + 1 else f' {r}'} left out")
    text = (f"{what}, replicate r of A paired with replicate r of B on their common test ids, the {k} differences "
            "pooled with the two-level interval (test samples × replicates).")
    if a.config is None or b.config is None:
        return DrawPlan(k, text + " Seeds not checked (no config of record in one run).")
    seeds = [key for key, _, _ in config_diff(a.config, b.config) if any(s in key for s in _SEED_KEYS)]
    if seeds:
        text += (f" The runs' seeds differ ({', '.join(seeds)}): paired replicates are independent draws, so the "
                 "pairing holds but cancels nothing beyond the shared test samples.")
    else:
        text += (" The runs' seeds agree: replicate r re-seeds both runs alike, so a stage configured the same in "
                 "both shares its draw and its noise cancels in the difference.")
    return DrawPlan(k, text)


def flat(d, prefix: str = "") -> dict[str, object]:
    """A nested config as dotted keys (list items by index: weak.labellers.1.name)."""
    if isinstance(d, dict):
        items = d.items()
    elif isinstance(d, list) and d and all(isinstance(x, (dict, list)) for x in d):
        items = ((str(k), v) for k, v in enumerate(d))
    else:
        return {prefix: d}
    out: dict[str, object] = {}
    for k, v in items:
        out.update(flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


_ABSENT = object()


def config_diff(a: dict, b: dict) -> list[tuple[str, object, object]]:
    """(dotted key, A's value, B's value) for every key whose value differs or that one
    config lacks (its value: _ABSENT), in A's key order, then B's."""
    fa, fb = flat(a), flat(b)
    keys = list(fa) + [k for k in fb if k not in fa]
    return [(k, fa.get(k, _ABSENT), fb.get(k, _ABSENT)) for k in keys if fa.get(k, _ABSENT) != fb.get(k, _ABSENT)]


def cell(x: object) -> str:
    """Markdown-safe table cell text: one line, `|` escaped."""
    if x is _ABSENT:
        return "(absent)"
    s = x if isinstance(x, str) else json.dumps(x, ensure_ascii=False)
    s = " ".join(s.split())
    return (s if len(s) <= 80 else s[:77] + "...").replace("|", "\\|")


def _ci(ci: list[float], signed: bool = False) -> str:
    f = (lambda v: f"{100 * v:+.1f}") if signed else fmt
    return f"({f(ci[0])} to {f(ci[1])})"


def _test_sets(p: Pairing) -> list[str]:
    if p.complete:
        return [f"Test sets: the same {len(p.ids)} test ids in both runs: paired on all of them."]
    return [f"**Warning: the test sets differ.** {len(p.ids)} common test ids (A has {p.n_a}, B has {p.n_b}): "
            f"every number below is on the {len(p.ids)} common ids only, not on each run's whole test set "
            "(its report's numbers)."]


def _data_configs(a: Run, b: Run) -> list[str]:
    if a.config is None or b.config is None:
        missing = ", ".join(str(r.root) for r in (a, b) if r.config is None)
        return [f"Data configs not checked: no config of record in {missing}; a common id is assumed to "
                "name the same text."]
    diff = config_diff({"data": a.config.get("data", {})}, {"data": b.config.get("data", {})})
    if not diff:
        return ["Data configs identical: a common id names the same text."]
    return [f"**Warning: the data configs differ** ({', '.join(k for k, _, _ in diff)}): a common id may name "
            "another text (report.json carries ids, not texts; the gold labels agree on every common id)."]


def _replicate_test_sets(pairings: list[Pairing]) -> list[str]:
    partial = [(r, p) for r, p in enumerate(pairings) if not p.complete]
    if not partial:
        return [f"Test sets: in each of the {len(pairings)} paired replicates the same test ids in both runs."]
    return ["**Warning: the test sets differ** in " + "; ".join(
        f"replicate {r + 1} ({len(p.ids)} common ids; A has {p.n_a}, B has {p.n_b})" for r, p in partial)
        + ": each replicate is paired on its common ids only."]


def _pooled_rows_table(rows: list[PooledRowComparison], k: int) -> list[str]:
    lines = [f"| row | A acc % (mean of {k}) | B acc % (mean of {k}) | B − A pooled, points (95% CI) | "
             "pooled verdict | per replicate, points | stability |", "|---|---:|---:|---:|---|---:|---|"]
    for r in rows:
        d = r.diff
        per = ", ".join(f"{100 * v:+.1f}" for v in d.per_replicate)
        lines.append(f"| {cell(r.title)} | {fmt(r.acc_a)} | {fmt(r.acc_b)} | {100 * d.estimate:+.1f} "
                     f"{_ci(d.ci, True)} | {d.direction} | {per} | {d.describe_stability()} |")
    return lines


def _rows_table(rows: list[RowComparison], a: Report, b: Report) -> list[str]:
    lines = ["| row | A acc % (95% CI) | B acc % (95% CI) | B − A, points (95% CI) | verdict |",
             "|---|---:|---:|---:|---|"]
    for r in rows:
        d = r.diff
        lines.append(f"| {cell(r.title)} | {fmt(d.reference_acc)} {_ci(r.acc_a_ci)} | {fmt(d.acc)} {_ci(r.acc_b_ci)} | "
                     f"{100 * d.acc_diff:+.1f} {_ci(d.acc_diff_ci, True)} | {d.direction} |")
    ids_a, ids_b = {row_id(x) for x in a.rows}, {row_id(x) for x in b.rows}
    for side, only in (("A", [x for x in a.rows if row_id(x) not in ids_b]),
                       ("B", [x for x in b.rows if row_id(x) not in ids_a])):
        if only:
            lines += ["", f"Only in run {side}: " + ", ".join(row_title(x) for x in only) + "."]
    return lines


def _config_table(a: Run, b: Run) -> list[str]:
    if a.config is None or b.config is None:
        return []
    diff = config_diff(a.config, b.config)
    if not diff:
        return ["", "Configs of record: identical."]
    return ["", "Configs of record (config.yaml), the keys that differ:", "", "| key | A | B |", "|---|---|---|"] + \
        [f"| {cell(k)} | {cell(va)} | {cell(vb)} |" for k, va, vb in diff]


def render_comparison(a: Run, b: Run) -> str:
    """B against A: which draws, test sets, data configs, every common row paired (pooled
    over replicates when both runs have them, then draw 0 of each), the config diff."""
    names = (f"A ({a.root})", f"B ({b.root})")
    pairing = pair_test_sets(a.per_sample, b.per_sample, names)
    plan = draw_plan(a, b)
    pairings = replicate_pairings(a.report, b.report, plan.pooled, names) if plan.pooled else []
    rows = compare_draws(a.report, b.report, pairing)
    lines = [f"# B `{b.report.run}` ({b.root}) against A `{a.report.run}` ({a.root})", ""]
    tests = _replicate_test_sets(pairings) if pairings else _test_sets(pairing)
    for paragraph in ([plan.text] if plan.text else []) + tests + _data_configs(a, b):
        lines += [paragraph, ""]
    one_draw = ("test-sample noise only, conditional on each run's one draw of debates and training seeds: "
                "a verdict here is about these draws, not about the method.")
    if pairings:
        lines += [f"Pooled over {plan.pooled} replicates (B − A; w2s_run/report/statistics.py: pooled_difference):",
                  ""] + _pooled_rows_table(compare_pooled(a.report, b.report, pairings), plan.pooled)
        lines += ["", f"Draw 0 of each run (this draw only; on its {len(pairing.ids)} common test ids):", ""]
    lines += _rows_table(rows, a.report, b.report)
    lines += _config_table(a, b)
    lines += ["", f"Intervals: the pooled ones cover the test samples and the spread between the {plan.pooled} "
                  "paired replicates, a statement about the method as the runs draw it; the draw-0 ones (95 % "
                  "paired bootstrap, accuracy_interval, accuracy_difference) cover " + one_draw
              if pairings else
              f"Intervals: 95 % paired bootstrap over the {len(pairing.ids)} common test samples "
              "(w2s_run/report/statistics.py: accuracy_interval, accuracy_difference); they cover " + one_draw]
    return "\n".join(lines) + "\n"


def compare_runs(runs: list[str], output_dir: str = "runs") -> str:
    """`run.py compare RUN_A RUN_B [RUN_C ...]`: each later run against the first."""
    if len(runs) < 2:
        raise ConfigError("compare needs at least two runs: python run.py compare RUN_A RUN_B")
    loaded = [load_run(r, output_dir) for r in runs]
    return "\n".join(render_comparison(loaded[0], b) for b in loaded[1:])
