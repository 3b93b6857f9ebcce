"""Faults from the reliability issue, one test (at least) per failed case:

1. two runs on one run folder (w2s_base/runfolder/runlock.py): the second is refused at once,
   naming the holder; a killed holder never blocks the next run;
2. checks that came too late (w2s_run/services/preflight.py): every model of every stage, the
   data file and the output folder are checked before anything loads;
3. config input errors are one-line errors naming the key, never tracebacks.
"""
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import run
from w2s_base.config import ConfigError, load_config
from w2s_base.training.models import EMBEDDED, ModelNotFound, check_model, resolve_model
from w2s_run.services.preflight import needed_models, preflight
from w2s_base.runfolder.faults import RunFolderError
from w2s_base.runfolder.runlock import LOCK_NAME, RunLock, RunLocked, write_config_of_record
from factories import start_lock_holder as _start_holder

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


# ------------------------------------------------------------------ 1. run lock
def test_second_run_on_a_folder_is_refused_naming_the_holder_and_a_killed_holder_does_not_block(tmp_path):
    root = tmp_path / "runs" / "demo"
    holder = _start_holder(root)
    try:
        t = time.perf_counter()
        with pytest.raises(RunLocked) as e:
            RunLock(root).acquire()
        assert time.perf_counter() - t < 2  # refused at once, not after waiting
        msg = str(e.value)
        assert "\n" not in msg
        assert f"pid {holder.pid}" in msg and socket.gethostname() in msg
        assert "python run.py --config holder.yaml" in msg and "started 20" in msg
        assert str(root) in msg
    finally:
        holder.kill()  # SIGKILL: no clean-up runs in the holder
        holder.wait(10)
    # The lock file (with the dead holder's record) is still there, and must not block.
    assert json.loads((root / LOCK_NAME).read_text())["pid"] == holder.pid
    with RunLock(root, command="next") as lock:
        assert lock.held and lock.stale["pid"] == holder.pid
        assert json.loads((root / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert (root / LOCK_NAME).read_text() == ""  # a clean end leaves no holder behind


def test_identical_runs_started_together_only_one_proceeds(tmp_path):
    root = tmp_path / "same"
    # The winner holds the lock until every racer has answered (then its stdin closes).
    racer = ("import sys\nfrom w2s_base.runfolder.runlock import RunLock, RunLocked\n"
             "try:\n    lock = RunLock(sys.argv[1]).acquire()\nexcept RunLocked as e:\n"
             "    print('refused', e, flush=True)\nelse:\n    print('acquired', flush=True); sys.stdin.read()\n")
    procs = [subprocess.Popen([sys.executable, "-c", racer, str(root)], cwd=ROOT, env=ENV, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    try:
        answers = [p.stdout.readline().strip() for p in procs]
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(30)
    firsts = [a.split(" ", 1)[0] for a in answers]
    assert sorted(firsts) == ["acquired", "refused", "refused"], [(a, p.stderr.read()) for a, p in zip(answers, procs)]
    winner = procs[firsts.index("acquired")].pid
    assert all(f"pid {winner} " in a for a in answers if a.startswith("refused"))


def test_lock_is_released_when_the_run_fails(tmp_path):
    root = tmp_path / "r"
    with pytest.raises(KeyError):
        with RunLock(root):
            raise KeyError("a stage failed")
    with RunLock(root) as lock:  # free again, and nobody died holding it
        assert lock.stale is None
        with pytest.raises(RunLocked, match="already held by this process"):
            RunLock(root).acquire()


def test_non_main_ranks_are_not_refused(tmp_path):
    """Under a multi-process launcher the main rank holds the lock; the other ranks
    of the same run use RunLock(root, enabled=dist.is_main()) = a no-op."""
    root = tmp_path / "ddp"
    holder = _start_holder(root)  # stands for the main rank
    try:
        with RunLock(root, enabled=False) as lock:
            assert not lock.held
        with pytest.raises(RunLocked):
            RunLock(root, enabled=True).acquire()
    finally:
        holder.kill()
        holder.wait(10)


def test_config_of_record_is_written_under_the_lock_and_atomically(tmp_path, monkeypatch):
    cfg = load_config(None, [f"output_dir={tmp_path}", "name=cfg", "data.n_test=7"])
    layout = cfg.layout
    with pytest.raises(RuntimeError, match="RunLock"):
        write_config_of_record(cfg, layout)  # never without the lock
    with RunLock(layout.root):
        path = write_config_of_record(cfg, layout)
        assert path == layout.config
        assert load_config(path).model_dump() == cfg.model_dump()
        # A write that fails half way leaves the previous config of record whole.
        before = path.read_text()
        other = load_config(None, [f"output_dir={tmp_path}", "name=cfg", "data.n_test=9"])

        def crash(*a, **k):
            raise OSError("disk full")
        monkeypatch.setattr(os, "replace", crash)
        with pytest.raises(RunFolderError, match=re.escape(f"cannot write {path}: OSError: disk full")):
            write_config_of_record(other, layout)
        assert path.read_text() == before
    assert sorted(p.name for p in layout.root.iterdir()) == [LOCK_NAME, "config.yaml"]  # no temp files


# ------------------------------------------------------------------ 2. preflight
def _cfg(*overrides, tmp_path=None):
    base = [f"output_dir={tmp_path}"] if tmp_path else []
    return load_config(None, base + list(overrides))


def _model_dir(path: Path, weights: bool = True) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    if weights:
        (path / "model.safetensors").write_bytes(b"x")
    return path


def test_unknown_embedded_name_is_named_by_its_config_key(tmp_path):
    cfg = _cfg("weak.labellers=[{name: weak}, {name: a, protocol: debate}, "
               "{name: b, protocol: debate, models: [minilm-l7]}]", tmp_path=tmp_path)
    with pytest.raises(ConfigError) as e:
        preflight(cfg)
    assert ("weak.labellers[2].models[0]: 'minilm-l7' is not an embedded model "
            "(known: minilm-l6, smollm2-135m), a local folder, nor a cached hub model") in str(e.value)
    # Before: resolve_model passed it on as a hub id (an OSError ~50 s later); now it is named at once.
    with pytest.raises(ModelNotFound, match="minilm-l7"):
        resolve_model("minilm-l7")


def test_every_problem_of_every_stage_is_reported_at_once(tmp_path):
    cfg = _cfg("weak.model=/nonexistent/weak", "strong.model=/nonexistent/strong",
               "debate.model=smollm2-136m", "data.task=boolq", "data.path=/nonexistent/data.jsonl",
               tmp_path=tmp_path)
    with pytest.raises(ConfigError) as e:
        preflight(cfg)
    lines = str(e.value).splitlines()
    assert "4 problems" in lines[0]
    assert lines[1:] == [
        "  debate.model: 'smollm2-136m' is not an embedded model (known: minilm-l6, smollm2-135m), "
        "a local folder, nor a cached hub model",
        "  weak.model: model path '/nonexistent/weak' does not exist",
        "  strong.model: model path '/nonexistent/strong' does not exist",
        "  data.path: '/nonexistent/data.jsonl' does not exist",
    ]


def test_preflight_loads_nothing_and_is_quick(tmp_path):
    """The missing strong model used to surface only after every debate and weak member."""
    code = ("import sys, time; t = time.perf_counter()\n"
            "from w2s_base.config import load_config, ConfigError\nfrom w2s_run.services.preflight import preflight\n"
            f"cfg = load_config('configs/demo.yaml', ['output_dir={tmp_path}', 'strong.model=/nope'])\n"
            "try:\n    preflight(cfg)\nexcept ConfigError as e:\n    print(e)\n"
            "print(sorted(m for m in ('torch', 'transformers', 'debate', 'weak', 'strong', 'data') "
            "if m in sys.modules), round(time.perf_counter() - t, 1))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "strong.model: model path '/nope' does not exist" in r.stdout
    loaded, seconds = r.stdout.strip().splitlines()[-1].rsplit(" ", 1)
    assert loaded == "[]" and float(seconds) < 10


def test_the_shipped_cpu_configs_pass(tmp_path):
    for name in ("demo.yaml", "demo_table.yaml"):
        preflight(load_config(ROOT / "configs" / name, [f"output_dir={tmp_path}"]))


def test_only_the_stages_that_run_are_checked(tmp_path):
    bad = ["debate.model=nope-debater", "strong.model=nope-strong"]
    assert [k for k, _ in needed_models(_cfg(*bad))] == ["debate.model", "weak.model", "strong.model"]
    # without debates (--no-debate), or stopping after the weak stage
    assert [k for k, _ in needed_models(_cfg(*bad, "debate.enabled=false"), until="weak")] == ["weak.model"]
    # the audit trains the strong model's out-of-fold ceilings: --until audit needs it, --until weak not
    assert [k for k, _ in needed_models(_cfg(*bad, "debate.enabled=false"), until="audit")] == \
        ["weak.model", "strong.model"]
    preflight(_cfg(*bad, "debate.enabled=false", tmp_path=tmp_path), until="weak")
    # market-making trains the plain weak model before its debates, so --until debate needs it too
    mm = _cfg("weak.labellers=[{name: weak, models: [minilm-l6]}, {name: mm, protocol: market_making}]")
    assert needed_models(mm, until="debate") == [("weak.labellers[0].models[0]", "minilm-l6"),
                                                ("debate.model", "smollm2-135m")]
    # a vLLM server brings its own model; only its address is needed
    srv = _cfg("debate.backend=vllm_server", "debate.model=served-name", tmp_path=tmp_path)
    assert "debate.model" not in dict(needed_models(srv))
    with pytest.raises(ConfigError, match="debate.server_url: debate.backend vllm_server needs"):
        preflight(srv)


def test_local_model_folders(tmp_path):
    good = _model_dir(tmp_path / "good")
    assert check_model(str(good)) is None
    assert "has no config.json" in check_model(str(tmp_path))
    assert "has no weights" in check_model(str(_model_dir(tmp_path / "noweights", weights=False)))
    sharded = _model_dir(tmp_path / "sharded", weights=False)
    (sharded / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    (sharded / "model-00001-of-00002.safetensors").write_bytes(b"x")
    assert "lacks 1 of the 2 weight shards" in check_model(str(sharded))
    assert "is a file" in check_model(str(good / "config.json"))
    cfg = _cfg(f"weak.model={sharded}", tmp_path=tmp_path)
    with pytest.raises(ConfigError, match=r"weak.model: model folder .* lacks 1 of the 2 weight shards"):
        preflight(cfg)


def _fake_hub_cache(cache: Path, repo: str, weights: bool = True) -> None:
    folder = cache / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("abc123")
    _model_dir(folder / "snapshots" / "abc123", weights=weights)


def test_hub_ids_offline_must_be_cached(tmp_path, monkeypatch):
    from huggingface_hub import constants
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    _fake_hub_cache(cache, "org/cached")
    _fake_hub_cache(cache, "org/partial", weights=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    assert check_model("org/cached") is None
    assert check_model("org/not-cached") is None  # online: from_pretrained downloads it
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert check_model("org/cached") is None
    assert "is not in the local hub cache" in check_model("org/not-cached")
    assert "is in the hub cache but has no weights" in check_model("org/partial")
    cfg = _cfg("strong.model=org/not-cached", tmp_path=tmp_path)
    with pytest.raises(ConfigError, match="strong.model: 'org/not-cached' is neither a local folder nor "
                                          "usable from the hub.*HF_HUB_OFFLINE is set"):
        preflight(cfg)
    with pytest.raises(ModelNotFound, match="org/not-cached"):  # and at load time, without a lookup
        resolve_model("org/not-cached")


def test_embedded_models_are_checked_without_converting(tmp_path, monkeypatch):
    monkeypatch.setenv("W2SD_CACHE", str(tmp_path))  # no converted copy here
    assert check_model("minilm-l6") is None and check_model("smollm2-135m") is None
    assert not (tmp_path / "models").exists()  # nothing was converted
    _model_dir(tmp_path / "models" / "smollm2-135m", weights=False)  # a broken converted copy
    assert "delete that folder" in check_model("smollm2-135m")
    assert set(EMBEDDED) == {"minilm-l6", "smollm2-135m"}


def test_data_and_output_folder(tmp_path):
    (tmp_path / "afile").write_text("x")
    cfg = _cfg("data.task=boolq", f"data.path={tmp_path}", f"output_dir={tmp_path / 'afile' / 'runs'}")
    with pytest.raises(ConfigError) as e:
        preflight(cfg)
    assert f"data.path: '{tmp_path}' is not a file" in str(e.value)
    assert "output_dir: " in str(e.value) and "is a file" in str(e.value)


def test_vllm_backend_must_be_importable(tmp_path):
    import importlib.util
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    with pytest.raises(ConfigError, match="debate.backend: vllm needs vLLM, which is not importable"):
        preflight(_cfg("debate.backend=vllm", tmp_path=tmp_path))


# ------------------------------------------------------------ 3. config input errors
def _cli_error(capsys, *argv) -> str:
    assert run.main(list(argv)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("error: ")
    return err


def test_override_that_is_not_yaml_is_one_line_naming_it(tmp_path, capsys):
    err = _cli_error(capsys, "--config", "configs/demo.yaml", "--set", f"output_dir={tmp_path}",
                     "--set", "data.n_test=[1,")
    assert err.count("\n") == 1 and "override 'data.n_test=[1,'" in err and "not valid YAML" in err
    for bad in ("=3", "data..n_test=3", "noequals"):
        with pytest.raises(ConfigError, match="override"):
            load_config(None, [bad])
    with pytest.raises(ConfigError, match="override name.x: name is not a section"):
        load_config(ROOT / "configs" / "demo.yaml", ["name.x=3"])


@pytest.mark.parametrize("name", ["..", ".", ".hidden", "a/b", "../x", "-rf", "x" * 101])
def test_path_like_run_names_are_refused(tmp_path, capsys, name):
    out = tmp_path / "out"
    err = _cli_error(capsys, "--config", "configs/demo.yaml", "--set", f"output_dir={out}", f"--name={name}")
    assert "  name: " in err and "is not a plain folder name" in err
    assert not out.exists()  # nothing written anywhere
    with pytest.raises(ConfigError, match="name: .* is not a plain folder name"):
        load_config(ROOT / "configs" / "demo.yaml", [f"name={name}"])


def test_run_folder_must_not_land_in_the_sources(capsys):
    err = _cli_error(capsys, "--config", "configs/demo.yaml", "--set", f"output_dir={ROOT}", "--name", "debate")
    assert f"output_dir: the run folder {ROOT / 'debate'} (output_dir/name) is {ROOT / 'debate'}, " \
           "a source folder" in err
    err = _cli_error(capsys, "--config", "configs/demo.yaml", "--set", f"output_dir={ROOT.parent}",
                     "--name", ROOT.name)
    assert "is the repository root" in err
    for out in (ROOT / "w2s_base", ROOT / ".git", ROOT / "configs"):
        with pytest.raises(ConfigError, match="a source folder of this repository"):
            load_config(None, [f"output_dir={out}"])
    assert load_config(None, [f"output_dir={ROOT / 'runs'}"]).run_dir == ROOT / "runs" / "demo"


@pytest.mark.parametrize("override,key", [
    ("debate.sampling.top_p=7", "debate.sampling.top_p"),
    ("debate.sampling.max_new_tokens=-5", "debate.sampling.max_new_tokens"),
    ("debate.sampling.temperature=-1", "debate.sampling.temperature"),
    ("debate.sampling.topp=0.9", "debate.sampling.topp"),
])
def test_sampling_values_are_checked_by_key(override, key):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    lines = str(e.value).splitlines()
    assert len(lines) == 2 and lines[1].startswith(f"  {key}: ")


def test_sampling_error_through_the_cli(tmp_path, capsys):
    err = _cli_error(capsys, "--config", "configs/demo.yaml", "--set", f"output_dir={tmp_path}",
                     "--set", "debate.sampling.top_p=7")
    assert "debate.sampling.top_p: Input should be less than or equal to 1" in err


def test_config_file_problems_are_one_line(tmp_path, capsys):
    err = _cli_error(capsys, "--config", str(ROOT / "configs"))
    assert "is not a file" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  n_test: [1,\n")
    err = _cli_error(capsys, "--config", str(bad))
    assert err.count("\n") == 1 and "not valid YAML (line 3" in err
    (tmp_path / "ext.yaml").write_text("extends: [a.yaml]\n")
    with pytest.raises(ConfigError, match="extends must name one config file"):
        load_config(tmp_path / "ext.yaml")
    # an empty section is still a section for --set
    (tmp_path / "empty.yaml").write_text("debate:\n")
    assert load_config(tmp_path / "empty.yaml", ["debate.num_turns=4"]).debate.num_turns == 4


# ------------------------------------------------------------ the CLI, end to end
CFG = str(ROOT / "configs" / "demo.yaml")
TINY = ["--set", "data.n_weak_train=16", "--set", "data.n_transfer=16", "--set", "data.n_test=16",
        "--set", "weak.train.epochs=1", "--set", "weak.train.max_length=64"]


def test_cli_second_run_is_refused_naming_the_holder(tmp_path, capsys):
    holder = _start_holder(tmp_path / "busy")
    try:
        assert run.main(["--config", CFG, "--set", f"output_dir={tmp_path}", "--name", "busy"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"pid {holder.pid}" in err and "in use by another run" in err
        assert not (tmp_path / "busy" / "config.yaml").exists()  # the holder's config of record is untouched
    finally:
        holder.kill()
        holder.wait(10)


def test_cli_preflight_names_every_missing_model_before_anything_loads(tmp_path, capsys):
    assert run.main(["--config", CFG, "--set", f"output_dir={tmp_path}", "--set", "strong.model=/nope",
                     "--set", "weak.labellers=[{name: weak}, {name: d, protocol: debate, models: [minilm-l7]}]"]) == 2
    err = capsys.readouterr().err
    assert "strong.model: model path '/nope' does not exist" in err
    assert "weak.labellers[1].models[0]: 'minilm-l7' is not an embedded model" in err
    assert not (tmp_path / "demo").exists()  # refused before the run folder was made


def test_numeric_name_is_a_string(tmp_path):
    cfg = run.load(run.parse_args(["--config", CFG, "--name", "2024", "--set", f"output_dir={tmp_path}"]))
    assert cfg.name == "2024"


@pytest.mark.slow
def test_two_real_runs_at_once_then_resume_after_kill(tmp_path):
    args = [sys.executable, str(ROOT / "run.py"), "--config", CFG, "--name", "r", "--no-debate", "--until", "weak",
            "--set", f"output_dir={tmp_path}", *TINY]
    first = subprocess.Popen(args, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / "r" / LOCK_NAME
    for _ in range(600):  # wait (up to a minute) until the first run holds the folder
        if lock.exists() and lock.read_text().strip():
            break
        time.sleep(0.1)
    second = subprocess.run(args, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert second.returncode == 2, second.stderr
    assert f"pid {first.pid}" in second.stderr and "--name r" in second.stderr, second.stderr
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-3000:]
    assert lock.read_text() == ""
    import yaml
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["name"] == "r"
    # killed mid-run: the next run proceeds and says so
    p = subprocess.Popen(args + ["--set", "weak.train.epochs=2"], cwd=ROOT, env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(600):
        if lock.read_text().strip():
            break
        time.sleep(0.1)
    p.kill()
    p.wait(10)
    assert json.loads(lock.read_text())["pid"] == p.pid
    again = subprocess.run(args, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "was killed" in again.stdout
