"""Power before the spend: statistics.minimum_detectable_difference checked by simulation
against the report's own paired_difference decision, and `run.py plan` printing it (with
a warning when it exceeds report.min_effect)."""
import types

import pytest

import run
from factories import scripted_report
from w2s_base.config import load_config
from w2s_run.report import statistics as st
from w2s_run.report import write_report
from w2s_run.services.plan import _between_replicate_sd, power_plan, render_power


def _mde_at(n_test: int, p_a: float) -> float:
    """The MDE with p_b = p_a + MDE (the alternative it is evaluated at): a fixed point."""
    mde = st.minimum_detectable_difference(n_test, p_a=p_a, p_b=p_a)
    for _ in range(20):
        mde = st.minimum_detectable_difference(n_test, p_a=p_a, p_b=p_a + mde)
    return mde


def test_paired_difference_detects_the_mde_with_80_percent_power():
    """At a true difference equal to the MDE, independent per-sample outcomes (the
    variance model's case): the report's paired bootstrap claims it in ~80 % of 2,000
    simulated experiments (binomial sd 0.9 points; tolerance 4); at half of it, far less;
    with positively correlated students (shared difficulty) the MDE is conservative."""
    n, p = 200, 0.7
    mde = _mde_at(n, p)
    assert 0.10 < mde < 0.13
    at = st.simulate_claim_rate(mde, n, 2000, base_acc=p, seed=11, shared=0.0)
    assert abs(at.claim_any_rate - 0.80) < 0.04, at
    assert at.claim_worse_rate < 0.005  # the claims are in the right direction
    half = st.simulate_claim_rate(mde / 2, n, 2000, base_acc=p, seed=12, shared=0.0)
    assert half.claim_any_rate < 0.4
    correlated = st.simulate_claim_rate(mde, n, 2000, base_acc=p, seed=13, shared=0.5)
    assert correlated.claim_any_rate > 0.85


def test_replicates_shrink_only_the_between_replicate_term():
    base = st.minimum_detectable_difference(300, p_a=0.7, p_b=0.7)
    assert st.minimum_detectable_difference(300, 1, 0.7, 0.7, tau=0.08) > \
        st.minimum_detectable_difference(300, 3, 0.7, 0.7, tau=0.08) > base
    # a shared test set's noise does not shrink with R
    assert st.minimum_detectable_difference(300, 10_000, 0.7, 0.7, tau=0.08) == pytest.approx(base, rel=1e-3)
    assert st.minimum_detectable_difference(300, 5, 0.7, 0.7) == pytest.approx(base)
    # the worst case p = 0.5 on 100 samples: 2.80 * sqrt(0.5 / 100)
    assert st.minimum_detectable_difference(100) == pytest.approx(0.1981, abs=1e-4)
    n = st.test_samples_needed(0.05, p_a=0.7, p_b=0.7)
    assert st.minimum_detectable_difference(n, p_a=0.7, p_b=0.7) <= 0.05 < \
        st.minimum_detectable_difference(n - 1, p_a=0.7, p_b=0.7)
    assert st.test_samples_needed(0.05, 2, tau=0.1) is None  # tau^2 / R alone exceeds it


def test_plan_prints_the_mde_and_warns_when_min_effect_is_smaller(tmp_path, capsys):
    args = ["plan", "--config", "configs/demo.yaml", "--set", f"output_dir={tmp_path}", "--gpu-memory-gib", "80"]
    assert run.main(args + ["--set", "report.min_effect=0.05"]) == 0
    out = capsys.readouterr().out
    assert ("power: minimum detectable paired difference 19.8 points (80 % power, two-sided 5 %) with n_test 100 "
            "and 1 replicate(s); expected accuracy from worst case p = 0.5") in out
    assert "WARNING: the minimum detectable difference 19.8 points exceeds report.min_effect 5.0 points" in out
    assert "n_test >= 1,570 at 1 replicate(s)" in out
    # the same run with a min_effect it can resolve: no warning
    cfg = load_config("configs/demo.yaml", [f"output_dir={tmp_path}", "report.min_effect=0.25"])
    lines = render_power(power_plan(cfg))
    assert len(lines) == 1 and "19.8 points" in lines[0]


def test_plan_reads_the_expected_accuracies_from_a_previous_report(tmp_path):
    cfg = load_config("configs/demo.yaml", [f"output_dir={tmp_path}", "data.n_test=300"])
    rep = scripted_report("demo")  # weak 50 %, ceiling 83.3 %: p = 0.5, the largest variance between
    write_report(rep.model_copy(update={"weak_accuracy": 0.7, "ceiling_accuracy": 0.85}), cfg.layout)
    w = power_plan(cfg)
    assert w.p == 0.7 and str(cfg.layout.report_json) in w.source and "weak 70.0 %, ceiling 85.0 %" in w.source
    assert "tau) is unknown" in w.source and w.tau == 0
    assert w.mde == pytest.approx(st.minimum_detectable_difference(300, p_a=0.7, p_b=0.7))


def test_between_replicate_spread_of_the_differences():
    """tau: the largest sd over replicates of one paired difference (the report's
    replicates scored on one test set); stands in for Report.replicates."""
    reps = [scripted_report("r", deb_right=36 + k) for k in (0, 3, 6)]  # deb's student: +0, +5, +10 points
    tau = _between_replicate_sd(types.SimpleNamespace(replicates=reps))
    assert tau == pytest.approx(0.05)
    assert _between_replicate_sd(reps[0]) is None
