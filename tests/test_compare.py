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
from factories import scripted_report as _report


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


def test_compare_says_it_uses_one_draw_of_a_run_with_replicates(tmp_path, capsys, monkeypatch):
    from w2s_run.report import compare
    a = compare.load_run(str(_write(tmp_path / "a", _report("a"))))
    b = compare.load_run(str(_write(tmp_path / "b", _report("b"))))
    monkeypatch.setattr(compare.Run, "draws", property(lambda self: 3 if self is b else 1))
    out = compare.render_comparison(a, b)
    assert "run B has 3 replicates: compared on draw 0 of 3 only" in out and "run A has" not in out


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
