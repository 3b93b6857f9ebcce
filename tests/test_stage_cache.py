"""Skip-if-done: a stored result is reused only while the spec that produced it is unchanged."""
import json

from w2s_base.runfolder.stage_cache import cached, fingerprint


def test_same_spec_reuses_changed_spec_recomputes(tmp_path):
    path = tmp_path / "member" / "result.json"
    calls = []

    def compute(value):
        def run():
            calls.append(value)
            return {"acc": value}
        return run

    spec = {"model": "m", "train": {"lr": 1e-3, "epochs": 2}, "seed": 0}
    assert cached(path, spec, compute(1)) == {"acc": 1}
    assert cached(path, dict(spec), compute(2)) == {"acc": 1}          # same settings: reused
    assert calls == [1]
    changed = {**spec, "train": {"lr": 1e-3, "epochs": 3}}             # a nested setting changed
    assert cached(path, changed, compute(3)) == {"acc": 3}
    assert calls == [1, 3]
    stored = json.loads(path.read_text())
    assert stored["fingerprint"] == fingerprint(changed) and stored["spec"] == changed
    assert cached(path, spec, compute(4)) == {"acc": 4}                # and back: recomputed again
    assert calls == [1, 3, 4]


def test_key_order_does_not_matter_but_values_do():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1, "b": [1, 2]}) != fingerprint({"a": 1, "b": [2, 1]})


def test_torn_result_file_is_recomputed(tmp_path):
    path = tmp_path / "result.json"
    path.write_text('{"fingerprint": "abc", "res')  # a write cut short by a kill
    assert cached(path, {"x": 1}, lambda: 5) == 5
    assert json.loads(path.read_text())["result"] == 5
