"""Strong stage: the strong student trained on each weak labeller's soft labels
of the transfer split (one run per labeller, loss and seed), and the strong
ceiling trained on the same split's gold labels (one run per seed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.classifier import FeatureExtractor, train_classifier
from core.config import RunConfig
from core.losses import make_loss
from core.stage_cache import cached, slug
from data.splits import Splits
from weak.labels import Labeller

from .report import run_name

# {run name: {seed: {test sample id: P(label = 1)}}}
StudentPreds = dict[str, dict[int, dict[str, float]]]


def student_runs(cfg: RunConfig, labellers: dict[str, Labeller]) -> list[tuple[str, str, str]]:
    """(run name, labeller or 'gold', loss) for every student this config trains;
    a labeller's own `losses` override strong.losses (the paper compares losses on
    the plain weak labels only)."""
    specs = {lab.name: lab for lab in cfg.weak.labellers}
    runs = [("ceiling", "gold", "xent")]
    for lab in labellers:
        for loss in specs[lab].losses or cfg.strong.losses:
            runs.append((run_name(lab, loss), lab, loss))
    return runs


def run_strong(cfg: RunConfig, splits: Splits, labellers: dict[str, Labeller],
               run_dir: Path) -> StudentPreds:
    s = cfg.strong
    transfer_texts = [x.text for x in splits.transfer]
    test_texts = [x.text for x in splits.test]
    # One frozen-feature extractor for every probe student: the strong model's
    # forward passes are paid once per text (and cached on disk across runs).
    extractor = (FeatureExtractor(s.model, s.train.max_length, trust_remote_code=cfg.trust_remote_code)
                 if s.train.mode == "linear_probe" else None)
    results: StudentPreds = {}
    for name, labeller, loss_name in student_runs(cfg, labellers):
        if labeller == "gold":
            p1 = np.array([x.label for x in splits.transfer], dtype=np.float32)
        else:
            p1 = np.array([labellers[labeller].transfer_p1[x.id] for x in splits.transfer], dtype=np.float32)
        for seed in s.seeds:
            spec = {"model": s.model, "train": s.train.model_dump(), "loss": loss_name,
                    "aux": [s.aux_coef, s.aux_warmup_frac, s.product_alpha, s.product_beta],
                    "seed": seed, "labels": [round(float(v), 6) for v in p1],
                    "test": [x.id for x in splits.test]}
            out = run_dir / "strong" / slug(name.replace("|", "-")) / f"seed{seed}"

            def compute() -> dict[str, float]:
                loss = make_loss(loss_name, aux_coef=s.aux_coef, warmup_frac=s.aux_warmup_frac,
                                 alpha=s.product_alpha, beta=s.product_beta)
                clf = train_classifier(s.model, transfer_texts, p1, loss, s.train, seed,
                                       desc=f"strong {name} seed {seed}",
                                       trust_remote_code=cfg.trust_remote_code, extractor=extractor)
                clf.save(out)
                return dict(zip([x.id for x in splits.test], map(float, clf.predict(test_texts))))

            results.setdefault(name, {})[seed] = cached(out / "result.json", spec, compute)
    return results
