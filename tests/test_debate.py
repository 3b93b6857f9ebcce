import json

import pytest

from w2s_base.config import DebateConfig
from data.demo_task import make_demo_samples
from debate.engine import DebateRunner, load_transcripts
from w2s_base.protocols import protocol
from fake_backend import EchoBackend


def runner(tmp_path, backend, **kw):
    cfg = DebateConfig(chunk_size=kw.pop("chunk_size", 4), **kw)
    return DebateRunner(cfg, tmp_path / "t.jsonl", lambda: backend)


def schedule(name, n):
    return protocol(name).schedule(n)


def test_schedule_is_the_papers_protocol():
    assert schedule("debate", 3) == [("A", "opening"), ("B", "counter"), ("A", "rebuttal")]
    assert [s for s, _ in schedule("debate", 5)] == ["A", "B", "A", "B", "A"]
    assert schedule("consultancy", 2) == [("A", "consult"), ("A", "consult")]


def test_turns_batched_sides_alternate_positions_random(tmp_path):
    samples = make_demo_samples(12)
    be = EchoBackend()
    out = runner(tmp_path, be, chunk_size=12).run(samples)
    assert len(out) == 12 and be.batch_sizes == [12, 12, 12]  # one call per turn
    a_labels = set()
    for (sid, k), t in out.items():
        assert [x.side for x in t.turns] == ["A", "B", "A"]
        assert t.turns[0].position_label == t.a_label and t.turns[1].position_label == 1 - t.a_label
        a_labels.add(t.a_label)
    assert a_labels == {0, 1}  # drawn per sample, both occur


def test_each_turn_sees_the_transcript_so_far(tmp_path):
    seen = []

    class Spy(EchoBackend):
        def generate(self, conversations, params, seeds):
            seen.append(conversations[0][-1]["content"])
            return super().generate(conversations, params, seeds)

    runner(tmp_path, Spy()).run(make_demo_samples(1))
    assert "echo<" not in seen[0] and "echo<" in seen[1] and seen[2].count("echo<") == 2


def test_rerun_skips_finished_debates(tmp_path):
    samples = make_demo_samples(6)
    runner(tmp_path, EchoBackend()).run(samples)
    be = EchoBackend()
    out = runner(tmp_path, be).run(samples)
    assert be.calls == 0 and len(out) == 6


def test_kill_mid_write_loses_and_duplicates_nothing(tmp_path):
    samples = make_demo_samples(8)
    runner(tmp_path, EchoBackend()).run(samples[:4])
    store = tmp_path / "t.jsonl"
    lines = store.read_text().splitlines()
    # simulate a kill: the last record torn in half
    store.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])
    be = EchoBackend()
    out = runner(tmp_path, be).run(samples)
    assert len(out) == 8
    # chunks are cut from the whole job list: the first chunk regenerates only the torn
    # debate (3 turns), the second holds the 4 new ones, as an uninterrupted run batches them
    assert be.batch_sizes == [1, 1, 1, 4, 4, 4]
    parsed = [json.loads(line)["key"] for line in store.read_text().splitlines()]  # the torn line is gone
    assert len(parsed) == 8 and len(set(parsed)) == 8  # nothing lost, nothing duplicated
    assert len(load_transcripts(store)) == 8


def test_prompt_change_changes_keys_and_recomputes(tmp_path):
    samples = make_demo_samples(3)
    a = runner(tmp_path, EchoBackend(), prompts="paper").run(samples)
    be = EchoBackend()
    b = runner(tmp_path, be, prompts="terse").run(samples)
    assert be.calls == 3
    for k in a:
        assert a[k].key != b[k].key and a[k].prompt_hash != b[k].prompt_hash
        assert a[k].turns[0].text != b[k].turns[0].text


def test_k_debates_per_sample(tmp_path):
    out = runner(tmp_path, EchoBackend()).run(make_demo_samples(4), num_debates=3)
    assert len(out) == 12
    assert len({t.key for t in out.values()}) == 12


def test_failed_debates_are_recorded_and_retried(tmp_path):
    samples = make_demo_samples(4)
    bad = samples[1].text
    out = runner(tmp_path, EchoBackend(fail_on=bad)).run(samples)
    assert len(out) == 3
    stored = load_transcripts(tmp_path / "t.jsonl")
    assert sum(not t.ok for t in stored.values()) == 1
    be = EchoBackend()
    out = runner(tmp_path, be).run(samples)
    assert len(out) == 4 and be.batch_sizes == [1, 1, 1]


@pytest.mark.slow
def test_real_debate_with_embedded_strong_model(tmp_path, strong_backend):
    samples = make_demo_samples(2)
    cfg = DebateConfig(prompts="paper")
    cfg.sampling.max_new_tokens = 16
    r = DebateRunner(cfg, tmp_path / "t.jsonl", lambda: strong_backend)
    out = r.run(samples)
    assert len(out) == 2
    for t in out.values():
        assert len(t.turns) == 3 and t.model == "smollm2-135m" and t.backend == "transformers"
        for x in t.turns:
            assert x.text.strip() and 0 < x.completion_tokens <= 16 and x.prompt_tokens > 50
            assert x.finish_reason in {"stop", "length"}
        # later turns see longer prompts: the transcript so far is in them
        assert t.turns[2].prompt_tokens > t.turns[0].prompt_tokens
    rec = json.loads((tmp_path / "t.jsonl").read_text().splitlines()[0])
    for field in ("model", "prompt_hash", "sampling", "seed", "a_label", "turns"):
        assert field in rec


def test_market_making_argues_the_side_given_and_needs_it(tmp_path):
    samples = make_demo_samples(6)
    r = runner(tmp_path, EchoBackend(), consult_turns=2)
    with pytest.raises(ValueError, match="market_making"):
        r.run(samples, "market_making")
    fixed = {s.id: i % 2 for i, s in enumerate(samples)}
    out = r.run(samples, "market_making", fixed_a_labels=fixed)
    for (sid, _), t in out.items():
        assert t.a_label == fixed[sid] and [x.side for x in t.turns] == ["A", "A"]
        assert all(x.role == "consult" and x.position_label == fixed[sid] for x in t.turns)
    flipped = {k: 1 - v for k, v in fixed.items()}
    be = EchoBackend()
    again = runner(tmp_path, be, consult_turns=2).run(samples, "market_making", fixed_a_labels=flipped)
    assert sum(be.batch_sizes) == 12  # other positions are other debates: all 6 x 2 turns regenerated
    assert all(again[k].key != out[k].key for k in out)


def test_protocols_share_one_store_under_distinct_keys(tmp_path):
    samples = make_demo_samples(3)
    be = EchoBackend()
    r = runner(tmp_path, be)
    deb = r.run(samples, "debate")
    con = r.run(samples, "consultancy")
    assert all(t.protocol == "consultancy" and len(t.turns) == 1 for t in con.values())
    assert all(len(t.turns) == 3 for t in deb.values())
    assert not {t.key for t in deb.values()} & {t.key for t in con.values()}
    n = sum(be.batch_sizes)
    assert runner(tmp_path, be).run(samples, "consultancy").keys() == con.keys()
    assert sum(be.batch_sizes) == n  # both stored, nothing regenerated


def test_missing_template_for_any_protocol_fails_before_generating(tmp_path):
    import yaml

    from debate.prompts import BUILTIN_DIR, PromptError
    spec = yaml.safe_load((BUILTIN_DIR / "terse" / "prompts.yaml").read_text())
    del spec["instructions"]["consult"]
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "prompts.yaml").write_text(yaml.safe_dump(spec))
    cfg = DebateConfig(prompts=str(tmp_path / "p"))
    DebateRunner(cfg, tmp_path / "t.jsonl", lambda: EchoBackend(), protocols=("debate",))
    with pytest.raises(PromptError, match="consult"):
        DebateRunner(cfg, tmp_path / "t.jsonl", lambda: EchoBackend(), protocols=("debate", "consultancy"))


@pytest.mark.parametrize("kill_after", [1, 4, 7])
def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path, kill_after):
    """Seeds derive from what a debate is (sample, k, turn), never from its place in
    the pending work: kill the stage at several points, resume, and every transcript
    equals the uninterrupted run's, text for text."""
    from fake_backend import SeededBackend
    samples = make_demo_samples(10)
    whole = runner(tmp_path / "whole", SeededBackend(), chunk_size=3).run(samples, num_debates=2)
    with pytest.raises(KeyboardInterrupt):
        runner(tmp_path / "killed", SeededBackend(fail_after_calls=kill_after), chunk_size=3).run(
            samples, num_debates=2)
    resumed = runner(tmp_path / "killed", SeededBackend(), chunk_size=3).run(samples, num_debates=2)
    assert resumed.keys() == whole.keys()
    for key, t in whole.items():
        assert [x.text for x in resumed[key].turns] == [x.text for x in t.turns], key
    texts = {x.text for t in whole.values() for x in t.turns}
    assert len(texts) == 60  # every turn drew its own seed


@pytest.mark.parametrize("order_seed", [0, 1, 2])
def test_continuous_scheduling_gives_the_debates_the_turn_barrier_gives(tmp_path, order_seed):
    """With per-request seeds a debate's text depends on (sample, k, turn) only, so the
    scheduler must not change it: replies arriving in any order (continuous) give the
    transcripts the per-turn barrier gives, each turn in its debate's own order, and
    no more than chunk_size debates are in progress at once."""
    from fake_backend import ContinuousSeededBackend, SeededBackend
    samples = make_demo_samples(7)
    turns = runner(tmp_path / "turns", SeededBackend(), chunk_size=3, scheduling="turns").run(
        samples, num_debates=2)
    be = ContinuousSeededBackend(order_seed)
    cont = runner(tmp_path / "cont", be, chunk_size=3).run(samples, num_debates=2)
    assert be.continuous_calls == 1 and be.most_live == 3
    assert cont.keys() == turns.keys()
    for key, t in turns.items():
        c = cont[key]
        assert c.scheduling == "continuous" and t.scheduling == "turns"
        assert c.key == t.key  # the scheduler is not part of what a debate is
        assert [(x.index, x.side, x.role, x.text) for x in c.turns] == [
            (x.index, x.side, x.role, x.text) for x in t.turns]
    stored = load_transcripts(tmp_path / "cont" / "t.jsonl")
    assert set(stored) == {t.key for t in cont.values()}


@pytest.mark.parametrize("kill_after", [2, 9, 20])
def test_a_killed_continuous_run_keeps_every_finished_debate_and_resumes(tmp_path, kill_after):
    """Continuous scheduling saves each debate the moment it ends: a kill loses only
    the debates in progress, and the resumed run equals an uninterrupted one."""
    from fake_backend import ContinuousSeededBackend
    samples = make_demo_samples(8)
    whole = runner(tmp_path / "whole", ContinuousSeededBackend(), chunk_size=3).run(samples)
    with pytest.raises(KeyboardInterrupt):
        runner(tmp_path / "killed", ContinuousSeededBackend(fail_after_calls=kill_after),
               chunk_size=3).run(samples)
    saved = load_transcripts(tmp_path / "killed" / "t.jsonl")
    # Every saved debate is complete, and as many are saved as had ended at the kill.
    assert all(len(t.turns) == 3 and t.ok for t in saved.values())
    assert len(saved) >= (kill_after - 3 * 2) // 3
    be = ContinuousSeededBackend()
    resumed = runner(tmp_path / "killed", be, chunk_size=3).run(samples)
    assert be.calls == 3 * (len(samples) - len(saved))  # only the unsaved ones ran
    assert {k: [x.text for x in t.turns] for k, t in resumed.items()} == {
        k: [x.text for x in t.turns] for k, t in whole.items()}


def test_backends_without_continuous_scheduling_run_in_turns(tmp_path):
    be = EchoBackend()
    out = runner(tmp_path, be, chunk_size=5).run(make_demo_samples(5))
    assert be.batch_sizes == [5, 5, 5]  # the default asks for continuous; echo cannot
    assert {t.scheduling for t in out.values()} == {"turns"}
