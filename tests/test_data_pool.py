"""The sample pool and the test set do not depend on which labellers a run trains, and
each weak reader is checked against what it reads (w2s_run/pipeline.py fit_to_readers,
prepare_data). Real tokenizers; the debater is the fake EchoBackend (orchestration only)."""
from __future__ import annotations

import json
import random

import pytest

import run
from data.converters import Row
from data.fit import count_tokens, fit_samples, make_reader
from data.loading import convert_row
from data.schema import Sample
from data.tasks import get_task
from w2s_base.config import load_config
from w2s_run.pipeline import fit_to_readers, prepare_data

WORDS = "the a river stone quietly under over bright seven people walked green city old".split()
MAX_LENGTH, RESERVE = 48, 16  # weak budget: 32 tokens with the transcript reserve, 48 without


def _pool(path, n: int = 90) -> None:
    """Generic texts of 5..45 words: many are over-long only when the transcript reserve
    is kept, and two pairs repeat a text (one pair with conflicting labels)."""
    rng = random.Random(0)
    rows = [{"id": f"g{i:03d}", "text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 45))) + ".",
             "label": int(rng.random() < 0.5)} for i in range(n)]
    rows += [{"id": "dup-a", "text": rows[0]["text"].upper(), "label": rows[0]["label"]},
             {"id": "dup-b", "text": "  " + rows[1]["text"], "label": 1 - rows[1]["label"]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _overrides(tmp_path, data) -> list[str]:
    return [f"output_dir={tmp_path}", "data.task=generic", f"data.path={data}", "data.n_weak_train=8",
            "data.n_transfer=8", "data.n_test=8", "debate.sampling.max_new_tokens=4",
            f"weak.train.max_length={MAX_LENGTH}", f"weak.transcript_reserve={RESERVE}",
            "strong.train.max_length=256"]


def _args(tmp_path, data, name, *extra):
    args = ["--config", "configs/demo.yaml", "--name", name, "--until", "debate", *extra]
    for o in _overrides(tmp_path, data):
        args += ["--set", o]
    return args


def test_the_same_test_set_with_and_without_debate_and_with_fewer_labellers(tmp_path, monkeypatch, capsys):
    from fake_backend import EchoBackend
    import debate.backends
    monkeypatch.setattr(debate.backends, "make_backend", lambda cfg: EchoBackend())
    data = tmp_path / "pool.jsonl"
    _pool(data)
    # Not vacuous: the reserve decides for some texts (the rule before issue 20 kept them
    # without debate and dropped them with it).
    texts = [json.loads(line)["text"] for line in data.read_text().splitlines()]
    counts = count_tokens(make_reader("w", MAX_LENGTH, "minilm-l6")[1], texts)
    assert sum(MAX_LENGTH - RESERVE < c <= MAX_LENGTH for c in counts) >= 10

    runs = {"debate": [], "no-debate": ["--no-debate"],
            "weak-only": ["--set", "weak.labellers=[{name: weak}]"]}
    splits, logs = {}, {}
    for name, extra in runs.items():
        assert run.main(_args(tmp_path, data, name, *extra)) == 0
        splits[name] = json.loads((tmp_path / name / "splits.json").read_text())
        logs[name] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[data]")]
    assert (tmp_path / "debate" / "debate" / "transcripts.jsonl").exists()  # the debate run did debate
    assert splits["debate"] == splits["no-debate"] == splits["weak-only"]
    assert logs["debate"] == logs["no-debate"] == logs["weak-only"]
    # the counts reach the log: over-long texts dropped, one copy and one conflicting pair removed
    assert any("texts are longer than a model reads" in line for line in logs["debate"])
    assert any("1 copies dropped, 2 samples of 1 texts with conflicting labels dropped" in line
               for line in logs["debate"])
    # ... and the run's data summary (RunMeta.fit is FitResult.summary()) carries them
    cfg = load_config("configs/demo.yaml", _overrides(tmp_path, data) + ["name=debate"])
    summary = prepare_data(cfg, cfg.layout)[1].summary()
    assert summary["dedupe"]["duplicate_ids"] == ["g000"]  # "dup-a" < "g000": the smallest id is kept
    assert summary["dedupe"]["conflicting_ids"] == ["dup-b", "g001"]
    assert summary["n_dropped"] > 0 and summary["readers"]["weak minilm-l6"]["reserve"] == RESERVE


ROW: Row = {"id": "c1", "question": "Why did the author stop at the bridge?",
            "answer0": "To look at the river.", "answer1": "To buy bread.",
            "answer2": "None of the above choices.", "answer3": "To sleep.", "label": 0,
            "context": " ".join(["The long walk went on past the fields and over the hills."] * 20)}


def _cosmos(n: int) -> list[Sample]:
    return [convert_row(get_task("cosmosqa"), {**ROW, "id": f"c{i}"}, i, "test", 0) for i in range(n)]


def test_the_weak_reader_is_checked_against_the_view_it_reads():
    """With weak.sees: without_passage the weak judge reads the question and candidate
    only: a long passage makes the text over-long for it only under sees: all."""
    samples = _cosmos(4)
    base = ["data.task=cosmosqa", "weak.train.max_length=96", "strong.train.max_length=512"]
    weak = "weak minilm-l6"
    full = fit_to_readers(load_config("configs/demo.yaml", base), samples)
    assert full.n_dropped == 4 and full.readers[weak].n_overlong == 4 and full.readers[weak].reads == "text"
    view = fit_to_readers(load_config("configs/demo.yaml", base + ["weak.sees=without_passage"]), samples)
    assert view.n_dropped == 0 and view.n_out == 4 and view.readers[weak].reads == "view"
    tok = make_reader("w", 96, "minilm-l6")[1]
    assert view.readers[weak].max_tokens == max(count_tokens(tok, [s.meta["without_passage"] for s in samples]))
    assert view.readers[weak].max_tokens < 96 - 48 < full.readers[weak].max_tokens  # reserve: half of 96


def test_cut_middle_cuts_the_text_for_its_readers_and_drops_what_a_view_cannot_fit():
    """A view is not cut: under cut_middle, a sample whose view is too long for its reader
    is dropped, and the text readers' cut ignores the view readers."""
    samples = _cosmos(3)
    tok = make_reader("w", 64, "minilm-l6")[1]
    long_q = {**ROW, "id": "long", "question": " ".join(["Why"] * 80) + "?"}
    samples.append(convert_row(get_task("cosmosqa"), long_q, 3, "test", 0))
    readers = [("w", tok, 64), ("s", tok, 128)]
    r = fit_samples(samples, readers, "cut_middle", views={"w": lambda s: s.meta["without_passage"]})
    assert r.n_dropped == 1 and [s.id for s in r.samples] == ["c0", "c1", "c2"]
    assert r.n_cut == 3 and all(s.meta["cut_reader"] == "s" for s in r.samples)
    assert all(n <= 128 for n in count_tokens(tok, [s.text for s in r.samples]))
    assert all(s.text.endswith(ROW["answer3"]) or "Answer:" in s.text for s in r.samples)
    with pytest.raises(ValueError, match="views name unknown readers"):
        fit_samples(samples, readers, "drop", views={"x": lambda s: s.text})


def test_the_report_notes_say_how_many_duplicate_texts_were_dropped():
    from types import SimpleNamespace

    from w2s_run.report.model import RunMeta
    from w2s_run.report.render import _notes
    dedupe = {"n_in": 10, "n_out": 6, "n_duplicates": 2, "n_conflicting": 2, "n_conflicting_texts": 1,
              "duplicate_ids": ["b", "c"], "conflicting_ids": ["x", "y"]}
    fit = {"n_overlong": 0, "dedupe": dedupe}
    meta = RunMeta(task="generic", weak_model="w", strong_model="s", fit=fit)
    notes = "\n".join(_notes(SimpleNamespace(reference="weak", meta=meta, rows=[], pooled=None)))
    assert ("2 copies dropped before splitting, and 2 samples of 1 texts whose copies disagree "
            "on the label") in notes
    quiet = RunMeta(task="generic", weak_model="w", strong_model="s",
                    fit={**fit, "dedupe": {**dedupe, "n_duplicates": 0, "n_conflicting": 0}})
    assert "Duplicate texts" not in "\n".join(_notes(SimpleNamespace(reference="weak", meta=quiet, rows=[], pooled=None)))
