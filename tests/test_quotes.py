"""Quote checking for information-asymmetric debate."""
from debate.quotes import mark_quotes, verified
from factories import make_transcript
from weak.inputs import weak_input

PASSAGE = ("The Eiffel Tower, completed in 1889, was the tallest man-made structure in the world "
           "for 41 years, until the Chrysler Building in New York City was finished in 1930.")


def test_exact_and_near_verbatim_quotes_verify_invented_ones_do_not():
    assert verified("completed in 1889", PASSAGE)
    assert verified("The  EIFFEL tower, completed in 1889,", PASSAGE)          # case, spacing, punctuation
    assert verified("was the tallest man made structure in the world for 41 years", PASSAGE)
    # one word changed in a long quote: near-verbatim (exact matching would reject it)
    assert verified("was the tallest man-made building in the world for 41 years until", PASSAGE)
    assert not verified("completed in 1890", PASSAGE)                            # short: must be exact
    assert not verified("the tower was never the tallest structure in the world at all", PASSAGE)
    # the words are all in the passage, but scattered: not a quote
    assert not verified("the tower in the world was finished until the building in 1889", PASSAGE)
    assert not verified("", PASSAGE)


def test_marks_are_what_the_weak_model_reads():
    text, ok, total = mark_quotes("See <quote>completed in 1889</quote> and <quote>built in 1900</quote>.", PASSAGE)
    assert (ok, total) == (1, 2)
    assert text == "See <v_quote>completed in 1889</v_quote> and <u_quote>built in 1900</u_quote>."
    t = make_transcript("s", ["It says <quote>completed in 1889</quote>.", "No: <quote>made of wood</quote>."])
    out = weak_input("Question: was it finished before 1900?", t, None, 256, "head", passage=PASSAGE)
    assert "<v_quote>completed in 1889</v_quote>" in out and "<u_quote>made of wood</u_quote>" in out
    assert PASSAGE not in out  # the judge never reads the passage itself
