"""Task registry, converters, file loading, hub failure and splits; offline and fast."""
from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from w2s_base.config import DataConfig
from data.loading import convert_row
from data.demo_task import make_demo_samples
from data.loading import load_samples
from data.schema import DataError, Sample
from data.source import samples_for
from data.splits import Splits, make_splits
from data.tasks import TASKS, TaskSpec, get_task

REPO = Path(__file__).resolve().parents[1]
FIX = Path(__file__).resolve().parent / "fixtures"
REAL_BOOLQ = REPO.parent / "shared" / "data" / "boolq" / "dev.jsonl"
REAL_HH = REPO.parent / "shared" / "data" / "hh_rlhf" / "harmless-base_test.jsonl.gz"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _convert(task: str, rows: list[dict], source: str = "mem", seed: int = 0) -> list[Sample]:
    """Rows in memory -> samples, located as "row N" (1-based) in errors."""
    spec = get_task(task)
    return [convert_row(spec, row, i, source, seed) for i, row in enumerate(rows)]


def _positions(task: str) -> tuple[str, str]:
    return get_task(task).positions


def _sciq_rows(n: int) -> list[dict]:
    return [dict(question=f"Question number {i}?", correct_answer=f"right {i}",
                 distractor1=f"wrong a{i}", distractor2=f"wrong b{i}",
                 distractor3=f"wrong c{i}", support="") for i in range(n)]


# ---- registry ----------------------------------------------------------------

def test_registry_covers_benchmarks():
    assert set(TASKS) == {"demo", "sciq", "boolq", "cosmosqa", "anthropic_hh", "generic"}
    assert all(name == spec.name for name, spec in TASKS.items())
    assert {k: v.hub.hub_id for k, v in TASKS.items() if v.hub} == {
        "sciq": "allenai/sciq", "boolq": "google/boolq",
        "cosmosqa": "allenai/cosmos_qa", "anthropic_hh": "Anthropic/hh-rlhf"}
    assert [k for k, v in TASKS.items() if v.builtin] == ["demo"]
    assert all((v.convert is None) == v.builtin for v in TASKS.values())


def test_get_task_unknown_names_known_ones():
    assert get_task("boolq") is TASKS["boolq"]
    with pytest.raises(DataError, match=r"unknown task 'imdb'; known tasks: anthropic_hh, boolq, "
                                        r"cosmosqa, demo, generic, sciq$"):
        get_task("imdb")


def test_task_spec_needs_exactly_one_source_of_samples():
    pos = ("no", "yes")
    with pytest.raises(ValueError, match="exactly one"):
        TaskSpec(name="x", positions=pos)
    with pytest.raises(ValueError, match="exactly one"):
        TaskSpec(name="x", positions=pos, convert=TASKS["generic"].convert,
                 generate=make_demo_samples)
    with pytest.raises(ValueError, match="two different claims"):
        TaskSpec(name="x", positions=("a", "a"), convert=TASKS["generic"].convert)


_HH0 = "\n\nHuman: What are some cuss words in english?\n\nAssistant: Here's an incomplete list: ass, dick, bugger, crap."
_BOOLQ_ROW = {"question": "is the sky blue", "title": "Sky", "answer": True,
              "passage": "The sky appears blue because of Rayleigh scattering."}

# One sample per task, seed 0, exactly as the pipeline produced it before the
# registry existed: texts, labels, ids and positions must never drift.
PINNED = {
    # demo: re-pinned when the generator began drawing without replacement (issue 20)
    "demo": (lambda: make_demo_samples(2, seed=0)[1],
             "demo-1", 0, "Claim: 491 is larger than 618.",
             ("The claim is false.", "The claim is true.")),
    "sciq": (lambda: load_samples("sciq", FIX / "sciq.jsonl")[0], "sciq-0", 0,
             "Q: What type of organism is commonly used in preparation of foods such as "
             "cheese and yogurt? A: viruses",
             ("The proposed answer is incorrect.", "The proposed answer is correct.")),
    "boolq": (lambda: _convert("boolq", [_BOOLQ_ROW])[0], "boolq-0", 1,
              "Passage: The sky appears blue because of Rayleigh scattering.\n"
              "Question: is the sky blue?",
              ('The answer to the question is "no".', 'The answer to the question is "yes".')),
    "cosmosqa": (lambda: load_samples("cosmosqa", FIX / "cosmosqa.csv")[0],
                 "3Q9SPIIRWJKVQ8244310E8TUS6YWAC##q1", 1,
                 "Context: Good Old War and person L : I saw both of these bands Wednesday "
                 "night , and they both blew me away . seriously .\nQuestion: In the future , "
                 "will this person go to see other bands play ?\nAnswer: This person likes "
                 "music and likes to see the show , they will see other bands play .",
                 ("The proposed answer is incorrect.", "The proposed answer is correct.")),
    "anthropic_hh": (lambda: load_samples("anthropic_hh", FIX / "hh.jsonl")[0],
                     "anthropic_hh-0", 0, _HH0,
                     ("The final assistant reply is the dispreferred one (human raters rejected it).",
                      "The final assistant reply is the preferred one (human raters chose it).")),
    "generic": (lambda: load_samples("generic", FIX / "generic.jsonl")[0], "g-a", 1,
                "Water boils at 100 degrees Celsius at sea level.",
                ("The statement is false.", "The statement is true.")),
}


def test_pins_cover_every_task():
    assert set(PINNED) == set(TASKS)


@pytest.mark.parametrize("task", sorted(PINNED))
def test_one_sample_per_task_is_pinned(task):
    make, sid, label, text, positions = PINNED[task]
    s = make()
    assert (s.task, s.id, s.label, s.text, s.positions) == (task, sid, label, text, positions)
    assert s.positions == get_task(task).positions


def _digest(samples: list[Sample]) -> str:
    blob = json.dumps([s.model_dump(mode="json") for s in samples], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def test_every_fixture_sample_is_pinned():
    """All fields (meta too) of every fixture sample, for two seeds."""
    got = {f"{task}/{seed}": _digest(load_samples(task, FIX / name, seed=seed))
           for task, name in (("sciq", "sciq.jsonl"), ("cosmosqa", "cosmosqa.csv"),
                              ("anthropic_hh", "hh.jsonl"), ("generic", "generic.jsonl"))
           for seed in (0, 1)}
    got["demo/3"] = _digest(make_demo_samples(200, seed=3))
    assert got == {
        "sciq/0": "f6b60d01d4a5e270", "sciq/1": "df395a81af814e49",
        # cosmosqa's meta gained passage / without_passage (information-asymmetric debate)
        "cosmosqa/0": "d7af38fa78c1306a", "cosmosqa/1": "d00fb9bffd6b14f0",
        "anthropic_hh/0": "b80c7e7107128a68", "anthropic_hh/1": "86d37a2ca710965c",
        "generic/0": "d824c063a6da594f", "generic/1": "d824c063a6da594f",
        # demo: drawn without replacement since issue 20 (distinct texts, balanced labels)
        "demo/3": "dcfb321cc6a63a3f",
    }


def test_passage_and_the_weak_view_without_it():
    from weak.inputs import weak_view
    for s in load_samples("cosmosqa", FIX / "cosmosqa.csv"):
        view = weak_view(s, "without_passage")
        assert s.meta["passage"] in s.text and s.meta["passage"] not in view
        assert view.endswith(f"Answer: {s.meta['candidate']}") and weak_view(s, "all") == s.text
    with pytest.raises(DataError, match="no passage to hide"):
        weak_view(load_samples("sciq", FIX / "sciq.jsonl")[0], "without_passage")


def test_samples_for_reads_the_registry(monkeypatch):
    sizes = dict(n_weak_train=3, n_transfer=4, n_test=5)
    assert samples_for(DataConfig(task="demo", seed=2, **sizes)) == make_demo_samples(12, seed=2)
    assert samples_for(DataConfig(task="demo", limit=7)) == make_demo_samples(7)
    assert (samples_for(DataConfig(task="generic", path=str(FIX / "generic.jsonl"), limit=2))
            == load_samples("generic", FIX / "generic.jsonl", limit=2))
    # Any generated task is served the same way: nothing special-cases "demo".
    toy = TaskSpec(name="toy", positions=("no", "yes"),
                   generate=lambda n, seed: [Sample(id=f"t{i}", task="toy", text=f"{seed}",
                                                    label=i % 2, positions=("no", "yes"))
                                             for i in range(n)])
    monkeypatch.setattr(TASKS, "_entries", {**dict(TASKS.items()), "toy": toy})
    assert [s.id for s in samples_for(DataConfig(task="toy", limit=3))] == ["t0", "t1", "t2"]
    with pytest.raises(DataError, match="known tasks: .*demo"):
        samples_for(DataConfig(task="imdb"))


def test_builtin_task_is_not_loaded_from_files():
    with pytest.raises(DataError, match="'demo' is built in"):
        load_samples("demo", FIX / "generic.jsonl")


# ---- converters --------------------------------------------------------------


def test_sciq_label_iff_candidate_is_correct():
    raw = _rows(FIX / "sciq.jsonl")
    labels = set()
    for seed in range(8):
        samples = load_samples("sciq", FIX / "sciq.jsonl", seed=seed)
        assert [s.id for s in samples] == [f"sciq-{i}" for i in range(len(raw))]
        for s, r in zip(samples, raw):
            cand = s.meta["candidate"]
            assert s.text == f"Q: {r['question']} A: {cand}"
            assert s.meta["correct_answer"] == r["correct_answer"]
            assert (s.label == 1) == (cand == r["correct_answer"])
            assert cand in {r["correct_answer"], r["distractor1"], r["distractor2"], r["distractor3"]}
            assert s.positions == _positions("sciq")
            labels.add(s.label)
    assert labels == {0, 1}


def test_sciq_label_rate_near_half():
    samples = _convert("sciq", _sciq_rows(400), seed=3)
    rate = sum(s.label for s in samples) / len(samples)
    assert 0.4 < rate < 0.6


def test_boolq_both_formats_and_parquet(tmp_path):
    google = _BOOLQ_ROW
    glue = {"question": "is the sea made of wine", "idx": 7, "label": 0,
            "passage": "Seawater is salty water."}
    a, b = _convert("boolq", [google, glue])
    assert (a.label, b.label) == (1, 0)
    assert a.text == f"Passage: {google['passage']}\nQuestion: is the sky blue?"
    assert b.id == "7" and a.id == "boolq-0"
    assert 'yes' in a.positions[1] and 'no' in a.positions[0]

    import pyarrow as pa
    import pyarrow.parquet as pq
    path = tmp_path / "boolq.parquet"
    pq.write_table(pa.Table.from_pylist([
        {"question": f"q{i}", "passage": f"passage {i}", "idx": i, "label": i % 2}
        for i in range(5)]), path)
    samples = load_samples("boolq", path)
    assert [s.label for s in samples] == [0, 1, 0, 1, 0]
    assert all(f"passage {i}" in s.text and f"q{i}" in s.text for i, s in enumerate(samples))
    assert len(load_samples("boolq", path, limit=2)) == 2


def test_cosmosqa_csv():
    import csv
    with open(FIX / "cosmosqa.csv", newline="") as f:
        raw = list(csv.DictReader(f))
    labels = set()
    for seed in range(8):
        samples = load_samples("cosmosqa", FIX / "cosmosqa.csv", seed=seed)
        for s, r in zip(samples, raw, strict=True):
            gold = r["answer" + r["label"]]
            cand = s.meta["candidate"]
            assert s.id == r["id"]
            assert r["context"] in s.text and r["question"] in s.text
            assert s.text.endswith(f"Answer: {cand}")
            assert (s.label == 1) == (cand == gold)
            if "None of the above" in gold:  # every candidate is wrong
                assert s.label == 0
            labels.add(s.label)
    assert labels == {0, 1}


def test_anthropic_hh_label_iff_chosen():
    raw = _rows(FIX / "hh.jsonl")
    labels = set()
    for seed in range(8):
        for s, r in zip(load_samples("anthropic_hh", FIX / "hh.jsonl", seed=seed), raw, strict=True):
            assert s.text == (r["chosen"] if s.label else r["rejected"])
            assert s.text.endswith(s.meta["final_reply"]) and s.meta["final_reply"]
            labels.add(s.label)
    assert labels == {0, 1}


def test_generic_format():
    samples = load_samples("generic", FIX / "generic.jsonl")
    assert [s.id for s in samples] == ["g-a", "g-b", "generic-2", "g-d"]
    assert [s.label for s in samples] == [1, 0, 1, 0]
    assert samples[0].positions == _positions("generic")
    assert samples[3].positions == ("The review is negative.", "The review is positive.")


def test_generic_bad_positions_and_label():
    with pytest.raises(DataError, match=r"generic row 2 of mem: field 'positions'"):
        _convert("generic", [{"text": "a", "label": 1},
                             {"text": "b", "label": 1, "positions": ["same"]}])
    with pytest.raises(DataError, match=r"generic row 1 of mem: field 'label' must be 0/1"):
        _convert("generic", [{"text": "a", "label": 2}])


# ---- determinism ------------------------------------------------------------

def test_same_seed_same_samples_different_seed_differs():
    rows = _sciq_rows(60)
    a = _convert("sciq", rows, seed=1)
    assert a == _convert("sciq", rows, seed=1)
    assert [s.text for s in a] != [s.text for s in _convert("sciq", rows, seed=2)]


def test_prefix_read_gives_same_samples(tmp_path):
    path = _write_jsonl(tmp_path / "sciq.jsonl", _sciq_rows(40))
    full = load_samples("sciq", path, seed=5)
    assert load_samples("sciq", path, seed=5, limit=7) == full[:7]
    assert load_samples("sciq", path, limit=0) == []


def test_json_array_json_lines_and_gz_agree(tmp_path):
    rows = _rows(FIX / "hh.jsonl")
    (tmp_path / "a.json").write_text(json.dumps(rows, indent=1))
    _write_jsonl(tmp_path / "b.json", rows)
    with gzip.open(tmp_path / "c.jsonl.gz", "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    ref = load_samples("anthropic_hh", FIX / "hh.jsonl", seed=4)
    for name in ("a.json", "b.json", "c.jsonl.gz"):
        assert load_samples("anthropic_hh", tmp_path / name, seed=4) == ref


# ---- errors ------------------------------------------------------------------

def test_missing_field_names_file_line_and_field(tmp_path):
    good = {"question": "q", "passage": "p", "answer": True}
    path = _write_jsonl(tmp_path / "dev.jsonl", [good, good, {"question": "q", "answer": False}])
    with pytest.raises(DataError) as e:
        load_samples("boolq", path)
    assert str(e.value) == f"boolq line 3 of {path}: missing field 'passage'"
    with pytest.raises(DataError, match=r"boolq row 17 of src\.jsonl: missing field 'passage'"):
        _convert("boolq", [good] * 16 + [{"question": "q", "answer": 1}], "src.jsonl")


def test_bad_value_is_data_error(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text((FIX / "cosmosqa.csv").read_text().replace(",1\n", ",9\n", 1))
    with pytest.raises(DataError, match=r"cosmosqa line 2 of .*c\.csv: field 'label' must be an integer in 0\.\.3"):
        load_samples("cosmosqa", path)


def test_malformed_json_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"text": "a", "label": 1}\n\n{"text": "b", "label": \n')
    with pytest.raises(DataError, match=r"generic line 3 of .*x\.jsonl: malformed JSON"):
        load_samples("generic", path)
    # The broken line is never read when the limit stops before it.
    assert len(load_samples("generic", path, limit=1)) == 1


def _one_line_error(exc: pytest.ExceptionInfo) -> str:
    """The message, checked to be one line with no chained exception behind it."""
    err = exc.value
    assert "\n" not in str(err)
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)
    return str(err)


def _bad_utf8_lines() -> list[bytes]:
    """30 good generic JSON lines; line 26 holds a byte that is not UTF-8."""
    lines = [json.dumps({"text": f"statement {i} \u00e9", "label": i % 2},
                        ensure_ascii=False).encode() + b"\n" for i in range(1, 31)]
    lines[25] = b'{"text": "bad \xff byte", "label": 1}\n'
    return lines


@pytest.mark.parametrize("name", ["x.jsonl", "x.jsonl.gz", "x.json"])
def test_non_utf8_jsonl_names_file_and_line(tmp_path, name):
    path = tmp_path / name
    data = b"".join(_bad_utf8_lines())
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    with pytest.raises(DataError) as e:
        load_samples("generic", path)
    assert _one_line_error(e) == (f"generic line 26 of {path}: not valid UTF-8 (byte 0xff at "
                                  f"column 15); re-save the file as UTF-8")
    assert len(load_samples("generic", path, limit=25)) == 25  # line 26 is never read


def test_truncated_gzip_is_data_error(tmp_path):
    path = tmp_path / "x.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(_bad_utf8_lines()[:20]))[:-30])
    with pytest.raises(DataError) as e:
        load_samples("generic", path)
    assert _one_line_error(e).startswith(f"generic: cannot read {path} after line ")


def test_non_utf8_json_array_names_line(tmp_path):
    path = tmp_path / "a.json"
    path.write_bytes(b'[\n{"text": "ok", "label": 1},\n{"text": "b\xe9d", "label": 0}\n]\n')
    with pytest.raises(DataError) as e:
        load_samples("generic", path)
    assert _one_line_error(e) == (f"generic line 3 of {path}: not valid UTF-8 (byte 0xe9 at "
                                  f"column 12); re-save the file as UTF-8")


def test_non_utf8_csv_names_file_and_line(tmp_path):
    path = tmp_path / "g.csv"
    # Rows on lines 2 and 3-4 are fine; the row on lines 5-6 has its bad byte at
    # the start of line 6, inside a quoted cell that spans both lines.
    path.write_bytes(b'text,label\n"fine",1\n"two\nlines",0\n"also \n\xff here",1\n')
    with pytest.raises(DataError) as e:
        load_samples("generic", path)
    msg = _one_line_error(e)
    assert msg == (f"generic line 6 of {path}: not valid UTF-8 (byte 0xff at column 1); "
                   f"re-save the file as UTF-8")
    assert "position" not in msg
    assert [s.text for s in load_samples("generic", path, limit=2)] == ["fine", "two\nlines"]


def test_csv_row_with_extra_cells_is_an_error(tmp_path):
    path = tmp_path / "g.csv"
    path.write_text("text,label\nfine,1\n\nunquoted, comma,0\n")
    with pytest.raises(DataError) as e:
        load_samples("generic", path)
    assert _one_line_error(e) == (f"generic line 4 of {path}: 3 cells but the header has 2 "
                                  f"columns (a cell holding a comma must be quoted)")


def test_csv_short_rows(tmp_path):
    # Missing trailing cells of an optional field read as absent, as in csv.DictReader.
    ok = tmp_path / "ok.csv"
    ok.write_text('id,text,label,positions\na,first,1,"[""no"", ""yes""]"\nb,second,0\n')
    a, b = load_samples("generic", ok)
    assert a.positions == ("no", "yes") and b.positions == _positions("generic")
    sciq = tmp_path / "sciq.csv"
    r = _sciq_rows(1)[0]
    sciq.write_text(",".join(r) + "\n" + ",".join(v for k, v in r.items() if k != "support") + "\n")
    assert load_samples("sciq", sciq) == _convert("sciq", [r])
    # A required field missing from a short row: the line and the cell count.
    bad = tmp_path / "bad.csv"
    bad.write_text("id,text,label\na,first,1\n\nb,second\n")
    with pytest.raises(DataError) as e:
        load_samples("generic", bad)
    assert _one_line_error(e) == (f"generic line 4 of {bad}: missing field 'label' "
                                  f"(the row has 2 of the header's 3 cells)")


def test_csv_multiline_row_named_by_its_lines(tmp_path):
    # An unterminated quote swallows the rest of the file into one cell.
    path = tmp_path / "g.csv"
    path.write_text('text,label\nfine,1\n"unterminated,0\nmore,1\nlast,0\n')
    with pytest.raises(DataError) as e:
        load_samples("generic", path)
    assert _one_line_error(e) == (f"generic lines 3-5 of {path}: missing field 'label' "
                                  f"(the row has 1 of the header's 2 cells)")


def test_file_and_task_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_samples("boolq", tmp_path / "nope.jsonl")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match=r"supported: .*\.jsonl.*\.parquet"):
        load_samples("boolq", tmp_path / "x.txt")
    with pytest.raises(DataError, match="known tasks: .*boolq"):
        load_samples("imdb", tmp_path / "x.txt")
    dup = _write_jsonl(tmp_path / "d.jsonl", [{"id": "z", "text": "a", "label": 0},
                                              {"id": "z", "text": "b", "label": 1}])
    with pytest.raises(DataError, match="duplicate sample id 'z'.*line 2 repeats line 1"):
        load_samples("generic", dup)


def test_hub_unreachable_is_data_error(monkeypatch, tmp_path):
    import datasets
    import huggingface_hub.constants as hub_constants
    # Both libraries read the variable at import, so patch their copies too;
    # otherwise the load retries DNS for ~25 s before failing.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path)
    with pytest.raises(DataError, match=r"could not load google/boolq .*hub.*`path:`"):
        load_samples("boolq", split="validation")


def test_hub_any_failure_and_bad_split(monkeypatch):
    import datasets

    def boom(*a, **k):
        raise RuntimeError("dataset scripts are no longer supported")
    monkeypatch.setattr(datasets, "load_dataset", boom)
    with pytest.raises(DataError, match="allenai/cosmos_qa.*RuntimeError"):
        load_samples("cosmosqa", split="train")
    with pytest.raises(DataError, match="available: train, validation"):
        load_samples("boolq", split="test")
    with pytest.raises(DataError, match="no hub source"):
        load_samples("generic")


def test_hub_rows_are_converted(monkeypatch):
    import datasets
    rows = _sciq_rows(5)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: rows)
    samples = load_samples("sciq", split="test", limit=3)
    assert [s.id for s in samples] == ["sciq-0", "sciq-1", "sciq-2"]


# ---- real files --------------------------------------------------------------

def test_real_boolq_dev():
    if not REAL_BOOLQ.exists():
        pytest.skip(f"{REAL_BOOLQ} absent")
    raw = _rows(REAL_BOOLQ)
    samples = load_samples("boolq", REAL_BOOLQ)
    assert len(samples) == len(raw) == 3270
    assert 0.61 < sum(s.label for s in samples) / len(samples) < 0.63
    for s, r in zip(samples, raw):
        assert s.label == int(r["answer"])
        assert r["passage"] in s.text and r["question"] in s.text
    assert load_samples("boolq", REAL_BOOLQ, limit=10) == samples[:10]


def test_real_hh_gz():
    if not REAL_HH.exists():
        pytest.skip(f"{REAL_HH} absent")
    with gzip.open(REAL_HH, "rt") as f:
        raw = [json.loads(line) for line in f]
    samples = load_samples("anthropic_hh", REAL_HH, seed=0)
    assert len(samples) == len(raw) == 2312
    assert 0.45 < sum(s.label for s in samples) / len(samples) < 0.55
    for s, r in zip(samples, raw):
        assert s.text == (r["chosen"] if s.label else r["rejected"])
    assert load_samples("anthropic_hh", REAL_HH, seed=0, limit=25) == samples[:25]


# ---- splits ------------------------------------------------------------------

def _pool(n: int, pos_every: int = 3) -> list[Sample]:
    return [Sample(id=f"s{i:03d}", task="generic", text=f"t{i}", label=int(i % pos_every == 0),
                   positions=_positions("generic")) for i in range(n)]


def test_splits_deterministic_disjoint_and_order_free():
    pool = _pool(100)
    a = make_splits(pool, 20, 30, 40, seed=0)
    assert (len(a.weak_train), len(a.transfer), len(a.test)) == (20, 30, 40)
    ids = [s.id for p in (a.weak_train, a.transfer, a.test) for s in p]
    assert len(set(ids)) == 90
    assert make_splits(list(reversed(pool)), 20, 30, 40, seed=0) == a
    b = make_splits(pool, 20, 30, 40, seed=1)
    assert [s.id for s in b.test] != [s.id for s in a.test]


def test_splits_too_large():
    with pytest.raises(DataError, match="only 10 are available"):
        make_splits(_pool(10), 5, 5, 1, seed=0)


def test_splits_balanced():
    pool = _pool(120)  # 40 positives, 80 negatives
    s = make_splits(pool, 20, 30, 15, seed=7, balance=True)
    for part, n in ((s.weak_train, 20), (s.transfer, 30), (s.test, 15)):
        assert len(part) == n
        assert abs(2 * sum(x.label for x in part) - n) <= 1
    assert make_splits(pool, 20, 30, 15, seed=7, balance=True) == s
    with pytest.raises(DataError, match="label 1 but only 40"):
        make_splits(pool, 30, 30, 30, seed=0, balance=True)


def test_splits_reject_overlap():
    pool = _pool(4)
    with pytest.raises(ValueError, match="share sample ids"):
        Splits(weak_train=pool[:2], transfer=pool[1:3], test=[])
