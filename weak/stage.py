"""Weak stage: train the weak members on gold labels, label the transfer split.

A labeller (config `weak.labellers`) is an ensemble of members, one per
(model, seed, debate sample k). Protocol `none` reads the sample only: the
reference labeller (`weak.reference`) is such a plain weak model, and every PGR is
measured against it. Otherwise member (model, seed, k) trains and labels with the
k-th transcript of its protocol for every sample.

Members are stored once per (protocol, model, seed, k) under weak/members/, so
labellers that share a member (the single weak+debate model is also the first
member of the debate ensemble) train it once.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from w2s_base import console
from w2s_base.training.classifier import ModelTrainer, held_out_slice
from w2s_base.config import LabellerConfig, RunConfig, Source
from w2s_base.training.distributed import is_main
from w2s_base.runfolder.jsonl import JsonlWriter, save_json, writable
from w2s_base.runfolder.layout import RunLayout, slug
from w2s_base.losses import XentLoss
from w2s_base.training.models import load_tokenizer, resolve_model
from w2s_base.runfolder.stage_cache import cached, fingerprint, texts_hash
from data.schema import Sample
from data.splits import Splits
from debate.quotes import TranscriptQuotes
from debate.transcript import Transcript

from .ensemble import aggregate
from .inputs import quote_check, weak_input, weak_view
from .labels import LabellerResult, WeakLabel

Transcripts = dict[tuple[str, int], Transcript]
SPLITS = ("weak_train", "transfer", "test")
PREDICTED = ("transfer", "test")  # a member's labels for the student, and its test score


class MemberTrainer:
    """Trains (or loads from cache) one weak member; keeps one loaded base per model."""

    def __init__(self, cfg: RunConfig, splits: Splits, layout: RunLayout):
        self.cfg, self.splits, self.layout = cfg, splits, layout
        self._tok: dict = {}
        # the last member's inputs: (source, model, k, transcripts) -> {split: texts}
        self._inputs: tuple[tuple, dict[str, list[str]]] | None = None
        # Each base is loaded lazily, on its first member that is not cached, then shared.
        self._trainers: dict[str, ModelTrainer] = {}
        self.histories: dict[str, list[float]] = {}  # {member: loss per step}, cached ones too
        self.eval_histories: dict[str, list[dict]] = {}  # {member: held-out loss and accuracy per epoch}
        self.results: set[Path] = set()  # every member result file read or written (the report's inputs)

    def release(self) -> None:
        """Frees every loaded weak base (members are stored; a later member reloads its base)."""
        for trainer in self._trainers.values():
            trainer.release()

    def tokenizer(self, model: str):
        if model not in self._tok:
            self._tok[model] = load_tokenizer(resolve_model(model), self.cfg.trust_remote_code)
        return self._tok[model]

    def folder(self, source: Source, model: str, seed: int, k: int) -> Path:
        return self.layout.member(source.key, model, seed, k if source.reads_transcripts else None)

    def inputs(self, source: Source, model: str, k: int,
               transcripts: Transcripts | None) -> dict[str, list[str]]:
        """{split: the texts member (source, model, ·, k) reads}: each sample's view
        with its k-th transcript fitted to the context, as it goes into the tokenizer.
        The cache check hashes them and training reads the same lists; the last ones
        are kept, so the seeds of one (source, model, k), asked for one after another
        (run_labeller), fit them once."""
        # the transcripts' keys are part of the memo's key: a caller may pass another draw
        debates = fingerprint([t.key for (_, j), t in transcripts.items() if j == k]) if transcripts else None
        key = (source.key, model, k, debates)
        if self._inputs is None or self._inputs[0] != key:
            w, tok = self.cfg.weak, self.tokenizer(model)
            self._inputs = key, {
                name: [weak_input(weak_view(s, w.sees), transcripts[(s.id, k)] if transcripts else None, tok,
                                  w.train.max_length, w.transcript_budget,
                                  quotes=quote_check(s, w))
                       for s in getattr(self.splits, name)]
                for name in SPLITS}
        return self._inputs[1]

    def spec(self, source: Source, model: str, seed: int, k: int, inputs: dict[str, list[str]]) -> dict:
        """Member (source, model, seed, k)'s cache key, given the texts it reads (inputs())."""
        w, sp = self.cfg.weak, self.splits
        # v 4: what the member reads is keyed by its texts (view, transcript, fitting,
        # quote grades and so their threshold all end up in them), not by sample ids and
        # transcript keys.
        return {"v": 4, "model": model, "train": w.train.result_spec(), "loss": XentLoss().spec(),
                "seed": seed, "k": k, "protocol": source.key,
                "reads": {name: texts_hash(getattr(sp, name), inputs[name]) for name in SPLITS},
                "labels": texts_hash(sp.weak_train, [s.label for s in sp.weak_train])}

    def __call__(self, source: Source, model: str, seed: int, k: int,
                 transcripts: Transcripts | None) -> dict[str, dict[str, float]]:
        """{split: {sample id: P(label = 1)}} of member (source, model, seed, k) on
        transfer and test (weak_train, which it trains on, is not predicted)."""
        w, sp = self.cfg.weak, self.splits
        out = self.folder(source, model, seed, k)
        parts = {name: getattr(sp, name) for name in SPLITS}
        inputs = self.inputs(source, model, k, transcripts)
        spec = self.spec(source, model, seed, k, inputs)

        trained = []

        def compute() -> dict:
            trained.append(True)
            y = np.array([s.label for s in sp.weak_train], dtype=np.float32)
            trainer = self._trainers.setdefault(model, ModelTrainer(model, w.train, self.cfg.trust_remote_code))
            clf = trainer.train(inputs["weak_train"], y, XentLoss(), seed,
                                desc=f"weak {source.key}/{out.parent.name}/{out.name}",
                                adapter=f"{slug(source.key)}-{hashlib.sha1(model.encode()).hexdigest()[:8]}-{out.name}",
                                held_out=held_out_slice(inputs["test"], [s.label for s in sp.test]))
            clf.save(out)  # before its result is recorded: a failed save records nothing
            preds = {name: dict(zip([s.id for s in parts[name]], map(float, clf.predict(inputs[name]))))
                     for name in PREDICTED}
            # the loss per step and the held-out loss and accuracy per epoch, kept for reruns
            return {**preds, "history": clf.history, "eval_history": clf.eval_history}

        result = cached(out / "result.json", spec, compute)
        self.results.add(out / "result.json")
        name = f"{source.key}/{out.parent.name}/{out.name}"  # its folder under weak/members/
        if result.get("history"):  # members cached before curves were kept have none
            self.histories[name] = result["history"]
        if result.get("eval_history"):  # nor before the held-out evaluation was
            self.eval_histories[name] = result["eval_history"]
        console.advance(name, cached=not trained)
        return result

    def out_of_fold(self, model: str, seed: int, folds: int) -> dict[str, float]:
        """P(label = 1) of every weak_train sample from a plain weak model that never
        saw its label (cross-fitting): weak_train is cut into `folds` parts by a seeded
        hash of the sample id, and the model trained on the other parts predicts each
        part. Market-making places its consultant on weak_train with these, so the
        side argued there is not "whatever the in-sample (mostly right) model did not
        pick", a shortcut that would not hold on transfer and test."""
        w, train = self.cfg.weak, self.splits.weak_train
        fold_of = {s.id: i % folds for i, s in enumerate(sorted(
            train, key=lambda s: hashlib.sha256(f"{seed}|{s.id}".encode()).hexdigest()))}
        out: dict[str, float] = {}
        for f in range(folds):
            fit_on = [s for s in train if fold_of[s.id] != f]
            held = [s for s in train if fold_of[s.id] == f]
            fit_text, held_text = ([weak_view(s, w.sees) for s in ss] for ss in (fit_on, held))
            folder = self.layout.member("none-oof", model, seed, None) / f"fold{f}-of-{folds}"
            spec = {"v": 2, "model": model, "train": w.train.result_spec(), "loss": XentLoss().spec(),
                    "seed": seed, "fit_on": texts_hash(fit_on, fit_text),
                    "labels": texts_hash(fit_on, [s.label for s in fit_on]),
                    "held": texts_hash(held, held_text)}

            def compute() -> dict[str, float]:
                y = np.array([s.label for s in fit_on], dtype=np.float32)
                trainer = self._trainers.setdefault(model, ModelTrainer(model, w.train, self.cfg.trust_remote_code))
                clf = trainer.train(fit_text, y, XentLoss(), seed, desc=f"weak out-of-fold {f + 1}/{folds}",
                                    adapter=f"oof-{hashlib.sha1(model.encode()).hexdigest()[:8]}-{seed}-{f}-{folds}")
                return dict(zip([s.id for s in held], map(float, clf.predict(held_text))))

            out.update(cached(folder / "result.json", spec, compute))
        return out


def member_name(lab: LabellerConfig, model: str, seed: int, k: int) -> str:
    name = f"seed{seed}" + (f"-debate{k}" if lab.source.reads_transcripts else "")
    return f"{slug(model)}-{name}" if lab.models and len(lab.models) > 1 else name


def members_of(cfg: RunConfig, lab: LabellerConfig) -> list[tuple[str, int, int]]:
    """(model, seed, k) of every member of a labeller, in the order they are trained."""
    return [(model, seed, k) for model in lab.models or [cfg.weak.model]
            for k in range(lab.debates) for seed in lab.seeds]


def run_labeller(cfg: RunConfig, lab: LabellerConfig, trainer: MemberTrainer,
                 transcripts: Transcripts | None) -> LabellerResult:
    splits = trainer.splits
    method = lab.aggregate or cfg.weak.aggregate
    units = {member_name(lab, model, seed, k): (model, seed, k) for model, seed, k in members_of(cfg, lab)}
    members = {m: trainer(lab.source, model, seed, k, transcripts) for m, (model, seed, k) in units.items()}
    names = list(members)
    agg = {}
    for split in PREDICTED:
        ids = [s.id for s in getattr(splits, split)]
        p = aggregate(np.array([[members[m][split][i] for i in ids] for m in names]), method)
        agg[split] = dict(zip(ids, map(float, p)))
    mislead = cfg.debate.mislead.rate if cfg.debate.mislead and lab.reads_transcript and lab.control is None else None
    out = LabellerResult(name=lab.name, protocol=lab.protocol, control=lab.control, mislead=mislead, aggregate=method,
                         members=names, transfer_p1=agg["transfer"], test_p1=agg["test"],
                         member_test_p1={m: members[m]["test"] for m in names},
                         member_transfer_p1={m: members[m]["transfer"] for m in names},
                         member_debate={m: units[m][2] for m in names} if lab.source.reads_transcripts else {})
    if is_main() and writable():  # not under run.py verify, which only reads
        save_json(trainer.layout.labeller_json(lab.name), out.model_dump())
        _write_labels(trainer.layout.labels(lab.name), splits.transfer, out, members, transcripts, lab.debates)
    return out


def run_weak(cfg: RunConfig, trainer: MemberTrainer, transcripts: dict[str, Transcripts],
             only: list[str] | None = None) -> dict[str, LabellerResult]:
    """Every labeller of the run (or those named in `only`), in config order.
    `transcripts`: {source: {(sample id, k): transcript}} for the sources in use
    (protocols, and controls' tags)."""
    out: dict[str, LabellerResult] = {}
    labs = [lab for lab in cfg.labellers if only is None or lab.name in only]
    total = sum(len(lab.models or [cfg.weak.model]) * lab.debates * len(lab.seeds) for lab in labs)
    with console.stage_progress("weak", total, unit="member"):
        for lab in labs:
            tr = transcripts[lab.source.key] if lab.source.reads_transcripts else None
            out[lab.name] = run_labeller(cfg, lab, trainer, tr)
    return out


def _write_labels(path: Path, transfer: list[Sample], lab: LabellerResult, members: dict,
                  tr: Transcripts | None, n_debates: int) -> None:
    path.unlink(missing_ok=True)  # cheap to rewrite from the cached member results
    with JsonlWriter(path) as f:
        for s in transfer:
            f.write(WeakLabel(
                sample_id=s.id, soft_label=lab.transfer_p1[s.id],
                members={m: r["transfer"][s.id] for m, r in members.items()},
                debate_keys=[tr[(s.id, k)].key for k in range(n_debates)] if tr else [],
                gold_label=s.label).model_dump())


def quote_grades(cfg: RunConfig, splits: Splits, transcripts: dict[str, Transcripts]
                 ) -> dict[str, list[TranscriptQuotes]]:
    """{source: every transcript's quote grades, turn by turn}, as the weak members of
    the sources in `transcripts` read them (weak.verify_quotes; {} without it)."""
    if not cfg.weak.verify_quotes:
        return {}
    sample = {s.id: s for s in splits.all()}
    out = {}
    for source, tr in transcripts.items():
        checks = ((t, quote_check(sample[t.sample_id], cfg.weak)) for _, t in sorted(tr.items()))
        out[source] = [TranscriptQuotes.of(source, t, check) for t, check in checks if check is not None]
    return out


def write_quote_grades(path: Path, grades: dict[str, list[TranscriptQuotes]]) -> None:
    """Every transcript's quote grades, turn by turn, one line each (provenance of the
    report's quote table; cheap to recompute from the transcripts, so rewritten)."""
    path.unlink(missing_ok=True)
    if grades:
        with JsonlWriter(path) as f:
            for records in grades.values():
                for r in records:
                    f.write(r.model_dump())

