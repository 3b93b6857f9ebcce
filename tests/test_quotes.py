"""Graded quote checking for information-asymmetric debate: verified, fuzzy, unverified."""
import random
from difflib import SequenceMatcher

import pytest

from w2s_base.config import RunConfig, Source
from w2s_base.runfolder.layout import RunLayout
from data.schema import Sample
from data.splits import Splits
from debate.quotes import NEGATIONS, QuoteCheck, QuoteTally, grade, near_match, words
from factories import make_transcript, scripted_report
from w2s_run.report.model import RunMeta
from w2s_run.report.render import render_table
from weak.inputs import weak_input
from weak.stage import MemberTrainer, quote_grades, write_quote_grades

PASSAGE = ("The Eiffel Tower, completed in 1889, was the tallest man-made structure in the world "
           "for 41 years, until the Chrysler Building in New York City was finished in 1930.")
# ten words of the passage; changing one leaves 9 of 10 matched: ratio 2·9/20 = 0.9 exactly
TEN = "was the tallest man-made structure in the world for"


def test_verbatim_after_normalisation_is_verified():
    assert grade("completed in 1889", PASSAGE, 0.9) == "verified"
    assert grade("The  EIFFEL tower, completed in 1889,", PASSAGE, 0.9) == "verified"  # case, spacing, punctuation
    assert grade("was the tallest man made structure in the world for 41 years", PASSAGE, 0.9) == "verified"
    assert grade("", PASSAGE, 0.9) == "unverified"


def test_a_one_word_change_is_fuzzy_and_a_paraphrase_far_from_the_text_is_not():
    # one word changed in a long quote: a near match, shown as such (never as verified)
    assert grade("was the tallest man-made building in the world for 41 years until", PASSAGE, 0.9) == "fuzzy"
    # a dropped word
    assert grade("the Chrysler Building in New York was finished in 1930", PASSAGE, 0.9) == "fuzzy"
    assert grade("completed in 1890", PASSAGE, 0.9) == "unverified"  # short: must be verbatim
    assert grade("the tower was never the tallest structure in the world at all", PASSAGE, 0.9) == "unverified"
    # the words are all in the passage, but scattered: not a quote
    assert grade("the tower in the world was finished until the building in 1889", PASSAGE, 0.9) == "unverified"


def test_a_near_match_that_adds_or_drops_a_negation_is_unverified():
    quote = "was not the tallest man-made structure in the world for 41 years"
    assert SequenceMatcher(None, words(quote), words(quote.replace(" not", ""))).ratio() > 0.9  # similar words ...
    assert grade(quote, PASSAGE, 0.9) == "unverified"                                # ... opposite meaning
    negated = "The Eiffel Tower, completed in 1889, was not the tallest structure in the world for 41 years."
    assert grade("was the tallest structure in the world for 41 years", negated, 0.9) == "unverified"


def test_the_threshold_is_a_closed_boundary():
    one_changed = TEN.replace("structure", "building")
    assert SequenceMatcher(None, words(one_changed), words(TEN)).ratio() == 0.9
    assert grade(one_changed, PASSAGE, 0.9) == "fuzzy"          # at the threshold: fuzzy
    assert grade(one_changed, PASSAGE, 0.91) == "unverified"    # just above it: not
    assert grade(one_changed, PASSAGE, 0.85) == "fuzzy"
    assert grade(TEN, PASSAGE, 1.0) == "verified"               # 1.0: only verbatim quotes pass
    assert grade(one_changed, PASSAGE, 1.0) == "unverified"


def _brute_force(q: list[str], p: list[str]):
    """Every window of every length, aligned: the best ones decide (what near_match's
    pruning must agree with). Returns the decision as a function of the threshold."""
    scored = []
    for i in range(len(p)):
        for j in range(i + 1, len(p) + 1):
            sm = SequenceMatcher(None, p[i:j], q, autojunk=False)
            flips = any(w in NEGATIONS for tag, a1, a2, b1, b2 in sm.get_opcodes()
                        if tag != "equal" for w in (*p[i:j][a1:a2], *q[b1:b2]))
            scored.append((sm.ratio(), flips))
    best = max(r for r, _ in scored)
    flips = any(f for r, f in scored if r == best)
    return lambda t: best >= t and not flips


@pytest.mark.parametrize("seed", range(3))
def test_the_window_search_finds_exactly_the_windows_a_brute_force_search_finds(seed):
    rng = random.Random(seed)
    vocab = "a b c d e f g h not".split()
    hits = 0
    for _ in range(150):
        p = [rng.choice(vocab) for _ in range(rng.randint(5, 25))]
        i = rng.randrange(len(p))
        q = p[i:i + rng.randint(3, 12)]
        for _ in range(rng.randint(0, 2)):  # a few edits: substitute, drop or add a word
            if not q:
                break
            op, at = rng.choice("sda"), rng.randrange(len(q))
            q = (q[:at] + [rng.choice(vocab)] + q[at + 1:] if op == "s" else q[:at] + q[at + 1:] if op == "d"
                 else q[:at] + [rng.choice(vocab)] + q[at:])
        decide = _brute_force(q, p)
        for t in (0.7, 0.85, 0.9):
            expect = decide(t)
            hits += expect
            assert near_match(q, p, t) == expect, (q, p, t)
    assert hits > 30  # the draw holds matches as well as misses


def test_each_grade_is_tagged_in_what_the_weak_model_reads():
    check = QuoteCheck(PASSAGE, 0.9)
    text, grades = check.mark("See <quote>completed in 1889</quote>, <quote>built in 1900</quote> and "
                              f"<quote>{TEN.replace('structure', 'building')}</quote>.")
    assert grades == ["verified", "unverified", "fuzzy"]
    assert text == ("See <v_quote>completed in 1889</v_quote>, <u_quote>built in 1900</u_quote> and "
                    "<f_quote>was the tallest man-made building in the world for</f_quote>.")
    t = make_transcript("s", ["It says <quote>completed in 1889</quote>.", "No: <quote>made of wood</quote>."])
    out = weak_input("Question: was it finished before 1900?", t, None, 256, "head", quotes=check)
    assert "<v_quote>completed in 1889</v_quote>" in out and "<u_quote>made of wood</u_quote>" in out
    assert PASSAGE not in out  # the judge never reads the passage itself


def _splits(n: int = 3) -> Splits:
    def sample(i: int) -> Sample:
        return Sample(id=f"q-{i}", task="boolq", text=f"Passage: {PASSAGE}\nQuestion: tallest? ({i})", label=i % 2,
                      positions=("no", "yes"), meta={"passage": PASSAGE, "without_passage": f"Question: tallest? ({i})"})
    return Splits(weak_train=[sample(i) for i in range(n)], transfer=[sample(n + i) for i in range(n)],
                  test=[sample(2 * n + i) for i in range(n)])


def _debates(splits: Splits) -> dict:
    """A scripted debate per sample: A quotes verbatim and near-verbatim, B invents."""
    near = TEN.replace("structure", "building")
    return {(s.id, 0): make_transcript(s.id, [f"<quote>completed in 1889</quote> <quote>{near}</quote>",
                                              "<quote>it was made of wood</quote>",
                                              "<quote>until the Chrysler Building</quote>"],
                                       key=f"k-{s.id}", sample_text=s.text, positions=s.positions, gold=s.label)
            for s in splits.all()}


def test_quotes_are_counted_per_debater_and_per_transcript_in_the_report(tmp_path):
    splits = _splits()
    cfg = RunConfig.model_validate({"weak": {"sees": "without_passage", "verify_quotes": True}})
    grades = quote_grades(cfg, splits, {"debate": _debates(splits)})
    first = grades["debate"][0]
    assert [(x.side, x.grades) for x in first.turns] == [
        ("A", ["verified", "fuzzy"]), ("B", ["unverified"]), ("A", ["verified"])]
    write_quote_grades(RunLayout(tmp_path).quote_grades, grades)  # recorded turn by turn, one line each
    assert len((tmp_path / "weak" / "quote_grades.jsonl").read_text().splitlines()) == 9
    tally = QuoteTally.of(grades["debate"], 0.9)
    assert tally.transcripts == 9
    assert {side: c.model_dump() for side, c in tally.by_side.items()} == {
        "A": {"verified": 18, "fuzzy": 9, "unverified": 0}, "B": {"verified": 0, "fuzzy": 0, "unverified": 9}}
    report = scripted_report("q")
    report = report.model_copy(update={"meta": RunMeta(task="boolq", weak_model="w", strong_model="s",
                                                       quotes={"debate": tally})})
    table = render_table(report)
    assert "fuzzy: word similarity ≥ 0.9 to a passage window" in table
    assert "| debate | A | 27 | 18 | 9 | 0 |" in table
    assert "| debate | B | 9 | 0 | 0 | 9 |" in table
    assert "| debate | per transcript (mean of 9) | 4.00 | 2.00 | 1.00 | 1.00 |" in table
    assert "| debate | transcripts with any | | 9 | 9 | 9 |" in table
    # off: no grades, no table
    assert quote_grades(RunConfig(), splits, {"debate": _debates(splits)}) == {}
    assert "Quotes the weak judge read" not in render_table(scripted_report("q"))


def test_the_fuzzy_threshold_is_in_the_key_of_every_member_whose_reading_it_changes(tmp_path):
    """A member's key hashes the texts it reads, quote tags included: a threshold that
    regrades a quote changes the key of the members reading it (and no debate's key,
    since the transcripts' text does not change); one that regrades nothing keeps it."""
    splits = _splits()
    tr = _debates(splits)
    source = Source("debate", None)

    def key(threshold: float, transcripts=tr) -> dict:
        cfg = RunConfig.model_validate({"output_dir": str(tmp_path), "weak": {
            "sees": "without_passage", "verify_quotes": True, "fuzzy_quote_threshold": threshold,
            "transcript_budget": "head"}})
        trainer = MemberTrainer(cfg, splits, RunLayout(tmp_path))
        return trainer.spec(source, cfg.weak.model, 0, 0, trainer.inputs(source, cfg.weak.model, 0, transcripts))

    assert key(0.9) == key(0.9)
    assert key(0.91)["reads"] != key(0.9)["reads"]      # the near quote turns from <f_quote> to <u_quote>
    assert key(0.85) == key(0.9)                        # it stays fuzzy: nothing read changes
    verbatim = {i: t.model_copy(update={"turns": t.turns[:1] and [t.turns[0].model_copy(
        update={"text": "<quote>completed in 1889</quote>"})]}) for i, t in tr.items()}
    assert key(0.91, verbatim) == key(0.9, verbatim)   # a verbatim quote reads the same at any threshold


class QuotingBackend:
    """A debater that quotes the passage in its prompt: ten words of it verbatim but one
    (similarity 0.9: fuzzy at 0.9, unverified above), four words verbatim, and three
    invented words. Deterministic, for testing orchestration only."""
    name = model = "quoting"

    def generate(self, conversations, params, seeds):
        from debate.backends.base import Generation
        out = []
        for conv in conversations:
            prompt = "\n".join(m["content"] for m in conv)
            passage = next(line for line in prompt.splitlines() if line.startswith("Passage: "))
            w = passage.split()[1:]
            near = " ".join(w[:4] + ["zzz"] + w[5:10])
            out.append(Generation(text=f"<quote>{near}</quote> <quote>{' '.join(w[:4])}</quote> "
                                       "<quote>purple elephants dance</quote>",
                                  prompt_tokens=len(prompt.split()), completion_tokens=20, finish_reason="stop"))
        return out


def test_a_run_records_the_grades_and_a_new_threshold_retrains_only_the_debate_readers(tmp_path, monkeypatch):
    """The pipeline for real (data, debates from a quoting stand-in, caches, report); the
    trainer records which models are fit (tests/test_cache_invalidation.py's Fits)."""
    import json

    import yaml

    import debate.backends
    import run
    import strong.stage
    import weak.stage
    from test_cache_invalidation import Fits
    monkeypatch.setattr(weak.stage, "ModelTrainer", Fits)
    monkeypatch.setattr(strong.stage, "ModelTrainer", Fits)
    monkeypatch.setattr(debate.backends, "make_backend", lambda cfg: QuotingBackend())
    data = tmp_path / "boolq.jsonl"
    data.write_text("".join(json.dumps({
        "question": f"is claim {i} true", "answer": bool(i % 2),
        "passage": f"Record {i}: the survey of the northern valley counted {i * 7} nesting birds in the spring "
                   "of that year, more than any earlier count."}) + "\n" for i in range(24)))
    cfg = tmp_path / "q.yaml"
    cfg.write_text(yaml.safe_dump({
        "name": "q", "output_dir": str(tmp_path / "runs"),
        "data": {"task": "boolq", "path": str(data), "n_weak_train": 8, "n_transfer": 8, "n_test": 8},
        "debate": {"prompts": "quotes", "num_turns": 2, "sampling": {"max_new_tokens": 4}},
        "weak": {"model": "minilm-l6", "sees": "without_passage", "verify_quotes": True, "transcript_reserve": 16,
                 "labellers": [{"name": "weak"}, {"name": "weak+debate", "protocol": "debate"}],
                 "train": {"epochs": 1, "max_length": 64}},
        "strong": {"model": "smollm2-135m", "train": {"mode": "linear_probe", "epochs": 1, "max_length": 96}}}))
    rd = tmp_path / "runs" / "q"

    def go(*overrides: str) -> set[str]:
        Fits.done = []
        assert run.main(["--config", str(cfg), *[a for o in overrides for a in ("--set", o)]]) == 0
        return set(Fits.done)

    assert "weak debate/minilm-l6/seed0-debate0" in go()
    store = rd / "debate" / "transcripts.jsonl"
    n_debates = len(store.read_text().splitlines())
    lines = [json.loads(x) for x in (rd / "weak" / "quote_grades.jsonl").read_text().splitlines()]
    assert len(lines) == 24 and all(len(x["turns"]) == 2 for x in lines)
    assert {tuple(t["grades"]) for x in lines for t in x["turns"]} == {("fuzzy", "verified", "unverified")}
    quotes = json.loads((rd / "report.json").read_text())["meta"]["quotes"]["debate"]
    assert quotes["by_side"]["A"] == {"verified": 24, "fuzzy": 24, "unverified": 24} == quotes["by_side"]["B"]
    assert "| debate | A | 72 | 24 | 24 | 24 |" in (rd / "report.md").read_text()

    # the near quote turns unverified: the debate member reads another text and retrains;
    # the plain weak model, the debates (no new line in the store) and the students do not
    assert go("weak.fuzzy_quote_threshold=0.95") == {"weak debate/minilm-l6/seed0-debate0"}
    assert len(store.read_text().splitlines()) == n_debates
    quotes = json.loads((rd / "report.json").read_text())["meta"]["quotes"]["debate"]
    assert quotes["fuzzy_threshold"] == 0.95 and quotes["by_side"]["A"]["unverified"] == 48
    assert go("weak.fuzzy_quote_threshold=0.95") == set()
