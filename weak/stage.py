"""Weak stage: train the weak members on gold labels, label the transfer split.

Two labellers in the same run: `weak` (sample only; the no-debate baseline every
PGR is measured against) and `weak+<protocol>` (sample + a transcript of the
debate, consultancy or market-making protocol).
Members span the finetuning seeds, and for `weak+debate` also the K debates per
sample: member (seed s, debate k) trains and labels with debate k's transcripts.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from core.classifier import SharedLoraBase, load_tokenizer, train_classifier
from core.config import RunConfig
from core.jsonl import JsonlWriter
from core.losses import XentLoss
from core.models import resolve_model
from core.stage_cache import cached
from data.schema import Sample
from data.splits import Splits
from debate.transcript import Transcript

from .ensemble import aggregate
from .inputs import weak_input
from .labels import Labeller, WeakLabel

Transcripts = dict[tuple[str, int], Transcript]


def _ids_hash(samples: list[Sample]) -> str:
    return hashlib.sha256("|".join(s.id for s in samples).encode()).hexdigest()[:16]


def _train_member(cfg: RunConfig, splits: Splits, transcripts: Transcripts | None, k: int,
                  seed: int, out: Path, tok, shared: SharedLoraBase) -> dict:
    w = cfg.weak

    def texts(samples: list[Sample]) -> list[str]:
        return [weak_input(s.text, transcripts[(s.id, k)] if transcripts else None, tok,
                           w.train.max_length, w.transcript_budget) for s in samples]

    def debate_keys(samples: list[Sample]) -> list[str]:
        return [transcripts[(s.id, k)].key for s in samples] if transcripts else []

    spec = {"v": 2, "model": w.model, "train": w.train.model_dump(), "seed": seed, "k": k,
            "budget": w.transcript_budget,
            "splits": [_ids_hash(x) for x in (splits.weak_train, splits.transfer, splits.test)],
            "debates": hashlib.sha256("|".join(
                debate_keys(splits.weak_train + splits.transfer + splits.test)).encode()).hexdigest()[:16]}

    def compute() -> dict:
        parts = {"weak_train": splits.weak_train, "transfer": splits.transfer, "test": splits.test}
        inputs = {k: texts(v) for k, v in parts.items()}  # fitted to the context once per split
        y = np.array([s.label for s in splits.weak_train], dtype=np.float32)
        clf = train_classifier(w.model, inputs["weak_train"], y, XentLoss(), w.train, seed,
                               desc=f"weak {out.parent.name}/{out.name}",
                               trust_remote_code=cfg.trust_remote_code, shared=shared,
                               member=f"{out.parent.name}-{out.name}")  # peft forbids "." in names
        clf.save(out)
        # weak_train predictions are in-sample; only market-making uses them (to pick
        # the side the weak model did not choose on every split).
        return {k: dict(zip([s.id for s in v], map(float, clf.predict(inputs[k]))))
                for k, v in parts.items()}

    return cached(out / "result.json", spec, compute)


def run_weak(cfg: RunConfig, splits: Splits, transcripts: Transcripts | None,
             run_dir: Path) -> dict[str, Labeller]:
    tok = load_tokenizer(resolve_model(cfg.weak.model), cfg.trust_remote_code)
    # Loaded lazily, on the first member that is not cached, then shared by all.
    shared = SharedLoraBase(cfg.weak.model, cfg.weak.train, cfg.trust_remote_code)
    variants: list[tuple[str, Transcripts | None, list[int]]] = [("weak", None, [0])]
    if transcripts is not None:
        variants.append((f"weak+{cfg.debate.protocol}", transcripts, list(range(cfg.debate.num_debates))))
    out: dict[str, Labeller] = {}
    for name, tr, ks in variants:
        base = run_dir / "weak" / name.replace("+", "_")
        members = {}
        for k in ks:
            for seed in cfg.weak.seeds:
                mname = f"seed{seed}" + (f"-debate{k}" if tr else "")
                members[mname] = _train_member(cfg, splits, tr, k, seed, base / mname, tok, shared)
        names = list(members)
        agg = {}
        for split in ("weak_train", "transfer", "test"):
            ids = [s.id for s in getattr(splits, split)]
            p = aggregate(np.array([[members[m][split][i] for i in ids] for m in names]),
                          cfg.weak.aggregate)
            agg[split] = dict(zip(ids, map(float, p)))
        lab = Labeller(name=name, uses_debate=tr is not None, aggregate=cfg.weak.aggregate,
                       members=names, weak_train_p1=agg["weak_train"],
                       transfer_p1=agg["transfer"], test_p1=agg["test"],
                       member_test_p1={m: members[m]["test"] for m in names})
        _write_labels(base / "labels.jsonl", splits.transfer, lab, members, tr, ks)
        out[name] = lab
    return out


def _write_labels(path: Path, transfer: list[Sample], lab: Labeller, members: dict,
                  tr: Transcripts | None, ks: list[int]) -> None:
    path.unlink(missing_ok=True)  # cheap to rewrite from the cached member results
    with JsonlWriter(path) as f:
        for s in transfer:
            f.write(WeakLabel(
                sample_id=s.id, soft_label=lab.transfer_p1[s.id],
                members={m: r["transfer"][s.id] for m, r in members.items()},
                debate_keys=[tr[(s.id, k)].key for k in ks] if tr else [],
                gold_label=s.label).model_dump())
