"""The inspect_ai export (w2s_run/report/inspect_export.py): logs read back through inspect's
own API, and `inspect view` serving them."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("inspect_ai", reason='inspect_ai is not installed (optional: pip install -e ".[inspect]")')

from inspect_ai.log import read_eval_log  # noqa: E402

from w2s_base.runfolder.layout import RunLayout  # noqa: E402
from factories import make_transcript  # noqa: E402
from w2s_run.report import ReportError  # noqa: E402
from w2s_run.report.inspect_export import export_inspect, safe_id, sample_ids, shard  # noqa: E402
from weak.labels import LabellerResult  # noqa: E402
from debate.prompts import load_prompt_set  # noqa: E402
from debate.engine import turn_variables  # noqa: E402

SPLITS = {"weak_train": ["w1", "w2", "w3"], "transfer": ["t1", "t2", "odd/id"], "test": ["x1", "x2"]}
MAX = 2  # samples per log: forces parts


TERSE = load_prompt_set("terse")
STALE = "x1"  # its debate says it was made with a version of "terse" that no longer exists


def _transcripts():
    ts = [t.model_copy(update={"prompt_hash": "0ld0ld" if (t.sample_id, t.protocol) == (STALE, "debate")
                               else TERSE.hash}) for t in _raw_transcripts()]
    return ts


def _raw_transcripts():
    ts = []
    for split, ids in SPLITS.items():
        for i, sid in enumerate(ids):
            gold, a = i % 2, (i + 1) % 2
            ts.append(make_transcript(sid, [f"{sid} A opens.", f"{sid} B counters.", f"{sid} A rebuts."],
                                      gold=gold, a_label=a, sample_text=f"Text of {sid}.", key=f"debate-{sid}-0"))
            ts.append(make_transcript(sid, [f"{sid} consultant argues."], protocol="consultancy",
                                      gold=gold, a_label=a, sample_text=f"Text of {sid}.",
                                      key=f"consultancy-{sid}-0"))
    # a second debate on t1 (epoch 2), and a failed one that must not appear
    ts.append(make_transcript("t1", ["t1 k1 A.", "t1 k1 B."], k=1, gold=0, a_label=0, sample_text="Text of t1.",
                              key="debate-t1-1"))
    ts.append(make_transcript("x2", ["never finished"], k=1, key="failed-x2", error="backend timeout"))
    return ts


def _labellers():
    return [
        LabellerResult(name="weak", protocol="none", aggregate="mean", members=["seed0"],
                       transfer_p1={"t1": 0.2, "t2": 0.8, "odd/id": 0.6},
                       test_p1={"x1": 0.1, "x2": 0.7}, member_test_p1={"seed0": {"x1": 0.1, "x2": 0.7}}),
        LabellerResult(name="weak+debate", protocol="debate", aggregate="mean", members=["seed0-debate0"],
                       transfer_p1={"t1": 0.9}, test_p1={"x1": 0.4},
                       member_test_p1={"seed0-debate0": {"x1": 0.4}}),
    ]


def _write_run(tmp_path: Path) -> RunLayout:
    layout = RunLayout(tmp_path / "myrun")
    layout.transcripts.parent.mkdir(parents=True)
    layout.transcripts.write_text("".join(json.dumps(t.model_dump()) + "\n" for t in _transcripts()))
    layout.splits.write_text(json.dumps(SPLITS))
    for lab in _labellers():
        layout.labeller_json(lab.name).parent.mkdir(parents=True)
        layout.labeller_json(lab.name).write_text(lab.model_dump_json())
    torn = layout.root / "weak" / "torn" / "labeller.json"  # a killed run's file: skipped
    torn.parent.mkdir(parents=True)
    torn.write_text('{"name": "torn", "transf')
    return layout


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    layout = _write_run(tmp_path_factory.mktemp("run"))
    return layout, export_inspect(layout, max_samples_per_log=MAX)


def test_one_log_per_protocol_and_split_in_parts(exported):
    layout, files = exported
    assert all(f.parent == layout.root / "inspect" and f.suffix == ".eval" for f in files)
    names = [f.name for f in files]
    # debate/transfer holds odd_id, t1 (2 debates), t2: t1's epochs stay together in one part
    assert names == [
        "myrun_consultancy_weak_train_001.eval", "myrun_consultancy_weak_train_002.eval",
        "myrun_consultancy_transfer_001.eval", "myrun_consultancy_transfer_002.eval",
        "myrun_consultancy_test_001.eval",
        "myrun_debate_weak_train_001.eval", "myrun_debate_weak_train_002.eval",
        "myrun_debate_transfer_001.eval", "myrun_debate_transfer_002.eval",
        "myrun_debate_transfer_003.eval", "myrun_debate_test_001.eval",
    ]
    counts = {f.name: len(read_eval_log(f).samples) for f in files}
    assert all(0 < n <= MAX for n in counts.values())
    assert [counts[f"myrun_debate_transfer_00{i}.eval"] for i in (1, 2, 3)] == [1, 2, 1]
    assert {s.id for s in read_eval_log(layout.root / "inspect" / "myrun_debate_transfer_002.eval").samples} == {"t1"}
    assert counts["myrun_debate_test_001.eval"] == 2  # x2's failed second debate is left out
    assert sum(counts.values()) == 2 * 8 + 1  # every successful transcript, once
    assert sorted(f.name for f in (layout.root / "inspect").iterdir()) == sorted(names)  # no temp files


def _by_key(files):
    out = {}
    for f in files:
        log = read_eval_log(f, resolve_attachments=True)
        for s in log.samples:
            out[s.metadata["transcript_key"]] = (log, s)
    return out


def test_every_turn_in_order_with_speaker_metadata(exported):
    _, files = exported
    got = _by_key(files)
    for t in _transcripts():
        if not t.ok:
            assert t.key not in got
            continue
        log, s = got[t.key]
        assert (log.eval.metadata["protocol"], log.eval.metadata["split"]) == (
            t.protocol, next(k for k, v in SPLITS.items() if t.sample_id in v))
        assert s.id == safe_id(t.sample_id) and "/" not in s.id
        assert s.epoch == t.debate_index + 1
        assert s.input == t.sample_text
        assert s.target == t.positions[t.gold_label] and s.metadata["gold_label"] == t.gold_label
        rendered = t.prompt_hash == TERSE.hash
        msgs = list(s.messages)
        if rendered:  # the debaters' system prompt leads
            system = msgs.pop(0)
            assert system.role == "system" and system.text == TERSE.spec.system.strip()
        first, rest = msgs[0], msgs[1:]
        assert first.role == "user" and first.text == t.sample_text
        instructions, turns = rest[0::2], rest[1::2]
        assert [m.role for m in instructions] == ["user"] * len(t.turns)
        assert [m.role for m in turns] == ["assistant"] * len(t.turns)
        assert [m.text for m in turns] == [x.text for x in t.turns]
        events = [e for e in s.events if e.event == "model"]
        assert len(events) == (len(t.turns) if rendered else 0)
        for i, (ins, m, x) in enumerate(zip(instructions, turns, t.turns)):
            speaker = ({"A": "Debater A", "B": "Debater B"}[x.side] if t.protocol == "debate" else "Consultant")
            assert m.metadata["speaker"] == ins.metadata["speaker"] == speaker and m.model == t.model
            assert ins.text.startswith(f"{speaker} · turn {i + 1} of {t.num_turns} · {x.role}: ")
            assert m.metadata["argues"] == t.positions[x.position_label]
            assert m.metadata["argues_gold"] == (x.position_label == t.gold_label)
            if rendered:  # the exact request, re-rendered, with the speaker as inspect's model role
                system, context, instruction = TERSE.parts(x.role, turn_variables(t, x.side, i))
                assert ins.text.endswith(instruction) and instruction
                ev = events[i]
                assert ev.role == speaker and ev.model == t.model
                assert [(mm.role, mm.text) for mm in ev.input] == [
                    ("system", system), ("user", context + "\n\n" + instruction)]
                assert ev.output.completion == x.text
                assert (ev.output.usage.input_tokens, ev.output.usage.output_tokens) == (
                    x.prompt_tokens, x.completion_tokens)
        assert ("not shown" in s.metadata["prompts"]) == (not rendered)
        assert set(s.role_usage) == {speaker_of(t, x.side) for x in t.turns}
        assert set(log.eval.model_roles) >= set(s.role_usage)
        md = s.metadata
        assert md["sample_id"] == t.sample_id and md["a_label"] == t.a_label and md["control"] is None
        assert (md["model"], md["backend"], md["prompt_set"], md["prompt_hash"], md["seed"]) == (
            t.model, t.backend, t.prompt_set, t.prompt_hash, t.seed)
        assert md["sampling"] == t.sampling.model_dump()
        assert log.eval.viewer.trust_content is False  # model text is shown as plain text


def speaker_of(t, side):
    return {"A": "Debater A", "B": "Debater B"}[side] if t.protocol == "debate" else "Consultant"


def test_scores_per_labeller(exported):
    _, files = exported
    labs = {lab.name: {**lab.transfer_p1, **lab.test_p1} for lab in _labellers()}
    for log, s in _by_key(files).values():
        sid, gold = s.metadata["sample_id"], s.metadata["gold_label"]
        expected = {name for name, p in labs.items() if sid in p}  # weak_train samples: no prediction, no score
        assert set(s.scores or {}) == expected
        for name in expected:
            score, p1 = s.scores[name], labs[name][sid]
            assert score.metadata["p1"] == p1
            assert score.value == ("C" if int(p1 >= 0.5) == gold else "I")
            assert score.answer == s.metadata["positions"][int(p1 >= 0.5)]
        # the reference labeller leads: the log list's "Score" column shows its accuracy
        names = [es.name for es in log.results.scores]
        assert names == sorted(names, key=lambda n: (n != "weak", n))
        # the log's accuracy per labeller is over its distinct samples
        for es in log.results.scores:
            vals = {x.metadata["sample_id"]: x.scores[es.name].value
                    for x in log.samples if x.scores and es.name in x.scores}
            assert es.metrics["accuracy"].value == sum(v == "C" for v in vals.values()) / len(vals)


def test_ids_unique_per_log_controls_and_collisions():
    a = make_transcript("a/b", key="k1")
    b = make_transcript("a_b", key="k2")                       # collides with a/b once "/" is replaced
    c = make_transcript("s", key="k3")
    d = make_transcript("s", key="k4", control="positive:0.9")   # a control transcript of the same debate
    ids = sample_ids([a, b, c, d])
    assert ids["k3"] == "s" and ids["k4"] == "s~positive_0_9"
    assert ids["k1"] != ids["k2"] and all("/" not in i for i in ids.values())
    assert len(set(ids.values())) == 4


def test_shard_keeps_a_samples_epochs_together():
    assert shard([[1], [2, 3], [4]], 2) == [[1], [2, 3], [4]]
    assert shard([[1], [2], [3]], 2) == [[1, 2], [3]]
    assert shard([[1, 2, 3, 4, 5]], 2) == [[1, 2], [3, 4], [5]]


def test_rerun_removes_stale_parts_and_needs_splits(tmp_path):
    layout = _write_run(tmp_path)
    out = tmp_path / "elsewhere"
    many = export_inspect(layout, out, max_samples_per_log=1)
    (out / "notes.eval").write_text("not ours")  # a file of someone else's: kept
    few = export_inspect(layout, out, max_samples_per_log=1000)
    assert len(few) == 6 < len(many) == 17
    assert sorted(out.glob("*.eval")) == sorted(few + [out / "notes.eval"])
    layout.splits.unlink()
    with pytest.raises(ReportError, match="splits"):
        export_inspect(layout)


def test_missing_inspect_gives_the_install_hint(monkeypatch):
    import builtins
    real = builtins.__import__

    def no_inspect(name, *args, **kwargs):
        if name.startswith("inspect_ai"):
            raise ImportError("No module named 'inspect_ai'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_inspect)
    with pytest.raises(ImportError) as e:
        export_inspect(RunLayout(Path("nowhere")))
    assert str(e.value).count("\n") == 0 and 'pip install -e ".[inspect]"' in str(e.value)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


def test_inspect_view_lists_the_logs(exported, tmp_path):
    layout, files = exported
    inspect_bin = Path(sys.executable).with_name("inspect")
    cmd = ([str(inspect_bin)] if inspect_bin.exists() else [sys.executable, "-m", "inspect_ai"])
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "view.log").open("wb")
    proc = subprocess.Popen(cmd + ["view", "start", "--log-dir", str(layout.root / "inspect"),
                                   "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "INSPECT_LOG_DIR": str(layout.root / "inspect")})
    try:
        deadline, listing = time.monotonic() + 60, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, body = _get(f"{base}/api/logs")
                if status == 200:
                    listing = json.loads(body)
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        assert listing is not None, (f"inspect view did not answer on {base} (exit {proc.poll()}): "
                                     + (tmp_path / "view.log").read_text(errors="replace")[-2000:])
        listed = {Path(e["name"].removeprefix("file://")).name: e for e in listing["files"]}
        assert set(listed) == {f.name for f in files}
        # the viewer hides all but the newest of the logs sharing a task_id (as retries)
        assert len({e["task_id"] for e in listed.values()}) == len(files)
        # the server reads our logs too: one whole log through its API
        status, body = _get(f"{base}/api/logs/{urllib.parse.quote(listed[files[0].name]['name'], safe='')}")
        served = json.loads(body)
        assert status == 200 and served["eval"]["task"] == "consultancy_weak_train_001"
        assert len(served["samples"]) == len(read_eval_log(files[0]).samples)
        status, page = _get(base + "/")
        assert status == 200 and b"<html" in page.lower()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def test_the_logged_prompts_are_the_ones_the_debaters_were_sent(tmp_path):
    """Debates run by the engine (a fake backend that echoes the last line of the prompt
    it receives), exported: every turn's logged request ends with the line the backend
    echoed, so the re-rendered prompt is the one sent; times are each debate's own."""
    from data.demo_task import make_demo_samples
    from debate.engine import DebateRunner, load_transcripts
    from fake_backend import ContinuousSeededBackend, EchoBackend
    from w2s_base.config import DebateConfig

    samples = make_demo_samples(6, seed=0)
    layout = RunLayout(tmp_path / "e2e")
    layout.transcripts.parent.mkdir(parents=True)
    DebateRunner(DebateConfig(prompts="terse", chunk_size=4, scheduling="turns"), layout.transcripts,
                 lambda: EchoBackend()).run(samples)
    layout.splits.write_text(json.dumps({"weak_train": [], "transfer": [s.id for s in samples], "test": []}))
    (layout.root / "config.yaml").write_text("debate:\n  prompts: terse\n")
    stored = {t.key: t for t in load_transcripts(layout.transcripts).values()}
    files = export_inspect(layout)
    logs = [read_eval_log(f, resolve_attachments=True) for f in files]
    got = [s for log in logs for s in log.samples]
    assert len(got) == len(samples)
    for s in got:
        t = stored[s.metadata["transcript_key"]]
        events = [e for e in s.events if e.event == "model"]
        assert len(events) == t.num_turns
        for ev, turn in zip(events, t.turns):
            last = ev.input[-1].text.strip().splitlines()[-1]
            assert ev.output.completion == turn.text == f"echo<{last}>"
            assert ev.working_time == turn.seconds is not None
        assert s.total_time == (t.seconds or None) and s.metadata["scheduling"] == "turns"
        assert s.started_at is not None and s.completed_at >= s.started_at
    log = logs[0]
    assert log.stats.started_at == min(s.started_at for s in got)
    assert log.stats.completed_at == max(s.completed_at for s in got)
    assert log.stats.completed_at > log.stats.started_at or all(t.seconds < 1e-3 for t in stored.values())
    # with continuous scheduling the debates are timed one by one, each from its own first request
    runner = DebateRunner(DebateConfig(prompts="terse", chunk_size=2, seed=1), layout.transcripts,
                          lambda: ContinuousSeededBackend(order_seed=3))
    out = runner.run(samples)
    assert all(t.scheduling == "continuous" and t.started_at is not None for t in out.values())
    # its turns' request times are disjoint stretches of its own span (rounded to 1 ms each)
    assert all(sum(x.seconds for x in t.turns) <= t.seconds + 1e-3 * len(t.turns) for t in out.values())


def test_the_view_command(exported):
    from w2s_run.report.inspect_export import view_command
    layout, files = exported
    assert view_command(files) == f"inspect view --log-dir {layout.root / 'inspect'}"


def test_mislead_prompts_and_quote_grades_in_the_export(tmp_path):
    """Debates of a run with debate.mislead (rate 1: every transfer debate's wrong side is
    told), run by the engine with the echo fake, plus a quoted debate whose grades the weak
    stage's writer recorded: the export re-renders the mislead instruction where it was
    sent and nowhere else, labels the control, and carries each quote's grade."""
    from data.demo_task import make_demo_samples
    from debate.engine import DebateRunner, load_transcripts, misleads
    from debate.quotes import QuoteCheck, TranscriptQuotes
    from fake_backend import EchoBackend
    from w2s_base.config import DebateConfig
    from weak.stage import write_quote_grades

    samples = make_demo_samples(6, seed=0)
    layout = RunLayout(tmp_path / "mis")
    layout.transcripts.parent.mkdir(parents=True)
    DebateRunner(DebateConfig(prompts="terse", chunk_size=4, scheduling="turns", mislead={"rate": 1.0}),
                 layout.transcripts, lambda: EchoBackend()).run(samples, honest=frozenset({samples[0].id}))
    passage = "the quick brown fox jumps over the lazy dog near the river bank today"
    quoted = make_transcript("q1", ["<quote>lazy dog near the river</quote> and <quote>a purple cow</quote>",
                                    "<quote>the quick brown fox leaps over the lazy dog near the river</quote>"],
                             sample_text=passage, key="quoted-q1", prompt_hash=TERSE.hash)
    with layout.transcripts.open("a") as f:
        f.write(quoted.model_dump_json() + "\n")
    layout.quote_grades.parent.mkdir(parents=True)
    write_quote_grades(layout.quote_grades, {"debate": [TranscriptQuotes.of("debate", quoted, QuoteCheck(passage, 0.9))]})
    layout.splits.write_text(json.dumps({"weak_train": [samples[0].id], "transfer": [s.id for s in samples[1:]] + ["q1"],
                                         "test": []}))
    (layout.root / "config.yaml").write_text("debate:\n  prompts: terse\n")
    stored = {t.key: t for t in load_transcripts(layout.transcripts).values()}
    got = {s.metadata["transcript_key"]: s for f in export_inspect(layout)
           for s in read_eval_log(f, resolve_attachments=True).samples}
    assert len(got) == len(samples) + 1
    told_turns = 0
    for key, s in got.items():
        t = stored[key]
        if key == "quoted-q1":
            assert s.metadata["quote_grades"] == [["verified", "unverified"], ["fuzzy"]]
            assert s.metadata["quotes"] == {"verified": 1, "fuzzy": 1, "unverified": 1}
            replies = [m for m in s.messages if m.role == "assistant"]
            assert [m.metadata["quote_grades"] for m in replies] == [["verified", "unverified"], ["fuzzy"]]
            assert "label" not in s.metadata
            continue
        assert "quote_grades" not in s.metadata  # not graded: nothing claimed
        assert s.metadata["label"] == "[CONTROL]" and s.metadata["deceptive"] is (t.sample_id != samples[0].id)
        assert s.metadata.get("mislead_hash") == t.mislead_hash
        events = [e for e in s.events if e.event == "model"]
        assert len(events) == t.num_turns  # re-rendered: the set's mislead.jinja is the one recorded
        for ev, turn in zip(events, t.turns):
            last = ev.input[-1].text.strip().splitlines()[-1]
            assert ev.output.completion == turn.text == f"echo<{last}>"  # the prompt the debater was sent
            told = misleads(t, turn.side)
            assert last.startswith("Secret:") is told
            told_turns += told
    assert told_turns > 0
