"""PGR pooled over replicates (statistics.pooled_pgr): the ratio of pooled means with a
Fieller interval under the two-level procedure of pooled_difference, gated on the pooled
gap; proven by simulation (statistics.simulate_pooled_pgr_coverage; fixed seeds, so every
number is deterministic; the margins are binomial, see binomial_margin). Rates measured
over a larger grid are in the module docstring of w2s_run/report/statistics.py."""
import math

import numpy as np
import pytest

from factories import scripted_draw, scripted_replicated_report
from w2s_run.report import statistics as st
from w2s_run.report.model import Report
from w2s_run.report.render import render_table
from w2s_run.report.scoring import build_report


def binomial_margin(p: float, n: int, z: float = 3.0) -> float:
    return z * math.sqrt(p * (1 - p) / n)


def _replicates(rng, R, m, accs, tau, shared_test=True):
    """R replicates of (w2s, weak, ceiling) 0/1 correctness and their test ids."""
    ids = [f"s{i}" for i in range(m)]
    out, all_ids = [], []
    for r in range(R):
        p = np.clip(np.array(accs) + tau * rng.standard_normal(3), 0, 1)
        out.append([(rng.random(m) < q).astype(float) for q in p])
        all_ids.append(ids if shared_test else [f"r{r}-{i}" for i in ids])
    return out, all_ids


def _pooled_test_rejects(reps, ids, theta) -> bool:
    """Whether the public pooled_difference claims w2s − weak − theta (ceiling − weak) ≠ 0,
    written as a difference of two [0, 1] combinations (a positive multiple of it; the
    two-level decision is scale-free)."""
    if theta >= 1:      # (w2s + (theta-1) weak) / theta − ceiling
        x = [(a + (theta - 1) * w) / theta for a, w, c in reps]
        y = [c for a, w, c in reps]
    elif theta >= 0:    # w2s − (theta ceiling + (1-theta) weak)
        x = [a for a, w, c in reps]
        y = [theta * c + (1 - theta) * w for a, w, c in reps]
    else:               # (w2s − theta ceiling) / (1 − theta) − weak
        x = [(a - theta * c) / (1 - theta) for a, w, c in reps]
        y = [w for a, w, c in reps]
    return st.pooled_difference(x, y, ids).significant


@pytest.mark.parametrize("R, shared_test, tau, seed", [(3, True, 0.03, 0), (4, False, 0.02, 1), (5, True, 0.0, 2)])
def test_interval_is_exactly_the_set_the_pooled_difference_test_does_not_reject(R, shared_test, tau, seed):
    reps, ids = _replicates(np.random.default_rng(seed), R, 150, (0.7, 0.6, 0.85), tau, shared_test)
    p = st.pooled_pgr(*zip(*reps), ids)
    assert p.verdict == st.Verdict.OK
    lo, hi = p.ci
    assert lo < p.pgr < hi
    grid = np.r_[np.linspace(lo - 1.0, hi + 1.0, 61), lo + 1e-3, lo - 1e-3, hi + 1e-3, hi - 1e-3]
    for theta in grid:
        assert _pooled_test_rejects(reps, ids, theta) == (not lo <= theta <= hi), theta


def test_point_per_replicate_and_gap_by_hand():
    reps, ids = _replicates(np.random.default_rng(3), 3, 200, (0.72, 0.6, 0.9), 0.02)
    p = st.pooled_pgr(*zip(*reps), ids)
    num = [a.mean() - w.mean() for a, w, c in reps]
    den = [c.mean() - w.mean() for a, w, c in reps]
    assert p.pgr == pytest.approx(np.mean(num) / np.mean(den)) and p.numerator == pytest.approx(np.mean(num))
    assert p.per_replicate == pytest.approx([a / b for a, b in zip(num, den)])
    # the gate is the pooled gap exactly as pooled_difference gives it
    g = st.pooled_difference([c for a, w, c in reps], [w for a, w, c in reps], ids)
    assert p.gap.estimate == pytest.approx(g.estimate) and p.gap.ci == pytest.approx(g.ci)
    assert p.describe().startswith(f"PGR {100 * p.pgr:.1f} % (95 % CI") and "pooled over 3 replicates" in p.describe()


def test_gated_on_the_pooled_gap():
    rng = np.random.default_rng(4)
    # a 3-point gap on 100 samples: the pooled gap cannot be told from zero, no interval
    reps, ids = _replicates(rng, 3, 100, (0.66, 0.6, 0.63), 0.0)
    p = st.pooled_pgr(*zip(*reps), ids)
    assert p.gap.estimate > 0 and p.gap.ci[0] <= 0  # measured +4.7 (-2.0 to +11.3)
    assert p.verdict == st.Verdict.NOT_SIGNIFICANT and p.pgr is not None and p.ci is None
    assert p.describe().startswith(st.Verdict.NOT_SIGNIFICANT)
    # the ceiling below the weak model on average: no PGR at all
    reps, ids = _replicates(rng, 3, 100, (0.7, 0.8, 0.5), 0.0)
    p = st.pooled_pgr(*zip(*reps), ids)
    assert p.verdict == st.Verdict.UNDEFINED and p.pgr is None and p.ci is None
    assert p.describe().startswith("undefined")
    with pytest.raises(ValueError):
        st.pooled_pgr(*zip(*reps[:1]), ids[:1])  # one replicate: nothing to pool


N = 1000


@pytest.mark.parametrize("R", [3, 4, 5])
def test_pooled_interval_covers_the_methods_pgr_and_one_draws_does_not(R):
    """Each draw moves every model's accuracy by N(0, (5 points)²) (debates, weak and strong
    seeds): one draw's interval (test samples only) covers the method's PGR in about 60 %
    of runs; the pooled interval in about 95 %."""
    r = st.simulate_pooled_pgr_coverage(0.05, 300, N, replicates=R, seed=10 + R)
    # measured, pooled / one draw's coverage (share of runs gated OK): R=3 94.6 / 57.1 (81.5 %),
    # R=4 95.7 / 57.8 (97.8 %), R=5 94.3 / 58.0 (100 %)
    assert r.pooled_ok_rate > 0.7
    n_ok = round(r.pooled_ok_rate * N)
    assert abs(r.pooled_coverage - 0.95) <= binomial_margin(0.05, n_ok)
    # misses on both sides, neither side holding most of the 5 %
    assert max(r.pooled_miss_low, r.pooled_miss_high) <= 0.025 + binomial_margin(0.025, n_ok)
    assert r.one_draw_coverage < 0.75


def test_pooled_interval_holds_its_level_on_separate_test_sets_and_without_spread():
    sep = st.simulate_pooled_pgr_coverage(0.02, 100, 600, replicates=4, shared_test=False, seed=21)
    flat = st.simulate_pooled_pgr_coverage(0.0, 300, 600, replicates=3, seed=22)
    # measured 97.5 % (separate, every run gated OK) and 95.2 %: never below the level, and
    # the pooled interval is not wastefully wide either
    for r in (sep, flat):
        assert 0.95 - binomial_margin(0.05, round(r.pooled_ok_rate * 600)) <= r.pooled_coverage <= 0.99
    assert flat.one_draw_coverage >= 0.9  # no spread between draws: one draw's interval is right too


def test_report_holds_and_prints_the_pooled_pgr_and_one_draw_says_this_draw_only():
    draws = [dict(n_test=200, weak_right=120, ceil_right=180, shift=s, deb_right=d)
             for s, d in ((0, 110), (2, 112), (1, 140))]
    rep = scripted_replicated_report("r", draws)
    assert [(p.labeller, p.loss, p.reference) for p in rep.pooled_pgr] == [("weak", "xent", "weak"),
                                                                           ("deb", "xent", "weak")]
    deb = rep.pooled_pgr[1].result
    # deb's student: 110, 112, 140 right against weak 120 and ceiling 180 of 200
    assert deb.pgr == pytest.approx(((110 + 112 + 140) / 3 - 120) / 60)
    assert deb.per_replicate == pytest.approx([-10 / 60, -8 / 60, 20 / 60])
    assert deb.verdict == st.Verdict.OK and deb.ci[0] < deb.pgr < deb.ci[1]
    table = render_table(rep)
    pooled, draw = table.split("## Replicate 1 of 3")
    assert "Pooled PGR = mean over replicates" in pooled
    assert f"| deb (xent) | {100 * deb.pgr:.1f} ({100 * deb.ci[0]:.1f} to {100 * deb.ci[1]:.1f}) | -16.7, -13.3, 33.3 |" \
        in pooled
    assert "Pooled PGR" not in draw and "PGR % (95% CI; resamples dropped; this draw only)" in draw
    data = rep.model_dump(mode="json")
    assert Report.model_validate(data).model_dump(mode="json") == data
    # one draw: no pooled PGR, its PGR column says this draw only
    one = build_report("r", *scripted_draw(**draws[0]))
    assert one.pooled_pgr is None
    text = render_table(one)
    assert "Pooled PGR" not in text and "PGR % (95% CI; resamples dropped; this draw only)" in text
    # a pooled gap that is not significant prints the verdict, not a number
    flat = scripted_replicated_report("f", [dict(n_test=60, weak_right=30, ceil_right=c) for c in (31, 36, 30)])
    assert all(p.result.verdict == st.Verdict.NOT_SIGNIFICANT for p in flat.pooled_pgr)
    assert "| weak (xent) | n.s. (gap not significant) |" in render_table(flat)
