"""`run.py verify`: a run folder proves its own integrity, against its config of record."""
import json

import pytest

import run

TINY = ["data.n_weak_train=16", "data.n_transfer=16", "data.n_test=16", "weak.train.epochs=1",
        "weak.train.max_length=64", "strong.train.epochs=2", "strong.losses=[xent]"]


def test_verify_a_missing_run_is_rc2_and_creates_nothing(tmp_path, capsys):
    assert run.main(["verify", "--config", "configs/demo.yaml", "--set", f"output_dir={tmp_path}",
                     "--name", "nope"]) == 2
    assert f"error: no run folder at {tmp_path / 'nope'}" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def _findings(out: str) -> dict[str, str]:
    """{path: status} of verify's printed findings."""
    return {line.split()[1].rstrip(":"): line.split()[0] for line in out.splitlines()
            if line.split(" ", 1)[0] in ("damaged", "stale", "missing")}


@pytest.mark.slow
def test_verify_names_exactly_the_tampered_record_the_edited_member_and_the_deleted_student(tmp_path, capsys):
    args = ["--config", "configs/demo.yaml", "--name", "v", "--no-debate", "--set", f"output_dir={tmp_path}"]
    for o in TINY:
        args += ["--set", o]
    assert run.main(args) == 0
    rd = tmp_path / "v"
    report = json.loads((rd / "report.json").read_text())
    member = "weak/members/none/minilm-l6/seed0/result.json"
    student = "strong/ceiling/seed0/result.json"
    labels = "weak/weak/labels.jsonl"
    assert {member, student, labels, "strong/w2s_weak-xent/seed0/result.json"} <= set(report["inputs"])
    capsys.readouterr()
    assert run.main(["verify"] + args) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith(f"{rd}: intact") and not _findings(out)

    # one store record changed without its checksum, one member's fingerprint edited, one student deleted
    lines = (rd / labels).read_text().splitlines()
    rec = json.loads(lines[3])
    rec["gold_label"] = 1 - rec["gold_label"]
    lines[3] = json.dumps(rec)
    (rd / labels).write_text("\n".join(lines) + "\n")
    m = json.loads((rd / member).read_text())
    m["fingerprint"] = "0" * 16
    (rd / member).write_text(json.dumps(m))
    (rd / student).unlink()
    before = sorted(p for p in rd.rglob("*"))
    assert run.main(["verify"] + args) == 1
    out = capsys.readouterr().out
    assert _findings(out) == {labels: "damaged", member: "stale", student: "missing"}
    assert "line 4: checksum mismatch" in out and "not checked" not in out
    assert out.count(f"rebuild: python run.py --config {rd / 'config.yaml'}") == 3
    assert sorted(p for p in rd.rglob("*")) == before  # verify wrote nothing

    # the named command rebuilds them
    assert run.main(["--config", str(rd / "config.yaml")]) == 0
    capsys.readouterr()
    assert run.main(["verify"] + args) == 0
    assert capsys.readouterr().out.strip().endswith("intact")
