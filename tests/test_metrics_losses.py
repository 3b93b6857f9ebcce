import math

import numpy as np
import pytest
import torch

from w2s_base.losses import LogConfLoss, ProductLoss, XentLoss
from w2s_run.report import statistics as st
from w2s_run.report.metrics import accuracy, ece
from weak.ensemble import aggregate


def test_pgr_arithmetic():
    def pgr(w2s, weak, ceiling, m=10):  # point PGR of correctness arrays with these accuracies
        c = lambda acc: np.array([1.0] * round(acc * m) + [0.0] * (m - round(acc * m)))
        return st.pgr_stat(c(w2s), c(weak), c(ceiling), n=10).pgr
    assert pgr(0.8, 0.6, 0.9) == pytest.approx(2 / 3)
    assert pgr(0.6, 0.6, 0.9) == 0
    assert pgr(0.5, 0.6, 0.9) == pytest.approx(-1 / 3)
    assert pgr(0.8, 0.7, 0.7) is None  # ceiling does not beat weak


def test_accuracy_and_ece():
    y = np.array([1, 0, 1, 0])
    assert accuracy(np.array([0.9, 0.2, 0.4, 0.6]), y) == 0.5
    # all at confidence 0.9, all correct: |1.0 - 0.9| = 0.1
    assert ece(np.array([0.9, 0.1, 0.9, 0.1]), y) == pytest.approx(0.1)
    # half right at confidence 0.75 in one bin: |0.5 - 0.75| = 0.25
    assert ece(np.array([0.75, 0.75, 0.25, 0.25]), np.array([1, 0, 0, 1])) == pytest.approx(0.25)


def test_bootstrap_interval_brackets_point_estimate():
    rng = np.random.default_rng(0)
    n = 400
    weak = (rng.random(n) < 0.6).astype(float)
    ceil = (rng.random(n) < 0.9).astype(float)
    w2s = (rng.random(n) < 0.8).astype(float)
    b = st.pgr_stat(w2s, weak, ceil, n=500)
    lo, hi = b.ci
    assert b.verdict == "ok" and lo < b.pgr < hi and hi - lo < 1.0


def test_aggregation_known_values():
    p = np.array([[0.9, 0.2, 0.6], [0.7, 0.4, 0.3], [0.2, 0.3, 0.8]])
    np.testing.assert_allclose(aggregate(p, "mean"), [0.6, 0.3, 17 / 30])
    np.testing.assert_allclose(aggregate(p, "vote"), [2 / 3, 0, 2 / 3])
    lo = aggregate(np.array([[0.9], [0.5]]), "logodds")
    assert lo[0] == pytest.approx(1 / (1 + math.exp(-math.log(9) / 2)))
    with pytest.raises(ValueError):
        aggregate(p, "median")


def test_xent_on_soft_labels():
    logits = torch.tensor([[0.0, math.log(3)]])  # p = (0.25, 0.75)
    target = torch.tensor([[0.4, 0.6]])
    expected = -(0.4 * math.log(0.25) + 0.6 * math.log(0.75))
    assert XentLoss()(logits, target, 0.5).item() == pytest.approx(expected, rel=1e-5)


def test_logconf_matches_hand_computation():
    # Student probabilities of class 0: 0.8, 0.6, 0.3, 0.1. Weak labels' mean class-1
    # rate is 0.5, so the threshold is the median of (0.8, 0.6, 0.3, 0.1) = 0.45 and the
    # hardened student labels are class 0 for the first two, class 1 for the last two.
    p0 = torch.tensor([0.8, 0.6, 0.3, 0.1])
    logits = torch.stack([torch.log(p0), torch.log(1 - p0)], 1)
    weak = torch.tensor([[0.1, 0.9], [0.6, 0.4], [0.7, 0.3], [0.6, 0.4]])
    loss = LogConfLoss(aux_coef=0.5, warmup_frac=0.1)
    # after warm-up c = 0.5
    hard = torch.tensor([[1.0, 0], [1, 0], [0, 1], [0, 1]])
    target = 0.5 * weak + 0.5 * hard
    logp = torch.log(torch.stack([p0, 1 - p0], 1))
    expected = -(target * logp).sum(1).mean().item()
    assert loss(logits, weak, 0.5).item() == pytest.approx(expected, rel=1e-5)
    # during warm-up c = step_frac * aux_coef (the reference's schedule)
    assert loss.coef(0.05) == pytest.approx(0.025)
    assert loss.coef(0.1) == pytest.approx(0.05) and loss.coef(0.11) == 0.5
    target_w = (1 - 0.025) * weak + 0.025 * hard
    expected_w = -(target_w * logp).sum(1).mean().item()
    assert loss(logits, weak, 0.05).item() == pytest.approx(expected_w, rel=1e-5)


def test_product_loss_target():
    p = torch.tensor([[0.2, 0.8]])
    logits = torch.log(p)
    weak = torch.tensor([[0.6, 0.4]])
    t = p * weak / (p * weak).sum()  # alpha = beta = 1
    expected = -(t * torch.log(p)).sum().item()
    assert ProductLoss()(logits, weak, 0.3).item() == pytest.approx(expected, rel=1e-5)


def _labeller(name, p, transfer=None):
    from weak.labels import LabellerResult
    return LabellerResult(name=name, protocol="none", aggregate="mean", members=["m"],
                    transfer_p1=transfer or {}, test_p1=p, member_test_p1={"m": p})


def _key(labeller, seed=0, loss="xent"):
    from strong.stage import StudentKey
    return StudentKey(labeller, loss, seed)


def _ceiling(seed=0):
    from strong.stage import StudentKey
    return StudentKey.ceiling(seed)


def _rows(report):
    """The report's rows by the names these tests use (factories.report_rows: a labeller's
    name, w2s[labeller|loss], ceiling)."""
    from factories import report_rows
    return dict(zip(report_rows(report.model_dump(mode="json")), report.rows, strict=True))


def test_report_rows_pgr_and_small_test_warning():
    from data.demo_task import make_demo_samples
    from data.splits import make_splits
    from w2s_run.report.render import render_table
    from w2s_run.report.scoring import build_report
    s = make_demo_samples(40)
    splits = make_splits(s, 10, 10, 20, seed=0)
    y = {x.id: x.label for x in splits.test}
    ids = list(y)
    # right(k, start): correct on ids[start:start + k], wrong elsewhere
    right = lambda k, start=0: {i: (float(y[i]) if start <= j < start + k else 1.0 - y[i])
                                for j, i in enumerate(ids)}
    tr = {x.id: float(x.label) if j < 7 else 1.0 - x.label for j, x in enumerate(splits.transfer)}
    rep = build_report("r", splits, {"weak": _labeller("weak", right(10), tr)},
                       {_ceiling(): right(13), _key("weak"): right(12, start=8)})
    rows = _rows(rep)
    assert rows["weak"].accuracy == 0.5 and rows["ceiling"].accuracy == 0.65
    # transfer soft labels: 7 of 10 right, all at confidence 1 -> ECE |0.7 - 1|
    assert rows["weak"].label_accuracy == pytest.approx(0.7)
    assert rows["weak"].label_ece == pytest.approx(0.3)
    assert rows["w2s[weak|xent]"].pgr.pgr == pytest.approx(2 / 3)
    # 20 samples, a 3-sample gap: not significant, so no PGR number is printed
    assert not rep.gap.significant and any("not significant" in w for w in rep.warnings)
    assert rows["w2s[weak|xent]"].pgr.verdict.startswith("not significant")
    assert "| n.s. (gap not significant) |" in render_table(rep)
    assert "| W2S on weak labels (xent) | 60.0 (" in render_table(rep)
    assert [r.kind for r in rep.rows] == ["weak", "w2s", "ceiling"]
    rep2 = build_report("r", splits, {"weak": _labeller("weak", right(18), tr)},
                        {_ceiling(): right(10), _key("weak"): right(14)})
    assert not rep2.pgr_defined and "undefined" in rep2.warnings[0]
    assert _rows(rep2)["w2s[weak|xent]"].pgr.pgr is None
    assert "| W2S on weak labels (xent) | 70.0 (" in render_table(rep2) and "| undefined |" in render_table(rep2)


def _scripted_test_set(n_weak_train: int, n_transfer: int, n_test: int):
    """Demo splits, `right(k)`: predictions right on the first k test samples and wrong on
    the rest, and uninformative (0.5) transfer labels."""
    from data.demo_task import make_demo_samples
    from data.splits import make_splits
    splits = make_splits(make_demo_samples(n_weak_train + n_transfer + n_test), n_weak_train,
                         n_transfer, n_test, seed=0)
    y = {x.id: x.label for x in splits.test}
    right = lambda k: {i: (float(y[i]) if j < k else 1.0 - y[i]) for j, i in enumerate(y)}
    return splits, right, {x.id: 0.5 for x in splits.transfer}


def test_report_prints_pgr_only_over_a_significant_gap_and_flags_above_100():
    from w2s_run.report.render import render_table
    from w2s_run.report.scoring import build_report
    splits, right, tr = _scripted_test_set(20, 20, 200)
    labs = {"weak": _labeller("weak", right(100), tr), "deb": _labeller("deb", right(100), tr)}
    rep = build_report("r", splits, labs, {_ceiling(): right(180), _key("weak"): right(140),
                                           _key("deb"): right(190)})
    rows = _rows(rep)
    assert rep.gap.significant and rep.gap.gap == pytest.approx(0.4)
    w, d = rows["w2s[weak|xent]"].pgr, rows["w2s[deb|xent]"].pgr
    assert w.verdict == "ok" and w.pgr == pytest.approx(0.5) and w.dropped_frac == 0 and not w.above_100
    assert d.above_100 and any("above 100" in x for x in rep.warnings)
    table = render_table(rep)
    assert "| 50.0 (" in table and "0 % dropped" in table and ">100 %" in table
    (cmp,) = rep.comparisons
    assert cmp.result.direction == "better" and cmp.result.acc_diff == pytest.approx(0.25)
    # error breakdown: the weak-labels student is right on every sample its teacher got
    # right (the first 100) and on 40 of the 100 its teacher got wrong
    e = rows["w2s[weak|xent]"].errors
    assert (e.n_weak_right, e.student_acc_on_weak_right, e.student_acc_on_weak_wrong) == (100, 1.0, 0.4)


def test_report_averages_seeds_and_orders_rows_like_the_paper():
    from data.demo_task import make_demo_samples
    from data.splits import make_splits
    from w2s_run.report.scoring import build_report
    s = make_demo_samples(40)
    splits = make_splits(s, 10, 10, 20, seed=0)
    y = {x.id: x.label for x in splits.test}
    ids = list(y)
    right = lambda k: {i: (float(y[i]) if j < k else 1.0 - y[i]) for j, i in enumerate(ids)}
    tr = {x.id: 0.5 for x in splits.transfer}
    labs = {"deb": _labeller("deb", right(11), tr), "weak": _labeller("weak", right(10), tr)}
    students = {_key("deb"): right(12), _ceiling(0): right(18), _ceiling(1): right(16),
                _key("weak", 0): right(12), _key("weak", 1): right(16), _key("weak", 2): right(14)}
    rep = build_report("r", splits, labs, students, reference="weak")
    assert list(_rows(rep)) == ["weak", "deb", "w2s[weak|xent]", "w2s[deb|xent]", "ceiling"]
    rows = _rows(rep)
    assert rep.ceiling_accuracy == pytest.approx(0.85)          # mean of 0.9 and 0.8
    w = rows["w2s[weak|xent]"]
    assert w.accuracy == pytest.approx(0.7) and w.seeds == 3  # mean of 0.6, 0.8, 0.7
    assert w.seed_accuracy == pytest.approx([0.6, 0.8, 0.7])
    assert w.pgr.pgr == pytest.approx((0.7 - 0.5) / (0.85 - 0.5))    # against the reference, not "deb"
    assert w.seed_spread.n_seeds == 3 and w.seed_spread.std == pytest.approx(0.1)
    # the paired comparison: deb's student against weak's student with the same loss
    (cmp,) = rep.comparisons
    assert (cmp.labeller, cmp.reference_labeller) == ("deb", "weak")
    assert cmp.result.acc_diff == pytest.approx(0.6 - 0.7)
    assert w.acc_ci[0] < 0.7 < w.acc_ci[1]


def test_decision_rule_ties():
    from w2s_base.decision import predicted_label, predicted_label_tie_as_1, predicted_labels
    assert (predicted_label(0.5), predicted_label(0.500001), predicted_label(0.2)) == (0, 1, 0)
    assert predicted_labels(np.array([0.2, 0.5, 0.7])).tolist() == [0, 0, 1]
    assert predicted_label_tie_as_1(0.5) == 1 and predicted_label_tie_as_1(0.499) == 0
    assert accuracy(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5  # the report reads a tie as 0


def test_report_controls_and_verdicts_serialise_as_their_text():
    """A control is typed in memory and its tag in report.json; a shuffled control
    that beats the plain weak model raises the leak warning; a report read back
    validates to the same record."""
    from data.demo_task import make_demo_samples
    from data.splits import make_splits
    from w2s_base.config import ControlKind
    from w2s_run.report.model import Report
    from w2s_run.report.render import render_table
    from w2s_run.report.scoring import build_report
    from weak.labels import LabellerResult
    splits = make_splits(make_demo_samples(240), 20, 20, 200, seed=0)
    y = {x.id: x.label for x in splits.test}
    ids = list(y)
    right = lambda k: {i: (float(y[i]) if j < k else 1.0 - y[i]) for j, i in enumerate(ids)}
    tr = {x.id: 0.5 for x in splits.transfer}
    leak = LabellerResult(name="shuf", protocol="debate", control="shuffled:positive:0.9", aggregate="mean",
                          members=["m"], transfer_p1=tr, test_p1=right(160), member_test_p1={"m": right(160)})
    assert leak.control.kind == ControlKind.SHUFFLED and leak.model_dump()["control"] == "shuffled:positive:0.9"
    rep = build_report("r", splits, {"weak": _labeller("weak", right(100), tr), "shuf": leak},
                       {_ceiling(): right(180), _key("weak"): right(140), _key("shuf"): right(150)})
    assert any(w.startswith("NEGATIVE CONTROL ALERT (this draw only): `shuf`") for w in rep.warnings)
    data = rep.model_dump(mode="json")
    shuf = next(r for r in data["rows"] if r.get("name") == "shuf")
    assert shuf["control"] == "shuffled:positive:0.9" and shuf["vs_reference"]["direction"] == "better"
    assert next(r for r in data["rows"] if r["kind"] == "w2s")["pgr"]["verdict"] == "ok"
    assert Report.model_validate(data).model_dump(mode="json") == data
    assert "| shuf [CONTROL shuffled:positive:0.9] (xent) |" in render_table(rep)


def test_the_negative_control_is_judged_pooled_over_replicates():
    """One draw's gain of the shuffled control is an alert (a leak, or training noise its
    interval does not cover); pooled over replicates it is a failure when the pooled
    interval excludes zero, and no warning when the replicates disagree."""
    from data.demo_task import make_demo_samples
    from data.splits import make_splits
    from w2s_run.report.scoring import build_report, pool_reports
    from weak.labels import LabellerResult
    splits = make_splits(make_demo_samples(240), 20, 20, 200, seed=0)
    y = {x.id: x.label for x in splits.test}
    ids = list(y)
    right = lambda k: {i: (float(y[i]) if j < k else 1.0 - y[i]) for j, i in enumerate(ids)}
    tr = {x.id: 0.5 for x in splits.transfer}

    def draw(shuf_right):
        shuf = LabellerResult(name="shuf", protocol="debate", control="shuffled:positive:0.9", aggregate="mean",
                              members=["m"], transfer_p1=tr, test_p1=right(shuf_right),
                              member_test_p1={"m": right(shuf_right)})
        return splits, {"weak": _labeller("weak", right(100), tr), "shuf": shuf}, \
            {_ceiling(): right(180), _key("weak"): right(140), _key("shuf"): right(150)}

    def pooled(counts):
        draws = [draw(k) for k in counts]
        return pool_reports([build_report("r", *d) for d in draws], draws).warnings

    leaking = pooled([160, 158, 162])  # +30 points in every replicate
    assert any(w.startswith("NEGATIVE CONTROL FAILED (pooled over 3 replicates): `shuf`") for w in leaking)
    assert not any("ALERT" in w for w in leaking)
    noisy = pooled([125, 80, 95])  # draw 0 reads +12.5, the others -10 and -2.5: no pooled gain
    assert build_report("r", *draw(125)).warnings and not any("NEGATIVE CONTROL" in w for w in noisy)


def test_each_comparison_records_the_reference_students_loss():
    """A student is compared with the reference's student of its own loss, recorded
    in the comparison; a loss the reference has no student with is never silently
    swapped for another (the config refuses it: test_config)."""
    from w2s_run.report.render import render_table
    from w2s_run.report.scoring import build_report
    splits, right, tr = _scripted_test_set(10, 10, 20)
    labs = {"weak": _labeller("weak", right(10), tr), "deb": _labeller("deb", right(11), tr)}
    students = {_ceiling(): right(18), _key("weak", loss="xent"): right(12), _key("weak", loss="product"): right(14),
                _key("deb", loss="xent"): right(13), _key("deb", loss="product"): right(15)}
    rep = build_report("r", splits, labs, students)
    by_loss = {c.loss: c for c in rep.comparisons}
    assert {loss: c.reference_loss for loss, c in by_loss.items()} == {"xent": "xent", "product": "product"}
    assert by_loss["product"].result.acc_diff == pytest.approx((15 - 14) / 20)
    assert by_loss["xent"].result.acc_diff == pytest.approx((13 - 12) / 20)
    table = render_table(rep)
    assert "| deb (product) |" in table and "| deb (xent) |" in table
    del students[_key("weak", loss="product")]
    with pytest.raises(ValueError, match="no student on weak's labels with loss product"):
        build_report("r", splits, labs, students)
