"""The capability-gap sweep (w2s_run/sweep.py, w2s_run/report/sweep.py): its summary
from reports scored by the real statistics (quick), the config's checks (quick), and
configs/sweep_cpu.yaml end to end on two CPU pairs, killed and resumed (slow)."""
import json

import pytest

import run
from factories import scripted_draw, scripted_replicated_report


def _one_draw(name, ceil_right):
    from w2s_run.report.scoring import build_report
    return build_report(name, *scripted_draw(n_test=60, ceil_right=ceil_right))


def test_summary_takes_each_pairs_own_gap_and_pgr_and_prints_pgr_only_over_a_significant_gap(tmp_path):
    from w2s_base.runfolder.layout import RunLayout
    from w2s_run.report.statistics import Verdict
    from w2s_run.report.sweep import build_sweep, read_sweep, render_sweep, write_sweep
    wide = _one_draw("wide", ceil_right=50)     # weak right on 30 of 60, ceiling on 50: a clear gap
    narrow = _one_draw("narrow", ceil_right=32)  # ceiling on 32: a gap of 2 of 60, not significant
    pooled = scripted_replicated_report("pooled", [dict(), dict(shift=2), dict(shift=-1)])
    s = build_sweep("sw", [("wide", wide), ("narrow", narrow), ("pooled", pooled)])
    assert [(p.pair, p.labeller) for p in s.points] == [(n, lab) for n in ("wide", "narrow", "pooled")
                                                       for lab in ("weak", "deb")]
    by = {(p.pair, p.labeller): p for p in s.points}
    # one draw: the report's own gap and PGR, intervals included
    w = by["wide", "deb"]
    row = next(r for r in wide.student_rows() if r.labeller == "deb")
    assert (w.gap, w.gap_ci, w.replicates) == (wide.gap.gap, wide.gap.ci, 1)
    assert w.verdict == Verdict.OK and (w.pgr, w.ci) == (row.pgr.pgr, row.pgr.ci)
    n = by["narrow", "deb"]
    assert not n.gap_significant and n.verdict == Verdict.NOT_SIGNIFICANT and n.pgr is None and n.ci is None
    # replicates: the pooled PGR (Fieller) and the pooled gap of the report's pooled_pgr
    p = by["pooled", "deb"]
    prow = next(r.result for r in pooled.pooled_pgr if r.labeller == "deb")
    assert p.replicates == 3 and (p.gap, p.gap_ci) == (prow.gap.estimate, prow.gap.ci)
    assert p.pgr == prow.pgr and p.ci == prow.ci and p.pgr_per_replicate == prow.per_replicate
    assert len({q.test_ids_sha for q in s.pairs}) == 1 and not s.warnings  # one split for every pair

    md = render_sweep(s)
    rows = [line for line in md.splitlines() if line.startswith("| ") and "→" in line and "pair (" not in line]
    assert len(rows) == 6
    narrow_rows = [r for r in rows if r.startswith("| narrow")]
    assert all("n.s. (gap not significant)" in r for r in narrow_rows)
    wide_deb = next(r for r in rows if r.startswith("| wide") and "| deb (xent)" in r)
    assert f"{100 * w.pgr:.1f} ({100 * w.ci[0]:.1f} to {100 * w.ci[1]:.1f})" in wide_deb
    assert all(r.rstrip(" |").endswith("3") for r in rows if r.startswith("| pooled"))

    layout = RunLayout(tmp_path)
    write_sweep(s, layout)
    assert read_sweep(layout) == s
    assert layout.sweep_md.read_text() == md
    assert layout.sweep_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_draws_a_pgr_only_where_the_gap_is_significant():
    from w2s_run.report.sweep import build_sweep, draw_sweep
    s = build_sweep("sw", [("wide", _one_draw("wide", 50)), ("narrow", _one_draw("narrow", 32))])
    fig = draw_sweep(s)
    ax = fig.axes[0]
    drawn = [c for c in ax.containers if c.lines[0].get_gid() == "pgr"]
    ns = [c for c in ax.containers if c.lines[0].get_gid() == "ns"]
    assert len(drawn) == 2 and len(ns) == 2  # one series per labeller; narrow's two points without a PGR
    ys = sorted(float(c.lines[0].get_ydata()[0]) for c in drawn)
    assert ys == pytest.approx(sorted(100 * p.pgr for p in s.points if p.pair == "wide"))
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["deb (xent)", "weak (xent)"]


def test_a_misspelt_pair_model_is_one_line_before_anything_runs(tmp_path, capsys):
    rc = run.main(["--config", "configs/sweep_cpu.yaml", "--set", f"output_dir={tmp_path}", "--set",
                   "sweep.pairs=[{weak: minilm-l6, strong: smollm2-135m}, {weak: minilm-l7, strong: minilm-l6}]"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: sweep.pairs[1].weak: 'minilm-l7'") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # nothing made


def test_sweep_config_is_validated():
    from w2s_base.config import ConfigError, load_config
    with pytest.raises(ConfigError, match="sweep.pairs: .*at least 2"):
        load_config("configs/sweep_cpu.yaml", ["sweep.pairs=[{weak: minilm-l6, strong: minilm-l6}]"])
    with pytest.raises(ConfigError, match="share the run folder minilm-l6__minilm-l6"):
        load_config("configs/sweep_cpu.yaml", ["sweep.pairs=[{weak: minilm-l6, strong: minilm-l6}, "
                                               "{weak: minilm-l6, strong: minilm-l6}]"])
    with pytest.raises(ConfigError, match="sweep.pairs.0.strng: unknown key"):
        load_config("configs/sweep_cpu.yaml", ["sweep.pairs=[{weak: a, strng: b}, {weak: a, strong: b}]"])


def test_each_pair_is_the_config_with_its_models_on_one_pool():
    from w2s_base.config import load_config
    from w2s_run.sweep import pair_configs
    cfg = load_config("configs/sweep_cpu.yaml", ["output_dir=/tmp/x", "sweep.debater=strong"])
    pairs = pair_configs(cfg)
    assert [c.run_dir.as_posix() for _, c in pairs] == ["/tmp/x/sweep_cpu/sweep/minilm-l6__smollm2-135m",
                                                        "/tmp/x/sweep_cpu/sweep/minilm-l6__minilm-l6"]
    for pair, c in pairs:
        assert (c.weak.model, c.strong.model, c.debate.model) == (pair.weak, pair.strong, pair.strong)
        assert c.sweep is None and [(p.weak, p.strong) for p in c.data.fit_also] == [
            ("minilm-l6", "smollm2-135m"), ("minilm-l6", "minilm-l6")]
        # everything else is the sweep's own config
        same = {k: v for k, v in c.model_dump().items() if k not in ("name", "output_dir", "weak", "strong",
                                                                      "debate", "data")}
        assert same == {k: v for k, v in cfg.model_dump().items() if k in same}
        assert c.weak.labellers == cfg.weak.labellers and c.replicates == cfg.replicates == 2


# The slow test: configs/sweep_cpu.yaml (2 pairs x 2 labellers x 2 replicates, scripted
# controls, no LLM) at a tiny size: about 3 minutes on 2 busy cores.
TINY = ["data.n_weak_train=32", "data.n_transfer=32", "data.n_test=48", "weak.train.epochs=1",
        "weak.train.max_length=64", "strong.train.max_length=64", "strong.train.epochs=5"]


@pytest.mark.slow
def test_sweep_on_two_cpu_pairs_killed_and_resumed(tmp_path, monkeypatch):
    import w2s_run.pipeline as pipeline
    args = ["--config", "configs/sweep_cpu.yaml", "--set", f"output_dir={tmp_path}", "-q"]
    for o in TINY:
        args += ["--set", o]
    root = tmp_path / "sweep_cpu"
    second = root / "sweep" / "minilm-l6__minilm-l6"

    real_run_strong = pipeline.run_strong

    def killed_in_the_second_pair(cfg, *a, **k):
        if cfg.name == second.name:
            raise KeyboardInterrupt
        return real_run_strong(cfg, *a, **k)
    monkeypatch.setattr(pipeline, "run_strong", killed_in_the_second_pair)
    assert run.main(args) == 130
    assert (root / "sweep" / "minilm-l6__smollm2-135m" / "report.json").exists()
    assert not (second / "report.json").exists() and not (root / "sweep.json").exists()
    members = sorted(root.glob("sweep/*/weak/members/*/*/*/result.json"))
    assert len(members) == 2 * 2 * 2  # pairs x labellers x replicates: every weak member trained
    stamps = {m: m.stat().st_mtime_ns for m in members}

    monkeypatch.setattr(pipeline, "run_strong", real_run_strong)
    assert run.main(args) == 0  # the same command resumes
    assert {m: m.stat().st_mtime_ns for m in members} == stamps  # no weak member trained again

    s = json.loads((root / "sweep.json").read_text())
    assert [p["pair"] for p in s["pairs"]] == ["minilm-l6__smollm2-135m", "minilm-l6__minilm-l6"]
    assert len({p["test_ids_sha"] for p in s["pairs"]}) == 1  # the same test ids for every pair
    assert len(s["points"]) == 4
    for pt in s["points"]:
        rep = json.loads((root / "sweep" / pt["pair"] / "report.json").read_text())
        pooled = next(r["result"] for r in rep["pooled_pgr"] if r["labeller"] == pt["labeller"])
        assert pt["replicates"] == 2 == len(rep["replicates"])
        assert (pt["gap"], pt["gap_ci"]) == (pooled["gap"]["estimate"], pooled["gap"]["ci"])
        assert pt["gap_ci"][0] <= pt["gap"] <= pt["gap_ci"][1]
        assert pt["verdict"] == pooled["verdict"]
        assert (pt["pgr"] is None) == (pt["verdict"] != "ok") == (pt["ci"] is None)
        assert pt["strong_model"] == rep["meta"]["strong_model"]
    md = (root / "sweep.md").read_text()
    assert md.count("| minilm-l6__") == 4 and md.count("CONTROL positive:0.9") == 2
    assert (root / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # each pair is a whole run of its own: its config of record names its models and the pool
    pair_cfg = (second / "config.yaml").read_text()
    assert "fit_also" in pair_cfg and "sweep:" not in pair_cfg
