"""Duplicate texts (data/dedupe.py) and the text-disjointness of Splits (data/splits.py)."""
from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from data.dedupe import dedupe_samples, text_key
from data.schema import Sample
from data.splits import Splits, make_splits

POS = ("The statement is false.", "The statement is true.")


def _s(sid: str, text: str, label: int) -> Sample:
    return Sample(id=sid, task="generic", text=text, label=label, positions=POS)


def test_text_key_normalises_case_spacing_width_and_surrounding_punctuation():
    same = ["Claim: a wrench is a kind of fruit.", "claim: a wrench is a kind of fruit",
            "  CLAIM:  a wrench\tis a kind\nof fruit!! ", "\u201cClaim: a wrench is a kind of fruit\u201d",
            "Ｃｌａｉｍ:\u00a0a wrench is a kind of fruit."]  # full-width letters, no-break space
    assert len({text_key(t) for t in same}) == 1
    # what is inside the text still counts: a different word, or punctuation that carries content
    assert text_key("3 > 2") != text_key("3 < 2")
    assert text_key("Claim: a wrench is a kind of fruit.") != text_key("Claim: a wrench is a kind of tool.")


def test_dedupe_keeps_the_smallest_id_and_counts_the_copies():
    pool = [_s("b", "Paris is the capital of France.", 1), _s("c", "The Moon is a star.", 0),
            _s("a", "paris is the capital of   France", 1), _s("d", "PARIS IS THE CAPITAL OF FRANCE!", 1),
            _s("e", "The Sun is a star.", 1)]
    r = dedupe_samples(pool)
    assert [s.id for s in r.samples] == ["c", "a", "e"]  # input order kept; "a" is the smallest id
    assert (r.n_in, r.n_out, r.n_duplicates, r.n_conflicting, r.n_conflicting_texts) == (5, 3, 2, 0, 0)
    assert r.duplicate_ids == ["b", "d"]
    # the order rows were read in does not decide which copy survives
    for seed in range(5):
        shuffled = list(pool)
        random.Random(seed).shuffle(shuffled)
        assert sorted(s.id for s in dedupe_samples(shuffled).samples) == ["a", "c", "e"]
    assert r.samples[1].text == "paris is the capital of   France"  # the kept text is not changed
    assert "samples" not in r.summary() and r.summary()["n_duplicates"] == 2


def test_copies_with_conflicting_labels_are_all_dropped_and_counted_apart():
    pool = [_s("x1", "The review is mixed.", 1), _s("x2", "the review is mixed", 0),
            _s("x3", "The review is mixed!", 1), _s("y1", "Water is wet.", 1), _s("y2", "water is wet", 1),
            _s("z", "Fire is cold.", 0)]
    r = dedupe_samples(pool)
    assert [s.id for s in r.samples] == ["y1", "z"]
    assert (r.n_duplicates, r.n_conflicting, r.n_conflicting_texts) == (1, 3, 1)
    assert r.conflicting_ids == ["x1", "x2", "x3"] and r.duplicate_ids == ["y2"]


def test_splits_refuse_a_shared_text_even_when_case_and_spacing_differ():
    a, b, c = _s("a", "The Moon is a star.", 0), _s("b", "the moon  is a star", 0), _s("c", "Mars is red.", 1)
    with pytest.raises(ValidationError, match="splits share a text: test sample 'b' and weak_train sample 'a'"):
        Splits(weak_train=[a], transfer=[c], test=[b])
    with pytest.raises(ValidationError, match="share a text"):
        Splits(weak_train=[c], transfer=[a], test=[_s("d", "THE MOON IS A STAR!", 1)])
    ok = Splits(weak_train=[a], transfer=[c], test=[_s("e", "The Moon is a planet.", 0)])
    assert len(ok.all()) == 3


def test_make_splits_leaks_no_text_once_the_pool_is_deduplicated():
    rng = random.Random(0)
    words = ["red", "blue", "green", "big", "small"]
    pool = [_s(f"s{i:03d}", f"{rng.choice(words)} {rng.choice(words)}".upper() if i % 3 else
               f"{rng.choice(words)} {rng.choice(words)}", int(rng.random() < 0.5)) for i in range(200)]
    with pytest.raises(ValidationError, match="share a text"):
        make_splits(pool, 5, 5, 5, seed=0)  # 25 distinct texts: some repeat across parts
    kept = dedupe_samples(pool).samples
    splits = make_splits(kept, len(kept) // 3, len(kept) // 3, len(kept) - 2 * (len(kept) // 3), seed=0)
    keys = [{text_key(s.text) for s in part} for part in (splits.weak_train, splits.transfer, splits.test)]
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
