"""Strong stage: the strong student trained on each weak labeller's soft labels
of the transfer split (one per labeller, loss and seed), and the strong ceiling
trained on the same split's gold labels (one per seed)."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from core.classifier import ModelTrainer
from core.config import GOLD, RunConfig
from core.layout import RunLayout
from core.losses import make_loss
from core.stage_cache import cached
from data.splits import Splits
from weak.labels import LabellerResult

Preds = dict[str, float]  # {test sample id: P(label = 1)}


class StudentKey(NamedTuple):
    """One trained student: the labels it learnt from (a labeller, or GOLD for the
    ceiling), its loss and its seed."""
    labeller: str
    loss: str
    seed: int

    @property
    def is_ceiling(self) -> bool:
        return self.labeller == GOLD

    @property
    def folder(self) -> str:
        # the folder names of earlier runs, so their students stay cached
        return "ceiling" if self.is_ceiling else f"w2s[{self.labeller}-{self.loss}]"


def student_keys(cfg: RunConfig, labellers: list[str]) -> list[StudentKey]:
    """Every student this config trains, the ceiling first; a labeller's own
    `losses` override strong.losses (the paper compares losses on the plain weak
    labels only)."""
    specs = {lab.name: lab for lab in cfg.weak.labellers}
    runs = [(GOLD, "xent")] + [(lab, loss) for lab in labellers
                               for loss in specs[lab].losses or cfg.strong.losses]
    return [StudentKey(lab, loss, seed) for lab, loss in runs for seed in cfg.strong.seeds]


def run_strong(cfg: RunConfig, splits: Splits, labellers: dict[str, LabellerResult],
               layout: RunLayout) -> dict[StudentKey, Preds]:
    s = cfg.strong
    transfer_texts = [x.text for x in splits.transfer]
    test_texts = [x.text for x in splits.test]
    test_ids = [x.id for x in splits.test]
    trainer = ModelTrainer(s.model, s.train, cfg.trust_remote_code, share_base=False)
    results: dict[StudentKey, Preds] = {}
    for key in student_keys(cfg, list(labellers)):
        if key.is_ceiling:
            p1 = np.array([x.label for x in splits.transfer], dtype=np.float32)
        else:
            p1 = np.array([labellers[key.labeller].transfer_p1[x.id] for x in splits.transfer],
                          dtype=np.float32)
        spec = {"model": s.model, "train": s.train.model_dump(), "loss": key.loss,
                "aux": [s.aux_coef, s.aux_warmup_frac, s.product_alpha, s.product_beta],
                "seed": key.seed, "labels": [round(float(v), 6) for v in p1], "test": test_ids}
        out = layout.student(key.folder, key.seed)

        def compute() -> Preds:
            loss = make_loss(key.loss, aux_coef=s.aux_coef, warmup_frac=s.aux_warmup_frac,
                             alpha=s.product_alpha, beta=s.product_beta)
            name = "ceiling" if key.is_ceiling else f"{key.labeller}|{key.loss}"
            clf = trainer.train(transfer_texts, p1, loss, key.seed, desc=f"strong {name} seed {key.seed}")
            clf.save(out)
            return dict(zip(test_ids, map(float, clf.predict(test_texts))))

        results[key] = cached(out / "result.json", spec, compute)
    return results
