"""A loss added in one file (tests/extensions/toy_loss.py) runs through the whole
pipeline; its hyperparameter and every built-in one reach the student's cache key,
so changing one retrains exactly the students trained with that loss."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

import run
from extensions.toy_loss import SmoothedXentLoss
from factories import report_rows
from w2s_base.config import ConfigError, load_config
from w2s_base.losses import LOSSES, LogConfLoss

ROOT = Path(__file__).resolve().parents[1]
TINY = ["data.n_weak_train=16", "data.n_transfer=16", "data.n_test=16", "weak.train.epochs=1",
        "weak.train.max_length=64", "strong.train.epochs=3", "strong.losses=[xent, smoothed_xent, logconf]"]


def test_the_toy_loss_is_registered_with_its_hyperparameter(capsys):
    assert LOSSES["smoothed_xent"] is SmoothedXentLoss
    cfg = load_config(None, ["strong.losses=[xent, smoothed_xent]",
                             "strong.loss_settings.smoothed_xent.smoothing=0.3"])
    assert cfg.strong.loss("smoothed_xent") == SmoothedXentLoss(smoothing=0.3)
    assert cfg.strong.loss("smoothed_xent").spec() == {"name": "smoothed_xent", "smoothing": 0.3}
    with pytest.raises(SystemExit):
        run.parse_args(["--help"])
    assert "smoothed_xent (smoothing=0.1)" in capsys.readouterr().out


@pytest.mark.parametrize("override, key, names", [
    ("strong.losses=[xent, smoothed_xnt]", "strong.losses.1", "smoothed_xent"),
    ("weak.labellers=[{name: weak, losses: [hinge]}]", "weak.labellers.0.losses.0", "smoothed_xent"),
    ("strong.loss_settings.smoothed_xent.smoothin=0.3", "smoothed_xent.smoothin", "smoothing"),
    ("strong.loss_settings.logconf.alpha=2", "logconf.alpha", "aux_coef, warmup_frac"),
    ("strong.loss_settings.hinge.alpha=2", "strong.loss_settings.hinge", "smoothed_xent"),
    ("strong.loss_settings.product.beta=high", "product.beta", "alpha, beta"),
])
def test_an_unknown_loss_or_hyperparameter_is_a_config_error_naming_the_key(override, key, names):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    line = next(l for l in str(e.value).splitlines() if key in l)
    assert names in line  # and what would be valid


def test_the_earlier_flat_keys_are_aliases_of_the_loss_settings():
    flat = load_config(None, ["strong.aux_coef=0.2", "strong.aux_warmup_frac=0.3",
                              "strong.product_alpha=2", "strong.product_beta=3"])
    nested = load_config(None, ["strong.loss_settings={logconf: {aux_coef: 0.2, warmup_frac: 0.3}, "
                                "product: {alpha: 2, beta: 3}}"])
    assert flat.strong == nested.strong
    assert flat.strong.loss("logconf") == LogConfLoss(aux_coef=0.2, warmup_frac=0.3)
    assert load_config(None, ["strong.aux_coef=0.2", "strong.loss_settings.logconf.aux_coef=0.2"]).strong == \
        load_config(None, ["strong.aux_coef=0.2"]).strong
    with pytest.raises(ConfigError, match="strong.aux_coef is the earlier name of strong.loss_settings.logconf.aux_coef"):
        load_config(None, ["strong.aux_coef=0.2", "strong.loss_settings.logconf.aux_coef=0.4"])


def test_the_config_reads_the_registry_without_torch():
    code = ("import sys, w2s_base.config as c; c.load_config(None, ['strong.losses=[logconf]']); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_a_loss_in_one_file_runs_end_to_end_and_its_settings_key_its_students(tmp_path, monkeypatch):
    import w2s_base.training.classifier as classifier
    real_fit = classifier.fit
    fitted: dict[str, object] = {}  # the strong fits of one run: {desc: its loss}

    def recording_fit(*a, **k):
        desc = k.get("desc", a[6] if len(a) > 6 else "")
        if desc.startswith("strong"):
            fitted[desc] = a[3]
        return real_fit(*a, **k)

    monkeypatch.setattr(classifier, "fit", recording_fit)

    def run_with(*overrides: str) -> dict:
        fitted.clear()
        args = ["--config", "configs/demo.yaml", "--name", "toy", "--set", f"output_dir={tmp_path}", "--no-debate"]
        for o in TINY + list(overrides):
            args += ["--set", o]
        assert run.main(args) == 0
        return dict(fitted)

    first = run_with()
    assert set(first) == {"strong ceiling seed 0", "strong weak|xent seed 0", "strong weak|smoothed_xent seed 0",
                          "strong weak|logconf seed 0",  # and the audit's out-of-fold ceiling (xent, gold labels)
                          "strong ceiling out-of-fold 1/2", "strong ceiling out-of-fold 2/2"}
    assert first["strong weak|smoothed_xent seed 0"] == SmoothedXentLoss(smoothing=0.1)
    report = json.loads((tmp_path / "toy" / "report.json").read_text())
    rows = report_rows(report)
    assert {"w2s[weak|xent]", "w2s[weak|smoothed_xent]", "w2s[weak|logconf]"} <= set(rows)
    assert 0 <= rows["w2s[weak|smoothed_xent]"]["accuracy"] <= 1

    # the toy loss's hyperparameter keys its students, and only them
    again = run_with("strong.loss_settings.smoothed_xent.smoothing=0.3")
    assert again == {"strong weak|smoothed_xent seed 0": SmoothedXentLoss(smoothing=0.3)}
    # so does logconf's: exactly the logconf students retrain, never the xent ones
    again = run_with("strong.loss_settings.smoothed_xent.smoothing=0.3", "strong.loss_settings.logconf.aux_coef=0.2")
    assert again == {"strong weak|logconf seed 0": LogConfLoss(aux_coef=0.2, warmup_frac=0.1)}
    # the earlier flat key names the same setting: nothing retrains
    assert run_with("strong.loss_settings.smoothed_xent.smoothing=0.3", "strong.aux_coef=0.2") == {}
