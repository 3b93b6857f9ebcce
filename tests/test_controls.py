"""The instrument's calibration, end to end with the real weak and strong models:
a control that must show an effect (scripted transcripts carrying the label with
reliability 0.9), its no-information version (0.5) and a negative control (the 0.9
transcripts given to other samples) that must not.

CI runs one draw of configs/controls.yaml (the config itself runs three replicates, whose
pooled comparisons decide the controls; three take three times as long). One draw's
interval covers test samples only, and single weak models differ by points between seeds
(one draw of the shuffled control read +4.2, +0.5 to +8.0, at the earlier learning rate,
another -5.3), so the no-effect controls are checked against the positive control's own
effect: a leak of the 0.9 transcripts' label into the weak input would recover a large
share of the +24 points those transcripts give, while training noise moves a few points.
Fixed seeds and margins far from the measured values: deterministic, not flaky."""
import json

import pytest

import run
from factories import report_rows


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("controls")
    # configs/controls.yaml: 200/400/800 samples (smaller sizes left the r = 0.9
    # student's gain unresolved on the demo without repeated texts, measured), no LLM
    assert run.main(["--config", "configs/controls.yaml", "--set", f"output_dir={out}",
                     "--set", "replicates=1"]) == 0
    return json.loads((out / "controls" / "report.json").read_text())


@pytest.mark.slow
def test_positive_control_shows_the_effect(report):
    rows = report_rows(report)
    weak, p5, p9 = rows["weak"], rows["pos-0.5"], rows["pos-0.9"]
    # dose-response: the informative transcripts lift the weak model and its student
    assert p9["accuracy"] > p5["accuracy"] + 0.1 and p9["accuracy"] > weak["accuracy"] + 0.05
    assert p9["vs_reference"]["direction"] == "better"
    assert rows["w2s[pos-0.9|xent]"]["accuracy"] > rows["w2s[pos-0.5|xent]"]["accuracy"]
    cmp = {c["labeller"]: c["result"] for c in report["comparisons"]}
    assert cmp["pos-0.9"]["direction"] == "better"  # the paired interval excludes zero
    assert cmp["pos-0.9"]["acc_diff_ci"][0] > 0


@pytest.mark.slow
def test_no_information_and_negative_control_recover_little_of_the_positive_effect(report):
    rows = report_rows(report)
    base = rows["weak"]["accuracy"]
    effect = rows["pos-0.9"]["accuracy"] - base  # what the 0.9 transcripts carry (+24 measured)
    assert effect > 0.1
    for name in ("pos-0.5", "shuffled-0.9"):
        gain = rows[name]["accuracy"] - base
        assert gain < 0.5 * effect, (name, gain, effect)
    # one draw cannot call the negative control failed: its gain is an alert at most
    assert not any("NEGATIVE CONTROL FAILED" in w for w in report["warnings"])
    assert rows["shuffled-0.9"]["control"] == "shuffled:positive:0.9"
