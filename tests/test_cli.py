"""The command line (w2s_run/cli.py; `w2s-debate`, `python run.py`): verbs with their own
flags, shipped configs by name from any directory, missing runs and samples as one-line
errors (rc 2) that create nothing, view/export refused on a folder a live run holds,
`--until` saying what it made and what to run next, `--quiet` printing the final table
only, and config errors reported before torch or transformers is imported."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import run
from factories import start_lock_holder
from w2s_base.config import ConfigError
from w2s_run import cli

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
TINY_DATA = ["--set", "data.n_weak_train=16", "--set", "data.n_transfer=16", "--set", "data.n_test=16"]


def _error(capsys, argv: list[str], rc: int = 2) -> str:
    """The one line a user mistake ends with."""
    assert run.main(argv) == rc
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


# ------------------------------------------------------------ verbs and their flags
@pytest.mark.parametrize("verb", list(cli.VERBS))
def test_every_verb_has_its_own_help(verb, capsys):
    with pytest.raises(SystemExit) as e:
        run.parse_args([verb, "-h"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert f"run.py {verb} [-h]" in out or f"w2s-debate {verb} [-h]" in out
    assert ("--sample" in out) == (verb in ("list", "show"))
    assert ("--until" in out) == (verb == "run")
    assert ("--config" in out) == (verb != "compare")


@pytest.mark.parametrize("argv", [
    ["view", "--sample", "x"], ["show", "--format", "inspect"], ["list", "--until", "debate"],
    ["plan", "--sample", "x"], ["export", "--gold", "1"], ["compare", "a", "b", "--config", "demo"],
    ["--sample", "x"], ["run", "--out", "x"], ["view", "--quiet"], ["show", "--side", "C"],
])
def test_a_flag_that_means_nothing_for_the_verb_is_refused(argv, capsys):
    with pytest.raises(SystemExit) as e:
        run.parse_args(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    verb = argv[0] if argv[0] in cli.VERBS else "run"
    assert f" {verb}: error: " in err  # in that verb's usage, not the top level's


def test_run_is_the_default_verb_and_the_old_argv_still_parses():
    a = run.parse_args(["--config", "configs/demo.yaml", "--set", "x.y=1", "--until", "weak", "-q"])
    assert (a.command, a.config, a.overrides, a.until, a.quiet) == ("run", "configs/demo.yaml", ["x.y=1"], "weak", True)
    assert run.parse_args([]).command == "run" and run.parse_args([]).config == cli.DEFAULT_CONFIG
    s = run.parse_args(["show", "--config", "c.yaml", "--sample", "demo-3", "--limit", "2"])
    assert (s.command, s.sample, s.limit) == ("show", "demo-3", 2)
    assert run.parse_args(["compare", "a", "b", "c"]).runs == ["a", "b", "c"]
    assert run.parse_args(["plan", "--gpu-memory-gib", "40"]).gpu_memory_gib == 40
    # the stages in the order they run, the audit (before any student) among them
    assert run.parse_args(["--until", "audit"]).until == "audit" and cli.STAGES == ("debate", "weak", "audit", "strong")


def test_next_command_drops_until_and_the_verb():
    assert cli._next_command(["run", "--config", "demo", "--until", "debate", "--set", "a=b c"]) \
        .endswith(" --config demo --set 'a=b c'")
    assert "--until" not in cli._next_command(["run", "--until=weak", "-q"])


# ------------------------------------------------------------ configs by name, from anywhere
def test_shipped_configs_by_name_from_any_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.resolve_config("demo") == ROOT / "configs" / "demo.yaml"
    assert cli.resolve_config("controls.yaml") == ROOT / "configs" / "controls.yaml"
    assert {"demo", "controls", "paper_sciq_gpu"} <= set(cli.shipped_configs())
    (tmp_path / "demo").write_text("name: mine\n")  # a path that exists wins over the name
    assert cli.resolve_config("demo") == Path("demo")
    with pytest.raises(ConfigError, match=r"no shipped config of that name \(shipped: .*demo"):
        cli.resolve_config("dmeo")
    err = _error(capsys, ["plan", "--config", "dmeo"])
    assert "'dmeo'" in err and all(f" {n}," in err for n in ("controls", "demo"))  # the shipped names listed
    err = _error(capsys, ["--config", "configs/demo.yaml"])  # a relative path from another directory
    assert "no such file" in err and "demo" in err


def test_the_console_script_is_declared_and_resolves_to_main():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, attr = scripts["w2s-debate"].partition(":")
    import importlib
    assert getattr(importlib.import_module(module), attr) is cli.main is run.main


def test_the_module_runs_from_another_directory_with_the_default_config(tmp_path):
    """`python -m w2s_run.cli` (what the console script calls) in a folder that holds no
    configs/: the default config is found beside the package."""
    r = subprocess.run([sys.executable, "-m", "w2s_run.cli", "list", "--set", f"output_dir={tmp_path / 'runs'}"],
                       cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr == f"error: no run folder at {tmp_path / 'runs' / 'demo'}: run " \
        "`w2s-debate --config ...` first (or check --name, --config and output_dir)\n", r.stderr
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------ config errors before torch
PROBE = """
import sys, run
HEAVY = ("torch", "transformers", "vllm", "peft", "accelerate", "datasets", "tqdm")  # tqdm: --quiet sets
# TQDM_DISABLE, read when tqdm is first imported, after the config is checked
rc = run.main(sys.argv[1:])
print("rc", rc, "heavy", sorted(m for m in HEAVY if m in sys.modules), flush=True)
"""


@pytest.mark.parametrize("argv,says", [
    (["--set", "data.n_test=-1"], "data.n_test: Input should be greater than 0"),
    (["--config", "no-such.yaml"], "no shipped config of that name"),
    (["--config", "configs/demo.yaml", "--set", "strong.model=/nope"], "strong.model: model path '/nope' does not exist"),
    (["--prompts", "no-such-set"], "no-such-set"),
    (["plan", "--set", "debate.sampling.top_p=7"], "debate.sampling.top_p"),
    (["show", "--name", "never-ran"], "no run folder at"),
])
def test_a_config_error_is_reported_before_torch_is_imported(argv, says, tmp_path):
    r = subprocess.run([sys.executable, "-c", PROBE, *argv, "--set", f"output_dir={tmp_path}"], cwd=ROOT,
                       env=ENV, capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "rc 2 heavy []", (r.stdout, r.stderr[-2000:])
    assert r.stderr.startswith("error: ") and says in r.stderr and "Traceback" not in r.stderr
    # one line, or (validation of several keys) a header and one line per key
    assert all(line.startswith("  ") for line in r.stderr.splitlines()[1:]), r.stderr
    assert not (tmp_path / "demo").exists()


def test_help_imports_no_heavy_library():
    code = ("import sys, run\ntry:\n    run.main(['-h'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert r.stdout.strip().endswith("[]") and "losses (strong.losses" in r.stdout, r.stderr[-2000:]


# ------------------------------------------------------------ a real run folder, stopped after its debates
@pytest.fixture(scope="module")
def debated(tmp_path_factory):
    """The controls config (scripted transcripts: no debater model runs), stopped after
    the debate stage: a run folder with a transcript store and no report."""
    out = tmp_path_factory.mktemp("runs")
    argv = [*_on(out), "--until", "debate"]
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), *argv], cwd=out, env=ENV, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return out, r.stdout


def _on(out: Path) -> list[str]:  # one draw (the shipped controls run three replicates)
    return ["--config", "controls", "--set", f"output_dir={out}", "--set", "replicates=1", *TINY_DATA]


def test_until_says_what_it_made_and_the_next_command(debated):
    out, stdout = debated
    store = out / "controls" / "debate" / "transcripts.jsonl"
    n = len(store.read_text().splitlines())
    lines = stdout.splitlines()
    assert lines[-2] == (f"[until debate] transcripts: positive:0.5 48, positive:0.9 48, "
                         f"shuffled:positive:0.9 48; stored in {store}") and n == 3 * 48
    assert lines[-1].startswith(f"next: python {ROOT / 'run.py'} --config controls --set output_dir={out} ")
    assert "--until" not in lines[-1] and lines[-1].endswith("(finished stages are reused)")


def test_list_and_show_on_the_run(debated, capsys):
    out, _ = debated
    assert run.main(["list", *_on(out), "--limit", "3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    first = json.loads((out / "controls" / "debate" / "transcripts.jsonl").read_text().splitlines()[0])
    sid, gold = first["sample_id"], first["gold_label"]
    assert run.main(["show", *_on(out), "--sample", sid]) == 0
    assert capsys.readouterr().out.count(f"=== {sid} ") == 3  # one per control
    err = _error(capsys, ["show", *_on(out), "--sample", "no-such-sample"])
    assert "no transcript of sample 'no-such-sample' in " in err
    # a filter that matches nothing in a store that exists is an answer, not an error
    assert run.main(["list", *_on(out), "--sample", sid, "--gold", str(1 - gold)]) == 0
    assert capsys.readouterr().out.startswith("no transcripts match in ")


@pytest.mark.parametrize("verb", ["list", "show", "view", "export"])
def test_a_missing_run_is_one_line_and_nothing_is_created(verb, tmp_path, capsys):
    out = tmp_path / "runs"
    err = _error(capsys, [verb, "--config", "demo", "--set", f"output_dir={out}", "--name", "nope"])
    assert f"no run folder at {out / 'nope'}" in err
    assert not out.exists()


@pytest.mark.parametrize("verb", ["list", "view", "export"])
def test_a_run_folder_without_transcripts_is_one_line(verb, tmp_path, capsys):
    (tmp_path / "demo").mkdir()
    err = _error(capsys, [verb, "--set", f"output_dir={tmp_path}"])
    assert f"{tmp_path / 'demo' / 'debate' / 'transcripts.jsonl'} does not exist" in err
    assert [p.name for p in tmp_path.rglob("*")] == ["demo"]  # nothing written


@pytest.mark.parametrize("verb", ["view", "export"])
def test_view_and_export_refuse_a_folder_a_live_run_holds(verb, debated, capsys):
    out, _ = debated
    holder = start_lock_holder(out / "controls")
    try:
        err = _error(capsys, [verb, *_on(out)])
        assert f"pid {holder.pid}" in err and "in use by a live run" in err and "holder.yaml" in err
    finally:
        holder.kill()
        holder.wait(10)
    if verb == "export":
        pytest.importorskip("inspect_ai")
    assert run.main([verb, *_on(out)]) == 0  # a killed holder does not block
    lines = capsys.readouterr().out.splitlines()
    written = [x for x in lines if not x.startswith("view them: ")]
    assert written and all(Path(p).is_file() for p in written)
    if verb == "export":  # the command that opens them follows the files
        assert lines[-1].startswith("view them: inspect view")


# ------------------------------------------------------------ --quiet: the final table only
@pytest.mark.slow
def test_quiet_prints_only_the_final_table(tmp_path, capsys):
    from w2s_base.console import reset
    from w2s_base.runfolder.layout import RunLayout
    from w2s_run.report.model import read_report
    from w2s_run.report.render import render_summary, render_table
    argv = ["--config", "demo", "--no-debate", "--set", f"output_dir={tmp_path}", *TINY_DATA,
            "--set", "weak.train.epochs=1", "--set", "weak.train.max_length=64", "--set", "strong.train.epochs=1",
            "--set", "strong.train.max_length=64", "-q"]
    try:
        assert run.main(argv) == 0
    finally:
        reset()  # the console level is process-wide
    out, err = capsys.readouterr()
    report = read_report(RunLayout(tmp_path / "demo"))
    table = render_summary(report)
    assert out.strip() == table.strip() and err == ""
    assert table.startswith("# Run demo: 16 test samples") and "| model | test acc % " in table
    assert len(table.splitlines()) < len(render_table(report).splitlines()) - 10  # not the whole report
