"""The audit printed before any student trains: CAPA and the pooled rate (statistics.py),
the side a transcript favours, the audit of a scripted draw (audit.py), its report
section and its report.json round trip."""
from __future__ import annotations

import numpy as np
import pytest

from w2s_base.config import ControlSpec
from w2s_base.runfolder.layout import RunLayout
from w2s_run.report import read_report, statistics as st, write_report
from w2s_run.report.audit import build_audit, favoured_label
from w2s_run.report.model import Report
from w2s_run.report.render import render_table
from debate.controls import POSITIVE_LOSER_TEXT, positive_control
from tests.factories import make_transcript, scripted_draw
from weak.labels import LabellerResult


def _model(gold: np.ndarray, acc: float, rng: np.random.Generator) -> np.ndarray:
    """0/1 predictions right on an independent random subset of about `acc` of the samples."""
    return np.where(rng.random(len(gold)) < acc, gold, 1 - gold).astype(float)


# ---------------------------------------------------------------- CAPA
def test_capa_of_identical_predictions_is_one_and_of_complementary_errors_negative():
    gold = np.array([0, 1] * 50)
    a = gold.astype(float).copy()
    a[:20] = 1 - a[:20]                       # wrong on the first 20
    assert st.capa(a, a, gold).capa == pytest.approx(1.0)
    b = gold.astype(float).copy()
    b[20:40] = 1 - b[20:40]                   # wrong on 20 others: never wrong together
    res = st.capa(a, b, gold)
    assert res.capa < 0 and res.ci[1] < 0
    # the paper's terms (Goel et al. 2025, eqs. 2-4, two classes), by hand
    obs = np.mean(a * b + (1 - a) * (1 - b))
    exp = 0.8 * 0.8 + 0.2 * 0.2
    assert (res.observed, res.expected) == (pytest.approx(obs), pytest.approx(exp))
    assert res.capa == pytest.approx((obs - exp) / (1 - exp))


def test_capa_of_independent_errors_is_near_zero_whatever_the_accuracies():
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 2, 20000)
    for acc_b in (0.55, 0.7, 0.9):
        res = st.capa(_model(gold, 0.9, rng), _model(gold, acc_b, rng), gold, n=200)
        assert abs(res.capa) < 0.03, (acc_b, res)
        # plain agreement rises with accuracy; CAPA adjusts for it
        assert res.observed > 0.5


def test_capa_uses_probabilities_an_unsure_model_agrees_with_itself_only_by_chance():
    """Observed agreement is that of answers SAMPLED from each model's probabilities: a
    model that puts 0.6 on gold everywhere agrees with itself as two independent
    0.6-accurate models would (CAPA 0), and a confident copy of it scores above that."""
    gold = np.array([0, 1] * 50)
    unsure = np.where(gold == 1, 0.6, 0.4)
    assert st.capa(unsure, unsure, gold).capa == pytest.approx(0.0, abs=1e-12)
    sure = gold.astype(float).copy()
    sure[:30] = 1 - sure[:30]                  # 0/1, wrong on 30
    soft = np.where(sure == 1, 0.9, 0.1)       # the same answers, less sure
    assert st.capa(sure, sure, gold).capa == pytest.approx(1.0)
    assert 0 < st.capa(soft, soft, gold).capa < 1


def test_capa_is_none_when_both_models_are_certain_and_right_and_checks_gold():
    gold = np.array([0, 1, 1, 0])
    assert st.capa(gold, gold, gold).capa is None
    with pytest.raises(ValueError, match="0/1"):
        st.capa([0.2, 0.8], [0.2, 0.8], [0, 0.5])


def test_capa_interval_covers_zero_for_independent_models_about_95_percent_of_runs():
    """Simulated coverage: two models with independent errors (true CAPA 0)."""
    rng = np.random.default_rng(7)
    runs, covered = 200, 0
    for _ in range(runs):
        gold = rng.integers(0, 2, 200)
        res = st.capa(_model(gold, 0.8, rng), _model(gold, 0.65, rng), gold, n=300)
        covered += res.ci[0] <= 0 <= res.ci[1]
    assert 0.88 <= covered / runs <= 0.99, covered / runs


# ---------------------------------------------------------------- rate
def test_rate_pools_trials_over_samples():
    r = st.rate([1, 0, 2, 0], [1, 1, 2, 0])
    assert r.rate == pytest.approx(0.75) and r.n_samples == 3 and r.trials == 4
    assert 0 <= r.ci[0] <= r.rate <= r.ci[1] <= 1
    none = st.rate([0, 0], [0, 0])
    assert none.rate is None and none.ci is None
    with pytest.raises(ValueError):
        st.rate([2], [1])


# ---------------------------------------------------------------- the favoured side
def test_favoured_label_consultant_last_debater_and_conceding_loser():
    assert favoured_label(make_transcript(protocol="consultancy", texts=["x"], a_label=1)) == 1
    # debate A, B, A: the final turn is A's
    assert favoured_label(make_transcript(texts=["a", "b", "c"], a_label=0)) == 0
    # A, B: the final turn is B's (the other label)
    assert favoured_label(make_transcript(texts=["a", "b"], a_label=0)) == 1
    # the final speaker concedes: the side of the last turn that argues
    assert favoured_label(make_transcript(texts=["a", "b", POSITIVE_LOSER_TEXT], a_label=0)) == 1


def test_favoured_label_of_the_positive_control_is_its_winner():
    from data.demo_task import make_demo_samples
    samples = make_demo_samples(40)
    tr = positive_control(samples, 1, 0.7, seed=3)
    for s in samples:
        t = tr[(s.id, 0)]
        winners = {x.position_label for x in t.turns if x.text != POSITIVE_LOSER_TEXT}
        assert winners == {favoured_label(t)}
    # the winner defends gold on about 70 % of samples, not always
    right = np.mean([favoured_label(tr[(s.id, 0)]) == s.label for s in samples])
    assert 0.4 < right < 0.95


# ---------------------------------------------------------------- the audit of a scripted draw
def _audit_inputs(follow: bool):
    """Demo-task splits with 200 transfer samples; a plain weak labeller right on 60 % of
    them, a consultancy labeller of two members (one per transcript k) that predicts its
    transcript's side (follow) or the gold label, transcripts that favour gold on 3 of 4
    samples, and a ceiling right on 90 %."""
    from data.demo_task import make_demo_samples
    from data.splits import make_splits
    splits = make_splits(make_demo_samples(400), 100, 200, 100, seed=0)
    tr = splits.transfer
    n = len(tr)
    right = lambda share: {x.id: float(x.label if i < share * n else 1 - x.label) for i, x in enumerate(tr)}
    side = {x.id: (x.label if i % 4 else 1 - x.label) for i, x in enumerate(tr)}
    transcripts = {(x.id, k): make_transcript(x.id, ["a"], protocol="consultancy", gold=x.label, a_label=side[x.id],
                                              k=k) for x in tr for k in range(2)}
    judge = {x.id: float(side[x.id] if follow else x.label) for x in tr}
    weak = right(0.6)
    labs = {
        "weak": LabellerResult(name="weak", protocol="none", aggregate="mean", members=["m"], transfer_p1=weak,
                               test_p1={}, member_test_p1={}, member_transfer_p1={"m": weak}),
        "deb": LabellerResult(name="deb", protocol="consultancy", aggregate="mean", members=["k0", "k1"],
                              transfer_p1=judge, test_p1={}, member_test_p1={},
                              member_transfer_p1={"k0": judge, "k1": judge}, member_debate={"k0": 0, "k1": 1}),
    }
    return splits, labs, right(0.9), {"deb": transcripts}


def _audit(follow: bool):
    splits, labs, ceiling, transcripts = _audit_inputs(follow)
    return build_audit(splits, labs, ceiling, transcripts, "weak", "scripted ceiling"), splits


def test_audit_gap_capa_and_sensitivity_of_a_judge_that_follows_its_transcript():
    audit, splits = _audit(follow=True)
    n = len(splits.transfer)
    assert audit.n == n and audit.split == "transfer"
    assert audit.ceiling_accuracy == pytest.approx(np.ceil(0.9 * n) / n)
    weak = next(g for g in audit.gaps if g.labeller == "weak")
    assert weak.accuracy == pytest.approx(np.ceil(0.6 * n) / n)
    assert weak.result.acc_diff == pytest.approx(audit.ceiling_accuracy - weak.accuracy)
    assert weak.result.direction == st.Direction.BETTER
    # the two members predict alike: CAPA 1 between them
    members = [c for c in audit.capa if c.kind == "members"]
    assert [(c.labeller, c.a, c.b) for c in members] == [("deb", "k0", "k1")]
    assert members[0].result.capa == pytest.approx(1.0)
    assert {c.labeller for c in audit.capa if c.kind == "ceiling"} == {"weak", "deb"}
    (s,) = audit.sensitivity
    assert s.transcript_right.rate == pytest.approx(0.75, abs=0.02)
    assert s.follows_transcript.rate == 1.0 and s.follows_wrong_transcript.rate == 1.0
    assert s.follows_gold.rate == pytest.approx(s.transcript_right.rate)
    assert s.follows_transcript.trials == 2 * n   # every (member, sample) pair
    text = " ".join(audit.expectation)
    assert "summarises" in text and "not the conditions under which debate helped" in text
    assert "an expectation, not a result" in text


def test_audit_of_a_judge_that_verifies_states_the_favourable_conditions():
    audit, _ = _audit(follow=False)
    (s,) = audit.sensitivity
    assert s.follows_gold.rate == 1.0 and s.follows_wrong_transcript.rate == 0.0
    line = next(e for e in audit.expectation if e.startswith("`deb`"))
    assert "the critic out-classifies the judge" in line and "verifies" in line
    assert "These are the conditions under which debate helped in the literature" in line


def test_audit_of_a_control_states_no_expectation():
    splits, labs, ceiling, transcripts = _audit_inputs(True)
    labs["deb"] = labs["deb"].model_copy(update={"control": ControlSpec(kind="positive", reliability=0.75)})
    audit = build_audit(splits, labs, ceiling, transcripts, "weak", "scripted ceiling")
    assert audit.sensitivity[0].control is not None
    assert any("[CONTROL positive:0.75]" in e and "no expectation" in e for e in audit.expectation)


def test_audit_section_in_report_md_and_report_json_round_trip(tmp_path):
    from w2s_run.report.scoring import build_report
    audit, _ = _audit(follow=True)
    report = build_report("audited", *scripted_draw()).model_copy(update={"audit": audit})
    md = render_table(report)
    assert "## Audit, before any student trained (transfer split" in md
    assert "| deb | k0 and k1 | 1.00" in md
    assert "What the literature leads one to expect here" in md
    layout = RunLayout(tmp_path / "run")
    write_report(report, layout)
    back = read_report(layout)
    assert back.audit == report.audit
    assert Report.model_validate(report.model_dump(mode="json")) == report
    # a report without an audit (older runs) has no section
    assert "## Audit" not in render_table(report.model_copy(update={"audit": None}))
