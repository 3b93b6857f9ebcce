"""w2s_run.report.statistics: hand-checked arithmetic, the PGR gate on the issue's real case, and
the calibration of the paired-difference decision by simulation (fixed seeds: every
number here is deterministic, so a tolerance is a statement about the instrument, not a
guard against flakiness)."""
import json
import math
from statistics import NormalDist

import numpy as np
import pytest

from w2s_run.report import statistics as st


def exact(m: int, acc: float, rng: np.random.Generator) -> np.ndarray:
    """0/1 correctness with exactly round(acc * m) ones, in random order (independent errors)."""
    a = np.zeros(m)
    a[:round(acc * m)] = 1
    return rng.permutation(a)


def loop_bootstrap(arrays, n, seed):
    """Reference implementation: one rng.integers(0, m, m) per resample, the stream the
    module docstring defines."""
    rng = np.random.default_rng(seed)
    m = len(arrays[0])
    out = []
    for _ in range(n):
        i = rng.integers(0, m, m)
        out.append([a[i].mean() for a in arrays])
    return np.array(out).T


def pct(v, level=0.95):
    return list(np.percentile(v, [(1 - level) / 2 * 100, (1 + level) / 2 * 100]))


# ----------------------------------------------------------------- resampling

def test_accuracy_interval_is_the_plain_loop_exactly(monkeypatch):
    """Exact equality, also on seed averages and across chunks: a report's acc_ci values
    are these numbers."""
    rng = np.random.default_rng(3)
    for c in (exact(100, 0.63, rng), rng.integers(0, 4, 300) / 3):
        assert st.accuracy_interval(c) == [float(v) for v in pct(loop_bootstrap([c], 1000, 0)[0])]
        assert st.accuracy_interval(c, n=200, seed=4, level=0.9) == [
            float(v) for v in pct(loop_bootstrap([c], 200, 4)[0], 0.9)]
    monkeypatch.setattr(st, "_CHUNK_ELEMS", 700)  # 2 resamples per chunk
    assert st.accuracy_interval(c) == [float(v) for v in pct(loop_bootstrap([c], 1000, 0)[0])]


def test_pgr_uses_the_documented_resamples():
    rng = np.random.default_rng(3)
    w, c, s = exact(100, 0.48, rng), exact(100, 0.53, rng), exact(100, 0.63, rng)
    r = st.pgr_stat(s, w, c)
    means = loop_bootstrap([s, w, c], 1000, 0)  # the resamples every interval of the report uses
    gap = means[2] - means[1]
    kept = gap > 0
    assert r.dropped_frac == pytest.approx(1 - kept.mean())
    np.testing.assert_allclose(r.ci, pct((means[0][kept] - means[1][kept]) / gap[kept]))


def test_paired_difference_matches_a_plain_loop_on_seed_averaged_inputs():
    rng = np.random.default_rng(5)
    m, n = 37, 300  # n * m small; chunking is exercised below
    # seed-averaged students: fractions of 3 seeds
    s = rng.integers(0, 4, m) / 3
    r = rng.integers(0, 4, m) / 3
    w = (rng.random(m) < 0.55).astype(float)
    c = (rng.random(m) < 0.9).astype(float)
    res = st.paired_difference(s, r, w, c, n=n, seed=11)
    sb, rb, wb, cb = loop_bootstrap([s, r, w, c], n, 11)
    assert res.acc_diff == pytest.approx(s.mean() - r.mean())
    assert res.acc_diff_ci == pytest.approx(pct(sb - rb))
    assert res.gap.ci == pytest.approx(pct(cb - wb))
    keep = cb - wb > 0
    assert res.pgr_dropped_frac == pytest.approx(1 - keep.mean())
    if res.pgr_verdict == st.Verdict.OK:
        assert res.pgr_diff_ci == pytest.approx(pct((sb - rb)[keep] / (cb - wb)[keep]))


def test_chunked_resampling_keeps_the_stream(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.random((3, 50))
    full = st._resample_means(X, 40, 7)
    monkeypatch.setattr(st, "_CHUNK_ELEMS", 120)  # 2 resamples per chunk
    assert st._resample_means(X, 40, 7) == pytest.approx(full)
    assert full == pytest.approx(loop_bootstrap(list(X), 40, 7))


# ----------------------------------------------------------------- gap and PGR

def test_gap_hand_cases():
    g = st.gap([0, 0, 0, 0], [1, 1, 1, 1])
    assert (g.gap, g.ci, g.significant) == (1.0, [1.0, 1.0], True)
    g = st.gap([1, 0, 1, 0], [1, 0, 1, 0])  # identical models: every resample has gap 0
    assert (g.gap, g.ci, g.significant) == (0.0, [0.0, 0.0], False)
    g = st.gap([1, 0, 0, 1], [1, 1, 0, 1])
    assert g.gap == pytest.approx(0.25) and (g.weak_acc, g.ceiling_acc) == (0.5, 0.75)
    assert g.ci[0] == 0.0 and not g.significant  # one discordant sample out of 4 is not evidence
    assert (g.n_test, g.n_resamples, g.level) == (4, 1000, 0.95)


def test_pgr_undefined_when_ceiling_does_not_beat_weak():
    r = st.pgr_stat([1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 1, 0])
    assert r.pgr is None and r.ci is None and r.verdict == st.Verdict.UNDEFINED
    assert r.dropped_frac == 1.0 and not r.above_100
    r = st.pgr_stat([1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 1, 0])  # ceiling below weak
    assert r.pgr is None and r.verdict == st.Verdict.UNDEFINED and r.describe().startswith("undefined")


def test_pgr_gate_on_the_issue_case():
    """100 test samples, weak 48 %, ceiling 53 %, W2S 63 %: PGR 300 % on a gap the test set
    cannot tell from zero. The report must print the verdict, not a PGR."""
    rng = np.random.default_rng(0)
    w, c, s = exact(100, 0.48, rng), exact(100, 0.53, rng), exact(100, 0.63, rng)
    r = st.pgr_stat(s, w, c)
    assert r.verdict == st.Verdict.NOT_SIGNIFICANT == "not significant (ceiling does not beat weak)"
    assert r.gap.gap == pytest.approx(0.05) and r.gap.ci[0] < 0 < r.gap.ci[1] and not r.gap.significant
    assert r.pgr == pytest.approx(3.0) and r.above_100
    assert 0.1 < r.dropped_frac < 0.5  # normal approx: P(gap_b <= 0) = Phi(-0.05 / 0.07) = 0.24
    text = r.describe()
    assert text.startswith(st.Verdict.NOT_SIGNIFICANT) and "dropped" in text and "PGR" not in text


def test_pgr_clear_case():
    rng = np.random.default_rng(1)
    w, c, s = exact(1000, 0.60, rng), exact(1000, 0.90, rng), exact(1000, 0.75, rng)
    r = st.pgr_stat(s, w, c)
    assert r.gap.significant and r.gap.gap == pytest.approx(0.30)
    assert r.verdict == st.Verdict.OK and r.dropped_frac == 0.0
    assert r.pgr == pytest.approx(0.5) and r.ci[0] < 0.5 < r.ci[1] and r.ci[1] - r.ci[0] < 0.3
    assert not r.above_100 and not r.ci_above_100
    assert r.describe().startswith("PGR 50.0 %")


def test_ci_above_100_only_when_the_whole_interval_is():
    rng = np.random.default_rng(2)
    w, c, s = exact(2000, 0.60, rng), exact(2000, 0.70, rng), exact(2000, 0.90, rng)
    r = st.pgr_stat(s, w, c)
    assert r.verdict == st.Verdict.OK and r.pgr == pytest.approx(3.0)
    assert r.above_100 and r.ci_above_100 and r.ci[0] > 1


# ----------------------------------------------------------------- paired difference

def test_paired_difference_hand_cases():
    weak, ceil = np.zeros(8), np.ones(8)  # gap exactly 1 on every resample
    same = np.array([1, 0, 1, 1, 0, 1, 0, 1.0])
    d = st.paired_difference(same, same, weak, ceil)
    assert (d.acc_diff, d.acc_diff_ci, d.significant, d.direction) == (0.0, [0.0, 0.0], False, st.Direction.NO_DIFFERENCE)
    assert (d.pgr_diff, d.pgr_diff_ci, d.pgr_dropped_frac, d.pgr_verdict) == (0.0, [0.0, 0.0], 0.0, st.Verdict.OK)
    d = st.paired_difference(np.ones(8), np.zeros(8), weak, ceil)
    assert (d.acc_diff, d.acc_diff_ci, d.significant, d.direction) == (1.0, [1.0, 1.0], True, st.Direction.BETTER)
    assert d.pgr_diff == 1.0 and d.pgr_diff_ci == [1.0, 1.0]
    d = st.paired_difference(np.zeros(8), np.ones(8), weak, ceil)
    assert (d.significant, d.direction) == (True, st.Direction.WORSE)


def test_paired_difference_pgr_is_the_difference_of_pgrs_and_is_gated():
    rng = np.random.default_rng(4)
    w, c = exact(1000, 0.60, rng), exact(1000, 0.90, rng)
    deb, ref = exact(1000, 0.80, rng), exact(1000, 0.72, rng)
    d = st.paired_difference(deb, ref, w, c)
    assert d.acc_diff == pytest.approx(0.08) and d.direction == st.Direction.BETTER
    assert d.pgr_diff == pytest.approx((0.80 - 0.6) / 0.3 - (0.72 - 0.6) / 0.3)
    assert d.pgr_diff_ci[0] > 0 and d.pgr_dropped_frac == 0.0
    # same students, a ceiling the test set cannot tell from the weak model
    c2 = exact(1000, 0.61, rng)
    d = st.paired_difference(deb, ref, w, c2)
    assert d.direction == st.Direction.BETTER  # the accuracy claim does not need the ceiling
    assert d.pgr_verdict == st.Verdict.NOT_SIGNIFICANT and d.pgr_diff is None and d.pgr_diff_ci is None
    assert d.pgr_dropped_frac > 0
    assert "PGR difference not significant" in d.describe()


# ----------------------------------------------------------------- seeds and errors

def test_seed_spread():
    s = st.seed_spread([0.6, 0.8, 0.7])
    assert s.mean == pytest.approx(0.7) and s.std == pytest.approx(0.1)
    assert (s.min, s.max, s.n_seeds) == (0.6, 0.8, 3)
    one = st.seed_spread([0.65])
    assert (one.mean, one.std, one.n_seeds) == (0.65, None, 1)
    with pytest.raises(ValueError):
        st.seed_spread([])


def test_error_breakdown_by_hand():
    #            sample: 0  1  2  3  4  5
    y = np.array([1, 1, 0, 0, 1, 0])
    weak_pred = np.array([1, 0, 0, 1, 1, 1])     # right on 0, 2, 4; wrong on 1, 3, 5
    student_pred = np.array([1, 1, 1, 1, 0, 0])  # right on 0, 1, 5
    e = st.error_breakdown((student_pred == y).astype(float), (weak_pred == y).astype(float),
                           student_pred, weak_pred)
    assert (e.n_test, e.n_weak_right, e.n_weak_wrong) == (6, 3, 3)
    assert e.weak_acc == 0.5 and e.student_acc == 0.5
    assert e.student_acc_on_weak_right == pytest.approx(1 / 3)       # sample 0 of {0, 2, 4}
    assert e.student_acc_on_weak_wrong == pytest.approx(2 / 3)       # samples 1, 5 of {1, 3, 5}
    assert e.student_wrong_given_weak_right == pytest.approx(2 / 3)
    assert e.student_wrong_given_weak_wrong == pytest.approx(1 / 3)
    assert e.agreement == pytest.approx(2 / 6)                       # samples 0 and 3
    assert e.agreement_on_weak_right == pytest.approx(1 / 3)         # sample 0
    assert e.agreement_on_weak_wrong == pytest.approx(1 / 3)         # sample 3 (= wrong rate)


def test_error_breakdown_seed_average_is_the_mean_over_seeds():
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, 50)
    weak_pred = np.where(rng.random(50) < 0.7, y, 1 - y)
    seeds = [np.where(rng.random(50) < 0.8, y, 1 - y) for _ in range(3)]
    per = [st.error_breakdown((p == y).astype(float), (weak_pred == y).astype(float), p, weak_pred) for p in seeds]
    avg = st.error_breakdown(np.mean([(p == y) for p in seeds], axis=0), (weak_pred == y).astype(float),
                             np.mean(seeds, axis=0), weak_pred)
    for f in ("student_acc", "student_acc_on_weak_right", "student_acc_on_weak_wrong", "agreement",
              "agreement_on_weak_wrong", "student_wrong_given_weak_wrong"):
        assert getattr(avg, f) == pytest.approx(np.mean([getattr(p, f) for p in per])), f
    assert avg.agreement_on_weak_wrong == pytest.approx(avg.student_wrong_given_weak_wrong)


def test_error_breakdown_edges():
    e = st.error_breakdown([1, 0], [1, 1], [1, 1], [1, 0])  # weak never wrong
    assert e.n_weak_wrong == 0 and e.student_acc_on_weak_wrong is None
    assert e.student_wrong_given_weak_wrong is None and e.agreement_on_weak_wrong is None
    with pytest.raises(ValueError):
        st.error_breakdown([1, 0], [0.5, 1], [1, 1], [1, 0])  # weak correctness must be 0/1


def test_input_validation():
    with pytest.raises(ValueError):
        st.gap([1, 0, 1], [1, 0])
    with pytest.raises(ValueError):
        st.gap([1, 0, 2], [1, 0, 1])
    with pytest.raises(ValueError):
        st.gap([], [])
    with pytest.raises(ValueError):
        st.gap([1, 0], [1, 1], level=1.0)


def test_results_are_json_serialisable():
    rng = np.random.default_rng(0)
    w, c, s = exact(100, 0.48, rng), exact(100, 0.53, rng), exact(100, 0.63, rng)
    results = [st.gap(w, c), st.pgr_stat(s, w, c), st.paired_difference(s, w, w, c),
               st.seed_spread([0.6, 0.7]), st.error_breakdown(s, w, s, w),
               st.simulate_claim_rate(0.0, 50, 5, n_resamples=100)]
    for r in results:
        d = r.to_dict()
        assert json.loads(json.dumps(d)) == d
    assert results[1].to_dict()["gap"]["significant"] is False


# ----------------------------------------------------------------- calibration by simulation

def approx_claim_rate(true_diff, n_test, base_acc=0.7, shared=0.5, level=0.95):
    """Normal approximation of P(direction == "better") under the simulation's model:
    Var(d_i) = p1 q1 + p2 q2 - 2 shared (min(p1, p2) - p1 p2)."""
    p1, p2 = base_acc, base_acc + true_diff
    var = p1 * (1 - p1) + p2 * (1 - p2) - 2 * shared * (min(p1, p2) - p1 * p2)
    z = NormalDist().inv_cdf((1 + level) / 2)
    return NormalDist().cdf(true_diff / math.sqrt(var / n_test) - z)


def test_simulation_applies_exactly_paired_difference():
    data, res = st._simulate(0.05, 200, 4, n_resamples=300, boot_seed=3)
    for run, r in zip(data, res):
        assert st.paired_difference(*run, n=300, seed=3) == r


def test_null_claim_rates_are_nominal():
    """No true difference, 500 test samples, 1000 runs, 1000 resamples (the report's).
    Two-sided claim rate: nominal 5 %, binomial sd at 1000 runs sqrt(.05 * .95 / 1000) =
    0.69 points, so 5 % +- 3 sd = [2.9, 7.1] %. One-sided "debate beats plain": nominal
    2.5 % (sd 0.49 points); it must not exceed 5 %."""
    r = st.simulate_claim_rate(0.0, 500, 1000, seed=0)
    assert abs(r.mean_acc_diff) < 0.002
    assert 0.029 <= r.claim_any_rate <= 0.071
    assert r.claim_better_rate <= 0.05 and r.claim_worse_rate <= 0.05
    assert r.claim_any_rate == pytest.approx(r.claim_better_rate + r.claim_worse_rate)


def test_ten_point_difference_is_detected():
    """Ten points on 1000 test samples: normal approx z = 0.10 / 0.0152 = 6.6, power
    Phi(6.6 - 1.96) = 0.999998; with independent errors (shared=0) z = 0.10 / 0.0192 = 5.2,
    power Phi(3.24) = 0.9994. We assert >= 97 % of 300 runs: far above the 80 % asked for,
    and 9 misses in 300 at power 0.9994 has probability < 1e-20."""
    assert approx_claim_rate(0.10, 1000) > 0.99999 and approx_claim_rate(0.10, 1000, shared=0.0) > 0.999
    for shared in (0.5, 0.0):
        r = st.simulate_claim_rate(0.10, 1000, 300, seed=1, shared=shared)
        assert r.claim_better_rate >= 0.97 and r.claim_worse_rate == 0.0


def test_power_at_the_margin_matches_the_normal_approximation():
    """Four points on 1000 test samples: expected power 0.77 (normal approx). Binomial sd
    at 1000 runs is 0.013; allow 3 sd plus 0.02 for the approximation: +- 0.06."""
    expected = approx_claim_rate(0.04, 1000)
    assert expected == pytest.approx(0.77, abs=0.01)
    r = st.simulate_claim_rate(0.04, 1000, 1000, seed=2)
    assert abs(r.claim_better_rate - expected) < 0.06
