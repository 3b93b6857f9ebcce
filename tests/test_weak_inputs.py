from w2s_base.training.models import load_tokenizer
from w2s_base.training.models import resolve_model
from factories import make_transcript
from weak.inputs import weak_input


def transcript(lengths):
    return make_transcript("s", [" ".join([f"word{i}"] * n) for i, n in enumerate(lengths)],
                           sample_text="Claim: 3 is larger than 2.",
                           positions=("The claim is false.", "The claim is true."), finish_reason="length")


def test_per_turn_budget_keeps_every_debater():
    tok = load_tokenizer(resolve_model("minilm-l6"))
    t = transcript([400, 400, 400])  # far beyond 128 tokens
    text = weak_input(t.sample_text, t, tok, 128, "per_turn")
    assert len(tok(text)["input_ids"]) <= 128
    for i in range(3):
        assert f"word{i}" in text
    assert "argues: The claim is false." in text and "argues: The claim is true." in text


def test_head_strategy_loses_later_turns_after_truncation():
    tok = load_tokenizer(resolve_model("minilm-l6"))
    t = transcript([400, 400, 400])
    text = weak_input(t.sample_text, t, tok, 128, "head")
    kept = tok.decode(tok(text, truncation=True, max_length=128)["input_ids"])
    assert "word0" in kept and "word2" not in kept


def test_no_transcript_is_the_sample_alone():
    tok = load_tokenizer(resolve_model("minilm-l6"))
    assert weak_input("Claim: x.", None, tok, 64) == "Claim: x."
