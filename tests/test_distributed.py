"""DDP through accelerate, for real: two CPU processes (gloo) under torchrun, the
launcher `accelerate launch --multi_gpu` uses on GPUs."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
pytestmark = pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed")


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


def _torchrun(args, **kw):
    return subprocess.run([TORCHRUN, "--standalone", "--nproc_per_node", "2", *args],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, **kw)


def test_two_process_fit_equals_one_process_fit(tmp_path):
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    subprocess.run([sys.executable, "tests/ddp_fit_check.py", str(one)], cwd=ROOT, env=_env(), check=True)
    r = _torchrun(["tests/ddp_fit_check.py", str(two)], timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert (a["world"], b["world"]) == (1, 2) and a["steps"] == b["steps"]
    # each process took half of every batch; averaged gradients give the same steps
    np.testing.assert_allclose(a["weight"], b["weight"], atol=1e-5)
    np.testing.assert_allclose(a["bias"], b["bias"], atol=1e-5)
    assert np.abs(a["weight"]).sum() > 0.1  # it did train


@pytest.mark.slow
def test_pipeline_under_torchrun_writes_once(tmp_path):
    args = ["run.py", "--config", "configs/demo.yaml", "--name", "ddp",
            "--set", f"output_dir={tmp_path}"]
    for o in ["data.n_weak_train=16", "data.n_transfer=16", "data.n_test=16",
              "debate.sampling.max_new_tokens=4", "debate.num_turns=2", "debate.chunk_size=48",
              "debate.batch_size=48", "weak.train.epochs=1", "weak.train.max_length=64",
              "weak.train.batch_size=8", "strong.train.epochs=3"]:
        args += ["--set", o]
    r = _torchrun(args, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("[report]") == 1  # only the main process reports
    rd = tmp_path / "ddp"
    report = json.loads((rd / "report.json").read_text())
    assert {x["row"] for x in report["rows"]} >= {"weak", "weak+debate", "ceiling"}
    assert len((rd / "debate" / "transcripts.jsonl").read_text().splitlines()) == 48  # generated once
    assert len((rd / "weak" / "weak_debate" / "labels.jsonl").read_text().splitlines()) == 16
    assert (rd / "weak" / "members" / "debate" / "minilm-l6" / "seed0-debate0" / "adapter").is_dir()
