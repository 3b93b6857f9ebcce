"""Quote checking for information-asymmetric debate (Khan et al. 2024,
ucl-dark/llm_debate): debaters who read a passage the judge cannot see support
their claims with <quote>…</quote> spans; each span is checked against the
passage and shown to the judge as <v_quote>…</v_quote> (verified) or
<u_quote>…</u_quote> (not found), so the judge can trust verified evidence.

Matching is on normalised words (case, punctuation and spacing ignored), not
exact characters: an exact-match check marks near-verbatim quotes false (their
issue #2). A quote is verified when it appears in the passage word for word
after normalisation, or when a contiguous run of the passage's words covers at
least `MIN_COVER` of the quote's words in order (a dropped or changed word in a
long quote is tolerated; a short quote must match exactly).
"""
from __future__ import annotations

import re
from difflib import SequenceMatcher

QUOTE = re.compile(r"<quote>(.*?)</quote>", re.DOTALL | re.IGNORECASE)
MIN_COVER = 0.9
MIN_WORDS_FOR_FUZZY = 8


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower().replace("’", "'"))


def verified(quote: str, passage: str) -> bool:
    q, p = words(quote), words(passage)
    if not q:
        return False
    qs, ps = " ".join(q), " ".join(p)
    if f" {qs} " in f" {ps} ":
        return True
    if len(q) < MIN_WORDS_FOR_FUZZY:
        return False
    m = SequenceMatcher(None, p, q, autojunk=False)
    matched = sum(b.size for b in m.get_matching_blocks())
    if matched / len(q) < MIN_COVER:
        return False
    # the matched words must sit close together in the passage, not scattered over it
    blocks = [b for b in m.get_matching_blocks() if b.size]
    span = blocks[-1].a + blocks[-1].size - blocks[0].a
    return span <= int(len(q) / MIN_COVER) + 1


def mark_quotes(text: str, passage: str) -> tuple[str, int, int]:
    """The text with each <quote> marked verified or not; (text, verified, total)."""
    counts = [0, 0]

    def repl(m: re.Match) -> str:
        ok = verified(m.group(1), passage)
        counts[0] += ok
        counts[1] += 1
        tag = "v_quote" if ok else "u_quote"
        return f"<{tag}>{m.group(1)}</{tag}>"

    return QUOTE.sub(repl, text), counts[0], counts[1]
