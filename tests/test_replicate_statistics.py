"""The pooled two-level decision over replicates (statistics.pooled_difference), against
one draw's test-sample interval, by simulation (statistics.simulate_replicate_claim_rate;
fixed seeds: every number here is deterministic; the margins cover float differences
between machines, see each test). Rates measured with more runs are in the docstring
of w2s_run/report/statistics.py."""
import math

import numpy as np
import pytest

from w2s_run.report import statistics as st


def binomial_margin(p: float, n: int, z: float = 3.0) -> float:
    """z binomial standard deviations of a rate p measured over n runs."""
    return z * math.sqrt(p * (1 - p) / n)


def test_t_quantile_matches_the_tables():
    # Student's t, 97.5 % (two-sided 95 %), from any table
    for df, q in ((1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (10, 2.2281), (30, 2.0423)):
        assert st.t_quantile(0.975, df) == pytest.approx(q, abs=1e-4)
    assert st.t_quantile(0.975, 1e9) == pytest.approx(1.95996, abs=1e-5)
    assert st.t_quantile(0.975, 2) < st.t_quantile(0.975, 1.5) < st.t_quantile(0.975, 1)


N_NULL = 1500


def test_one_draw_interval_claims_differences_that_are_not_there_and_the_pooled_one_does_not():
    """No true difference, but each draw of debates and seeds moves the difference by
    u_r ~ N(0, (8 points)²): one draw's interval (test samples only) claims a difference
    in half the runs; the pooled interval over 3 replicates stays near 5 %."""
    r = st.simulate_replicate_claim_rate(0.0, 0.08, 300, N_NULL, replicates=3, seed=11)
    # measured 0.505 and 0.041; margins: 3 binomial sd at the bound
    assert r.one_draw_claim_rate > 0.30
    assert r.pooled_claim_rate <= 0.05 + binomial_margin(0.05, N_NULL)  # <= 0.067
    assert r.pooled_coverage >= 0.95 - binomial_margin(0.05, N_NULL)


@pytest.mark.parametrize("replicates, shared_test", [(2, True), (5, True), (3, False)])
def test_pooled_interval_holds_its_level_for_other_replicate_counts_and_split_designs(replicates, shared_test):
    r = st.simulate_replicate_claim_rate(0.0, 0.05, 100, 800, replicates=replicates, shared_test=shared_test,
                                         seed=5)
    assert r.pooled_claim_rate <= 0.05 + binomial_margin(0.05, 800)  # <= 0.073


def test_pooled_interval_detects_a_real_difference():
    """15 points with a small draw-to-draw spread (2 points) over 3 replicates of 300 test
    samples: found (as "better") in almost every run."""
    r = st.simulate_replicate_claim_rate(0.15, 0.02, 300, 400, replicates=3, seed=3)
    assert r.pooled_better_rate >= 0.9 and r.pooled_worse_rate == 0


def test_pooled_interval_is_not_absurdly_wide_without_draw_to_draw_spread():
    """tau = 0: the pooled interval over 3 replicates is not much wider than one draw's
    (the price of estimating the spread between replicates from 3 of them), claims
    about 5 % (measured 5.1 %), and finds a 10-point difference more often than not."""
    r = st.simulate_replicate_claim_rate(0.0, 0.0, 300, 800, replicates=3, seed=7)
    one_draw_width = 2 * 1.96 * math.sqrt(0.5 * 2 * 0.7 * 0.3 / 300)  # half the samples' pairs disagree freely
    assert r.mean_ci_width <= 1.3 * one_draw_width
    assert 0.005 <= r.pooled_claim_rate <= 0.05 + binomial_margin(0.05, 800)
    power = st.simulate_replicate_claim_rate(0.10, 0.0, 300, 400, replicates=3, seed=8)
    assert power.pooled_better_rate >= 0.5


def test_pooled_difference_by_hand():
    """The estimate is the mean of the replicates' differences; each replicate's verdict
    is that replicate's own paired_difference verdict (same resamples on a shared test set)."""
    rng = np.random.default_rng(0)
    m = 200
    ids = [f"s{i}" for i in range(m)]
    y = [(rng.random(m) < 0.6).astype(float) for _ in range(3)]
    x = [(rng.random(m) < p).astype(float) for p in (0.9, 0.9, 0.6)]
    p = st.pooled_difference(x, y, [ids] * 3)
    assert p.estimate == pytest.approx(np.mean([a.mean() - b.mean() for a, b in zip(x, y)]))
    assert p.per_replicate == pytest.approx([a.mean() - b.mean() for a, b in zip(x, y)])
    assert p.shared_test and p.n_replicates == 3 and p.n_test == m
    ones = np.ones(m)
    assert p.per_replicate_direction == [st.paired_difference(a, b, ones * 0, ones).direction for a, b in zip(x, y)]
    assert p.stability()["better"] == 2 and p.describe_stability().endswith("of 3 replicates")
    # the third replicate disagrees: the spread between replicates widens the interval
    # beyond what the test samples alone give
    assert p.tau > 0.05 and p.ci[1] - p.ci[0] > 2 * 1.96 * math.sqrt(p.v_test)
    # identical replicates: no spread beyond the test samples
    same = st.pooled_difference([x[0]] * 3, [y[0]] * 3, [ids] * 3)
    assert same.tau < 1e-9 and same.estimate == pytest.approx(x[0].mean() - y[0].mean())
    assert same.describe_stability() == f"{same.per_replicate_direction[0]} in 3 of 3 replicates"


def test_pooled_difference_knows_shared_from_separate_test_sets():
    rng = np.random.default_rng(1)
    a, b = (rng.random(50) < 0.7).astype(float), (rng.random(50) < 0.6).astype(float)
    ids = [f"s{i}" for i in range(50)]
    assert not st.pooled_difference([a, a], [b, b], [ids, ids[::-1]]).shared_test
    with pytest.raises(ValueError):
        st.pooled_difference([a], [b], [ids])
    with pytest.raises(ValueError):
        st.pooled_difference([a, a], [b, b], [ids, ids[:10]])
