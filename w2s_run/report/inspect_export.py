"""Export a run's debate transcripts as inspect_ai eval logs, to browse them in
inspect's log viewer (`inspect view start --log-dir runs/<name>/inspect`).

One log per (protocol, split), the split of each sample taken from the run's
splits.json, cut into parts of at most `max_samples_per_log` samples:

    runs/<name>/inspect/<run>_<protocol>_<split>_<part>.eval     (part 001, 002, ...)

Samples whose id is not in splits.json (transcripts a run with other data left in
the append-only store) go to the split "unassigned"; failed transcripts are left out.

Each transcript is one `EvalSample`:
- id: the sample id with "/" replaced by "_" (a "/" in a sample id breaks the
  viewer's sample pages, inspect_ai issue #3185). A control transcript
  (`Transcript.control`) gets "~<control>" appended, and any two transcripts that
  would still share (id, epoch) in one log (e.g. debates of two prompt sets left in
  the store, or "a/b" next to "a_b") get "~<key prefix>"; the original id is kept
  in the metadata (`sample_id`).
- epoch: debate index + 1, so the K debates of a sample are its epochs.
- input: the sample text; target: the gold position (the gold label in metadata).
- messages: the sample as a user message, then every turn as an assistant message,
  verbatim, with speaker, side, instruction role, position argued, whether it is
  the gold one, and token counts in the message metadata (the viewer prints message
  metadata under each message).
- scores: one `Score` per weak labeller with a prediction for the sample (transfer
  and test, as debates.html shows; weak_train, which the labellers train on, has
  none). The value is "C"/"I" (the labeller's label, P(1) >= 0.5, is / is not the
  gold label): the viewer draws "C"/"I" as green/red correct/incorrect badges that
  can be sorted and filtered in the sample list, and its log header shows accuracy,
  where a bare P(1) would be a number to compare with the target by hand, row by
  row. P(label=1) is kept in the score's metadata (`p1`) and explanation, the
  predicted position in `answer`.

The logs are built and written with inspect_ai's Python API only (never its file
bytes, which are versioned, not frozen: inspect_ai issue #5066), and are marked
untrusted content (`ViewerConfig(trust_content=False)`): debate turns are model
output, shown as plain text, as debates.html escapes it.

inspect_ai is an optional dependency, imported when an export runs:
`pip install -e ".[inspect]"`.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from w2s_base.decision import predicted_label_tie_as_1
from w2s_base.runfolder.layout import RunLayout, slug
from w2s_base.protocols import PROTOCOLS
from w2s_base.protocols import protocol as protocol_spec
from debate.engine import load_transcripts
from debate.transcript import Transcript
from weak.labels import LabellerResult

from w2s_run.report import ReportError

INSTALL_HINT = 'the inspect export needs inspect_ai, which is not installed: pip install -e ".[inspect]"'
SPLITS = ("weak_train", "transfer", "test")
UNASSIGNED = "unassigned"  # samples not in the run's splits.json


def _inspect() -> SimpleNamespace:
    """inspect_ai's API, imported on first use (an optional dependency)."""
    try:
        from inspect_ai.log import (EvalConfig, EvalDataset, EvalLog, EvalMetric, EvalResults,
                                    EvalSample, EvalScore, EvalSpec, EvalStats, write_eval_log)
        from inspect_ai.model import ChatMessageAssistant, ChatMessageUser, ModelUsage
        from inspect_ai.scorer import Score
        from inspect_ai.viewer import ViewerConfig
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return SimpleNamespace(**{k: v for k, v in locals().items()})


# ---------------------------------------------------------------- what goes where
def safe_id(sample_id: str) -> str:
    """A sample id the viewer can open (inspect_ai issue #3185: no "/")."""
    return sample_id.replace("/", "_")


def read_split_of(layout: RunLayout) -> dict[str, str]:
    """{sample_id: split} from the run's splits.json."""
    f = layout.splits
    if not f.exists():
        raise ReportError(f"no splits at {f}: run the pipeline for {layout.root} first "
                          f"(the inspect export files each sample under its split)")
    try:
        data = json.loads(f.read_text())
    except ValueError as e:
        raise ReportError(f"{f} is not readable JSON ({e}): rerun the pipeline to rewrite it") from None
    return {sid: split for split in SPLITS for sid in data.get(split, [])}


def read_labellers(layout: RunLayout) -> list[LabellerResult]:
    """Every labeller's labeller.json, by name; a torn file (a killed run) is skipped."""
    out = []
    for f in layout.labeller_jsons():
        try:
            out.append(LabellerResult.model_validate_json(f.read_text()))
        except ValueError:
            continue
    return sorted(out, key=lambda lab: lab.name)


def sample_ids(ts: list[Transcript]) -> dict[str, str]:
    """{transcript key: EvalSample id}, unique per (id, epoch) within the given transcripts."""
    base = {t.key: safe_id(t.sample_id) + (f"~{slug(t.control)}" if getattr(t, "control", None) else "")
            for t in ts}
    seen = Counter((base[t.key], t.debate_index) for t in ts)
    return {t.key: base[t.key] if seen[(base[t.key], t.debate_index)] == 1 else f"{base[t.key]}~{t.key[:12]}"
            for t in ts}


def shard(groups: list[list[Any]], n: int) -> list[list[Any]]:
    """Pack groups (the epochs of one sample) into parts of at most n items, a
    sample's epochs in one part unless they alone are more than n."""
    parts: list[list[Any]] = []
    cur: list[Any] = []
    for g in groups:
        if cur and len(cur) + len(g) > n:
            parts.append(cur)
            cur = []
        while len(g) > n:
            parts.append(g[:n])
            g = g[n:]
        cur = cur + g
    if cur:
        parts.append(cur)
    return parts


def _hid(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:22]


@dataclass
class _Pred:
    labeller: LabellerResult
    p1: float
    split: str   # which of the labeller's prediction sets it comes from


def _preds(labellers: list[LabellerResult]) -> dict[str, list[_Pred]]:
    """{sample_id: predictions}, from transfer and test (the labellers' only predictions)."""
    out: dict[str, list[_Pred]] = defaultdict(list)
    for lab in labellers:
        for split, p1s in (("transfer", lab.transfer_p1), ("test", lab.test_p1)):
            for sid, p1 in p1s.items():
                out[sid].append(_Pred(lab, float(p1), split))
    return out


# ---------------------------------------------------------------- the inspect objects
def _score(ia: SimpleNamespace, t: Transcript, pred: _Pred):
    label = predicted_label_tie_as_1(pred.p1)  # as debates.html reads a P(1)
    lab = pred.labeller
    return ia.Score(
        value="C" if label == t.gold_label else "I",
        answer=t.positions[label],
        explanation=(f"{lab.name}: P(label=1) = {pred.p1:.3f} -> {label} ({t.positions[label]}); "
                     f"gold {t.gold_label} ({t.positions[t.gold_label]})"),
        metadata={"p1": pred.p1, "predicted_label": label, "gold_label": t.gold_label,
                  "prediction_split": pred.split, "labeller_protocol": lab.protocol,
                  "aggregate": lab.aggregate, "members": list(lab.members)},
    )


def _speaker(speakers: tuple[str, ...], side: str) -> str:
    i = "AB".index(side)
    return speakers[i] if i < len(speakers) else f"Side {side}"


def _sample(ia: SimpleNamespace, t: Transcript, sid: str, split: str, preds: list[_Pred]):
    speakers = protocol_spec(t.protocol).speakers
    gold_text = t.positions[t.gold_label]
    messages = [ia.ChatMessageUser(
        id=f"{t.key}:input", content=t.sample_text, source="input",
        metadata={"task": t.task, "positions": list(t.positions), "gold_label": t.gold_label})]
    for turn in t.turns:
        messages.append(ia.ChatMessageAssistant(
            id=f"{t.key}:{turn.index}", content=turn.text, source="generate", model=t.model,
            metadata={"turn": turn.index + 1, "speaker": _speaker(speakers, turn.side),
                      "side": turn.side, "role": turn.role, "position_label": turn.position_label,
                      "position": t.positions[turn.position_label],
                      "argues_gold": turn.position_label == t.gold_label,
                      "prompt_tokens": turn.prompt_tokens, "completion_tokens": turn.completion_tokens,
                      "finish_reason": turn.finish_reason}))
    metadata: dict[str, Any] = {
        "transcript_key": t.key, "sample_id": t.sample_id, "split": split, "task": t.task,
        "protocol": t.protocol, "debate_index": t.debate_index, "num_turns": t.num_turns,
        "positions": list(t.positions), "gold_label": t.gold_label, "gold_position": gold_text,
        "a_label": t.a_label, "a_position": t.positions[t.a_label],
        "model": t.model, "backend": t.backend, "prompt_set": t.prompt_set, "prompt_hash": t.prompt_hash,
        "seed": t.seed, "sampling": t.sampling.model_dump(), "seconds": t.seconds,
    }
    if "control" in type(t).model_fields:
        metadata["control"] = t.control
    tokens_in = sum(x.prompt_tokens for x in t.turns)
    tokens_out = sum(x.completion_tokens for x in t.turns)
    return ia.EvalSample(
        id=sid, epoch=t.debate_index + 1, input=t.sample_text, target=gold_text,
        messages=messages, metadata=metadata,
        scores={p.labeller.name: _score(ia, t, p) for p in preds} or None,
        model_usage={t.model: ia.ModelUsage(input_tokens=tokens_in, output_tokens=tokens_out,
                                            total_tokens=tokens_in + tokens_out)},
        total_time=t.seconds or None, uuid=t.key,
    )


def _results(ia: SimpleNamespace, samples: list) -> Any:
    """Per labeller: accuracy over the distinct samples of this log (a labeller
    predicts a sample once, whatever the number of debates on it)."""
    per: dict[str, dict[str, str]] = defaultdict(dict)
    for s in samples:
        for name, score in (s.scores or {}).items():
            per[name][s.metadata["sample_id"]] = score.value
    distinct = len({s.metadata["sample_id"] for s in samples})
    scores = [ia.EvalScore(
        name=name, scorer=name, scored_samples=len(v), unscored_samples=distinct - len(v),
        metrics={"accuracy": ia.EvalMetric(name="accuracy", value=sum(x == "C" for x in v.values()) / len(v))},
        metadata={"over": "distinct samples of this log"})
        for name, v in sorted(per.items())]
    return ia.EvalResults(total_samples=len(samples), completed_samples=len(samples), scores=scores)


def _log(ia: SimpleNamespace, *, run: str, protocol: str, split: str, part: int, parts: int,
         samples: list, created: str, layout: RunLayout):
    models = sorted({s.metadata["model"] for s in samples})
    tasks = sorted({s.metadata["task"] for s in samples})
    usage: dict[str, Any] = {}
    for s in samples:
        for m, u in s.model_usage.items():
            usage[m] = u if m not in usage else usage[m] + u
    spec = ia.EvalSpec(
        eval_id=_hid(run, protocol, split, part, created), run_id=_hid(run, created),
        # One task_id per file: the viewer's log list shows only the newest of the logs
        # in a folder that share a task_id (it takes them for retries of one task).
        created=created, task_id=_hid(run, protocol, split, part),
        # the log list shows task names only: parts of one log are told apart by theirs
        task=f"{protocol}_{split}" + (f"_{part:03d}" if parts > 1 else ""),
        task_display_name=f"{run}: {protocol} ({split}) {part}/{parts}",
        tags=[run, protocol, split],
        dataset=ia.EvalDataset(name=",".join(tasks), location=str(layout.transcripts),
                               samples=len({s.id for s in samples}),
                               sample_ids=sorted({s.id for s in samples})),
        model=", ".join(models),
        config=ia.EvalConfig(epochs=max(s.epoch for s in samples)),
        metadata={"run": run, "protocol": protocol, "split": split, "part": part, "parts": parts,
                  "models": models, "source": "w2s-debate w2s_run.report.inspect_export"},
        viewer=ia.ViewerConfig(trust_content=False),
    )
    # the export time as start and end: the viewer computes a duration from them
    stats = ia.EvalStats(started_at=created, completed_at=created, model_usage=usage)
    return ia.EvalLog(eval=spec, status="success", results=_results(ia, samples), stats=stats,
                      samples=samples, tags=[run, protocol, split])


# ---------------------------------------------------------------- the export
def export_inspect(layout: RunLayout, out_dir: Path | None = None,
                   max_samples_per_log: int = 1000) -> list[Path]:
    """Write the run's successful transcripts as inspect_ai .eval logs (one per
    protocol and split, in parts of at most `max_samples_per_log` samples) under
    out_dir (default runs/<name>/inspect/); returns the files written, in order.
    Older parts of this run's logs in out_dir that this export did not rewrite are removed."""
    if max_samples_per_log < 1:
        raise ValueError(f"max_samples_per_log must be >= 1, got {max_samples_per_log}")
    ia = _inspect()
    out_dir = Path(out_dir) if out_dir is not None else layout.root / "inspect"
    run = slug(layout.root.resolve().name)
    split_of = read_split_of(layout)
    preds = _preds(read_labellers(layout))
    ts = [t for t in load_transcripts(layout.transcripts).values() if t.ok]

    groups: dict[tuple[str, str], list[Transcript]] = defaultdict(list)
    for t in ts:
        groups[(t.protocol, split_of.get(t.sample_id, UNASSIGNED))].append(t)
    order = {s: i for i, s in enumerate(SPLITS + (UNASSIGNED,))}
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    written: list[Path] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for protocol, split in sorted(groups, key=lambda g: (g[0], order[g[1]])):
        group = groups[(protocol, split)]
        ids = sample_ids(group)
        by_id: dict[str, list] = defaultdict(list)
        for t in group:
            by_id[ids[t.key]].append(_sample(ia, t, ids[t.key], split, preds.get(t.sample_id, [])))
        parts = shard([sorted(by_id[i], key=lambda s: s.epoch) for i in sorted(by_id)], max_samples_per_log)
        for n, samples in enumerate(parts, 1):
            path = out_dir / f"{run}_{protocol}_{split}_{n:03d}.eval"
            log = _log(ia, run=run, protocol=protocol, split=split, part=n, parts=len(parts),
                       samples=samples, created=created, layout=layout)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # not *.eval: the viewer never lists it
            ia.write_eval_log(log, str(tmp), format="eval")
            tmp.replace(path)
            written.append(path)
    # Parts of an earlier export (e.g. one with fewer samples per log) would show as
    # duplicates in the viewer: remove this run's own file names that were not rewritten.
    ours = re.compile(rf"{re.escape(run)}_({'|'.join(map(re.escape, PROTOCOLS))})_"
                      rf"({'|'.join(SPLITS + (UNASSIGNED,))})_\d{{3,}}\.eval")
    for f in out_dir.glob("*.eval"):
        if ours.fullmatch(f.name) and f not in written:
            f.unlink()
    return written
