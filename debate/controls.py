"""Controls: transcripts that prove the instrument can (and cannot) see a signal.

A weak labeller that reads debates is only evidence about debate if the same
pipeline demonstrably (a) picks up information about the gold label when a
transcript carries it and (b) gains nothing from a transcript that carries none.
Two controls make that measurable; both are ordinary `Transcript` records, marked
with `Transcript.control`, so the weak stage, viewer and report read them as they
read real debates while never mixing them into real results:

- **positive** (`positive_control`): a scripted debate (protocol "debate", turns
  A, B, A, ...) whose *winner* defends the gold label with probability
  `reliability` (r). The winner's turns state its position confidently, the
  loser's turns concede. r = 0.5 carries no information (the transcript is
  independent of the gold label); r = 0.9 carries a lot. A weak labeller reading
  these should gain accuracy roughly in step with r; if it does not, the
  instrument cannot detect the effect it exists for.
- **negative** (`shuffled_control`): real transcripts permuted across samples by
  a seeded derangement (no sample keeps its own debate), per debate index k. The
  text distribution is that of real debates, but the debate is about another
  sample, so a labeller reading them should gain nothing over no debate.
- **deceptive** (`deceptive_control`): the positive control at reliability 1.0,
  except that on a fraction `rate` (d) of the transfer and test samples the
  confident winner argues the WRONG label (the loser still concedes). Each
  transcript records whether it was deceptive (`Transcript.deceptive`). It measures
  what a debater that misleads the weak judge does to the labels and to the student
  trained on them: the weak labeller's accuracy should fall toward 1 - d, and the
  report gives the dose-response over d and the deception view per d.

  Why the weak-train split stays honest: the weak judge is trained there against
  gold labels, so a debater deceiving there would be caught (the judge would learn
  the deceiver's rate: at d > 0.5 it would learn to read the verdict backwards, and
  the control would measure calibration, not deception). Deceiving everywhere at rate
  d is, in distribution, the positive control at r = 1 - d, which exists already.
  The honest debates use reliability 1.0 so the only wrong verdicts are the
  deceptive ones: the dose is d itself.

Caveat of the shuffled control: the turn *texts* are the source sample's and may
quote the source sample's positions, while the `positions` field (and so the
"argues: ..." prefix the weak model reads, weak/inputs.py) is the target's. For
tasks whose positions are the same for every sample (demo, BoolQ, SciQ,
CosmosQA, Anthropic HH) this is invisible; for the generic task with per-row
positions the mismatch is visible to the reader.

Every random draw is seeded by what the unit is (seed, control kind, sample id,
k), never taken from a shared stream, so a sample's positive-control transcript
does not depend on which other samples are in the run. The deceptive control's
draw leaves the rate out of the seed (a sample is deceived at rate d iff its
uniform draw is below d), so the samples deceived at 0.3 are among those deceived
at 0.6: the rates of a dose-response differ only by the added deceptions.
"""
from __future__ import annotations

import hashlib
import json
import random

from w2s_base.config import ControlSpec, SamplingParams, fmt_reliability as _fmt_r
from w2s_base.protocols import draw_a_label, protocol as protocol_spec
from data.schema import Sample

from .transcript import Transcript, Turn, debate_key


# The scripted turn texts of the positive control ({position} is the full
# position sentence of the side speaking, e.g. "The claim is true.").
# The winner names its label with one word, the loser says nothing decisive: the
# signal is a single lexical cue a small weak model can learn from ~100 examples
# (an earlier template that restated both positions was not learnable by MiniLM).
VERDICT = ("no", "yes")  # by position label
POSITIVE_WINNER_TEXT = "Verdict: {verdict}. I am certain."
POSITIVE_LOSER_TEXT = "I concede."

CONTROL_BACKEND = "control"
SHUFFLED_SUFFIX = "|shuffled"




def control_hash(spec: ControlSpec) -> str:
    """Content hash of what generates a control's text (kind, r, templates); stands
    in for the prompt hash in the keys of positive-control transcripts."""
    payload = {"kind": spec.kind, "reliability": spec.reliability, "of": spec.of}
    if spec.kind == "deceptive":  # only here, so the positive controls' hashes (and keys) stay as they were
        payload["rate"] = spec.rate
    if spec.kind in ("positive", "deceptive"):
        payload["templates"] = [POSITIVE_WINNER_TEXT, POSITIVE_LOSER_TEXT]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------
# positive control


def winner_defends_gold(seed: int, reliability: float, sample_id: str, k: int) -> bool:
    """Whether the winner of positive-control debate k of a sample defends the gold
    label: True with probability `reliability`, from an RNG seeded by the unit alone."""
    rng = random.Random(f"{seed}|positive|{_fmt_r(reliability)}|{sample_id}|{k}")
    return rng.random() < reliability


def positive_model(reliability: float) -> str:
    """The `model` field of positive-control transcripts, e.g. "control:positive-r0.9"."""
    return f"control:positive-r{_fmt_r(reliability)}"


def _words(text: str) -> int:
    return len(text.split())


def _scripted_one(s: Sample, k: int, spec: ControlSpec, seed: int, num_turns: int, winner_label: int,
                  model: str, deceptive: bool | None = None) -> Transcript:
    """A scripted debate on sample s (debate k) whose confident side defends `winner_label`."""
    a_label = draw_a_label(seed, s.id, k)  # the engine's draw
    sampling = SamplingParams()
    turns: list[Turn] = []
    # What a debater "read" before speaking: the sample and the turns so far, in words.
    seen = _words(s.text)
    for i, (side, role) in enumerate(protocol_spec(spec.protocol).schedule(num_turns)):
        label = a_label if side == "A" else 1 - a_label
        template = POSITIVE_WINNER_TEXT if label == winner_label else POSITIVE_LOSER_TEXT
        text = template.format(verdict=VERDICT[label])
        turns.append(Turn(index=i, side=side, role=role, position_label=label, text=text,
                          prompt_tokens=seen, completion_tokens=_words(text), finish_reason="stop"))
        seen += _words(text)
    key = debate_key(sample_id=s.id, sample_text=s.text, positions=s.positions, prompt_hash=control_hash(spec),
                     model=model, sampling=sampling, seed=seed, debate_index=k, protocol=spec.protocol,
                     num_turns=num_turns)
    if deceptive is not None:  # the same sample is honest on weak_train and may be deceived elsewhere
        key = hashlib.sha256(json.dumps([key, deceptive]).encode()).hexdigest()[:24]
    return Transcript(
        key=key, sample_id=s.id, task=s.task, sample_text=s.text, positions=s.positions,
        gold_label=s.label, debate_index=k, protocol=spec.protocol, num_turns=num_turns, a_label=a_label,
        turns=turns, model=model, backend=CONTROL_BACKEND, prompt_set="control", prompt_hash=control_hash(spec),
        sampling=sampling, seed=seed, control=spec.tag, deceptive=deceptive,
    )


def _positive_one(s: Sample, k: int, spec: ControlSpec, seed: int, num_turns: int) -> Transcript:
    r = float(spec.reliability)
    winner_label = s.label if winner_defends_gold(seed, r, s.id, k) else 1 - s.label
    return _scripted_one(s, k, spec, seed, num_turns, winner_label, positive_model(r))


def _check_unique_ids(samples: list[Sample]) -> None:
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ValueError(f"controls need distinct sample ids; repeated: {dup}")


def _check_counts(num_debates: int, num_turns: int) -> None:
    if num_debates < 1:
        raise ValueError(f"num_debates must be at least 1, got {num_debates}")
    if num_turns < 1:
        raise ValueError(f"num_turns must be at least 1, got {num_turns}")


def positive_control(samples: list[Sample], num_debates: int, reliability: float, seed: int,
                     num_turns: int = 3) -> dict[tuple[str, int], Transcript]:
    """{(sample id, k): scripted debate} for every sample and k < num_debates.

    Each debate looks like a real one (protocol "debate", turns A, B, A, ... with the
    engine's roles, side A's label drawn by the engine's rule) but its text is
    scripted: the winner's turns read `POSITIVE_WINNER_TEXT` ("Verdict: yes. I am
    certain." for label 1, "no" for label 0), the loser's `POSITIVE_LOSER_TEXT`
    ("I concede."). The winner defends the gold label with probability
    `reliability`, drawn per (seed, reliability, sample id, k). Transcripts carry
    `control="positive:<r>"`, `backend="control"` and keys that cannot collide with
    real debates' (the model and prompt hash differ)."""
    spec = ControlSpec(kind="positive", reliability=reliability)
    _check_counts(num_debates, num_turns)
    _check_unique_ids(samples)
    return {(s.id, k): _positive_one(s, k, spec, seed, num_turns)
            for k in range(num_debates) for s in samples}


# ---------------------------------------------------------------------------
# deceptive control


def deception_draw(seed: int, sample_id: str, k: int) -> float:
    """The uniform draw that decides whether debate k of a sample is deceptive (it is at
    rate d iff the draw is below d). The rate is not in the seed, so deceptions nest
    across rates (module docstring)."""
    return random.Random(f"{seed}|deceptive|{sample_id}|{k}").random()


def deceptive_model(rate: float) -> str:
    """The `model` field of deceptive-control transcripts, e.g. "control:deceptive-d0.3"."""
    return f"control:deceptive-d{_fmt_r(rate)}"


def deceptive_control(samples: list[Sample], num_debates: int, rate: float, seed: int, num_turns: int = 3,
                      honest: frozenset[str] | set[str] = frozenset()) -> dict[tuple[str, int], Transcript]:
    """{(sample id, k): scripted debate} for every sample and k < num_debates: the
    positive control at reliability 1.0 (the winner names the gold label), except that
    where `deception_draw` < `rate` and the sample is not in `honest` the winner names
    the wrong label, the loser still conceding. `honest` holds the ids of the samples
    the weak judge is trained on against gold labels (the pipeline passes weak_train;
    see the module docstring for why). Every transcript records `deceptive` (True or
    False) and carries `control="deceptive:<d>"`, `backend="control"`, and keys that
    differ from the positive control's and from real debates'."""
    spec = ControlSpec(kind="deceptive", rate=rate)
    _check_counts(num_debates, num_turns)
    _check_unique_ids(samples)
    model = deceptive_model(rate)
    out = {}
    for k in range(num_debates):
        for s in samples:
            lie = s.id not in honest and deception_draw(seed, s.id, k) < rate
            out[(s.id, k)] = _scripted_one(s, k, spec, seed, num_turns, 1 - s.label if lie else s.label,
                                           model, deceptive=lie)
    return out


# ---------------------------------------------------------------------------
# negative (shuffled) control


def _derangement(n: int, rng: random.Random) -> list[int]:
    """A uniformly random permutation p of range(n) with p[i] != i for all i
    (rejection sampling: about e ≈ 2.7 shuffles on average)."""
    if n < 2:
        raise ValueError("a derangement needs at least 2 items")
    p = list(range(n))
    while True:
        rng.shuffle(p)
        if all(i != j for i, j in enumerate(p)):
            return p


def shuffled_key(target: Sample, source: Transcript, seed: int) -> str:
    """Content address of a shuffled transcript: the target sample, the source
    transcript's own key, and the shuffle seed."""
    payload = json.dumps(["shuffled", seed, target.id, target.text, list(target.positions),
                          source.debate_index, source.key], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def shuffled_control(samples: list[Sample], source: dict[tuple[str, int], Transcript],
                     seed: int) -> dict[tuple[str, int], Transcript]:
    """Real transcripts permuted across samples: the negative control.

    For each debate index k, the samples (of `samples`) that have a finished source
    transcript for k are ordered by id and each is given the turns of another one's
    transcript by a derangement drawn from `random.Random(f"{seed}|shuffled|{k}")`:
    no sample gets its own turns, and every source transcript of k is used exactly
    once. Samples without a source transcript for k (or with a failed one) get none;
    source entries of samples not in `samples` are ignored.

    A result keeps the TARGET's sample fields (`sample_id`, `task`, `sample_text`,
    `gold_label`, `positions`) and the SOURCE's debate (`turns` with their texts,
    sides and position labels, `a_label`, `protocol`, `num_turns`, prompt set and
    sampling); `model` is the source's + "|shuffled", `control="shuffled"`, `seed`
    the shuffle seed, and `key` a new content key (`shuffled_key`). The turn texts
    may name the source sample's positions (see the module docstring)."""
    _check_unique_ids(samples)
    by_id = {s.id: s for s in samples}
    for (sid, k), t in source.items():
        if t.sample_id != sid or t.debate_index != k:
            raise ValueError(f"source entry {(sid, k)} holds the transcript of "
                             f"{(t.sample_id, t.debate_index)}")
    out: dict[tuple[str, int], Transcript] = {}
    for k in sorted({k for _, k in source}):
        ids = sorted(sid for (sid, kk), t in source.items() if kk == k and sid in by_id and t.ok)
        if not ids:
            continue
        if len(ids) < 2:
            raise ValueError(f"a shuffled control needs at least 2 samples with a transcript for k={k}")
        perm = _derangement(len(ids), random.Random(f"{seed}|shuffled|{k}"))
        for i, j in enumerate(perm):
            target, src = by_id[ids[i]], source[(ids[j], k)]
            out[(target.id, k)] = Transcript(
                key=shuffled_key(target, src, seed), sample_id=target.id, task=target.task,
                sample_text=target.text, positions=target.positions, gold_label=target.label,
                debate_index=k, protocol=src.protocol, num_turns=src.num_turns, a_label=src.a_label,
                turns=[x.model_copy(deep=True) for x in src.turns], model=src.model + SHUFFLED_SUFFIX,
                backend=src.backend, prompt_set=src.prompt_set, prompt_hash=src.prompt_hash,
                sampling=src.sampling.model_copy(deep=True), seed=seed, seconds=0.0, control="shuffled",
            )
    return out
