"""Run debates over many samples, batched, resumable.

Where the backend can take requests one by one (the server client, vLLM's engines)
debates are scheduled continuously: each debate's next turn is sent as soon as its
own reply is back, `debate.chunk_size` debates in progress at once. Elsewhere (or
with `debate.scheduling: turns`) every debate of a chunk has its turn t generated
in one backend call. Either way each debate is appended to a JSONL store under a
content-addressed key the moment it ends; a rerun (after a crash, a kill, or a
prompt change) generates only the debates whose key is not stored yet.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Callable


from w2s_base import console
from w2s_base.backend_specs import backend_spec
from w2s_base.config import DebateConfig
from w2s_base.runfolder.jsonl import JsonlWriter, read_jsonl
from w2s_base.protocols import draw_a_label, protocol as protocol_spec
from data.schema import Sample

from .backends.base import Backend, ContinuousBackend, Generation, NextRequest, Request, run_in_turns
from .controls import deception_draw
from .prompts import PromptSet, prompts_for
from .transcript import Transcript, Turn, debate_key

OTHER = {"A": "B", "B": "A"}


def load_transcripts(path: Path) -> dict[str, Transcript]:
    """Stored debates by key; a later record of the same key wins (a retried failure)."""
    return {r["key"]: Transcript.model_validate(r) for r in read_jsonl(path)}


def turn_seed(seed: int, protocol: str, sample_id: str, k: int, turn: int) -> int:
    """The sampling seed of one turn of one debate: derived from what the unit is
    (never from its position in a batch or in the list of pending work), so a resumed
    run samples every debate exactly as an uninterrupted one would."""
    digest = hashlib.sha256(f"{seed}|{protocol}|{sample_id}|{k}|{turn}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def store_missing(path: Path, transcripts: list[Transcript]) -> int:
    """Append the transcripts whose key is not stored yet (e.g. controls, which are
    made in-process, so that the viewer and `run.py list` show them); returns how many."""
    stored = load_transcripts(path)
    new = [t for t in transcripts if t.key not in stored]
    if new:
        with JsonlWriter(path) as out:
            for t in new:
                out.write(t.model_dump(mode="json"))
    return len(new)


def misleads(t: Transcript, side: str) -> bool:
    """Whether side `side` of `t` was given the mislead instruction (debate.mislead): the
    side arguing the wrong label, in a debate chosen to mislead."""
    return bool(t.mislead_hash) and (t.a_label if side == "A" else 1 - t.a_label) != t.gold_label


def turn_variables(t: Transcript, side: str, turn: int) -> dict:
    """The prompt variables of turn `turn` (0-based) of `t`, whose turns so far are
    `t.turns[:turn]`: what the engine renders, and what the inspect export re-renders."""
    my_label = t.a_label if side == "A" else 1 - t.a_label
    return {
        "task": t.task, "sample_text": t.sample_text, "positions": list(t.positions),
        "my_position": t.positions[my_label], "other_position": t.positions[1 - my_label],
        "my_side": side, "other_side": OTHER[side], "turn": turn + 1, "num_turns": t.num_turns,
        "transcript": [{"side": x.side, "text": x.text, "position": t.positions[x.position_label]}
                       for x in t.turns[:turn]],
    }


class DebateRunner:
    def __init__(self, cfg: DebateConfig, store: Path, backend_factory: Callable[[], Backend],
                 protocols: tuple[str, ...] = ("debate",)):
        self.cfg = cfg
        self.store = store
        self.prompts: PromptSet = prompts_for(cfg, protocols)  # checked for every protocol up front
        self._factory = backend_factory
        self._backend: Backend | None = None

    def num_turns(self, protocol: str) -> int:
        return protocol_spec(protocol).num_turns(self.cfg)

    def schedule(self, protocol: str):
        return protocol_spec(protocol).schedule(self.num_turns(protocol))

    @property
    def backend(self) -> Backend:
        if self._backend is None:  # loaded only when something is left to generate
            self._backend = self._factory()
        return self._backend

    @property
    def backend_tag(self) -> str:
        return backend_spec(self.cfg.backend).transcript_tag(self.cfg)

    def _a_label(self, sample: Sample, k: int, fixed: dict[str, int] | None) -> int:
        return fixed[sample.id] if fixed else draw_a_label(self.cfg.seed, sample.id, k)

    def deceptive(self, sample: Sample, k: int, protocol: str = "debate", fixed: dict[str, int] | None = None,
                  honest: frozenset[str] = frozenset()) -> bool | None:
        """debate.mislead: whether debate k of `sample` has its wrong side told to mislead:
        its draw (deception_draw, shared with the scripted deceptive control) is below the
        rate, the sample is not in `honest` (weak_train), and a debater of the protocol
        argues the wrong label (a lone consultant on the gold side has nobody to tell).
        None without debate.mislead."""
        m = self.cfg.mislead
        if m is None:
            return None
        a = self._a_label(sample, k, fixed)
        wrong_side = any((a if side == "A" else 1 - a) != sample.label for side, _ in self.schedule(protocol))
        return sample.id not in honest and wrong_side and deception_draw(self.cfg.seed, sample.id, k) < m.rate

    def key(self, sample: Sample, k: int, protocol: str = "debate",
            fixed: dict[str, int] | None = None, honest: frozenset[str] = frozenset()) -> str:
        c = self.cfg
        lie = self.deceptive(sample, k, protocol, fixed, honest)
        return debate_key(sample_id=sample.id, sample_text=sample.text, positions=sample.positions,
                          prompt_hash=self.prompts.hash, model=f"{c.model}|{self.backend_tag}",
                          sampling=c.sampling, seed=c.seed, debate_index=k, protocol=protocol,
                          num_turns=self.num_turns(protocol),
                          fixed_a_label=fixed[sample.id] if fixed else None, seeded=c.seeded,
                          mislead=None if lie is None else (lie, self.prompts.mislead_hash if lie else None))

    def _new(self, sample: Sample, k: int, protocol: str, fixed: dict[str, int] | None,
             honest: frozenset[str] = frozenset()) -> Transcript:
        c = self.cfg
        lie = self.deceptive(sample, k, protocol, fixed, honest)
        return Transcript(
            key=self.key(sample, k, protocol, fixed, honest), sample_id=sample.id, task=sample.task,
            sample_text=sample.text, positions=sample.positions, gold_label=sample.label,
            debate_index=k, protocol=protocol, num_turns=self.num_turns(protocol),
            a_label=self._a_label(sample, k, fixed), turns=[], model=c.model,
            backend=self.backend_tag, prompt_set=self.prompts.name, prompt_hash=self.prompts.hash,
            sampling=c.sampling, seed=c.seed, seeded=c.seeded,
            deceptive=lie, mislead_hash=self.prompts.mislead_hash if lie else None,
        )

    def _partition(self, samples: list[Sample], protocol: str, num_debates: int,
                   fixed: dict[str, int] | None, honest: frozenset[str] = frozenset()):
        """({(sample id, k): stored finished transcript}, [(sample, k) still to generate])."""
        stored = load_transcripts(self.store)
        done: dict[tuple[str, int], Transcript] = {}
        pending = []
        for k in range(num_debates):
            for s in samples:
                t = stored.get(self.key(s, k, protocol, fixed, honest))
                if t is not None and t.ok:
                    done[(s.id, k)] = t
                else:
                    pending.append((s, k))
        return done, pending

    def missing(self, samples: list[Sample], protocol: str = "debate", num_debates: int = 1,
                fixed_a_labels: dict[str, int] | None = None, honest: frozenset[str] = frozenset()) -> int:
        """How many of these debates are not stored (finished) yet."""
        return len(self._partition(samples, protocol, num_debates, fixed_a_labels, honest)[1])

    def run(self, samples: list[Sample], protocol: str = "debate", num_debates: int = 1,
            fixed_a_labels: dict[str, int] | None = None,
            honest: frozenset[str] = frozenset()) -> dict[tuple[str, int], Transcript]:
        """Return {(sample_id, k): transcript} for every sample and k < num_debates.

        `fixed_a_labels` sets the label side A defends per sample instead of a random
        draw: protocols placed against the reference weak model need it. `honest`: the
        ids of the samples no debater is told to mislead on (debate.mislead; the pipeline
        passes weak_train)."""
        if protocol_spec(protocol).needs_reference and fixed_a_labels is None:
            raise ValueError(f"{protocol} needs the side of every sample (fixed_a_labels)")
        fixed = fixed_a_labels
        turns = self.schedule(protocol)
        jobs = [(s, k) for k in range(num_debates) for s in samples]
        result, pending = self._partition(samples, protocol, num_debates, fixed, honest)
        if not pending:
            return result
        # the backend is loaded before the store is opened for writing: a caller that only
        # checks the store (run.py verify) refuses in its factory, and nothing is written
        self.backend  # noqa: B018
        todo = {(s.id, k) for s, k in pending}
        continuous = self.continuous
        # Progress per finished debate and, finer, per turn (a chunk of long debates
        # reports each of its turns; the ETA comes from the turns finished so far).
        with console.stage_progress("debate" if protocol == "debate" else f"debate/{protocol}", len(jobs),
                                    unit="debate", initial=len(jobs) - len(pending),
                                    work_total=len(pending) * len(turns), work_unit="turn") as bar, \
                JsonlWriter(self.store) as out:
            def finished(t: Transcript) -> None:  # saved the moment it ends: a kill loses none
                out.write(t.model_dump(mode="json"))
                if t.ok:
                    result[(t.sample_id, t.debate_index)] = t
                else:  # its turns that will not run are no longer work to wait for
                    bar.advance_work(len(turns) - len(t.turns) - 1)
                bar.advance()

            if continuous:
                # One window sliding over the pending debates, in job order: a debate
                # starts when another ends, and each turn goes out when its own debate's
                # last reply is back.
                live = [self._new(s, k, protocol, fixed, honest) for s, k in jobs if (s.id, k) in todo]
                self.backend.generate_continuous(  # type: ignore[attr-defined]
                    len(live), self._next_request(live, turns, finished, "continuous", bar),
                    self.cfg.sampling, max_live=self.cfg.chunk_size)
            else:
                # Chunks are cut from the whole job list, not from what is pending, so a
                # resumed run batches the remaining debates as the uninterrupted run did
                # (the transformers backend's sampling depends on its batch).
                n_chunks = -(-len(jobs) // self.cfg.chunk_size)
                for ci in range(0, len(jobs), self.cfg.chunk_size):
                    chunk = [self._new(s, k, protocol, fixed, honest)
                             for s, k in jobs[ci: ci + self.cfg.chunk_size] if (s.id, k) in todo]
                    if chunk:
                        where = f"chunk {ci // self.cfg.chunk_size + 1}/{n_chunks} ({len(chunk)} debates)"
                        bar.set_now(f"{where}, turn 1/{len(turns)}")
                        run_in_turns(self.backend, len(chunk),
                                     self._next_request(chunk, turns, finished, "turns", bar, where),
                                     self.cfg.sampling)
        failed = sum(1 for s, k in jobs if (s.id, k) not in result)
        if failed:
            print(f"[debate] {failed} debates failed; they are recorded in {self.store} "
                  "and will be retried on the next run")
        return result

    @property
    def continuous(self) -> bool:
        """Whether debates run with continuous scheduling: asked for (debate.scheduling)
        and possible on this backend (the server client, vLLM's in-process engine and its
        replica pool)."""
        return self.cfg.scheduling == "continuous" and isinstance(self.backend, ContinuousBackend)

    def _next_request(self, debates: list[Transcript], turns, finished: Callable[[Transcript], None],
                      scheduling: str, bar: "console.StageBar | None" = None, where: str = "") -> NextRequest:
        """What one turn of a debate means, for either scheduler: record debate i's reply
        as its next turn and return the request for the turn after (None once it has
        ended or failed, after `finished` saw it)."""
        started: dict[int, float] = {}
        sent: dict[int, float] = {}  # when debate i's request in flight went out

        def next_request(i: int, reply: Generation | None) -> Request | None:
            t = debates[i]
            now = time.perf_counter()
            if reply is None:
                started[i] = now
                t.started_at = time.time()
                t.scheduling = scheduling
            elif reply.finish_reason == "error":
                t.error = reply.error or "generation failed"
            else:
                side, role = turns[len(t.turns)]
                t.turns.append(Turn(
                    index=len(t.turns), side=side, role=role,
                    position_label=t.a_label if side == "A" else 1 - t.a_label,
                    text=reply.text, prompt_tokens=reply.prompt_tokens,
                    completion_tokens=reply.completion_tokens, finish_reason=reply.finish_reason,
                    endpoint=reply.endpoint, seconds=round(now - sent[i], 3)))
            ti = len(t.turns)
            ended = t.error is not None or ti == len(turns)
            if ended:
                t.seconds = round(now - started[i], 3)
                finished(t)
            if reply is not None and bar is not None:  # after `finished`: a line counts the debate too
                bar.advance_work(1, f"{where}, turn {min(ti + 1, len(turns))}/{len(turns)}" if where else None)
            if ended:
                return None
            side, role = turns[ti]
            seed = (turn_seed(self.cfg.seed, t.protocol, t.sample_id, t.debate_index, ti)
                    if self.cfg.seeded else None)  # None: unseeded sampling (debate.seeded false)
            request = Request(self.prompts.messages(role, turn_variables(t, side, ti), misleads(t, side)), seed)
            sent[i] = time.perf_counter()
            return request

        return next_request
