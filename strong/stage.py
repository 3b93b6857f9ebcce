"""Strong stage: the strong student trained on each weak labeller's soft labels
of the transfer split (one run per labeller and loss), and the strong ceiling
trained on the same split's gold labels."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.classifier import FeatureExtractor, train_classifier
from core.config import RunConfig
from core.losses import make_loss
from core.stage_cache import cached
from data.splits import Splits
from weak.labels import Labeller


def student_runs(cfg: RunConfig, labellers: dict[str, Labeller]) -> list[tuple[str, str, str]]:
    """(run name, labeller or 'gold', loss) for every student this config trains."""
    runs = [("ceiling", "gold", "xent")]
    for lab in labellers:
        for loss in cfg.strong.losses:
            runs.append((f"w2s[{lab}|{loss}]", lab, loss))
    return runs


def run_strong(cfg: RunConfig, splits: Splits, labellers: dict[str, Labeller],
               run_dir: Path) -> dict[str, dict[str, float]]:
    """Return {run name: {test sample id: P(label = 1)}}."""
    s = cfg.strong
    transfer_texts = [x.text for x in splits.transfer]
    test_texts = [x.text for x in splits.test]
    # One frozen-feature extractor for every probe student: the strong model's
    # forward passes are paid once per text (and cached on disk across runs).
    extractor = (FeatureExtractor(s.model, s.train.max_length, trust_remote_code=cfg.trust_remote_code)
                 if s.train.mode == "linear_probe" else None)
    results = {}
    for name, labeller, loss_name in student_runs(cfg, labellers):
        if labeller == "gold":
            p1 = np.array([x.label for x in splits.transfer], dtype=np.float32)
        else:
            p1 = np.array([labellers[labeller].transfer_p1[x.id] for x in splits.transfer], dtype=np.float32)
        spec = {"model": s.model, "train": s.train.model_dump(), "loss": loss_name,
                "aux": [s.aux_coef, s.aux_warmup_frac, s.product_alpha, s.product_beta],
                "seed": s.seed, "labels": [round(float(v), 6) for v in p1],
                "test": [x.id for x in splits.test]}
        out = run_dir / "strong" / name.replace("|", "_").replace("[", "_").replace("]", "").replace("+", "_")

        def compute() -> dict[str, float]:
            loss = make_loss(loss_name, aux_coef=s.aux_coef, warmup_frac=s.aux_warmup_frac,
                             alpha=s.product_alpha, beta=s.product_beta)
            clf = train_classifier(s.model, transfer_texts, p1, loss, s.train, s.seed,
                                   desc=f"strong {name}", trust_remote_code=cfg.trust_remote_code,
                                   extractor=extractor)
            clf.save(out)
            return dict(zip([x.id for x in splits.test], map(float, clf.predict(test_texts))))

        results[name] = cached(out / "result.json", spec, compute)
    return results
