"""Positive, deceptive and negative (shuffled) controls: debate/controls.py."""
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
    POSITIVE_LOSER_TEXT, POSITIVE_WINNER_TEXT, VERDICT, ControlSpec, control_hash, _derangement, deception_draw,
    deceptive_control, positive_control, shuffled_control, winner_defends_gold,
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


def test_deceptive_spec_tags_and_validation():
    spec = ControlSpec(kind="deceptive", rate=0.3)
    assert spec.tag == "deceptive:0.3" and ControlSpec.from_tag("deceptive:0.3") == spec
    assert spec.protocol == "debate" and not spec.needs_debater
    for bad in [dict(kind="deceptive"), dict(kind="deceptive", rate=1.5), dict(kind="deceptive", rate=-0.1),
                dict(kind="deceptive", rate=0.3, reliability=0.9), dict(kind="deceptive", rate=0.3, of="consultancy"),
                dict(kind="positive", reliability=0.9, rate=0.3), dict(kind="shuffled", rate=0.3)]:
        with pytest.raises(ValidationError):
            ControlSpec(**bad)
    with pytest.raises(ValueError, match="deceptive:<rate>"):
        ControlSpec.from_tag("deceptive:lots")
    hashes = {control_hash(ControlSpec(kind="deceptive", rate=d)) for d in (0.0, 0.3, 0.6)}
    assert len(hashes) == 3 and control_hash(ControlSpec(kind="positive", reliability=1.0)) not in hashes


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


@pytest.mark.parametrize("build", [positive_control, deceptive_control], ids=["positive", "deceptive"])
def test_scripted_controls_reject_bad_input(samples, build):
    with pytest.raises(ValidationError):  # a reliability or rate above 1
        build(samples[:3], 1, 1.2, SEED)
    with pytest.raises(ValueError):
        build(samples[:3], 0, 0.3, SEED)
    with pytest.raises(ValueError):
        build([samples[0], samples[0]], 1, 0.3, SEED)


# ---- deceptive control


def test_deceptive_winner_argues_the_wrong_label_exactly_where_recorded(samples):
    sub = samples[:400]
    honest = {s.id for s in sub[:100]}
    ts = deceptive_control(sub, 2, 0.6, SEED, num_turns=4, honest=honest)
    assert set(ts) == {(s.id, k) for s in sub for k in range(2)}
    for (sid, k), t in ts.items():
        assert t.control == "deceptive:0.6" and t.backend == "control" and t.model == "control:deceptive-d0.6"
        assert t.a_label == draw_a_label(SEED, sid, k) and t.num_turns == 4 and t.ok
        # the text says what the record says: the confident side names the wrong label iff deceptive
        assert (winner_label(t) != t.gold_label) is t.deceptive
        assert t.deceptive == (sid not in honest and deception_draw(SEED, sid, k) < 0.6)
        Transcript.model_validate_json(t.model_dump_json())  # round-trips through the store
    assert not any(ts[(sid, k)].deceptive for sid in honest for k in range(2))  # weak_train stays honest
    assert len({t.key for t in ts.values()}) == len(ts)
    assert not {t.key for t in ts.values()} & {t.key for t in positive_control(sub, 2, 1.0, SEED, 4).values()}
    # the same debate honest (on weak_train) and deceived (elsewhere) has two keys: the store keeps both
    other = deceptive_control(sub, 2, 0.6, SEED, num_turns=4)
    assert {t.key for (sid, _), t in other.items() if sid in honest and t.deceptive}.isdisjoint(
        {t.key for t in ts.values()})


@pytest.mark.parametrize("d", [0.0, 0.3, 0.6, 1.0])
def test_deceptive_share_is_the_rate(samples, d):
    ts = deceptive_control(samples, 1, d, SEED)
    share = sum(t.deceptive for t in ts.values()) / len(ts)
    assert abs(share - d) < tol(d, len(ts)), share
    # honest debates name the gold label always (reliability 1.0): the winner's accuracy is 1 - d
    assert sum(winner_label(t) == t.gold_label for t in ts.values()) == len(ts) - sum(t.deceptive for t in ts.values())
    # deception does not depend on the gold label
    for gold in (0, 1):
        group = [t for t in ts.values() if t.gold_label == gold]
        assert abs(sum(t.deceptive for t in group) / len(group) - d) < tol(d, len(group)), gold


def test_deceptions_nest_across_rates_and_are_seeded_by_the_unit(samples):
    sub = samples[:600]
    lied = {d: {key for key, t in deceptive_control(sub, 2, d, SEED).items() if t.deceptive} for d in (0.3, 0.6)}
    assert lied[0.3] < lied[0.6]  # a dose adds deceptions, it does not re-draw them
    once = dump(deceptive_control(sub, 2, 0.3, SEED, honest={sub[0].id}))
    fewer = dump(deceptive_control(sub[100:150], 2, 0.3, SEED, honest={sub[0].id}))
    assert all(once[key] == text for key, text in fewer.items())
    other_seed = {key for key, t in deceptive_control(sub, 2, 0.3, SEED + 1).items() if t.deceptive}
    assert other_seed != lied[0.3]


def test_report_gives_the_deceptive_dose_response():
    """The deception table, from the real build_report and render_table: one row per
    (rate, student), ordered by rate, scripted first, then real debates told to mislead
    (debate.mislead), with the deception view of each student."""
    from factories import _scripted_labeller, scripted_draw
    from strong.stage import StudentKey
    from w2s_run.report.model import Report
    from w2s_run.report.render import render_table
    from w2s_run.report.scoring import build_report

    splits, labs, students = scripted_draw(n_test=60)
    y = {x.id: x.label for x in splits.test}
    right = lambda k: {i: (float(y[i]) if j < k else 1.0 - y[i]) for j, i in enumerate(y)}  # noqa: E731
    tr = {x.id: 0.5 for x in splits.transfer}
    for name, d, k_weak, k_student in (("dec-hi", 0.6, 24, 27), ("dec-0", 0.0, 58, 50)):  # config order != rate order
        labs[name] = _scripted_labeller(name, right(k_weak), tr).model_copy(
            update={"protocol": "debate", "control": ControlSpec(kind="deceptive", rate=d)})
        students[StudentKey(name, "xent", 0)] = right(k_student)
    labs["mis"] = _scripted_labeller("mis", right(45), tr).model_copy(update={"protocol": "debate", "mislead": 0.3})
    report = Report.model_validate_json(build_report("r", splits, labs, students).model_dump_json())
    assert [r.name for r in report.deceptive_rows()] == ["dec-0", "dec-hi", "mis"]
    table = render_table(report)
    section = table[table.index("Deceptive debater"):].split("\n\n")[1].splitlines()
    rows = [line for line in section if line.startswith("| 0")]
    assert [r.split(" | ")[1:3] for r in rows] == [["scripted", "dec-0"], ["scripted", "dec-hi"],
                                                   ["real (debate)", "mis"]]
    assert rows[2].split(" | ")[0] == "| 0.3" and rows[2].split(" | ")[5] == "no student"
    assert "**[CONTROL] debate.mislead 0.3**" in table  # the run is a control run, said first
    assert "| weak: mis [CONTROL mislead:0.3] |" in table
    # student right on the first 27, weak on the first 24: never wrong where weak is right;
    # wrong on 33 of the 36 where the weak labeller is wrong
    hi = next(s for s in report.student_rows() if s.labeller == "dec-hi")
    assert hi.errors.student_wrong_given_weak_right == 0.0
    assert hi.errors.student_wrong_given_weak_wrong == pytest.approx(33 / 36)
    cells = rows[1].split(" | ")
    assert cells[0] == "| 0.6" and cells[3].startswith("40.0 (") and cells[4].startswith("-10.0 (")
    assert cells[5] == "xent" and cells[6].startswith("45.0 (") and cells[7:] == ["0.000", "0.917 |"]
    assert "| weak: dec-hi [CONTROL deceptive:0.6] |" in table
    assert "| dec-hi [CONTROL deceptive:0.6] (xent) |" in table  # the error table marks it too


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
