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


# loss:batch:accum. Batch 7 splits 4 + 3 over two processes: uneven shares must be
# weighted by their rows. logconf's threshold is a statistic of the whole optimiser batch.
SPECS = ["xent:8:2", "xent:7:1", "xent:7:2", "logconf:8:1", "logconf:8:2", "logconf:7:1", "logconf:7:2"]


def test_two_process_fit_equals_one_process_full_batch_fit(tmp_path):
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    subprocess.run([sys.executable, "tests/ddp_fit_check.py", str(one), *SPECS], cwd=ROOT, env=_env(),
                   check=True)
    r = _torchrun(["tests/ddp_fit_check.py", str(two), *SPECS], timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    ones, twos = json.loads(one.read_text()), json.loads(two.read_text())
    for spec in SPECS:
        a, b, full = ones[spec], twos[spec], ones[spec]["full"]
        assert (a["world"], b["world"]) == (1, 2) and a["steps"] == b["steps"] == full["steps"], spec
        # the split batch (accumulation, processes, both) trains as the whole batch in one piece
        for run in (a, b):
            np.testing.assert_allclose(run["weight"], full["weight"], atol=1e-5, err_msg=spec)
            np.testing.assert_allclose(run["bias"], full["bias"], atol=1e-5, err_msg=spec)
            # the history is the whole batch's loss, also on the main process of two
            np.testing.assert_allclose(run["history"], full["history"], atol=1e-5, err_msg=spec)
        assert np.abs(full["weight"]).sum() > 0.1, spec  # it did train


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
    from factories import report_rows
    assert set(report_rows(report)) >= {"weak", "weak+debate", "ceiling"}
    assert len((rd / "debate" / "transcripts.jsonl").read_text().splitlines()) == 48  # generated once
    assert len((rd / "weak" / "weak_debate" / "labels.jsonl").read_text().splitlines()) == 16
    assert (rd / "weak" / "members" / "debate" / "minilm-l6" / "seed0-debate0" / "adapter").is_dir()
