"""Reading a benchmark, from a local file in its original format or from the hub.

Files are streamed row by row where the format allows it (JSONL, CSV, parquet),
so `limit` costs only the rows it keeps, and JSONL is parsed by hand so that a
broken line is reported by its line number rather than by a parser deep inside
`datasets`.
"""
from __future__ import annotations

import csv
import gzip
import itertools
import json
import os
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from data.converters import HUB_SOURCES, IdChecker, check_task, convert_row
from data.schema import DataError, Sample

SUPPORTED = (".jsonl", ".jsonl.gz", ".json", ".csv", ".parquet")

# (where, row): `where` locates the row in error messages, e.g. "line 17".
Located = Iterator[tuple[str, Any]]


def load_samples(task: str, path: str | os.PathLike[str] | None = None,
                 split: str = "train", seed: int = 0,
                 limit: int | None = None) -> list[Sample]:
    """Samples of `task` from `path` (local file) or, without one, the hub `split`.

    `limit` keeps the first N rows; the samples for those rows are the same as
    in a full read with the same seed.
    """
    check_task(task)
    if limit is not None and limit < 0:
        raise DataError(f"limit must be >= 0, got {limit}")
    if path is None:
        source, rows = _hub_rows(task, split)
    else:
        source = str(Path(path).expanduser())
        rows = _file_rows(task, Path(source))
    ids = IdChecker(source)
    samples = []
    try:
        for index, (where, row) in enumerate(itertools.islice(rows, limit)):
            sample = convert_row(task, row, index, source, seed, where)
            ids.add(sample, where)
            samples.append(sample)
    finally:
        close = getattr(rows, "close", None)
        if close:  # release the file now rather than at garbage collection
            close()
    return samples


# ---- local files -----------------------------------------------------------

def _file_rows(task: str, path: Path) -> Located:
    # Checked eagerly: the readers are generators and would fail only when pulled.
    if not path.exists():
        raise DataError(f"{task}: data file not found: {path}")
    if not path.is_file():
        raise DataError(f"{task}: data path is not a file: {path}")
    name = path.name.lower()
    if name.endswith(".jsonl.gz"):
        return _jsonl(task, path, lambda: gzip.open(path, "rt", encoding="utf-8"))
    if name.endswith(".jsonl"):
        return _jsonl(task, path, lambda: open(path, encoding="utf-8"))
    if name.endswith(".json"):
        return _json(task, path)
    if name.endswith(".csv"):
        return _csv(task, path)
    if name.endswith(".parquet"):
        return _parquet(task, path)
    raise DataError(f"{task}: unsupported file type {path.name!r}; supported: {', '.join(SUPPORTED)}")


def _jsonl(task: str, path: Path, opener: Callable[[], IO[str]]) -> Located:
    lineno = 0
    try:
        with opener() as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():  # a trailing newline is not a row
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{task} line {lineno} of {path}: malformed JSON "
                                    f"({e.msg} at column {e.colno})") from None
                yield f"line {lineno}", row
    except (OSError, EOFError, UnicodeDecodeError) as e:  # bad gzip, truncation, encoding
        raise DataError(f"{task}: cannot read {path} after line {lineno}: {e}") from None


def _json(task: str, path: Path) -> Located:
    with open(path, encoding="utf-8") as f:
        head = f.read(4096).lstrip()
    if not head.startswith("["):
        # Many ".json" files are really JSON lines.
        yield from _jsonl(task, path, lambda: open(path, encoding="utf-8"))
        return
    try:
        with open(path, encoding="utf-8") as f:
            rows = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{task} line {e.lineno} of {path}: malformed JSON "
                        f"({e.msg} at column {e.colno})") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{task}: cannot read {path}: {e}") from None
    for i, row in enumerate(rows):
        yield f"row {i + 1}", row


def _csv(task: str, path: Path) -> Located:
    # HH conversations overflow the csv module's default 128 KiB field limit.
    csv.field_size_limit(2**31 - 1)
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            for row in reader:
                yield f"line {reader.line_num}", row
    except csv.Error as e:
        raise DataError(f"{task}: malformed CSV in {path}: {e}") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{task}: cannot read {path}: {e}") from None


def _parquet(task: str, path: Path) -> Located:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        n = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
            for row in batch.to_pylist():
                n += 1
                yield f"row {n}", row
    except pa.ArrowException as e:
        raise DataError(f"{task}: cannot read parquet file {path}: {e}") from None


# ---- hub -------------------------------------------------------------------

def _hub_rows(task: str, split: str) -> tuple[str, Located]:
    src = HUB_SOURCES.get(task)
    if src is None:
        raise DataError(f"task {task!r} has no hub source; set `path:` to a local file "
                        f"({', '.join(SUPPORTED)})")
    if split not in src.splits:
        raise DataError(f"{task}: split {split!r} not available on {src.hub_id}; "
                        f"available: {', '.join(src.splits)}")
    try:
        import datasets

        ds = datasets.load_dataset(src.hub_id, src.config, split=split)
    except Exception as e:  # offline, DNS, auth, removed scripts: all mean "use a file"
        reason = (str(e).strip().splitlines() or [""])[0][:300]
        raise DataError(
            f"{task}: could not load {src.hub_id} (split {split!r}) from the Hugging Face "
            f"hub; it may be unreachable ({type(e).__name__}: {reason}). Download the data "
            f"and set `path:` in the task config to a local file ({', '.join(SUPPORTED)})."
        ) from e
    source = f"hub {src.hub_id} split {split}"
    return source, ((f"row {i + 1}", row) for i, row in enumerate(ds))
