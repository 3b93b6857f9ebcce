"""Strong stage: the strong student trained on each weak labeller's soft labels
of the transfer split (one per labeller, loss and seed), and the strong ceiling
trained on the same split's gold labels (one per seed)."""
from __future__ import annotations

import hashlib
from typing import NamedTuple

import numpy as np

from w2s_base import console
from w2s_base.training.classifier import ModelTrainer, held_out_slice
from w2s_base.config import RunConfig
from w2s_base.runfolder.layout import RunLayout
from w2s_base.runfolder.stage_cache import cached, texts_hash
from data.splits import Splits
from weak.labels import LabellerResult

Preds = dict[str, float]  # {test sample id: P(label = 1)}


class StudentKey(NamedTuple):
    """One trained student: the labels it learnt from (a labeller's, or for the ceiling
    None: the transfer split's gold labels), its loss and its seed."""
    labeller: str | None
    loss: str
    seed: int

    @classmethod
    def ceiling(cls, seed: int) -> "StudentKey":
        return cls(None, "xent", seed)

    @property
    def is_ceiling(self) -> bool:
        return self.labeller is None

    @property
    def folder(self) -> str:
        # the folder names of earlier runs, so their students stay cached
        return "ceiling" if self.is_ceiling else f"w2s[{self.labeller}-{self.loss}]"


def student_keys(cfg: RunConfig, labellers: list[str]) -> list[StudentKey]:
    """Every student this config trains, the ceiling first; a labeller's own
    `losses` override strong.losses (the paper compares losses on the plain weak
    labels only)."""
    specs = {lab.name: lab for lab in cfg.weak.labellers}
    runs = [(lab, loss) for lab in labellers for loss in cfg.student_losses(specs[lab])]
    return ([StudentKey.ceiling(seed) for seed in cfg.strong.seeds]
            + [StudentKey(lab, loss, seed) for lab, loss in runs for seed in cfg.strong.seeds])


def strong_trainer(cfg: RunConfig) -> ModelTrainer:
    """The strong model's trainer (nothing loads until it trains): each LoRA student
    loads its own base; a probe's feature model is shared."""
    return ModelTrainer(cfg.strong.model, cfg.strong.train, cfg.trust_remote_code, share_base=False)


CEILING_FOLDS = 2


def ceiling_out_of_fold(cfg: RunConfig, splits: Splits, layout: RunLayout, trainer: ModelTrainer | None,
                        folds: int = CEILING_FOLDS) -> Preds:
    """P(label = 1) of every TRANSFER sample from a strong ceiling that never saw its gold
    label (cross-fitting): the ceiling itself trains on transfer's gold labels, so its
    accuracy there is a training accuracy. Transfer is cut into `folds` parts by a
    seeded hash of the sample id; a ceiling (the first strong seed, the ceiling's loss
    and settings) trained on the other parts predicts each part. Each fold trains on
    (folds - 1) / folds of transfer, so it is a slightly weaker proxy of the ceiling;
    it is what the audit (w2s_run/report/audit.py) scores before any student trains.
    Cached per fold; the ceiling's own result is untouched."""
    s, seed = cfg.strong, cfg.strong.seeds[0]
    loss = s.loss(StudentKey.ceiling(seed).loss)
    fold_of = {x.id: i % folds for i, x in enumerate(sorted(
        splits.transfer, key=lambda x: hashlib.sha256(f"{seed}|{x.id}".encode()).hexdigest()))}
    out: Preds = {}
    for f in range(folds):
        fit_on = [x for x in splits.transfer if fold_of[x.id] != f]
        held = [x for x in splits.transfer if fold_of[x.id] == f]
        fit_text, held_text = [x.text for x in fit_on], [x.text for x in held]
        spec = {"v": 1, "model": s.model, "train": s.train.result_spec(), "loss": loss.spec(), "seed": seed,
                "fit_on": texts_hash(fit_on, fit_text), "labels": texts_hash(fit_on, [x.label for x in fit_on]),
                "held": texts_hash(held, held_text)}

        def compute() -> Preds:
            assert trainer is not None, "a fold to train needs a trainer (None: only checking, run.py verify)"
            clf = trainer.train(fit_text, np.array([x.label for x in fit_on], dtype=np.float32), loss, seed,
                                desc=f"strong ceiling out-of-fold {f + 1}/{folds}")
            return dict(zip([x.id for x in held], map(float, clf.predict(held_text))))

        out.update(cached(ceiling_out_of_fold_path(layout, seed, f, folds), spec, compute))
    return out


def ceiling_out_of_fold_path(layout: RunLayout, seed: int, fold: int, folds: int = CEILING_FOLDS):
    return layout.student("ceiling-out-of-fold", seed) / f"fold{fold}-of-{folds}" / "result.json"


def run_strong(cfg: RunConfig, splits: Splits, labellers: dict[str, LabellerResult],
               layout: RunLayout, histories: dict[str, list[float]] | None = None,
               eval_histories: dict[str, list[dict]] | None = None,
               trainer: ModelTrainer | None = None) -> dict[StudentKey, Preds]:
    """Every student's test predictions; `histories` collects each one's loss per step,
    `eval_histories` its held-out loss and accuracy per epoch (when recorded); `trainer`:
    one already used for this model (the audit's out-of-fold ceiling), released at the end."""
    trainer = trainer or strong_trainer(cfg)
    keys = student_keys(cfg, list(labellers))
    results: dict[StudentKey, Preds] = {}
    with console.stage_progress("strong", len(keys), unit="student"):
        for key in keys:
            result = student(cfg, splits, layout, trainer, key, student_labels(key, splits, labellers))
            results[key] = result["test"]
            if histories is not None:
                histories[f"{key.folder}/seed{key.seed}"] = result["history"]
            if eval_histories is not None and result.get("eval_history"):
                eval_histories[f"{key.folder}/seed{key.seed}"] = result["eval_history"]
    trainer.release()  # the probe's feature model (LoRA students are freed after each fit)
    return results


def student_labels(key: StudentKey, splits: Splits, labellers: dict[str, LabellerResult]) -> np.ndarray:
    """What a student learns from, in the transfer split's order: its labeller's soft
    labels, or the gold labels for the ceiling."""
    if key.is_ceiling:
        return np.array([x.label for x in splits.transfer], dtype=np.float32)
    return np.array([labellers[key.labeller].transfer_p1[x.id] for x in splits.transfer], dtype=np.float32)


def student(cfg: RunConfig, splits: Splits, layout: RunLayout, trainer: ModelTrainer | None,
            key: StudentKey, p1: np.ndarray) -> dict:
    """One student trained on soft labels `p1` of the transfer split (or read back from
    its cached result): {"test": predictions, "history": loss per step}."""
    s = cfg.strong
    loss = s.loss(key.loss)
    test_ids = [x.id for x in splits.test]
    transfer_texts, test_texts = [x.text for x in splits.transfer], [x.text for x in splits.test]
    # v 3: the texts it reads are keyed, not only their ids. The loss: its name and
    # every hyperparameter it declares. The labels: in the transfer split's order.
    spec = {"v": 3, "model": s.model, "train": s.train.result_spec(), "loss": loss.spec(),
            "seed": key.seed, "labels": [round(float(v), 6) for v in p1],
            "transfer": texts_hash(splits.transfer, transfer_texts), "test": texts_hash(splits.test, test_texts)}
    out = layout.student(key.folder, key.seed)
    trained = []

    def compute() -> dict:
        assert trainer is not None, "a student to train needs a trainer (None: only checking, run.py verify)"
        trained.append(True)
        name = "ceiling" if key.is_ceiling else f"{key.labeller}|{key.loss}"
        # held out: test samples with their gold labels, read by the curves only
        clf = trainer.train(transfer_texts, p1, loss, key.seed, desc=f"strong {name} seed {key.seed}",
                            held_out=held_out_slice(test_texts, [x.label for x in splits.test]))
        clf.save(out)  # before its result is recorded: a failed save records nothing
        return {"test": dict(zip(test_ids, map(float, clf.predict(test_texts)))),
                "history": clf.history, "eval_history": clf.eval_history}

    result = cached(out / "result.json", spec, compute)
    console.advance(f"{key.folder}/seed{key.seed}", cached=not trained)
    return result
