"""Market-making's placement, measured per split: the share of samples whose consultant
argues the gold label, as the report and the [debate] log show it."""
import pytest

from data.demo_task import make_demo_samples
from data.splits import make_splits
from factories import make_transcript
from w2s_base.config import RunConfig
from w2s_run.pipeline import consultant_gold_side
from w2s_run.report.render import gold_side_line


def test_gold_side_rate_per_split_from_the_transcripts():
    splits = make_splits(make_demo_samples(40), 10, 10, 20, seed=0)
    cfg = RunConfig.model_validate({"weak": {"labellers": [
        {"name": "weak"}, {"name": "cons", "protocol": "consultancy"}, {"name": "mm", "protocol": "market_making"}]}})
    # the consultant argues gold on 8 of 10 weak_train samples, 5 of 10 transfer, 5 of 20 test
    argues_gold = {**{s.id: i < 8 for i, s in enumerate(splits.weak_train)},
                   **{s.id: i < 5 for i, s in enumerate(splits.transfer)},
                   **{s.id: i < 5 for i, s in enumerate(splits.test)}}
    mm = {(s.id, 0): make_transcript(s.id, ["x"], protocol="market_making", gold=s.label,
                                     a_label=s.label if argues_gold[s.id] else 1 - s.label)
          for s in splits.all()}
    cons = {(s.id, 0): make_transcript(s.id, ["x"], protocol="consultancy", gold=s.label, a_label=s.label)
            for s in splits.all()}
    rates = consultant_gold_side(cfg, splits, {"market_making": mm, "consultancy": cons,
                                               "positive:0.9": cons})
    # consultancy draws its side at random and controls are not placed: market-making only
    assert rates == {"market_making": pytest.approx({"weak_train": 0.8, "transfer": 0.5, "test": 0.25})}
    assert gold_side_line("market_making", rates["market_making"]).startswith(
        "market_making: the consultant argues the gold label in weak_train 80 %, transfer 50 %, test 25 % of")
    # no market-making labeller: nothing to show
    assert consultant_gold_side(RunConfig(), splits, {"debate": cons}) == {}
