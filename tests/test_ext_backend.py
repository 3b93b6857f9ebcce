"""A backend added in one new file (tests/extensions/toy_backend.py) runs the whole
pipeline; the registry validates its name and settings, and its declared
capabilities hold."""
import json

import pytest

import run
from factories import report_rows
from extensions import toy_backend  # noqa: F401  (registers the toy_echo backend)
from w2s_base.backend_specs import BACKENDS, backend_spec
from w2s_base.config import ConfigError, load_config

TINY = ["data.n_weak_train=8", "data.n_transfer=8", "data.n_test=8", "debate.chunk_size=48",
        "weak.train.epochs=1", "weak.train.max_length=96", "strong.train.epochs=2"]


def _run_toy(tmp_path, *argv: str):
    args = ["--config", "configs/demo.yaml", "--name", "toy", "--set", f"output_dir={tmp_path}",
            "--set", "debate.backend=toy_echo", "--set", "debate.toy_echo.prefix=Echo", *argv]
    for o in TINY:
        args += ["--set", o]
    assert run.main(args) == 0
    rd = tmp_path / "toy"
    transcripts = [json.loads(line) for line in (rd / "debate" / "transcripts.jsonl").read_text().splitlines()]
    assert len(transcripts) == 24 and all(t["error"] is None for t in transcripts)
    for t in transcripts:
        assert t["backend"] == "toy_echo" and len(t["turns"]) == 3
        assert all(turn["text"].startswith("Echo: reply ") for turn in t["turns"])
        # debate.scheduling is continuous (the default), but the toy declares it cannot:
        # its debates ran in turns, each turn of the chunk's 24 debates in one call
        assert t["scheduling"] == "turns"
        assert t["turns"][0]["text"].endswith(" of 24")
    # the config of record keeps the toy's settings section, and reads back
    assert load_config(rd / "config.yaml").debate.backend_settings.prefix == "Echo"
    return rd


def test_a_toy_backend_writes_the_debates(tmp_path):
    _run_toy(tmp_path, "--until", "debate")


@pytest.mark.slow
def test_a_toy_backend_runs_the_pipeline_end_to_end(tmp_path):
    rd = _run_toy(tmp_path)
    report = json.loads((rd / "report.json").read_text())
    assert report["n_test"] == 8
    assert {"weak+debate", "w2s[weak+debate|xent]"} <= set(report_rows(report))


def _problem_lines(overrides: list[str]) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_config(None, overrides)
    return str(e.value).splitlines()[1:]  # after "invalid config (defaults):"


def test_unknown_backend_or_setting_is_one_line_naming_the_key():
    [line] = _problem_lines(["debate.backend=toy_echoo"])
    assert line.startswith("  debate.backend: unknown debate backend 'toy_echoo' (registered: ")
    assert all(name in line for name in BACKENDS) and "toy_echo" in line
    assert _problem_lines(["debate.backend=toy_echo", "debate.toy_echo.prefx=x"]) == [
        "  debate.toy_echo.prefx: unknown key"]
    [line] = _problem_lines(["debate.toy_echo.prefix=''"])
    assert line.startswith("  debate.toy_echo.prefix: String should have at least 1 character")
    # only a registered backend's settings model opens a section under debate
    assert _problem_lines(["debate.vllm_server.url=x"]) == ["  debate.vllm_server: unknown key"]
    assert _problem_lines(["debate.toy_ech.prefix=x"]) == ["  debate.toy_ech: unknown key"]


def test_settings_default_when_the_section_is_absent():
    cfg = load_config(None, ["debate.backend=toy_echo"]).debate
    assert cfg.backend_settings == toy_backend.ToySettings()
    assert "toy_echo" not in cfg.model_dump()  # configs without the section dump as before
    assert load_config(None).debate.backend_settings is None  # transformers: historical keys


def test_declared_continuous_scheduling_matches_each_implementation():
    from debate.backends.base import ContinuousBackend
    from debate.backends.ray_data import RayDataBackend
    from debate.backends.transformers_backend import TransformersBackend
    from debate.backends.vllm_engine import VLLMEngineBackend, VLLMReplicaPool
    from debate.backends.vllm_server import VLLMServerBackend
    made_by = {"transformers": [TransformersBackend], "vllm": [VLLMEngineBackend, VLLMReplicaPool],
               "vllm_server": [VLLMServerBackend], "ray_data": [RayDataBackend],
               "toy_echo": [toy_backend.ToyBackend]}
    assert set(made_by) <= set(BACKENDS)
    for name, classes in made_by.items():
        for cls in classes:
            assert hasattr(cls, "generate_continuous") == backend_spec(name).continuous, (name, cls)
    toy = backend_spec("toy_echo").load_factory()(load_config(None, ["debate.backend=toy_echo"]).debate)
    assert not isinstance(toy, ContinuousBackend)
