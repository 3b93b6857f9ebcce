"""`extensions:` in a config: the one-file loss, protocol, backend and dataset of tests/extensions/
become usable by name from `run.py`, with no code outside their files. Each check runs
in a fresh process, where nothing has registered them yet."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
EXT = ROOT / "tests" / "extensions"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

SHOW = ("import sys; from w2s_base.config import load_config; "
        "c = load_config(sys.argv[1], sys.argv[2:]); "
        "print(c.strong.losses, [l.protocol for l in c.weak.labellers], c.debate.backend)")


def _load(cfg: Path, *overrides: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SHOW, str(cfg), *overrides], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=300)


def _write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def test_files_named_relative_to_the_config_register_their_extensions(tmp_path):
    folder = tmp_path / "cfgs"
    rel = [os.path.relpath(EXT / f, folder) for f in ("toy_loss.py", "toy_protocol.py", "toy_backend.py")]
    cfg = _write(folder / "run.yaml", {
        "extensions": rel,
        "strong": {"losses": ["xent", "smoothed_xent"]},
        "weak": {"labellers": [{"name": "weak"}, {"name": "talk", "protocol": "dialogue"}]},
        "debate": {"backend": "toy_echo"}})
    # run from elsewhere: the paths are the config file's, not the working directory's
    r = _load(cfg, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['xent', 'smoothed_xent'] ['none', 'dialogue'] toy_echo"


def test_without_the_extension_the_name_is_unknown(tmp_path):
    """The control: the same config without `extensions` is refused, so the test above
    measures the loading, not a registration left over from elsewhere."""
    cfg = _write(tmp_path / "run.yaml", {"strong": {"losses": ["xent", "smoothed_xent"]}})
    r = _load(cfg)
    assert r.returncode != 0 and "unknown loss 'smoothed_xent'" in r.stderr


def test_an_extension_given_on_the_command_line_is_relative_to_the_working_directory(tmp_path):
    cfg = _write(tmp_path / "run.yaml", {"strong": {"losses": ["smoothed_xent"]}})
    r = _load(cfg, "extensions=[extensions/toy_loss.py]", cwd=ROOT / "tests")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("['smoothed_xent']")


def test_a_dataset_in_one_file_is_read_by_name(tmp_path):
    cfg = _write(tmp_path / "run.yaml", {"extensions": [str(EXT / "toy_task.py")],
                                         "data": {"task": "toy_parity", "limit": 4}})
    code = ("import sys; from w2s_base.config import load_config; from data.source import samples_for; "
            "c = load_config(sys.argv[1]); print([(s.text, s.label) for s in samples_for(c.data)])")
    r = subprocess.run([sys.executable, "-c", code, str(cfg)], cwd=ROOT, env=ENV,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[('Number: 0.', 1), ('Number: 1.', 0), ('Number: 2.', 1), ('Number: 3.', 0)]"


def test_a_missing_or_broken_extension_is_one_line_from_run_py(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('this extension is broken')\n")
    for entry, says in (("nowhere.py", "is not a file"),
                        (str(broken), "RuntimeError: this extension is broken"),
                        ("no_such_module_xyz", "ModuleNotFoundError")):
        cfg = _write(tmp_path / "run.yaml", {"extensions": [entry]})
        r = subprocess.run([sys.executable, str(ROOT / "run.py"), "plan", "--config", str(cfg)],
                           cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1, r.stderr
        assert lines[0].startswith("error: extensions: ") and says in lines[0]
