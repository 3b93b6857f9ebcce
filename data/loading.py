"""Reading a benchmark, from a local file in its original format or from the hub.

Files are streamed row by row where the format allows it (JSONL, CSV, parquet),
so `limit` costs only the rows it keeps, and JSONL and CSV are split into lines
by hand so that a broken line, a byte that is not UTF-8, or a CSV row whose
cells do not match the header is reported by its file and 1-based line number
rather than by a byte offset or a parser deep inside `datasets`.
"""
from __future__ import annotations

import csv
import gzip
import itertools
import json
import os
import random
import re
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Mapping

from pydantic import ValidationError

from data.converters import Row, RowError
from data.schema import DataError, Sample
from data.tasks import TaskSpec, get_task


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
    spec = get_task(task)
    if spec.builtin:
        raise DataError(f"task {task!r} is built in: its samples are generated, not read from "
                        f"a file or the hub (use data.source.samples_for, `data.task: {task}`)")
    if limit is not None and limit < 0:
        raise DataError(f"limit must be >= 0, got {limit}")
    if path is None:
        source, rows = _hub_rows(spec, split)
    else:
        source = str(Path(path).expanduser())
        rows = _file_rows(task, Path(source))
    ids = IdChecker(source)
    samples = []
    try:
        for index, (where, row) in enumerate(itertools.islice(rows, limit)):
            try:
                sample = convert_row(spec, row, index, source, seed, where)
            except DataError as e:
                if isinstance(row, _ShortRow):  # say why a field is missing
                    raise DataError(f"{e} (the row has {row.cells} of the header's "
                                    f"{row.columns} cells)") from None
                raise
            ids.add(sample, where)
            samples.append(sample)
    finally:
        close = getattr(rows, "close", None)
        if close:  # release the file now rather than at garbage collection
            close()
    return samples


# ---- one row -> one sample --------------------------------------------------

def row_id(task: str, row: Row, index: int) -> str:
    for key in ("id", "idx"):
        value = row.get(key)
        if value is not None and str(value).strip():
            return str(value).strip()
    return f"{task}-{index}"


def convert_row(spec: TaskSpec, row: Row, index: int, source: str, seed: int,
                where: str | None = None) -> Sample:
    """Convert one row of `spec`'s dataset; `where` (default "row {index+1}") locates it in errors."""
    task = spec.name
    where = where or f"row {index + 1}"
    if spec.convert is None:
        raise DataError(f"task {task!r} is built in: its samples are generated, not converted from rows")
    if not isinstance(row, Mapping):
        raise DataError(f"{task} {where} of {source}: expected an object, got {type(row).__name__}")
    sid = row_id(task, row, index)
    # String seeds hash with sha512, so this is stable across runs and machines.
    rng = random.Random(f"{seed}|{task}|{sid}")
    try:
        out = spec.convert(row, rng)
        return Sample(id=sid, task=task, text=out.text, label=out.label,
                      positions=out.positions or spec.positions,
                      meta={"row": index, **out.meta})
    except RowError as e:
        raise DataError(f"{task} {where} of {source}: {e}") from None
    except ValidationError as e:
        msgs = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise DataError(f"{task} {where} of {source}: {msgs}") from None


class IdChecker:
    """Remembers where each id was seen so a duplicate names both rows."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.seen: dict[str, str] = {}

    def add(self, sample: Sample, where: str) -> None:
        if sample.id in self.seen:
            raise DataError(f"duplicate sample id {sample.id!r} in {self.source}: "
                            f"{where} repeats {self.seen[sample.id]}")
        self.seen[sample.id] = where


# ---- local files -----------------------------------------------------------

def _file_rows(task: str, path: Path) -> Located:
    # Checked eagerly: the readers are generators and would fail only when pulled.
    if not path.exists():
        raise DataError(f"{task}: data file not found: {path}")
    if not path.is_file():
        raise DataError(f"{task}: data path is not a file: {path}")
    name = path.name.lower()
    if name.endswith(".jsonl.gz"):
        return _jsonl(task, path, lambda: _open_gzip_text(path))
    if name.endswith(".jsonl"):
        return _jsonl(task, path, lambda: _open_text(path))
    if name.endswith(".json"):
        return _json(task, path)
    if name.endswith(".csv"):
        return _csv(task, path)
    if name.endswith(".parquet"):
        return _parquet(task, path)
    raise DataError(f"{task}: unsupported file type {path.name!r}; supported: {', '.join(SUPPORTED)}")


def _open_text(path: Path, newline: str | None = None) -> IO[str]:
    # A byte that is not UTF-8 becomes a lone surrogate instead of failing the
    # decoder's whole 8 KiB chunk; `_lines` then reports it by its line.
    return open(path, encoding="utf-8", errors="surrogateescape", newline=newline)


def _open_gzip_text(path: Path) -> IO[str]:
    return gzip.open(path, "rt", encoding="utf-8", errors="surrogateescape")


_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of a bad byte


def _not_utf8(task: str, path: Path, lineno: int, byte: int, column: int) -> DataError:
    return DataError(f"{task} line {lineno} of {path}: not valid UTF-8 (byte 0x{byte:02x} at "
                     f"column {column}); re-save the file as UTF-8")


def _lines(task: str, path: Path, f: IO[str]) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) of a file from `_open_text`, checked for bad bytes."""
    for lineno, line in enumerate(f, 1):
        bad = _NOT_UTF8.search(line)
        if bad:
            raise _not_utf8(task, path, lineno, ord(bad.group()) - 0xDC00, bad.start() + 1)
        yield lineno, line


def _jsonl(task: str, path: Path, opener: Callable[[], IO[str]]) -> Located:
    lineno = 0
    try:
        with opener() as f:
            for lineno, line in _lines(task, path, f):
                if not line.strip():  # a trailing newline is not a row
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{task} line {lineno} of {path}: malformed JSON "
                                    f"({e.msg} at column {e.colno})") from None
                yield f"line {lineno}", row
    except (OSError, EOFError) as e:  # bad gzip, truncation
        raise DataError(f"{task}: cannot read {path} after line {lineno}: {e}") from None


def _json(task: str, path: Path) -> Located:
    with open(path, "rb") as f:
        head = f.read(4096).lstrip()
    if not head.startswith(b"["):
        # Many ".json" files are really JSON lines.
        yield from _jsonl(task, path, lambda: _open_text(path))
        return
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line_start = raw.rfind(b"\n", 0, e.start) + 1
        column = len(raw[line_start:e.start].decode("utf-8", "replace")) + 1
        raise _not_utf8(task, path, raw.count(b"\n", 0, e.start) + 1, raw[e.start],
                        column) from None
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{task} line {e.lineno} of {path}: malformed JSON "
                        f"({e.msg} at column {e.colno})") from None
    for i, row in enumerate(rows):
        yield f"row {i + 1}", row


class _ShortRow(dict):
    """A CSV row with fewer cells than the header: as with csv.DictReader, the
    missing trailing columns read as None, so a converter treats them as absent
    (fine for an optional field, "missing field" for a required one)."""

    def __init__(self, row: dict[str, Any], cells: int, columns: int) -> None:
        super().__init__(row)
        self.cells, self.columns = cells, columns


def _csv(task: str, path: Path) -> Located:
    # HH conversations overflow the csv module's default 128 KiB field limit.
    csv.field_size_limit(2**31 - 1)
    with _open_text(path, newline="") as f:
        # csv counts the lines it pulls, so reader.line_num is the physical line
        # on which the current row ends; a row with a quoted newline spans lines.
        reader = csv.reader(line for _, line in _lines(task, path, f))
        try:
            header = next((cells for cells in reader if cells), None)  # blank lines skipped
            if header is None:
                return
            last = reader.line_num
            for cells in reader:
                first, last = last + 1, reader.line_num
                if not cells:  # a blank line is not a row (as in csv.DictReader)
                    continue
                where = f"line {last}" if first == last else f"lines {first}-{last}"
                if len(cells) > len(header):
                    raise DataError(
                        f"{task} {where} of {path}: {len(cells)} cells but the header has "
                        f"{len(header)} columns (a cell holding a comma must be quoted)")
                row = dict(zip(header, cells))
                if len(cells) < len(header):
                    row.update(dict.fromkeys(header[len(cells):]))
                    row = _ShortRow(row, len(cells), len(header))
                yield where, row
        except csv.Error as e:
            raise DataError(f"{task} line {reader.line_num} of {path}: malformed CSV ({e})") from None


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

def _hub_rows(spec: TaskSpec, split: str) -> tuple[str, Located]:
    task, src = spec.name, spec.hub
    if src is None:
        raise DataError(f"task {task!r} has no hub source; set `path:` to a local file "
                        f"({', '.join(SUPPORTED)})")
    if split not in src.splits:
        note = f" ({src.note})" if src.note else ""
        raise DataError(f"{task}: split {split!r} not available on {src.hub_id}; "
                        f"available: {', '.join(src.splits)}{note}")
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
