from core.classifier import load_tokenizer
from core.models import resolve_model
from debate.backends.base import SamplingParams
from debate.transcript import Transcript, Turn
from weak.inputs import weak_input


def transcript(lengths):
    turns = [Turn(index=i, side="AB"[i % 2], role="r", position_label=i % 2,
                  text=" ".join([f"word{i}"] * n), prompt_tokens=1, completion_tokens=n,
                  finish_reason="length") for i, n in enumerate(lengths)]
    return Transcript(key="k", sample_id="s", task="t", sample_text="Claim: 3 is larger than 2.",
                      positions=("The claim is false.", "The claim is true."), gold_label=1,
                      debate_index=0, protocol="debate", num_turns=len(turns), a_label=0, turns=turns,
                      model="m", backend="b", prompt_set="p", prompt_hash="h",
                      sampling=SamplingParams(), seed=0)


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
