"""Positive and negative (shuffled) controls: debate/controls.py."""
from __future__ import annotations

import json
import math

import pytest
from pydantic import ValidationError

from w2s_base.config import DebateConfig
from w2s_base.protocols import draw_a_label
from data.demo_task import make_demo_samples
from data.schema import Sample
from debate.controls import (
    POSITIVE_LOSER_TEXT, POSITIVE_WINNER_TEXT, VERDICT, ControlSpec, control_hash, _derangement, positive_control,
    shuffled_control, winner_defends_gold,
)
from debate.engine import DebateRunner
from debate.transcript import Transcript
from factories import make_transcript

N = 2000
SEED = 11


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    return make_demo_samples(N, seed=3)


def winner_label(t: Transcript) -> int:
    """The label of the side whose turns are confident, read from the text itself."""
    labels = {x.position_label for x in t.turns if x.text.startswith("Verdict:")}
    losers = {x.position_label for x in t.turns if x.text.startswith("I concede")}
    assert len(labels) == 1 and losers == {1 - next(iter(labels))}
    return labels.pop()


def dump(ts: dict) -> dict:
    return {key: json.dumps(t.model_dump(mode="json"), sort_keys=True) for key, t in ts.items()}


def tol(p: float, n: int) -> float:
    return 4 * math.sqrt(p * (1 - p) / n) + 1e-9  # 4 binomial standard deviations


# ---- ControlSpec


def test_spec_tags_and_validation():
    assert ControlSpec(kind="positive", reliability=0.9).tag == "positive:0.9"
    assert ControlSpec(kind="positive", reliability=0.5).tag == "positive:0.5"
    assert ControlSpec(kind="shuffled").tag == "shuffled:debate"
    assert ControlSpec(kind="shuffled", of="consultancy").tag == "shuffled:consultancy"
    for bad in [dict(kind="positive"), dict(kind="positive", reliability=1.5),
                dict(kind="shuffled", reliability=0.9), dict(kind="shuffled", of="none"),
                dict(kind="shuffled", of="nonsense"), dict(kind="negative")]:
        with pytest.raises(ValidationError):
            ControlSpec(**bad)
    assert control_hash(ControlSpec(kind="positive", reliability=0.7)) != control_hash(ControlSpec(kind="positive", reliability=0.9))


# ---- positive control


def test_positive_shape_and_fields(samples):
    ts = positive_control(samples[:20], num_debates=2, reliability=0.9, seed=SEED, num_turns=4)
    assert set(ts) == {(s.id, k) for s in samples[:20] for k in range(2)}
    for s in samples[:20]:
        for k in range(2):
            t = ts[(s.id, k)]
            assert (t.sample_id, t.debate_index, t.gold_label, t.positions) == (s.id, k, s.label, s.positions)
            assert t.protocol == "debate" and t.num_turns == 4 and t.ok
            assert t.control == "positive:0.9" and t.backend == "control"
            assert t.model == "control:positive-r0.9" and t.prompt_set == "control"
            assert t.a_label == draw_a_label(SEED, s.id, k)  # the draw the engine makes
            assert [(x.side, x.role) for x in t.turns] == [
                ("A", "opening"), ("B", "counter"), ("A", "rebuttal"), ("B", "rebuttal")]
            for x in t.turns:
                assert x.position_label == (t.a_label if x.side == "A" else 1 - t.a_label)
                assert x.finish_reason == "stop" and x.completion_tokens == len(x.text.split())
                assert x.text in (POSITIVE_WINNER_TEXT.format(verdict=VERDICT[x.position_label]),
                                  POSITIVE_LOSER_TEXT)
            w = winner_label(t)
            assert (w == s.label) == winner_defends_gold(SEED, 0.9, s.id, k)
            Transcript.model_validate_json(t.model_dump_json())  # round-trips through the store


def test_keys_unique_and_disjoint_from_real_debates(samples, tmp_path):
    sub = samples[:200]
    pos9 = positive_control(sub, 2, 0.9, SEED)
    pos7 = positive_control(sub, 2, 0.7, SEED)
    keys9 = {t.key for t in pos9.values()}
    keys7 = {t.key for t in pos7.values()}
    assert len(keys9) == len(pos9) and len(keys7) == len(pos7) and not keys9 & keys7
    runner = DebateRunner(DebateConfig(seed=SEED), tmp_path / "t.jsonl", backend_factory=lambda: None)
    real = {runner.key(s, k) for s in sub for k in range(2)}
    assert len(real) == len(sub) * 2 and not real & (keys9 | keys7)
    # other seeds give other keys
    assert not keys9 & {t.key for t in positive_control(sub, 2, 0.9, SEED + 1).values()}


@pytest.mark.parametrize("r", [0.9, 0.7])
def test_winner_defends_gold_at_rate_r(samples, r):
    ts = positive_control(samples, 1, r, SEED)
    share = sum(winner_label(t) == t.gold_label for t in ts.values()) / len(ts)
    assert abs(share - r) < tol(r, len(ts)), share


def test_half_reliability_is_independent_of_gold(samples):
    ts = positive_control(samples, 1, 0.5, SEED)
    for gold in (0, 1):
        group = [t for t in ts.values() if t.gold_label == gold]
        assert len(group) > N // 3
        rate = sum(winner_label(t) == 1 for t in group) / len(group)
        assert abs(rate - 0.5) < tol(0.5, len(group)), (gold, rate)
    # also the side that wins (A or B) carries nothing
    a_wins = [winner_label(t) == t.a_label for t in ts.values()]
    assert abs(sum(a_wins) / len(a_wins) - 0.5) < tol(0.5, len(a_wins))


def test_positive_reproducible_and_independent_of_other_samples(samples):
    sub = samples[:300]
    once = dump(positive_control(sub, 2, 0.7, SEED))
    assert once == dump(positive_control(sub, 2, 0.7, SEED))  # byte-identical
    fewer = dump(positive_control(sub[100:150], 2, 0.7, SEED))
    more = dump(positive_control(list(reversed(samples[:600])), 2, 0.7, SEED))
    for key, text in fewer.items():
        assert once[key] == text == more[key]
    # more debates per sample leave the first ones as they were
    three = dump(positive_control(sub, 3, 0.7, SEED))
    assert all(three[key] == text for key, text in once.items())


def test_positive_rejects_bad_input(samples):
    with pytest.raises(ValidationError):
        positive_control(samples[:3], 1, 1.2, SEED)
    with pytest.raises(ValueError):
        positive_control(samples[:3], 0, 0.9, SEED)
    with pytest.raises(ValueError):
        positive_control([samples[0], samples[0]], 1, 0.9, SEED)


# ---- shuffled (negative) control


def real_source(sub: list[Sample], ks=(0, 1), skip=()) -> dict[tuple[str, int], Transcript]:
    return {(s.id, k): make_transcript(s.id, [f"{s.id} k{k} t{i}" for i in range(3)], sample_text=s.text,
                                       positions=s.positions, gold=s.label, a_label=(i + k) % 2, k=k,
                                       task=s.task, key=f"real-{s.id}-{k}")
            for i, s in enumerate(sub) for k in ks if (s.id, k) not in skip}


def test_derangement_has_no_fixed_points():
    import random
    for n in range(2, 9):
        for seed in range(30):
            p = _derangement(n, random.Random(seed))
            assert sorted(p) == list(range(n)) and all(i != j for i, j in enumerate(p))


def test_shuffled_permutes_across_samples(samples):
    sub = samples[:40]
    skip = {(sub[3].id, 1), (sub[7].id, 1)}
    src = real_source(sub, skip=skip)
    out = shuffled_control(sub, src, seed=5)
    assert set(out) == set(src)
    by_id = {s.id: s for s in sub}
    for k in (0, 1):
        used = []
        for (sid, kk), t in out.items():
            if kk != k:
                continue
            s = by_id[sid]
            # the target's sample fields
            assert (t.sample_id, t.sample_text, t.gold_label, t.positions, t.task, t.debate_index) == \
                   (s.id, s.text, s.label, s.positions, s.task, k)
            # the source's turns (never its own)
            source_id = t.turns[0].text.split(" ")[0]
            assert source_id != sid
            s_t = src[(source_id, k)]
            assert [x.model_dump() for x in t.turns] == [x.model_dump() for x in s_t.turns]
            assert t.a_label == s_t.a_label and t.protocol == s_t.protocol
            assert t.control == "shuffled" and t.model == s_t.model + "|shuffled"
            used.append(source_id)
        expected = sorted(s.id for s in sub if (s.id, k) not in skip)
        assert sorted(used) == expected  # every source transcript exactly once
    keys = {t.key for t in out.values()}
    assert len(keys) == len(out) and not keys & {t.key for t in src.values()}
    assert all(isinstance(Transcript.model_validate_json(t.model_dump_json()), Transcript) for t in out.values())


def test_shuffled_reproducible_and_seeded(samples):
    sub = samples[:30]
    src = real_source(sub)
    a = dump(shuffled_control(sub, src, seed=5))
    assert a == dump(shuffled_control(list(reversed(sub)), src, seed=5))
    b = shuffled_control(sub, src, seed=6)
    assert a != dump(b)
    # the source itself is untouched
    assert all(t.sample_id == sid and t.control is None for (sid, _), t in src.items())


def test_shuffled_ignores_other_samples_and_needs_two(samples):
    sub = samples[:10]
    src = real_source(samples[:20], ks=(0,))
    out = shuffled_control(sub, src, seed=1)
    assert {sid for sid, _ in out} == {s.id for s in sub}
    assert all(t.turns[0].text.split(" ")[0] in {s.id for s in sub} for t in out.values())
    with pytest.raises(ValueError):
        shuffled_control(samples[:1], real_source(samples[:1], ks=(0,)), seed=1)
    bad = real_source(sub, ks=(0,))
    bad[(sub[0].id, 0)] = bad[(sub[1].id, 0)]
    with pytest.raises(ValueError):
        shuffled_control(sub, bad, seed=1)


# ---- what the weak model reads


def test_weak_input_renders_both_controls(samples):
    from w2s_base.training.models import load_tokenizer
    from w2s_base.training.models import resolve_model
    from weak.inputs import weak_input

    tok = load_tokenizer(resolve_model("minilm-l6"))
    norm = lambda x: "".join(x.lower().split())  # noqa: E731
    sub = samples[:12]
    for t in positive_control(sub, 1, 0.9, SEED).values():
        for strategy in ("per_turn", "head"):
            text = weak_input(t.sample_text, t, tok, 128, strategy)
            win = VERDICT[winner_label(t)]
            # MiniLM is uncased and its decode spaces out punctuation ("verdict : yes")
            assert norm(f"Verdict: {win}.") in norm(text)
            assert text.startswith(t.sample_text) and "Debater B (argues:" in text
    for t in shuffled_control(sub, real_source(sub, ks=(0,)), seed=2).values():
        text = weak_input(t.sample_text, t, tok, 128)
        assert text.startswith(t.sample_text)
        # the source's turns, under the target's sample text
        assert all(norm(x.text) in norm(text) for x in t.turns) and t.turns[0].text.split()[0] != t.sample_id
