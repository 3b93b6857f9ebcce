"""Replicates as an axis of a run: what replicate r re-draws (config), where its files
lie (layout), the pooled report, and the whole pipeline with R = 2 (fake debater,
real weak and strong models) reusing an R = 1 run as its replicate 0."""
import collections
import json

import pytest

import run
from factories import report_rows


# ---------------------------------------------------------------- config and layout
def test_replicate_r_reseeds_every_draw_of_the_method_and_replicate_0_is_the_run():
    from w2s_base.config import RunConfig
    cfg = RunConfig.model_validate({
        "replicates": 3, "debate": {"seed": 1}, "strong": {"seeds": [0, 1]},
        "weak": {"labellers": [{"name": "weak", "seeds": [0, 2]}, {"name": "deb", "protocol": "debate"}]}})
    assert cfg.for_replicate(0) == cfg
    r2 = cfg.for_replicate(2)
    assert r2.debate.seed == 2001 and r2.strong.seeds == [2000, 2001]
    assert [lab.seeds for lab in r2.weak.labellers] == [[2000, 2002], [2000]]
    assert r2.data == cfg.data  # the split is shared unless replicate_splits
    assert cfg.model_copy(update={"replicate_splits": True}).for_replicate(2).data.seed == 2000
    # everything else is the run's
    assert r2.model_dump(exclude={"debate", "weak", "strong"}) == cfg.model_dump(exclude={"debate", "weak", "strong"})
    assert r2.debate.model_dump(exclude={"seed"}) == cfg.debate.model_dump(exclude={"seed"})
    with pytest.raises(ValueError):
        cfg.for_replicate(3)


def test_seeds_that_two_replicates_would_share_are_refused(tmp_path, capsys):
    args = ["--config", "configs/demo.yaml", "--set", f"output_dir={tmp_path}", "--set", "replicates=2",
            "--set", "strong.seeds=[0, 1000]"]
    assert run.main(args) == 2
    err = capsys.readouterr().err
    assert "strong.seeds" in err and "Traceback" not in err
    assert run.main(["plan"] + args[:-2] + ["--set", "strong.seeds=[0, 999]"]) == 0
    assert "replicates: 2: the debates, members and students above are one replicate's" in capsys.readouterr().out


def test_layout_keeps_one_draw_paths_and_puts_each_replicates_own_files_under_replicates():
    from pathlib import Path

    from w2s_base.config import RunConfig
    one = RunConfig(output_dir="/tmp/x", name="r")
    assert one.replicate_layout(0) == one.layout
    lay = one.layout
    assert (lay.splits, lay.labels("a"), lay.report_json) == (
        Path("/tmp/x/r/splits.json"), Path("/tmp/x/r/weak/a/labels.jsonl"), Path("/tmp/x/r/report.json"))
    r1 = RunConfig(output_dir="/tmp/x", name="r", replicates=2).replicate_layout(1)
    assert r1.splits == Path("/tmp/x/r/replicates/r1/splits.json")
    assert r1.labeller_json("a") == Path("/tmp/x/r/replicates/r1/weak/a/labeller.json")
    assert r1.report_md == Path("/tmp/x/r/replicates/r1/report.md")
    # the content-addressed stores stay the run's
    for f in ("transcripts", "config", "environment", "viewer"):
        assert getattr(r1, f) == getattr(lay, f)
    assert r1.member("debate", "m", 1000, 0) == lay.member("debate", "m", 1000, 0)
    assert r1.student("ceiling", 1000) == lay.student("ceiling", 1000)


# ---------------------------------------------------------------- the report
def _draw(splits, right, tr, weak_k, deb_k, s_weak, s_deb, ceil):
    from strong.stage import StudentKey
    from weak.labels import LabellerResult

    def lab(name, k):
        return LabellerResult(name=name, protocol="none" if name == "weak" else "debate", aggregate="mean",
                              members=["m"], transfer_p1=tr, test_p1=right(k), member_test_p1={"m": right(k)})
    return (splits, {"weak": lab("weak", weak_k), "deb": lab("deb", deb_k)},
            {StudentKey.ceiling(0): right(ceil), StudentKey("weak", "xent", 0): right(s_weak),
             StudentKey("deb", "xent", 0): right(s_deb)})


def test_one_draw_report_says_this_draw_only_and_a_pooled_one_leads_with_the_pooled_table():
    from data.demo_task import make_demo_samples
    from data.splits import make_splits
    from w2s_run.report.model import Report
    from w2s_run.report.render import render_table
    from w2s_run.report.scoring import build_report, pool_reports
    splits = make_splits(make_demo_samples(240), 20, 20, 200, seed=0)
    y = {x.id: x.label for x in splits.test}
    right = lambda k: {i: (float(y[i]) if j < k else 1.0 - y[i]) for j, i in enumerate(y)}
    tr = {x.id: 0.5 for x in splits.transfer}
    # the debate student: clearly worse in two draws, level in the third
    draws = [_draw(splits, right, tr, 120, 100, 140, 110, 180), _draw(splits, right, tr, 120, 105, 140, 112, 182),
             _draw(splits, right, tr, 121, 101, 140, 140, 180)]
    reports = [build_report("r", *d) for d in draws]
    one = render_table(reports[0])
    assert "this draw only" in one and not one.startswith("# Run r: pooled")
    assert "| worse (this draw only) |" in one  # the student comparison's verdict
    assert "Ceiling − weak gap: +30.0 points" in one and "significant (this draw only)" in one

    rep = pool_reports(reports, draws)
    assert len(rep.replicates) == 3 and rep.rows == reports[0].rows  # its own fields: replicate 0
    by = {(p.kind, p.name): p for p in rep.pooled}
    assert set(by) == {("weak", "deb"), ("student", "deb|xent"), ("gap", "ceiling")}
    s = by[("student", "deb|xent")]
    assert s.reference == "weak|xent"
    assert s.result.per_replicate == pytest.approx([-0.15, -0.14, 0.0])
    assert s.result.estimate == pytest.approx((-0.15 - 0.14 + 0.0) / 3)
    assert s.result.stability() == {"worse": 2, "no detectable difference": 1}
    # the draws disagree: pooled, the difference is not established
    assert s.result.direction == "no detectable difference"
    assert by[("gap", "ceiling")].result.describe_stability() == "better in 3 of 3 replicates"
    table = render_table(rep)
    assert table.startswith("# Run r: pooled over 3 replicates")
    assert "| W2S on deb vs on weak labels (xent) | -9.7 (" in table
    assert "| worse in 2, no detectable difference in 1 of 3 replicates |" in table
    assert table.index("pooled over 3") < table.index("Replicate 1 of 3 (this draw only")
    # report.json round-trips, nested replicates included
    data = rep.model_dump(mode="json")
    assert Report.model_validate(data).model_dump(mode="json") == data


# ---------------------------------------------------------------- the pipeline
TINY = ["data.n_weak_train=16", "data.n_transfer=16", "data.n_test=16", "weak.train.epochs=1",
        "weak.train.max_length=64", "strong.train.epochs=3"]


@pytest.mark.slow
def test_two_replicates_redraw_debates_and_seeds_and_reuse_a_one_draw_run_as_replicate_0(tmp_path, monkeypatch):
    from fake_backend import SeededBackend

    import debate.backends
    monkeypatch.setattr(debate.backends, "make_backend", lambda cfg: SeededBackend())
    args = ["--config", "configs/demo.yaml", "--name", "rep", "--set", f"output_dir={tmp_path}"]
    for o in TINY:
        args += ["--set", o]
    assert run.main(args) == 0
    rd = tmp_path / "rep"
    one = json.loads((rd / "report.json").read_text())
    assert one["replicates"] == [] and one["pooled"] is None and not (rd / "replicates").exists()
    assert "this draw only" in (rd / "report.md").read_text()
    member = rd / "weak" / "members" / "debate" / "minilm-l6" / "seed0-debate0" / "result.json"
    student = rd / "strong" / "w2s_weak_debate-xent" / "seed0" / "result.json"
    mtimes = (member.stat().st_mtime, student.stat().st_mtime)

    assert run.main(args + ["--set", "replicates=2"]) == 0
    # replicate 0 is the one-draw run: nothing of it was generated or trained again
    assert (member.stat().st_mtime, student.stat().st_mtime) == mtimes
    from debate.engine import load_transcripts
    ts = list(load_transcripts(rd / "debate" / "transcripts.jsonl").values())
    assert collections.Counter(t.seed for t in ts) == {0: 48, 1000: 48}
    assert len((rd / "debate" / "transcripts.jsonl").read_text().splitlines()) == 96  # none appended twice
    rep = json.loads((rd / "report.json").read_text())
    assert rep["rows"] == one["rows"] and len(rep["replicates"]) == 2
    assert rep["replicates"][0]["rows"] == one["rows"]
    assert {(p["kind"], p["name"]) for p in rep["pooled"]} == {
        ("weak", "weak+debate"), ("student", "weak+debate|xent"), ("gap", "ceiling")}
    assert all(len(p["result"]["per_replicate"]) == 2 for p in rep["pooled"])
    assert (rd / "report.md").read_text().startswith("# Run rep: pooled over 2 replicates")
    # each replicate's own files; the same test samples, other debates, seeds and members
    r0, r1 = rd / "replicates" / "r0", rd / "replicates" / "r1"
    for r in (r0, r1):
        assert (r / "report.json").exists() and (r / "report.md").exists()
    split = [json.loads((r / "splits.json").read_text()) for r in (r0, r1)]
    assert split[0] == split[1]
    labels = [[json.loads(x) for x in (r / "weak" / "weak_debate" / "labels.jsonl").read_text().splitlines()]
              for r in (r0, r1)]
    seed_of = {t.key: t.seed for t in ts}
    assert {seed_of[k] for x in labels[0] for k in x["debate_keys"]} == {0}
    assert {seed_of[k] for x in labels[1] for k in x["debate_keys"]} == {1000}
    assert set(report_rows(rep["replicates"][1])["weak+debate"]["members"]) == {"seed1000-debate0"}
    assert (rd / "strong" / "ceiling" / "seed1000" / "result.json").exists()
    assert (rd / "weak" / "members" / "none" / "minilm-l6" / "seed1000" / "result.json").exists()

    # the readers of a run: compare, the viewer and the inspect export
    from w2s_run.report.compare import compare_runs
    out = compare_runs([str(rd), str(rd)])
    assert "weak+debate" in out and "Both runs have 2 replicates: compared pooled over them" in out
    # a run against itself: no difference in either replicate, pooled none either
    assert "| +0.0, +0.0 | no detectable difference in 2 of 2 replicates |" in out
    assert run.main(["verify"] + args + ["--set", "replicates=2"]) == 0  # every draw keyed as the run keyed it
    assert run.main(["view"] + args + ["--set", "replicates=2"]) == 0
    assert (rd / "debates.html").exists()
    pytest.importorskip("inspect_ai")
    from inspect_ai.log import read_eval_log
    assert run.main(["export", "--format", "inspect"] + args + ["--set", "replicates=2"]) == 0
    assert sum(len(read_eval_log(str(f)).samples) for f in (rd / "inspect").glob("*.eval")) == 96
