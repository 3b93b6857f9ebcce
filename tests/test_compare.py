"""`run.py compare`: runs paired on their common test ids, with intervals, paired
differences and a config diff; refused (one line, rc 2) when nothing can be paired or a
run is missing. Reports are scored by the real build_report on scripted predictions
(the pipeline's own scoring), then written where a run keeps them."""
import re

import numpy as np
import pytest
import yaml

import run
from w2s_base.config import load_config
from w2s_run.report import statistics as st
from w2s_run.report.model import Report, row_id
from factories import scripted_replicated_report, scripted_report as _report
from w2s_run.report.compare import load_run as load


def _write(root, report: Report, **config):
    """A run folder as the pipeline leaves it: report.json and the config of record."""
    from w2s_run.report import write_report
    from w2s_base.runfolder.layout import RunLayout
    root.mkdir(parents=True)
    write_report(report, RunLayout(root))
    cfg = load_config("configs/demo.yaml", [f"name={report.run}"] + [f"{k}={v}" for k, v in config.items()])
    (root / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return root


def _cells(line: str) -> list[str]:
    """A markdown row's cells, split on unescaped `|`."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def _table_lines(text: str) -> list[str]:
    return [l for l in text.splitlines() if l.startswith("|")]


def test_report_carries_per_sample_correctness_keyed_by_stable_row_ids():
    rep = _report("a")
    ps = rep.per_sample
    assert len(ps.ids) == len(ps.gold) == rep.n_test == 60
    assert list(ps.correct) == [row_id(r) for r in rep.rows] == \
        ["weak:weak", "weak:deb", "w2s:weak:xent", "w2s:deb:xent", "ceiling"]
    assert all("|" not in k for k in ps.correct)
    for r in rep.rows:  # the per-sample lists give back every row's accuracy
        assert np.mean(ps.correct[row_id(r)]) == pytest.approx(r.accuracy, abs=1e-4)
    assert Report.model_validate(rep.model_dump(mode="json")) == rep


def test_compare_pairs_runs_on_the_same_test_set(tmp_path, capsys):
    a = _write(tmp_path / "a", _report("a"))
    b = _write(tmp_path / "b", _report("b", shift=6), **{"strong.train.epochs": 5})
    assert run.main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "the same 60 test ids in both runs" in out and "Data configs identical" in out
    rows = {_cells(l)[0]: _cells(l) for l in _table_lines(out)}
    # the plain-label student: 36 -> 42 of 60 right, the extra 6 on the same samples
    student = rows["W2S on weak labels (xent)"]
    d = st.accuracy_difference(np.r_[np.ones(42), np.zeros(18)], np.r_[np.ones(36), np.zeros(24)])
    assert student[1].startswith("60.0 (") and student[2].startswith("70.0 (")
    assert student[3] == f"+10.0 ({100 * d.acc_diff_ci[0]:+.1f} to {100 * d.acc_diff_ci[1]:+.1f})"
    assert student[4] == "better" and d.acc_diff_ci[0] > 0  # paired: 6 discordant samples, all one way
    assert rows["strong ceiling (gold labels)"][3].startswith("+0.0 (+0.0 to +0.0)")
    # the config diff names the dotted key that differs, and the run's name
    assert rows["strong.train.epochs"][1:] == ["20.0", "5.0"] and rows["name"][1:] == ["a", "b"]
    # no cell holds an unescaped `|`: every row has the header's column count
    for table in out.split("\n\n"):
        lines = _table_lines(table)
        if lines:
            assert len({len(_cells(l)) for l in lines}) == 1, table


def test_compare_flags_a_partial_overlap_and_refuses_none(tmp_path, capsys):
    a = _write(tmp_path / "a", _report("a"))
    other = _report("c", data_seed=1)
    c = _write(tmp_path / "c", other, **{"data.seed": 1})
    common = len(set(_report("a").per_sample.ids) & set(other.per_sample.ids))
    assert 0 < common < 60
    assert run.main(["compare", str(a), str(c)]) == 0
    out = capsys.readouterr().out
    assert f"the test sets differ.** {common} common test ids (A has 60, B has 60)" in out
    assert f"on the {common} common ids only" in out and "the data configs differ** (data.seed)" in out
    # no common id: refused, one line, rc 2
    ps = other.per_sample
    far = other.model_copy(update={"per_sample": ps.model_copy(update={"ids": [f"x{i}" for i in ps.ids]})})
    x = _write(tmp_path / "x", far)
    assert run.main(["compare", str(a), str(x)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "share no test id" in err and str(x) in err
    # a common id with another gold label names another sample: refused
    flipped = ps.model_copy(update={"ids": list(_report("a").per_sample.ids), "gold": [1 - g for g in ps.gold]})
    f = _write(tmp_path / "f", other.model_copy(update={"per_sample": flipped}))
    assert run.main(["compare", str(a), str(f)]) == 2
    assert "different gold labels" in capsys.readouterr().err


def test_compare_names_the_missing_run_in_one_line(tmp_path, capsys, monkeypatch):
    a = _write(tmp_path / "runs" / "a", _report("a"))
    monkeypatch.chdir(tmp_path)
    for missing in ("runs/nope", "nope"):
        assert run.main(["compare", "runs/a", missing]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "no run folder at runs/nope " in err and "runs/runs" not in err
    (tmp_path / "runs" / "empty").mkdir()
    assert run.main(["compare", "a", "empty"]) == 2  # names resolve under runs/
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "runs/empty/report.json" in err
    assert run.main(["compare", str(a)]) == 2
    assert "at least two runs" in capsys.readouterr().err


def _replicated(tmp_path, name, draws, **config):
    """A run folder with a report pooled over len(draws) replicates (factories.scripted_draw)."""
    return _write(tmp_path / name, scripted_replicated_report(name, draws), replicates=len(draws), **config)


def _pooled_rows(out: str) -> dict[str, list[str]]:
    """The pooled table's rows by title (the first table after "Pooled over")."""
    block = out.split("Pooled over", 1)[1].split("Draw 0 of each run", 1)[0]
    return {_cells(l)[0]: _cells(l) for l in _table_lines(block)[2:]}


def test_compare_pools_runs_with_the_same_replicates_pairing_replicate_r_with_r(tmp_path, capsys):
    a = _replicated(tmp_path, "a", [dict(shift=0), dict(shift=1), dict(shift=2)])
    b = _replicated(tmp_path, "b", [dict(shift=5), dict(shift=8), dict(shift=2)])
    assert run.main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "Both runs have 3 replicates: compared pooled over them, replicate r of A paired with replicate r of B" \
        in out and "The runs' seeds agree" in out
    assert "in each of the 3 paired replicates the same test ids in both runs" in out
    rows = _pooled_rows(out)
    # the plain-label student: 36, 37, 38 right in A's replicates, 41, 44, 38 in B's (of 60)
    student = rows["W2S on weak labels (xent)"]
    assert student[5] == "+8.3, +11.7, +0.0"
    ra, rb = (load(x).report.replicates for x in (a, b))
    want = st.pooled_difference([x.per_sample.correct["w2s:weak:xent"] for x in rb],
                                [x.per_sample.correct["w2s:weak:xent"] for x in ra], [x.per_sample.ids for x in ra])
    assert want.estimate == pytest.approx((5 + 7 + 0) / 3 / 60)
    assert student[1:5] == [f"{100 * 37 / 60:.1f}", f"{100 * 41 / 60:.1f}",
                            f"+6.7 ({100 * want.ci[0]:+.1f} to {100 * want.ci[1]:+.1f})", str(want.direction)]
    assert student[6] == want.describe_stability()
    # the third replicates agree, so the pooled verdict is less sure than draw 0's
    assert want.direction == "no detectable difference"
    assert rows["strong ceiling (gold labels)"][4] == "no detectable difference"
    draw0 = {_cells(l)[0]: _cells(l) for l in _table_lines(out.split("Draw 0 of each run", 1)[1])}
    assert draw0["W2S on weak labels (xent)"][4] == "better"  # 36 -> 41 on the same samples: this draw only
    # another debate seed: the pairing holds but pairs independent draws, and says so
    c = _replicated(tmp_path, "c", [dict(shift=5), dict(shift=8), dict(shift=2)], **{"debate.seed": 7})
    assert run.main(["compare", str(a), str(c)]) == 0
    assert "The runs' seeds differ (debate.seed): paired replicates are independent draws" in capsys.readouterr().out


def test_compare_pools_the_common_replicates_when_r_differs(tmp_path, capsys):
    a = _replicated(tmp_path, "a", [dict(shift=0), dict(shift=1), dict(shift=2)])
    b = _replicated(tmp_path, "b", [dict(shift=4), dict(shift=5)])
    assert run.main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert ("run A has 3 replicates and run B 2: compared pooled over the first 2 of each; run A's replicate 3 "
            "left out") in out
    assert _pooled_rows(out)["W2S on weak labels (xent)"][5] == "+6.7, +6.7"
    assert "Pooled over 2 replicates" in out


def test_compare_one_draw_against_a_replicated_run_compares_draw_0_and_says_so(tmp_path, capsys):
    a = _write(tmp_path / "a", _report("a"))
    b = _replicated(tmp_path, "b", [dict(shift=6), dict(shift=0), dict(shift=0)])
    assert run.main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert ("run B has 3 replicates, the other run one draw: compared on draw 0 of run B (its top-level draw, "
            "drawn with the seeds of a one-draw run) against the other run's one draw: these draws only") in out
    assert "Pooled over" not in out and "a verdict here is about these draws, not about the method" in out
    rows = {_cells(l)[0]: _cells(l) for l in _table_lines(out)}
    assert rows["W2S on weak labels (xent)"][3].startswith("+10.0 (")  # draw 0 of B: 42 of 60 against 36


def test_compare_pairs_each_replicate_on_its_own_test_ids_and_flags_one_that_differs(tmp_path, capsys):
    """replicate_splits: each replicate has its own split; replicate r of A is paired with
    replicate r of B on the ids they share."""
    draws = [dict(data_seed=r) for r in range(3)]
    a = _replicated(tmp_path, "a", draws, replicate_splits=True)
    b = _replicated(tmp_path, "b", [dict(data_seed=r, shift=3) for r in range(3)], replicate_splits=True)
    assert run.main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "in each of the 3 paired replicates the same test ids in both runs" in out
    assert _pooled_rows(out)["W2S on weak labels (xent)"][5] == "+5.0, +5.0, +5.0"
    # B's third replicate drawn from another split: paired on the common ids only, flagged
    c = _replicated(tmp_path, "c", [dict(data_seed=0), dict(data_seed=1), dict(data_seed=9)], replicate_splits=True)
    common = len(set(load(a).report.replicates[2].per_sample.ids) & set(load(c).report.replicates[2].per_sample.ids))
    assert 0 < common < 60
    assert run.main(["compare", str(a), str(c)]) == 0
    out = capsys.readouterr().out
    assert f"**Warning: the test sets differ** in replicate 3 ({common} common ids; A has 60, B has 60)" in out


@pytest.mark.slow
def test_compare_two_real_runs(tmp_path, capsys):
    """Two tiny no-debate runs with the real embedded models, the second with another
    strong training length: the same test ids, every row paired, the key named."""
    def args(name, epochs):
        a = ["--config", "configs/demo.yaml", "--name", name, "--set", f"output_dir={tmp_path}", "--no-debate"]
        for o in ["data.n_weak_train=16", "data.n_transfer=16", "data.n_test=16", "weak.train.epochs=1",
                  "weak.train.max_length=64", f"strong.train.epochs={epochs}"]:
            a += ["--set", o]
        return a
    assert run.main(args("a", 3)) == 0 and run.main(args("b", 5)) == 0
    capsys.readouterr()
    assert run.main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "the same 16 test ids in both runs" in out and "Data configs identical" in out
    rows = {_cells(l)[0]: _cells(l) for l in _table_lines(out)}
    assert {"weak: weak", "W2S on weak labels (xent)", "strong ceiling (gold labels)"} <= set(rows)
    # the weak stage has the same config in both runs: no difference to claim
    assert rows["weak: weak"][4] == "no detectable difference"
    assert rows["strong.train.epochs"][1:] == ["3.0", "5.0"]
