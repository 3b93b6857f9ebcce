"""Converters, file loading, hub failure and splits; offline and fast."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from data.converters import CONVERTERS, HUB_SOURCES, POSITIONS, convert_rows
from data.loading import load_samples
from data.schema import DataError, Sample
from data.splits import Splits, make_splits

REPO = Path(__file__).resolve().parents[1]
FIX = Path(__file__).resolve().parent / "fixtures"
REAL_BOOLQ = REPO.parent / "shared" / "data" / "boolq" / "dev.jsonl"
REAL_HH = REPO.parent / "shared" / "data" / "hh_rlhf" / "harmless-base_test.jsonl.gz"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _sciq_rows(n: int) -> list[dict]:
    return [dict(question=f"Question number {i}?", correct_answer=f"right {i}",
                 distractor1=f"wrong a{i}", distractor2=f"wrong b{i}",
                 distractor3=f"wrong c{i}", support="") for i in range(n)]


# ---- converters --------------------------------------------------------------

def test_registry_covers_benchmarks():
    assert set(CONVERTERS) == {"sciq", "boolq", "cosmosqa", "anthropic_hh", "generic"}
    assert {k: v.hub_id for k, v in HUB_SOURCES.items()} == {
        "sciq": "allenai/sciq", "boolq": "google/boolq",
        "cosmosqa": "allenai/cosmos_qa", "anthropic_hh": "Anthropic/hh-rlhf"}


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
            assert s.positions == POSITIONS["sciq"]
            labels.add(s.label)
    assert labels == {0, 1}


def test_sciq_label_rate_near_half():
    samples = convert_rows("sciq", _sciq_rows(400), "mem", seed=3)
    rate = sum(s.label for s in samples) / len(samples)
    assert 0.4 < rate < 0.6


def test_boolq_both_formats_and_parquet(tmp_path):
    google = {"question": "is the sky blue", "title": "Sky", "answer": True,
              "passage": "The sky appears blue because of Rayleigh scattering."}
    glue = {"question": "is the sea made of wine", "idx": 7, "label": 0,
            "passage": "Seawater is salty water."}
    a, b = convert_rows("boolq", [google, glue], "mem", seed=0)
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
    assert samples[0].positions == POSITIONS["generic"]
    assert samples[3].positions == ("The review is negative.", "The review is positive.")


def test_generic_bad_positions_and_label():
    with pytest.raises(DataError, match=r"generic row 2 of mem: field 'positions'"):
        convert_rows("generic", [{"text": "a", "label": 1},
                                 {"text": "b", "label": 1, "positions": ["same"]}], "mem", 0)
    with pytest.raises(DataError, match=r"generic row 1 of mem: field 'label' must be 0/1"):
        convert_rows("generic", [{"text": "a", "label": 2}], "mem", 0)


# ---- determinism ------------------------------------------------------------

def test_same_seed_same_samples_different_seed_differs():
    rows = _sciq_rows(60)
    a = convert_rows("sciq", rows, "mem", seed=1)
    assert a == convert_rows("sciq", rows, "mem", seed=1)
    assert [s.text for s in a] != [s.text for s in convert_rows("sciq", rows, "mem", seed=2)]


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
        convert_rows("boolq", [good] * 16 + [{"question": "q", "answer": 1}], "src.jsonl", 0)


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
                   positions=POSITIONS["generic"]) for i in range(n)]


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
