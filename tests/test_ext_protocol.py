"""A protocol added in one file (tests/extensions/toy_protocol.py, with its prompt
set) runs through the whole pipeline: the debater follows its schedule and roles,
the weak model reads its speakers' names, and its labeller is reported."""
import json

import pytest
from pydantic import ValidationError

import run
from extensions.toy_protocol import PROMPTS
from factories import report_rows
from w2s_base.config import DebateConfig, LabellerConfig
from w2s_base.protocols import PROTOCOLS, protocol

LABELLERS = "[{name: weak}, {name: talk, protocol: dialogue}]"
TINY = ["data.n_weak_train=16", "data.n_transfer=16", "data.n_test=16", "weak.train.epochs=1",
        "weak.train.max_length=64", "strong.train.epochs=3", "debate.sampling.max_new_tokens=6"]


def _args(tmp_path, name: str, prompts) -> list[str]:
    args = ["--config", "configs/demo.yaml", "--name", name, "--set", f"output_dir={tmp_path}",
            "--set", f"weak.labellers={LABELLERS}", "--set", f"debate.prompts={prompts}"]
    for o in TINY:
        args += ["--set", o]
    return args


def test_the_registry_knows_the_toy_protocol():
    spec = protocol("dialogue")
    assert spec.speakers == ("Proponent", "Opponent") and spec.roles == {"propose", "oppose"}
    assert spec.num_turns(DebateConfig()) == 2  # its own default; no DebateConfig field
    cfg = DebateConfig(turns={"dialogue": 3})
    assert spec.schedule(spec.num_turns(cfg)) == [("A", "propose"), ("B", "oppose"), ("A", "propose")]
    assert protocol("debate").num_turns(cfg) == 3 and protocol("consultancy").num_turns(cfg) == 1
    for builtin in PROTOCOLS.values():  # an older key's default is the protocol's own
        if builtin.turns_key:
            assert DebateConfig.model_fields[builtin.turns_key].default == builtin.default_turns
    with pytest.raises(ValidationError, match=r"dialogue: 1 turns, outside \[2, 12\]"):
        DebateConfig(turns={"dialogue": 1})
    with pytest.raises(ValidationError, match="choose none, debate, consultancy, market_making, dialogue"):
        LabellerConfig(name="x", protocol="dialog")


def test_a_prompt_set_without_the_toy_roles_is_refused(tmp_path, capsys):
    text = (PROMPTS / "prompts.yaml").read_text()
    no_oppose = text[:text.index("  oppose:")]
    (tmp_path / "partial.yaml").write_text(no_oppose)
    rc = run.main(_args(tmp_path, "partial", tmp_path / "partial.yaml") + ["--until", "debate"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err == ("error: prompt set 'partial' lacks instructions for ['oppose'] "
                   "which protocol 'dialogue' needs")
    assert not (tmp_path / "partial" / "debate" / "transcripts.jsonl").exists()  # nothing generated


@pytest.mark.slow
def test_toy_protocol_end_to_end(tmp_path, monkeypatch):
    from fake_backend import EchoBackend

    import debate.backends
    monkeypatch.setattr(debate.backends, "make_backend", lambda cfg: EchoBackend())
    assert run.main(_args(tmp_path, "toy", PROMPTS)) == 0
    rd = tmp_path / "toy"

    from debate.engine import load_transcripts
    ts = list(load_transcripts(rd / "debate" / "transcripts.jsonl").values())
    assert len(ts) == 48 and {t.protocol for t in ts} == {"dialogue"}
    for t in ts:
        assert t.num_turns == 2 and t.prompt_set == "dialogue_prompts"
        assert [(x.side, x.role) for x in t.turns] == [("A", "propose"), ("B", "oppose")]
        # the echo backend repeats the instruction's last line: each turn got its role's template
        assert t.turns[0].text.startswith("echo<Proponent, turn 1 of 2")
        assert t.turns[1].text.startswith("echo<Opponent, turn 2 of 2")
        assert [x.position_label for x in t.turns] == [t.a_label, 1 - t.a_label]

    from weak.inputs import weak_input
    t = ts[0]
    read = weak_input("Q", t, None, 64, strategy="head")
    assert read == ("Q\n\nDebate:\n"
                    f"Proponent (argues: {t.positions[t.a_label]}): {t.turns[0].text}\n"
                    f"Opponent (argues: {t.positions[1 - t.a_label]}): {t.turns[1].text}")

    from w2s_run.report.viewer import render_viewer
    index = dict(render_viewer(ts))["debates/index.js"]
    assert '"protocols":[["dialogue",["Proponent","Opponent"]]]' in index.replace(" ", "")

    report = json.loads((rd / "report.json").read_text())
    rows = report_rows(report)
    assert {"weak", "talk", "w2s[talk|xent]", "ceiling"} <= set(rows)
    assert rows["talk"]["protocol"] == "dialogue"
    labels = [json.loads(line) for line in (rd / "weak" / "talk" / "labels.jsonl").read_text().splitlines()]
    assert len(labels) == 16 and all(len(x["debate_keys"]) == 1 for x in labels)
