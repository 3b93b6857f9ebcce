"""debate.mislead: on a seeded share of transfer/test debates the wrong side's debater
gets the prompt set's mislead instruction; recorded per transcript, keyed, reproducible."""
from __future__ import annotations

import shutil

import pytest
from pydantic import ValidationError

from w2s_base.config import DebateConfig, MisleadConfig
from data.demo_task import make_demo_samples
from debate.controls import deception_draw
from debate.engine import DebateRunner, load_transcripts, misleads
from debate.prompts import BUILTIN_DIR, MISLEAD_FILE, PromptError, prompts_for
from fake_backend import EchoBackend

MARK = "MISLEAD-MARKER"
RATE = 0.4


class Spy(EchoBackend):
    """Echo, recording every request's user message."""

    def __init__(self):
        super().__init__()
        self.users: list[str] = []

    def generate(self, conversations, params, seeds):
        self.users += [c[-1]["content"] for c in conversations]
        return super().generate(conversations, params, seeds)


def told_in(user: str) -> bool:
    """Whether a request's own instruction (its last line) is the mislead one; the echo
    fake repeats last lines, so the marker also shows up in later turns' context."""
    return user.splitlines()[-1].startswith(MARK)


def marked_set(tmp_path, text=f"{MARK} " + '"{{ my_position }}"'):
    """The paper set with a mislead instruction that names itself and the side's position."""
    d = tmp_path / "marked"
    d.mkdir(exist_ok=True)
    shutil.copy(BUILTIN_DIR / "paper" / "prompts.yaml", d / "prompts.yaml")
    (d / MISLEAD_FILE).write_text(text)
    return d


def run(tmp_path, store, samples, honest, backend=None, rate=RATE, prompts=None, protocol="debate", k=2):
    cfg = DebateConfig(prompts=str(prompts or marked_set(tmp_path)), chunk_size=8, scheduling="turns",
                       mislead={"rate": rate}, consult_turns=1)
    be = backend or Spy()
    r = DebateRunner(cfg, tmp_path / store, lambda: be, (protocol,))
    return r, r.run(samples, protocol, k, honest=honest), be


@pytest.fixture
def samples():
    return make_demo_samples(60)


def test_mislead_reaches_exactly_the_chosen_wrong_side_debaters(tmp_path, samples):
    honest = frozenset(s.id for s in samples[:20])  # weak_train
    # one debate per sample, so that each request names its debate by sample text
    _, out, be = run(tmp_path, "t.jsonl", samples, honest, k=1)
    gold = {s.id: s.label for s in samples}
    told = 0
    for (sid, k), t in out.items():
        chosen = sid not in honest and deception_draw(0, sid, k) < RATE  # debate: one side is always wrong
        assert t.deceptive is chosen and (t.mislead_hash is not None) is chosen
        for turn in t.turns:
            wrong = turn.position_label != gold[sid]
            assert misleads(t, turn.side) is (chosen and wrong)
            # the request this turn answered: its sample, speaker and turn number
            head = f'You are debater {turn.side}. Your position: "{t.positions[turn.position_label]}"'
            reqs = [u for u in be.users if t.sample_text in u and head in u
                    and f"(turn {turn.index + 1} of 3)" in u and u.count("echo<") == turn.index]
            # told: the instruction follows the turn's own, naming the side's position
            assert reqs and all(told_in(u) == (chosen and wrong) for u in reqs)
            if chosen and wrong:
                assert reqs[0].endswith(f'{MARK} "{t.positions[turn.position_label]}"')
        told += chosen
    # weak_train untouched; the share on transfer/test near the rate (40 debates)
    assert not any(out[(s.id, 0)].deceptive for s in samples[:20])
    assert 0.15 < told / 40 < 0.65
    assert sum(map(told_in, be.users)) == sum(
        misleads(t, x.side) for t in out.values() for x in t.turns) > 0
    # stored with its flag
    stored = {t.key: t for t in load_transcripts(tmp_path / "t.jsonl").values()}
    assert {t.key: t.deceptive for t in out.values()} == {k: t.deceptive for k, t in stored.items()}


def test_flags_and_keys_reproducible_and_rerun_free(tmp_path, samples):
    honest = frozenset(s.id for s in samples[:20])
    _, a, _ = run(tmp_path, "a.jsonl", samples, honest)
    _, b, _ = run(tmp_path, "b.jsonl", samples, honest)  # a fresh store: the same draw
    assert {k: (t.key, t.deceptive) for k, t in a.items()} == {k: (t.key, t.deceptive) for k, t in b.items()}
    be = Spy()
    _, again, be = run(tmp_path, "a.jsonl", samples, honest, backend=be)
    assert be.calls == 0 and {k: t.key for k, t in again.items()} == {k: t.key for k, t in a.items()}


def test_keys_carry_the_flag_and_the_instruction(tmp_path, samples):
    honest = frozenset(s.id for s in samples[:20])
    r, out, _ = run(tmp_path, "t.jsonl", samples, honest)
    plain = DebateRunner(DebateConfig(prompts=str(marked_set(tmp_path)), chunk_size=8), tmp_path / "p.jsonl",
                         lambda: None)
    plain_keys = {(s.id, k): plain.key(s, k) for s in samples for k in range(2)}
    assert not set(plain_keys.values()) & {t.key for t in out.values()}  # the flag is in every key
    # another mislead instruction: only the misleading debates get new keys
    other = tmp_path / "other"
    shutil.copytree(marked_set(tmp_path), other)
    (other / MISLEAD_FILE).write_text("Lie about {{ my_position }}.")
    r2 = DebateRunner(r.cfg.model_copy(update={"prompts": str(other)}), tmp_path / "t.jsonl", lambda: None)
    by_id = {s.id: s for s in samples}
    for (sid, k), t in out.items():
        assert (r2.key(by_id[sid], k, honest=honest) != t.key) is bool(t.deceptive)
    # a higher rate adds deceptions (nested draws): the debates told at 0.4 keep their keys
    r3 = DebateRunner(r.cfg.model_copy(update={"mislead": MisleadConfig(rate=0.8)}), tmp_path / "t.jsonl", lambda: None)
    for (sid, k), t in out.items():
        if t.deceptive:
            assert r3.key(by_id[sid], k, honest=honest) == t.key


def test_a_lone_consultant_on_the_gold_side_is_never_told(tmp_path, samples):
    _, out, be = run(tmp_path, "c.jsonl", samples, frozenset(), rate=1.0, protocol="consultancy")
    for t in out.values():
        assert t.deceptive is (t.a_label != t.gold_label)
    assert sum(map(told_in, be.users)) == sum(bool(t.deceptive) for t in out.values()) > 0


def test_every_shipped_set_has_a_mislead_instruction_and_a_set_without_one_is_refused(tmp_path):
    for d in sorted(p for p in BUILTIN_DIR.iterdir() if p.is_dir()):
        ps = prompts_for(DebateConfig(prompts=d.name, mislead={"rate": 0.5}), ("debate", "consultancy"))
        assert ps.mislead_hash
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(BUILTIN_DIR / "paper" / "prompts.yaml", bare / "prompts.yaml")
    prompts_for(DebateConfig(prompts=str(bare)), ("debate",))  # fine without debate.mislead
    with pytest.raises(PromptError, match=f"no {MISLEAD_FILE}.*debate.mislead"):
        prompts_for(DebateConfig(prompts=str(bare), mislead={"rate": 0.5}), ("debate",))
    (bare / MISLEAD_FILE).write_text("{{ secret }}")  # checked like the set's other templates
    with pytest.raises(PromptError, match="mislead uses undeclared variables"):
        prompts_for(DebateConfig(prompts=str(bare), mislead={"rate": 0.5}), ("debate",))
    with pytest.raises(ValidationError):
        DebateConfig(mislead={"rate": 1.5})
    assert "mislead" not in DebateConfig().model_dump()  # configs without it are recorded as before


@pytest.mark.slow
def test_a_mislead_run_end_to_end_with_the_seeded_fake(tmp_path, capsys):
    """A tiny demo run whose debates come from the seeded fake (tests/extensions/seeded_backend.py)
    with debate.mislead: the flag is stored on every transfer/test transcript and never
    set on weak_train, the report labels the run and its labeller [CONTROL] and puts it in
    the dose-response table, the viewer's title says so; a rerun generates nothing new."""
    import json

    import run
    from debate.engine import load_transcripts
    from w2s_run.report.model import Report

    args = ["--config", "configs/demo.yaml", "--name", "mis", "--set", f"output_dir={tmp_path}"]
    for o in ["extensions=[tests/extensions/seeded_backend.py]", "debate.backend=fake_seeded",
              "debate.mislead={rate: 0.5}", "data.n_weak_train=16", "data.n_transfer=16", "data.n_test=16",
              "weak.train.epochs=1", "weak.train.max_length=96", "strong.train.epochs=1"]:
        args += ["--set", o]
    assert run.main(args) == 0
    rd = tmp_path / "mis"
    splits = json.loads((rd / "splits.json").read_text())
    ts = load_transcripts(rd / "debate" / "transcripts.jsonl")
    flags = {t.sample_id: t.deceptive for t in ts.values()}
    assert len(flags) == 48 and all(flags[i] is False for i in splits["weak_train"])
    elsewhere = [flags[i] for part in ("transfer", "test") for i in splits[part]]
    assert all(f in (True, False) for f in elsewhere) and 0 < sum(elsewhere) < len(elsewhere)
    assert all((t.mislead_hash is not None) is t.deceptive for t in ts.values())
    report = Report.model_validate_json((rd / "report.json").read_text())
    assert [(r.name, r.mislead) for r in report.deceptive_rows()] == [("weak+debate", 0.5)]
    assert report.meta.debate["mislead"] == {"rate": 0.5}
    md = (rd / "report.md").read_text()
    assert "**[CONTROL] debate.mislead 0.5**" in md and "weak: weak+debate [CONTROL mislead:0.5]" in md
    assert "| 0.5 | real (debate) | weak+debate |" in md
    assert "[CONTROL: debate.mislead]" in (rd / "debates.html").read_text()
    capsys.readouterr()
    assert run.main(args) == 0  # everything cached: the same transcripts, none added
    assert load_transcripts(rd / "debate" / "transcripts.jsonl").keys() == ts.keys()


@pytest.mark.slow
def test_the_transformers_backend_renders_the_mislead_instruction(tmp_path, strong_backend):
    """The real backend: the chat template it feeds the model holds the mislead instruction
    for the wrong side's turns of a chosen debate, and only there."""
    import debate.backends.transformers_backend as tb

    seen: list[str] = []
    real = tb.TransformersBackend._prompt

    def spy(self, conv):
        seen.append(real(self, conv))
        return seen[-1]

    sample = make_demo_samples(1)
    cfg = DebateConfig(prompts="paper", mislead={"rate": 1.0}, chunk_size=1, scheduling="turns")
    cfg.sampling.max_new_tokens = 2
    mp = pytest.MonkeyPatch()
    mp.setattr(tb.TransformersBackend, "_prompt", spy)
    try:
        out = DebateRunner(cfg, tmp_path / "t.jsonl", lambda: strong_backend).run(sample)
    finally:
        mp.undo()
    t = out[(sample[0].id, 0)]
    assert t.deceptive and len(seen) == 3
    text = (BUILTIN_DIR / "paper" / MISLEAD_FILE).read_text().split("{{")[0].strip()  # its fixed opening
    for prompt, turn in zip(seen, t.turns):
        assert (text in prompt) is misleads(t, turn.side)
        assert strong_backend.tok.apply_chat_template(  # the model's own chat format around it
            [{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True)[-12:] in prompt


def test_mislead_without_the_instruction_is_a_one_line_error(tmp_path, capsys):
    import run
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(BUILTIN_DIR / "terse" / "prompts.yaml", bare / "prompts.yaml")
    argv = ["--config", "configs/demo.yaml", "--set", f"output_dir={tmp_path}", "--prompts", str(bare),
            "--set", "debate.mislead={rate: 0.3}"]
    assert run.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: prompt set 'bare' has no mislead.jinja")
    assert not (tmp_path / "demo").exists()  # refused before anything ran
