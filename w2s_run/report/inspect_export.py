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
- speakers: inspect names who produced an assistant message with *model roles*
  (`EvalSpec.model_roles`, `ModelEvent.role`, `EvalSample.role_usage`; the viewer's
  transcript tab titles each call "Model Call (<role>): <model>", and the log list
  shows the roles), and `ChatMessageAssistant.model` names the model. Its messages
  tab labels a message by `role` only (system / user / assistant), so each turn is
  preceded by a user message naming the speaker and holding that turn's rendered
  instruction ("Debater B · turn 2 · counter: ..."), and the speaker leads the
  turn's metadata.
- messages: the debaters' system prompt (once, when it is the same for every turn),
  the sample as a user message, then per turn its instruction and the turn itself
  (an assistant message, verbatim, `model` set, metadata: speaker, position argued,
  whether it is the gold one).
- events: one ModelEvent per turn with `role` = the speaker, the full request the
  debater was sent (system + context + instruction, re-rendered from the prompt set
  whose hash the transcript recorded) and its reply with token counts and the
  turn's own time. When that prompt set is not found (edited since, or a custom
  path unknown here) the events are left out and `prompts` in the sample metadata
  says why.
- times: a sample's `started_at`/`completed_at`/`total_time` are its debate's own
  (first request to last reply; with `debate.scheduling: turns` every debate of a
  chunk waits for each turn's whole batch, so they all read the chunk's time),
  `working_time` the sum of its turns' request times; the log's start and end are
  the earliest start and latest end of its debates (the export time for
  transcripts stored before these times were recorded).
- controls: `control`, `deceptive` (True/False on a deceptive control's transcripts and on
  the real debates of a run with debate.mislead, whose wrong side's debater was told to
  mislead: `mislead_hash`, and `told_to_mislead` on each of its turns) and
  `label: "[CONTROL]"` on every control transcript.
- quote grades (weak.verify_quotes, from weak/quote_grades.jsonl): `quote_grades`, per
  turn the grade of each of its quotes (verified / fuzzy / unverified), and `quotes`, their
  count per grade, in the sample metadata; each turn's message carries its own.
- scores: one `Score` per weak labeller with a prediction for the sample (transfer
  and test, as debates.html shows; weak_train, which the labellers train on, has
  none). The value is "C"/"I" (the labeller's label, P(1) >= 0.5, is / is not the
  gold label): the viewer draws "C"/"I" as green/red correct/incorrect badges that
  can be sorted and filtered in the sample list, and its log header shows accuracy,
  where a bare P(1) would be a number to compare with the target by hand, row by
  row. P(label=1) is kept in the score's metadata (`p1`) and explanation, the
  predicted position in `answer`. Each labeller is also a scorer of the log
  (`results.scores`): the log list's "Score" column shows the headline (the
  reference labeller, `weak`, when present); every labeller's accuracy is a column
  of the log list's column picker (inspect_ai 0.3.x shows "score_<labeller>/accuracy"
  columns there, hidden by default) and a row of the log's results panel.

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
import shlex
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from w2s_base.decision import predicted_label_tie_as_1
from w2s_base.runfolder.layout import RunLayout, slug
from w2s_base.protocols import PROTOCOLS
from w2s_base.protocols import protocol as protocol_spec
from debate.engine import load_transcripts, misleads, turn_variables
from debate.prompts import PromptError, load_prompt_set
from debate.quotes import GradeCounts, read_quote_grades
from debate.transcript import Transcript
from weak.labels import LabellerResult

from w2s_run.report import ReportError

INSTALL_HINT = 'the inspect export needs inspect_ai, which is not installed: pip install -e ".[inspect]"'
SPLITS = ("weak_train", "transfer", "test")
UNASSIGNED = "unassigned"  # samples not in the run's splits.json
HEADLINE = "weak"  # the reference labeller's name in the shipped configs (weak.reference)


def _inspect() -> SimpleNamespace:
    """inspect_ai's API, imported on first use (an optional dependency)."""
    try:
        from inspect_ai.log import (EvalConfig, EvalDataset, EvalLog, EvalMetric, EvalResults,
                                    EvalSample, EvalScore, EvalSpec, EvalStats, write_eval_log)
        from inspect_ai.event import ModelEvent
        from inspect_ai.model import (ChatMessageAssistant, ChatMessageSystem, ChatMessageUser,
                                      GenerateConfig, ModelConfig, ModelOutput, ModelUsage)
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


_STOP = {"stop": "stop", "length": "max_tokens"}  # our finish reasons -> inspect's StopReason


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")


class Prompts:
    """The prompt sets that produced the transcripts, by (name, hash): a built-in set
    by its name, or the run's configured `debate.prompts` (its config.yaml). A set
    whose file changed since has another hash and is not used: re-rendering it would
    show prompts the debaters were never sent."""

    def __init__(self, layout: RunLayout):
        self._by_key: dict[tuple[str, str], Any] = {}
        self._tried: set[str] = set()
        self._candidates = [p for p in [_configured_prompts(layout)] if p]

    def get(self, name: str, digest: str):
        if (name, digest) not in self._by_key:
            for cand in [name, *self._candidates]:
                if cand in self._tried:
                    continue
                self._tried.add(cand)
                try:
                    ps = load_prompt_set(cand)
                except PromptError:
                    continue
                self._by_key.setdefault((ps.name, ps.hash), ps)
        return self._by_key.get((name, digest))


def _configured_prompts(layout: RunLayout) -> str | None:
    for root in (layout.root, layout.root.parent):  # a replicate's folder sits inside the run's
        f = root / "config.yaml"
        if f.exists():
            try:
                return (yaml.safe_load(f.read_text()) or {}).get("debate", {}).get("prompts")
            except (yaml.YAMLError, AttributeError):
                return None
    return None


def _turn_prompts(ps, t: Transcript) -> list[tuple[str, str, str]] | None:
    """(system, context, instruction) of every turn of t, as the engine rendered them (the
    wrong side's with the mislead instruction, debate.mislead); None where the set's
    mislead instruction is not the one the debate recorded (edited since)."""
    if t.mislead_hash and ps.mislead_hash != t.mislead_hash:
        return None
    return [ps.parts(turn.role, turn_variables(t, turn.side, turn.index), misleads(t, turn.side))
            for turn in t.turns]


def _sample(ia: SimpleNamespace, t: Transcript, sid: str, split: str, preds: list[_Pred], prompts: Prompts,
            grades: list[list[str]] | None = None):
    speakers = protocol_spec(t.protocol).speakers
    gold_text = t.positions[t.gold_label]
    ps = prompts.get(t.prompt_set, t.prompt_hash)
    rendered = _turn_prompts(ps, t) if ps is not None else None
    if grades is not None and len(grades) != len(t.turns):
        grades = None  # recorded for another text of this key: left out, never misattributed
    systems = {r[0] for r in rendered} if rendered else set()
    messages: list[Any] = []
    if len(systems) == 1:
        messages.append(ia.ChatMessageSystem(id=f"{t.key}:system", content=systems.pop(), source="input",
                                             metadata={"prompt_set": t.prompt_set}))
    messages.append(ia.ChatMessageUser(
        id=f"{t.key}:input", content=t.sample_text, source="input",
        metadata={"task": t.task, "positions": list(t.positions), "gold_label": t.gold_label}))
    events: list[Any] = []
    clock = t.started_at
    usage: dict[str, Any] = {}
    for turn in t.turns:
        who = _speaker(speakers, turn.side)
        label = f"{who} · turn {turn.index + 1} of {t.num_turns} · {turn.role}"
        argues = t.positions[turn.position_label]
        instruction = rendered[turn.index][2] if rendered else f"(argues: {argues})"
        messages.append(ia.ChatMessageUser(
            id=f"{t.key}:{turn.index}:instruction", content=f"{label}: {instruction}", source="input",
            metadata={"speaker": who, "kind": "instruction" if rendered else "instruction not available"}))
        messages.append(ia.ChatMessageAssistant(
            id=f"{t.key}:{turn.index}", content=turn.text, source="generate", model=t.model,
            metadata={"speaker": who, "argues": argues, "argues_gold": turn.position_label == t.gold_label,
                      **({"quote_grades": grades[turn.index]} if grades is not None else {}),
                      **({"told_to_mislead": misleads(t, turn.side)} if t.mislead_hash else {})}))
        u = ia.ModelUsage(input_tokens=turn.prompt_tokens, output_tokens=turn.completion_tokens,
                          total_tokens=turn.prompt_tokens + turn.completion_tokens)
        usage[who] = u if who not in usage else usage[who] + u
        if rendered:
            system, context, instr = rendered[turn.index]
            output = ia.ModelOutput.from_content(t.model, turn.text, _STOP.get(turn.finish_reason, "unknown"))
            output.usage = u
            output.time = turn.seconds
            at = {}
            if clock is not None:  # the request went out `seconds` before its reply
                at = {"timestamp": _iso(clock), "completed": _iso(clock + (turn.seconds or 0.0))}
                clock += turn.seconds or 0.0
            events.append(ia.ModelEvent(
                model=t.model, role=who, input=[ia.ChatMessageSystem(content=system),
                                                ia.ChatMessageUser(content=context + "\n\n" + instr)],
                tools=[], tool_choice="none", config=ia.GenerateConfig(**_generate_config(t)),
                output=output, working_time=turn.seconds, working_start=0.0,
                metadata={"turn": turn.index + 1, "side": turn.side, "instruction_role": turn.role,
                          "endpoint": turn.endpoint}, **at))
    metadata: dict[str, Any] = {
        "transcript_key": t.key, "sample_id": t.sample_id, "split": split, "task": t.task,
        "protocol": t.protocol, "debate_index": t.debate_index, "num_turns": t.num_turns,
        "positions": list(t.positions), "gold_label": t.gold_label, "gold_position": gold_text,
        "a_label": t.a_label, "a_position": t.positions[t.a_label],
        "speakers": {_speaker(speakers, side): t.positions[t.a_label if side == "A" else 1 - t.a_label]
                     for side in sorted({x.side for x in t.turns})},
        "model": t.model, "backend": t.backend, "prompt_set": t.prompt_set, "prompt_hash": t.prompt_hash,
        "prompts": ("re-rendered from the prompt set (same hash)" if rendered is not None else
                    f"not shown: no prompt set {t.prompt_set!r} with hash {t.prompt_hash}"
                    + (f" and mislead instruction {t.mislead_hash}" if t.mislead_hash else "") + " here "
                    "(edited since, or a custom path this export does not know)"),
        "seed": t.seed, "sampling": t.sampling.model_dump(), "seconds": t.seconds,
        "scheduling": t.scheduling,
    }
    if "control" in type(t).model_fields:
        metadata["control"] = t.control
    if "deceptive" in type(t).model_fields:  # True/False on a deceptive control's or debate.mislead's transcripts
        metadata["deceptive"] = t.deceptive
    if t.mislead_hash:  # real debates told to mislead (debate.mislead): a control
        metadata["mislead_hash"] = t.mislead_hash
    if t.control or t.deceptive is not None:
        metadata["label"] = "[CONTROL]"
    if grades is not None:  # weak.verify_quotes: the grade of each quote, per turn, and their count
        metadata["quote_grades"] = grades
        metadata["quotes"] = GradeCounts.of([g for turn in grades for g in turn]).model_dump()
    tokens_in = sum(x.prompt_tokens for x in t.turns)
    tokens_out = sum(x.completion_tokens for x in t.turns)
    times: dict[str, Any] = {}
    if t.started_at is not None:
        times = {"started_at": _iso(t.started_at), "completed_at": _iso(t.started_at + t.seconds)}
    turn_seconds = [x.seconds for x in t.turns if x.seconds is not None]
    return ia.EvalSample(
        id=sid, epoch=t.debate_index + 1, input=t.sample_text, target=gold_text,
        messages=messages, metadata=metadata, events=events,
        output=ia.ModelOutput.from_content(t.model, t.turns[-1].text) if t.turns else ia.ModelOutput(),
        scores={p.labeller.name: _score(ia, t, p) for p in preds} or None,
        model_usage={t.model: ia.ModelUsage(input_tokens=tokens_in, output_tokens=tokens_out,
                                            total_tokens=tokens_in + tokens_out)},
        role_usage=usage, total_time=t.seconds or None,
        working_time=round(sum(turn_seconds), 3) if turn_seconds else None, uuid=t.key, **times,
    )


def _generate_config(t: Transcript) -> dict[str, Any]:
    sp = t.sampling
    return {"temperature": sp.temperature, "top_p": sp.top_p, "max_tokens": sp.max_new_tokens,
            "stop_seqs": list(sp.stop) or None}


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
    # The reference labeller leads (the log list's one "Score" column): the one every other
    # labeller is compared with; the others follow by name.
    scores.sort(key=lambda es: (es.name != HEADLINE, es.name))
    return ia.EvalResults(total_samples=len(samples), completed_samples=len(samples), scores=scores)


def _sum_usage(usages) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for per in usages:
        for k, u in per.items():
            out[k] = u if k not in out else out[k] + u
    return out


def _log(ia: SimpleNamespace, *, run: str, protocol: str, split: str, part: int, parts: int,
         samples: list, created: str, layout: RunLayout):
    models = sorted({s.metadata["model"] for s in samples})
    tasks = sorted({s.metadata["task"] for s in samples})
    usage = _sum_usage(s.model_usage for s in samples)
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
        model_roles={role: ia.ModelConfig(model=", ".join(models))
                     for role in sorted({r for s in samples for r in s.role_usage})} or None,
        config=ia.EvalConfig(epochs=max(s.epoch for s in samples)),
        metadata={"run": run, "protocol": protocol, "split": split, "part": part, "parts": parts,
                  "models": models, "source": "w2s-debate w2s_run.report.inspect_export"},
        viewer=ia.ViewerConfig(trust_content=False),
    )
    # The debates' own span (the viewer computes the log's duration from it); the export
    # time only for transcripts stored before debates recorded when they ran.
    starts = [s.started_at for s in samples if s.started_at]
    ends = [s.completed_at for s in samples if s.completed_at]
    stats = ia.EvalStats(started_at=min(starts, default=created), completed_at=max(ends, default=created),
                         model_usage=usage, role_usage=_sum_usage(s.role_usage for s in samples))
    return ia.EvalLog(eval=spec, status="success", results=_results(ia, samples), stats=stats,
                      samples=samples, tags=[run, protocol, split])


# ---------------------------------------------------------------- the export
def view_command(files: list[Path]) -> str:
    """The command that opens the written logs in inspect's viewer."""
    dirs = sorted({str(f.parent) for f in files})
    return f"inspect view --log-dir {shlex.quote(dirs[0])}" if len(dirs) == 1 else ""


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
    prompts = Prompts(layout)
    grades = read_quote_grades(layout.quote_grades)
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
            by_id[ids[t.key]].append(_sample(ia, t, ids[t.key], split, preds.get(t.sample_id, []), prompts,
                                             grades.get(t.key)))
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
