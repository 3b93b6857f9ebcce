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
    assert report["schema_version"] == 2 and "gap" in report and report["comparisons"]
    assert (rd / "report.md").read_text().count("| W2S on ") == 4
    labels = [json.loads(l) for l in (rd / "weak" / "weak_debate" / "labels.jsonl").read_text().splitlines()]
    assert len(labels) == 16 and all(len(l["debate_keys"]) == 1 for l in labels)
    transcripts = (rd / "debate" / "transcripts.jsonl").read_text().splitlines()
    assert len(transcripts) == 48

    # Rerun: nothing is generated or trained again.
    import debate.backends
    import core.classifier
    monkeypatch.setattr(debate.backends, "make_backend",
                        lambda cfg: pytest.fail("debates were regenerated"))
    monkeypatch.setattr(core.classifier, "fit", lambda *a, **k: pytest.fail("a model was retrained"))
    member = rd / "weak" / "members" / "none" / "minilm-l6" / "seed0" / "result.json"
    mtime = member.stat().st_mtime
    assert run.main(args) == 0
    assert member.stat().st_mtime == mtime
    assert json.loads((rd / "report.json").read_text())["rows"] == report["rows"]


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
    ref = json.loads((rd / "weak" / "weak" / "labeller.json").read_text())
    p1 = {**ref["weak_train_p1"], **ref["transfer_p1"], **ref["test_p1"]}
    assert all(t.a_label == int(p1[t.sample_id] <= 0.5) for t in by["market_making"])
    report = json.loads((rd / "report.json").read_text())
    rows = list(report_rows(report))
    assert rows == ["weak", "deb-ens", "consultancy", "mm",
                    "w2s[weak|xent]", "w2s[weak|logconf]", "w2s[weak|product]",
                    "w2s[deb-ens|xent]", "w2s[consultancy|xent]", "w2s[mm|xent]", "ceiling"]
    assert all(r["seeds"] == 2 for r in report["rows"] if r["kind"] != "weak")
    deb = report_rows(report)["deb-ens"]
    assert set(deb["members"]) == {"seed0-debate0", "seed0-debate1"}
    assert (rd / "report.png").stat().st_size > 10_000


@pytest.mark.slow
def test_until_stops_after_the_stage(tmp_path):
    args = ["--config", "configs/demo.yaml", "--name", "u", "--set", f"output_dir={tmp_path}", "--no-debate",
            "--until", "weak"]
    for o in TINY[:3] + ["weak.train.epochs=1", "weak.train.max_length=64"]:
        args += ["--set", o]
    assert run.main(args) == 0
    rd = tmp_path / "u"
    assert (rd / "weak" / "weak" / "labels.jsonl").exists()
    assert not (rd / "strong").exists() and not (rd / "report.json").exists()
