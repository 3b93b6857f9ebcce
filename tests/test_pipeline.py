"""The whole pipeline on a tiny demo with the real embedded models, then a rerun
that must reuse every finished stage."""
import json

import pytest

import run
from factories import report_rows

TINY = ["data.n_weak_train=16", "data.n_transfer=16", "data.n_test=16",
        "debate.sampling.max_new_tokens=6", "debate.chunk_size=48", "debate.batch_size=48",
        "weak.train.epochs=1", "weak.train.max_length=96", "strong.train.epochs=5",
        "strong.losses=[xent, logconf]"]


@pytest.mark.slow
def test_demo_pipeline_end_to_end_and_resume(tmp_path, monkeypatch, capsys):
    args = ["--config", "configs/demo.yaml", "--name", "tiny", "--set", f"output_dir={tmp_path}"]
    for o in TINY:
        args += ["--set", o]
    assert run.main(args) == 0
    rd = tmp_path / "tiny"
    report = json.loads((rd / "report.json").read_text())
    rows = report_rows(report)
    assert set(rows) == {"weak", "weak+debate", "ceiling", "w2s[weak|xent]", "w2s[weak|logconf]",
                         "w2s[weak+debate|xent]", "w2s[weak+debate|logconf]"}
    for r in rows.values():
        assert 0 <= r["accuracy"] <= 1
    assert report["n_test"] == 16 and report["weak_accuracy"] == rows["weak"]["accuracy"]
    if report["pgr_defined"]:
        w = rows["w2s[weak|xent]"]
        expect = (w["accuracy"] - report["weak_accuracy"]) / (report["ceiling_accuracy"] - report["weak_accuracy"])
        assert w["pgr"]["pgr"] == pytest.approx(expect)
    assert report["schema_version"] == 3 and "gap" in report and report["comparisons"]
    assert (rd / "report.md").read_text().count("| W2S on ") == 4
    assert (rd / "curves" / "weak.png").exists() and (rd / "curves" / "strong.png").exists()
    assert json.loads((rd / "environment.json").read_text())["packages"]["torch"]
    labels = [json.loads(l) for l in (rd / "weak" / "weak_debate" / "labels.jsonl").read_text().splitlines()]
    assert len(labels) == 16 and all(len(l["debate_keys"]) == 1 for l in labels)
    transcripts = (rd / "debate" / "transcripts.jsonl").read_text().splitlines()
    assert len(transcripts) == 48
    # the audit: logged before the students, in report.json and report.md
    audit = report["audit"]
    assert audit["split"] == "transfer" and audit["n"] == len(labels)
    assert [g["labeller"] for g in audit["gaps"]] == ["weak", "weak+debate"]
    assert [s["labeller"] for s in audit["sensitivity"]] == ["weak+debate"]
    assert audit["sensitivity"][0]["follows_transcript"]["trials"] == len(labels)
    assert "## Audit, before any student trained" in (rd / "report.md").read_text()
    out = capsys.readouterr()
    assert "[audit] ## Audit, before any student trained" in out.out + out.err

    # Rerun: nothing is generated or trained again.
    import debate.backends
    import w2s_base.training.classifier
    monkeypatch.setattr(debate.backends, "make_backend",
                        lambda cfg: pytest.fail("debates were regenerated"))
    monkeypatch.setattr(w2s_base.training.classifier, "fit", lambda *a, **k: pytest.fail("a model was retrained"))
    member = rd / "weak" / "members" / "none" / "minilm-l6" / "seed0" / "result.json"
    mtime = member.stat().st_mtime
    assert run.main(args) == 0
    assert member.stat().st_mtime == mtime
    assert json.loads((rd / "report.json").read_text())["rows"] == report["rows"]

    # the transcripts, exported for inspect_ai's viewer (when the optional extra is installed)
    pytest.importorskip("inspect_ai")
    from inspect_ai.log import read_eval_log
    assert run.main(["export", "--format", "inspect"] + args) == 0
    logs = sorted((rd / "inspect").glob("*.eval"))
    assert len(logs) == 3  # one per split of the one protocol
    assert sum(len(read_eval_log(str(f)).samples) for f in logs) == 48


def test_user_mistakes_are_clear_errors_not_tracebacks(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  taks: demo\n")
    assert run.main(["--config", str(bad)]) == 2
    assert "data.taks" in capsys.readouterr().err
    assert run.main(["--config", "configs/demo.yaml", "--set", f"output_dir={tmp_path}",
                     "--set", "data.task=boolq", "--set", "data.path=/nonexistent/x.jsonl"]) == 2
    assert "/nonexistent/x.jsonl" in capsys.readouterr().err
    assert run.main(["--config", "configs/demo.yaml", "--set", f"output_dir={tmp_path}",
                     "--prompts", "no-such-set"]) == 2
    assert "no-such-set" in capsys.readouterr().err


@pytest.mark.slow
def test_paper_table_orchestration_with_market_making(tmp_path, monkeypatch):
    """Every protocol a labeller reads is generated (fake debater: orchestration only;
    weak and strong models are real), market-making argues against the plain weak
    model, and the report holds one row per labeller, loss and ceiling."""
    from fake_backend import EchoBackend

    import debate.backends
    monkeypatch.setattr(debate.backends, "make_backend", lambda cfg: EchoBackend())
    labellers = ("[{name: weak, losses: [xent, logconf, product]}, "
                 "{name: deb-ens, protocol: debate, debates: 2}, "
                 "{name: consultancy, protocol: consultancy}, {name: mm, protocol: market_making}]")
    args = ["--config", "configs/demo.yaml", "--name", "table", "--set", f"output_dir={tmp_path}",
            "--set", f"weak.labellers={labellers}", "--set", "strong.seeds=[0, 1]"]
    for o in TINY[:3] + ["weak.train.epochs=1", "weak.train.max_length=64", "strong.train.epochs=3"]:
        args += ["--set", o]
    assert run.main(args) == 0
    rd = tmp_path / "table"
    from debate.engine import load_transcripts
    ts = list(load_transcripts(rd / "debate" / "transcripts.jsonl").values())
    by = {}
    for t in ts:
        by.setdefault(t.protocol, []).append(t)
    assert {p: len(v) for p, v in by.items()} == {"debate": 96, "consultancy": 48, "market_making": 48}
    # the consultant argues against the plain weak model: its predictions on transfer and
    # test, and on weak_train out-of-fold predictions (never a model that saw the label)
    ref = json.loads((rd / "weak" / "weak" / "labeller.json").read_text())
    oof = {}
    for f in (rd / "weak" / "members" / "none-oof" / "minilm-l6").glob("seed0/fold*-of-2/result.json"):
        oof.update(json.loads(f.read_text())["result"])
    assert set(oof) == set(json.loads((rd / "splits.json").read_text())["weak_train"])
    p1 = {**oof, **ref["transfer_p1"], **ref["test_p1"]}
    assert all(t.a_label == int(p1[t.sample_id] <= 0.5) for t in by["market_making"])
    report = json.loads((rd / "report.json").read_text())
    # the placement measured per split: how often the consultant argues the gold label
    split_ids = json.loads((rd / "splits.json").read_text())
    gold = report["meta"]["consultant_gold_side"]["market_making"]
    for name, ids in split_ids.items():
        argued = [t.a_label == t.gold_label for t in by["market_making"] if t.sample_id in set(ids)]
        assert gold[name] == pytest.approx(sum(argued) / len(argued))
    assert "market_making: the consultant argues the gold label in weak_train" in (rd / "report.md").read_text()
    rows = list(report_rows(report))
    assert rows == ["weak", "deb-ens", "consultancy", "mm",
                    "w2s[weak|xent]", "w2s[weak|logconf]", "w2s[weak|product]",
                    "w2s[deb-ens|xent]", "w2s[consultancy|xent]", "w2s[mm|xent]", "ceiling"]
    assert all(r["seeds"] == 2 for r in report["rows"] if r["kind"] != "weak")
    deb = report_rows(report)["deb-ens"]
    assert set(deb["members"]) == {"seed0-debate0", "seed0-debate1"}
    assert (rd / "report.png").stat().st_size > 10_000
    # verify keys every member (placements, out-of-fold members, every protocol's transcripts)
    # and student as the run did, without the debater
    monkeypatch.setattr(debate.backends, "make_backend", lambda cfg: pytest.fail("verify generated"))
    assert run.main(["verify"] + args) == 0


@pytest.mark.slow
def test_until_stops_after_the_stage(tmp_path, capsys):
    args = ["--config", "configs/demo.yaml", "--name", "u", "--set", f"output_dir={tmp_path}", "--no-debate"]
    for o in TINY[:3] + ["weak.train.epochs=1", "weak.train.max_length=64", "strong.train.epochs=1"]:
        args += ["--set", o]
    assert run.main(args + ["--until", "weak"]) == 0
    rd = tmp_path / "u"
    assert (rd / "weak" / "weak" / "labels.jsonl").exists()
    assert not (rd / "strong").exists() and not (rd / "report.json").exists()
    capsys.readouterr()
    # --until audit: the out-of-fold ceilings and the audit, before any student trains
    assert run.main(args + ["--until", "audit", "-q"]) == 0
    out = capsys.readouterr().out
    folds = sorted(p.parent.name for p in (rd / "strong").rglob("result.json"))
    assert folds == ["fold0-of-2", "fold1-of-2"] and not (rd / "report.json").exists()
    assert "## Audit, before any student trained (transfer split, 16 samples)" in out  # printed under -q too
    assert "[until audit] audit of 16 transfer samples: ceiling" in out and "no student trained" in out
    assert out.rstrip().splitlines()[-1].startswith("next: ") and "--until" not in out.rstrip().splitlines()[-1]


def _outputs(rd):
    """What a run produced: every transcript's turns, every labeller's soft labels, the report's rows."""
    from debate.engine import load_transcripts
    ts = {k: [x.text for x in t.turns] for k, t in load_transcripts(rd / "debate" / "transcripts.jsonl").items()}
    labels = {f.parent.name: [json.loads(l)["soft_label"] for l in f.read_text().splitlines()]
              for f in sorted((rd / "weak").glob("*/labels.jsonl"))}
    rows = {k: r["accuracy"] for k, r in report_rows(json.loads((rd / "report.json").read_text())).items()}
    return ts, labels, rows


@pytest.mark.slow
@pytest.mark.parametrize("stage, at", [("debate", 2), ("weak", 2), ("strong", 2)])
def test_a_run_killed_in_any_stage_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch, stage, at):
    """Kill the pipeline in the middle of a stage (the `at`-th backend call or model fit),
    rerun the same command: transcripts, weak labels and report equal the uninterrupted run's."""
    from fake_backend import SeededBackend

    import w2s_base.training.classifier
    import debate.backends
    real_fit = w2s_base.training.classifier.fit

    def args(name):
        a = ["--config", "configs/demo.yaml", "--name", name, "--set", f"output_dir={tmp_path}",
             "--set", "weak.labellers=[{name: weak}, {name: weak+debate, protocol: debate}]",
             "--set", "strong.losses=[xent, logconf]", "--set", "debate.chunk_size=8"]
        for o in TINY[:3] + ["weak.train.epochs=1", "weak.train.max_length=64", "strong.train.epochs=3"]:
            a += ["--set", o]
        return a

    monkeypatch.setattr(debate.backends, "make_backend", lambda cfg: SeededBackend())
    assert run.main(args("whole")) == 0
    fits: dict[str, int] = {}

    def fit_then_kill(*a, **k):
        desc = k.get("desc", a[6] if len(a) > 6 else "")
        phase = "strong" if desc.startswith("strong") else "weak"
        fits[phase] = fits.get(phase, 0) + 1
        if phase == stage and fits[phase] == at:
            raise KeyboardInterrupt  # a kill in the middle of the stage
        return real_fit(*a, **k)

    if stage == "debate":
        monkeypatch.setattr(debate.backends, "make_backend", lambda cfg: SeededBackend(fail_after_calls=at))
    else:
        monkeypatch.setattr(w2s_base.training.classifier, "fit", fit_then_kill)
    assert run.main(args("killed")) == 130  # interrupted: finished work saved
    monkeypatch.setattr(debate.backends, "make_backend", lambda cfg: SeededBackend())
    monkeypatch.setattr(w2s_base.training.classifier, "fit", real_fit)
    assert run.main(args("killed")) == 0    # the same command resumes
    (ts_a, lab_a, rows_a), (ts_b, lab_b, rows_b) = _outputs(tmp_path / "whole"), _outputs(tmp_path / "killed")
    assert ts_a == ts_b
    assert lab_a.keys() == lab_b.keys()
    for name in lab_a:
        assert lab_b[name] == pytest.approx(lab_a[name], abs=1e-6), name
    assert rows_b == pytest.approx(rows_a)


@pytest.mark.slow
def test_a_run_keeps_its_loss_curves_and_logs_them_to_trackio(tmp_path):
    """Without a tracker the run folder holds the curves as PNGs; with tracking.backend
    trackio every weak member's and student's curve and the final table are logged too."""
    pytest.importorskip("trackio")
    args = ["--config", "configs/demo.yaml", "--name", "tracked", "--set", f"output_dir={tmp_path}", "--no-debate",
            "--set", "tracking.backend=trackio", "--set", "tracking.project=w2s-pipeline-test"]
    for o in TINY[:3] + ["weak.train.epochs=1", "weak.train.max_length=64", "strong.train.epochs=3"]:
        args += ["--set", o]
    assert run.main(args) == 0
    curves = tmp_path / "tracked" / "curves"
    for png in ("weak.png", "strong.png"):
        assert (curves / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from trackio.sqlite_storage import SQLiteStorage
    runs = set(SQLiteStorage.get_runs("w2s-pipeline-test"))
    assert "weak/none/minilm-l6/seed0" in runs and "report" in runs
    assert any(r.startswith("strong/ceiling") for r in runs)
    logs = SQLiteStorage.get_logs("w2s-pipeline-test", run="weak/none/minilm-l6/seed0")
    assert logs and all("train/loss" in r and "train/lr" in r for r in logs)
