"""Progress in batch logs (no terminal: nohup, slurm, CI): the stages write plain
progress lines to stderr at a steady cadence while they run, without control codes.
Each run is a subprocess whose stdout and stderr are pipes, as under nohup."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path[:0] = [{root!r}, {tests!r}]
    from w2s_base import console
    console.quiet_libraries({level!r})
    from w2s_base.config import DebateConfig
    from data.demo_task import make_demo_samples
    from debate.engine import DebateRunner
    from fake_backend import EchoBackend

    class SlowEcho(EchoBackend):
        '''Its fourth call (the first turn of the second chunk) lasts until the stage has written
        a progress line on its own (its heartbeat): a long chunk must show life.'''
        def generate(self, conversations, params, seeds):
            n = self.calls + 1
            print(f"CALL START {{n}}", file=sys.stderr, flush=True)
            if n == 4 and console._bar.lines:  # (quiet: no lines to wait for)
                bar, seen = console._bar, console._bar._last_line
                deadline = time.monotonic() + 60
                while bar._last_line == seen and time.monotonic() < deadline:
                    time.sleep(0.01)
            out = super().generate(conversations, params, seeds)
            print(f"CALL END {{n}}", file=sys.stderr, flush=True)
            return out

    samples = make_demo_samples(24, seed=0)
    DebateRunner(DebateConfig(prompts="terse", chunk_size=8, scheduling="turns"), Path({store!r}),
                 lambda: SlowEcho()).run(samples)
    print("STAGE END debate", file=sys.stderr, flush=True)
    with console.stage_progress("weak", total=4, unit="member"):
        for m in range(4):
            for step in range(5):
                console.now(f"member {{m}}: step {{step + 1}}/5")
            console.advance(f"member{{m}}")
    print("STAGE END weak", file=sys.stderr, flush=True)
""")


def _run(tmp_path, level="normal", **env):
    script = tmp_path / "stage.py"
    script.write_text(SCRIPT.format(root=str(ROOT), tests=str(ROOT / "tests"), level=level,
                                    store=str(tmp_path / "t.jsonl")))
    proc = subprocess.run([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          cwd=tmp_path, timeout=300, text=True,
                          env={**os.environ, "W2S_PROGRESS_SECONDS": "0.3", "W2S_PROGRESS_PERCENT": "10", **env})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, proc.stderr


def test_progress_lines_during_each_stage_without_control_codes(tmp_path):
    out, err = _run(tmp_path)
    assert "\x1b[" not in out + err and "\r" not in out + err
    lines = err.splitlines()
    end_debate, end_weak = lines.index("STAGE END debate"), lines.index("STAGE END weak")
    debate = [x for x in lines[:end_debate] if x.startswith("[debate] ")]
    # 24 debates x 3 turns in 3 chunks: a line per 10 % of the turns, at least
    assert len(debate) >= 10
    assert debate[0] == "[debate] started: 24 debates"
    assert any(x.startswith("[debate] 24/24 debates, 72/72 turns, 100%") for x in debate)
    # a first ETA only from finished work: none before the first turn came back
    for x in debate[1:]:
        assert (", 0/72 turns" in x) == ("ETA after the first finished turn" in x)
    # a line while a long turn of the second chunk ran (the heartbeat), naming where it is
    start, stop = lines.index("CALL START 4"), lines.index("CALL END 4")
    inside = [x for x in lines[start:stop] if x.startswith("[debate] ")]
    assert inside and all(x.endswith("now: chunk 2/3 (8 debates), turn 1/3") for x in inside)
    weak = [x for x in lines[end_debate:end_weak] if x.startswith("[weak] ")]
    assert weak[0] == "[weak] started: 4 members" and len(weak) >= 5
    assert weak[-1].startswith("[weak] 4/4 members, 100%")
    # the summaries go to stdout, as before
    assert "[debate] 24 debates: 24 done, 0 cached" in out and "[weak] 4 members: 4 trained, 0 cached" in out


def test_quiet_prints_no_progress_and_verbose_no_control_codes(tmp_path):
    out, err = _run(tmp_path, level="quiet")
    assert not [x for x in err.splitlines() if x.startswith("[")] and "[debate]" not in out
    (tmp_path / "verbose").mkdir()
    out, err = _run(tmp_path / "verbose", level="verbose")
    assert "\x1b[" not in out + err and "\r" not in out + err
    assert any(x.startswith("[weak] 4/4 members") for x in err.splitlines())
