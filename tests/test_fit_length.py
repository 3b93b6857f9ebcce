"""data/fit.py with the real tokenizers: over-long texts are dropped or cut in the
middle (keeping the question / candidate answer / final reply), never cut at the end
silently. Samples come from the real converters. The strong tokenizer (SmolLM2)
needs the embedded GGUF converted once (~45 s on an empty cache), so the cases
that read it are marked slow; the MiniLM-only cases run in the quick loop."""
import json
from pathlib import Path

import pytest

from w2s_base.training.models import load_tokenizer
from w2s_base.training.models import resolve_model
from data.fit import MARKER, fit_samples
from data.loading import convert_row, load_samples
from data.tasks import get_task

WEAK_MAX, STRONG_MAX = 256, 384
BOOLQ_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "boolq" / "dev.jsonl"


@pytest.fixture(scope="module")
def weak_tok():
    return load_tokenizer(resolve_model("minilm-l6"))


@pytest.fixture(scope="module")
def strong_tok():
    return load_tokenizer(resolve_model("smollm2-135m"))


@pytest.fixture(params=["weak", pytest.param("weak+strong", marks=pytest.mark.slow)])
def readers(request, weak_tok):
    rs = [("minilm-l6", weak_tok, WEAK_MAX)]
    if request.param == "weak+strong":
        rs.append(("smollm2-135m", request.getfixturevalue("strong_tok"), STRONG_MAX))
    return rs


# ---------------------------------------------------------------- rows -> samples

def _long_passage(n: int) -> str:
    towns = ["Bremford", "Ashcombe", "Kilnworth", "Dunmere", "Holloway", "Tarnbridge"]
    return " ".join(f"In {1700 + i} the mill at {towns[i % 6]} was rebuilt after flood number {i}, "
                    f"and its owners sold grain to {towns[(i + 2) % 6]}." for i in range(n))


def _conversation(n_turns: int, final: str) -> str:
    turns = "".join(f"\n\nHuman: Tell me more about step {i} of baking rye bread at home, please."
                    f"\n\nAssistant: Step {i} is to knead the dough for about {i + 3} minutes "
                    f"and let it rest somewhere warm." for i in range(n_turns))
    return turns + "\n\nHuman: And how long should it bake in the end?\n\nAssistant: " + final


ROWS = {
    "boolq_long": ("boolq", {"id": "bq-long", "title": "Mills of the Alder",
                             "passage": "The Alder mills. " + _long_passage(40),
                             "question": "was the mill at bremford rebuilt after a flood",
                             "answer": True}),
    "boolq_short": ("boolq", {"id": "bq-short", "passage": "Rye is a grass grown as a grain.",
                              "question": "is rye a grass", "answer": True}),
    "hh_long": ("anthropic_hh", {
        "id": "hh-long",
        "chosen": _conversation(30, "Bake it at 220 degrees for about forty-five minutes, "
                                    "until the crust sounds hollow when you tap it."),
        "rejected": _conversation(30, "I don't know, just guess."),
    }),
    "hh_short": ("anthropic_hh", {"id": "hh-short", "chosen": "\n\nHuman: Hi?\n\nAssistant: Hello!",
                                  "rejected": "\n\nHuman: Hi?\n\nAssistant: Go away."}),
    "cosmos_long": ("cosmosqa", {"id": "cq-long", "context": _long_passage(35),
                                 "question": "Why was the mill rebuilt so many times?",
                                 "answer0": "Because the river flooded it again and again.",
                                 "answer1": "Because the owners liked building.",
                                 "answer2": "Because of a fire.",
                                 "answer3": "None of the above choices .", "label": 0}),
}
LONG = {"bq-long", "hh-long", "cq-long"}


def _samples():
    return [convert_row(get_task(task), row, i, "test", seed=0)
            for i, (task, row) in enumerate(ROWS.values())]


def _end_part(s) -> str:
    """The label-carrying end of a sample's text, per task format."""
    if s.task == "anthropic_hh":
        return s.text[s.text.rfind("\n\nAssistant:"):]
    return s.text[s.text.index("\nQuestion:"):]  # BoolQ question; CosmosQA question + answer


def _n(tok, text: str) -> int:
    return len(tok(text, add_special_tokens=True)["input_ids"])


# ---------------------------------------------------------------- the bug, measured

def test_end_truncation_loses_the_label_carrying_part(weak_tok):
    """Why this module exists: the classifiers' `truncation=True` keeps only the start."""
    for s in _samples():
        if s.id in LONG:
            kept = weak_tok.decode(weak_tok(s.text, truncation=True, max_length=WEAK_MAX)["input_ids"])
            assert _end_part(s).split()[-1].lower() not in kept[-80:], s.id


# ---------------------------------------------------------------- the three policies

def test_drop_removes_exactly_the_long_ones(readers):
    samples = _samples()
    r = fit_samples(samples, readers, "drop")
    assert {s.id for s in r.samples} == {s.id for s in samples} - LONG
    assert r.samples == [s for s in samples if s.id not in LONG]  # untouched, in order
    assert (r.n_in, r.n_out, r.n_overlong, r.n_dropped, r.n_cut) == (5, 2, 3, 3, 0)
    assert set(r.overlong_ids) == LONG
    for name, tok, max_length in readers:
        st = r.readers[name]
        assert st.n_overlong == 3 and st.max_tokens > max_length
        assert st.max_tokens_out <= max_length
        assert st.max_tokens == max(_n(tok, s.text) for s in samples)


def test_cut_middle_keeps_the_end_and_the_beginning_and_fits_every_reader(readers):
    samples = _samples()
    r = fit_samples(samples, readers, "cut_middle")
    assert (r.n_in, r.n_out, r.n_overlong, r.n_dropped, r.n_cut) == (5, 5, 3, 0, 3)
    by_id = {s.id: s for s in samples}
    assert [s.id for s in r.samples] == [s.id for s in samples]
    for s in r.samples:
        orig = by_id[s.id]
        assert (s.label, s.positions, s.task) == (orig.label, orig.positions, orig.task)
        if s.id not in LONG:
            assert s == orig
            continue
        # The label-carrying end is there in full, at the end.
        assert s.text.endswith(_end_part(orig)), s.id
        if s.task == "boolq":
            assert "\nQuestion: was the mill at bremford rebuilt after a flood?" in s.text
        elif s.task == "anthropic_hh":
            assert s.text.endswith("\n\nAssistant: " + orig.meta["final_reply"])
        else:
            assert s.text.endswith(f"\nAnswer: {orig.meta['candidate']}")
        # The beginning is kept verbatim (not lower-cased by a BERT decode), then the marker.
        head = s.text.split(MARKER.rstrip())[0]
        assert len(head) > 40 and orig.text.startswith(head), s.id
        assert MARKER.strip() in s.text
        # It fits every reader, counted with each reader's own tokenizer.
        for _, tok, max_length in readers:
            assert _n(tok, s.text) <= max_length, s.id
        # Marked, with the removed span of the original text.
        assert s.meta["cut_tokens"] > 0 and s.meta["cut_reader"] in r.readers
        a, b = s.meta["cut_chars"]
        assert 0 < a < b < len(orig.text)
        assert {k: v for k, v in s.meta.items() if not k.startswith("cut_")} == orig.meta
    for name, _, max_length in readers:
        assert r.readers[name].max_tokens_out <= max_length
    json.dumps(r.summary())  # the report can store it


def test_cut_middle_uses_most_of_the_budget(weak_tok):
    """The cut leaves the text close to the limit, with ~1/4 head and ~3/4 tail."""
    s = next(x for x in _samples() if x.id == "bq-long")
    out = fit_samples([s], [("w", weak_tok, WEAK_MAX)], "cut_middle").samples[0]
    n = _n(weak_tok, out.text)
    assert WEAK_MAX - 12 <= n <= WEAK_MAX
    head, tail = out.text.split(MARKER.rstrip(), 1)
    nh, nt = _n(weak_tok, head) - 2, _n(weak_tok, tail) - 2
    assert 0.15 < nh / (nh + nt) < 0.35


def test_cut_middle_honours_a_per_reader_reserve(readers):
    reserve = {readers[0][0]: 100}  # room for the weak model's debate transcript
    r = fit_samples(_samples(), readers, "cut_middle", reserve=reserve)
    assert r.readers[readers[0][0]].budget == WEAK_MAX - 100
    for s in r.samples:
        for name, tok, max_length in readers:
            assert _n(tok, s.text) <= max_length - reserve.get(name, 0)
    assert {s.id for s in r.samples if "cut_tokens" in s.meta} == LONG


def test_cut_end_leaves_texts_unchanged_but_counts(readers):
    samples = _samples()
    r = fit_samples(samples, readers, "cut_end")
    assert r.samples == samples
    assert (r.n_in, r.n_out, r.n_overlong, r.n_dropped, r.n_cut) == (5, 5, 3, 0, 0)
    for name, _, max_length in readers:
        assert r.readers[name].n_overlong == 3
        assert r.readers[name].max_tokens_out == r.readers[name].max_tokens > max_length


def test_a_reader_can_make_a_text_overlong_alone(weak_tok):
    """Over-long for ANY reader: a tight second reader drops texts the first one fits."""
    samples = _samples()
    loose = fit_samples(samples, [("a", weak_tok, 4096)], "drop")
    both = fit_samples(samples, [("a", weak_tok, 4096), ("b", weak_tok, 10)], "drop")
    assert loose.n_overlong == 0 and loose.samples == samples
    assert both.readers["a"].n_overlong == 0 and both.readers["b"].n_overlong == both.n_overlong == 4
    assert "bq-short" in both.overlong_ids and "bq-short" not in loose.overlong_ids


@pytest.mark.slow
def test_cut_in_the_strong_tokens_when_the_strong_reader_is_tightest(weak_tok, strong_tok):
    """The cut follows the reader that can keep the least; accents and capitals survive
    (slices of the original string, not a lower-casing, accent-stripping BERT decode)."""
    row = {"id": "bq-accents", "question": "is the café at zürich older than the mill",
           "passage": "Café Zürich — Öffnungszeiten. " + _long_passage(30), "answer": False}
    s = convert_row(get_task("boolq"), row, 0, "test", seed=0)
    readers = [("minilm-l6", weak_tok, 512), ("smollm2-135m", strong_tok, 128)]
    out = fit_samples([s], readers, "cut_middle").samples[0]
    assert out.meta["cut_reader"] == "smollm2-135m"
    assert out.text.startswith("Passage: Café Zürich — Öffnungszeiten.")
    assert out.text.endswith("\nQuestion: is the café at zürich older than the mill?")
    assert all(_n(tok, out.text) <= m for _, tok, m in readers)


def test_bad_arguments(weak_tok):
    with pytest.raises(ValueError, match="policy"):
        fit_samples(_samples(), [("w", weak_tok, 256)], "truncate")
    with pytest.raises(ValueError, match="unknown readers"):
        fit_samples(_samples(), [("w", weak_tok, 256)], "drop", reserve={"x": 3})
    with pytest.raises(ValueError, match="no room"):
        fit_samples(_samples(), [("w", weak_tok, 256)], "drop", reserve=256)
    empty = fit_samples([], [("w", weak_tok, 256)], "cut_middle")
    assert (empty.n_in, empty.n_out, empty.readers["w"].max_tokens) == (0, 0, 0)


# ---------------------------------------------------------------- the real BoolQ file

@pytest.mark.skipif(not BOOLQ_DEV.exists(), reason=f"{BOOLQ_DEV} not present")
def test_real_boolq_rows(weak_tok):
    samples = load_samples("boolq", BOOLQ_DEV, seed=0, limit=300)
    readers = [("minilm-l6", weak_tok, WEAK_MAX)]
    lengths = [_n(weak_tok, s.text) for s in samples]
    n_long = sum(n > WEAK_MAX for n in lengths)
    assert 0 < n_long < len(samples)  # BoolQ passages run long: some, not all, exceed 256

    dropped = fit_samples(samples, readers, "drop")
    assert dropped.n_overlong == dropped.n_dropped == n_long == dropped.readers["minilm-l6"].n_overlong
    assert dropped.n_out == len(samples) - n_long
    assert all(_n(weak_tok, s.text) <= WEAK_MAX for s in dropped.samples)

    cut = fit_samples(samples, readers, "cut_middle")
    assert cut.n_overlong == cut.n_cut == n_long and cut.n_out == len(samples)
    assert cut.overlong_ids == dropped.overlong_ids
    for s, orig, n in zip(cut.samples, samples, lengths):
        assert _n(weak_tok, s.text) <= WEAK_MAX
        assert s.text.endswith(orig.text[orig.text.rindex("\nQuestion:"):])
        assert ("cut_tokens" in s.meta) == (n > WEAK_MAX)
        if n <= WEAK_MAX:
            assert s == orig
    assert cut.readers["minilm-l6"].max_tokens == max(lengths)
    assert cut.readers["minilm-l6"].median_tokens == sorted(lengths)[149] / 2 + sorted(lengths)[150] / 2
