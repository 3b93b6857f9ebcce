"""What the console shows: the pipeline's own lines, one progress bar per stage, and
the libraries kept quiet about what is expected.

Three levels (run.py --quiet / default / --verbose), set once by quiet_libraries():

- normal (default): transformers logs errors only and shows no "Loading weights"
  bar; its LOAD REPORT for a freshly loaded classification model (the `classifier.*`
  or `score.*` head MISSING, i.e. newly initialised, which is what we train) becomes
  one line, once per stage and model:
      [weak] new classification head for minilm-l6 (expected: it is what we train)
  A report that shows a real problem (weights missing outside the head, a shape
  MISMATCH, unexpected keys other than another task's head) is still printed, as
  transformers wrote it. peft's expected warnings about adapter names and several
  adapters on one base are dropped; other warnings are shown.
- quiet: errors and the final table only: no info lines, no notes, no warnings, no
  progress bars (TQDM_DISABLE, read by tqdm when it is first imported: call
  quiet_libraries before anything imports tqdm). A LOAD REPORT that shows a real
  problem (a partly random model) is still printed.
- verbose: the libraries as they are without this module (their own logging
  level, load reports, warnings and progress bars), and every nested bar.

transformers 5.x writes the report in transformers/utils/loading_report.py
(log_state_dict_report), as one WARNING record of the logger
"transformers.modeling_utils" starting "<Class> LOAD REPORT from: <path>"; it
replaces 4.x's "Some weights of ... were newly initialized" warning (dropped with
the other warnings at the error level). A logging.Filter on that logger reads it.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Iterator, Literal

Verbosity = Literal["quiet", "normal", "verbose"]
LEVELS = ("quiet", "normal", "verbose")

_verbosity: Verbosity = "normal"
_stage: str | None = None
_notes_seen: set[tuple[str, str]] = set()
_bar: "StageBar | None" = None

# What a load report may list without anything being wrong.
HEAD_MODULES = ("classifier", "score")  # peft SEQ_CLS trains and saves these (modules_to_save)
OTHER_TASK_HEADS = ("lm_head", "cls", "pooler", "classifier", "score", "qa_outputs")
# peft warnings that a weak ensemble (many adapters on one base) triggers by design.
EXPECTED_WARNINGS = (
    r"Adapter name .* should not be contained in the prefix",
    r"Already found a `peft_config` attribute in the model",
    r"You are trying to modify a model with PEFT for a second time",
    r"Could not find a config file in .* will assume that the vocabulary was not modified",
)

_REPORT_LOGGER = "transformers.modeling_utils"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STATUSES = ("MISSING", "UNEXPECTED", "MISMATCH", "CONVERSION")

# what quiet_libraries changed, so that "verbose" (or another call) puts it back
_saved_env: dict[str, str | None] = {}
_saved_transformers: dict[str, object] = {}
_our_warning_filters: list[tuple] = []


# ---------------------------------------------------------------- levels
def verbosity() -> Verbosity:
    return _verbosity


def quiet_libraries(verbosity: Verbosity = "normal") -> None:
    """Set the console level (see the module doc). Idempotent; each call first
    undoes what the previous one did."""
    global _verbosity
    if verbosity not in LEVELS:
        raise ValueError(f"verbosity must be one of {LEVELS}, got {verbosity!r}")
    _undo()
    _verbosity = verbosity
    if verbosity == "verbose":
        return
    if verbosity == "quiet":
        _set_env("TQDM_DISABLE", "1")
    _set_env("TRANSFORMERS_VERBOSITY", "error")
    # the LOAD REPORT is a WARNING: let that one logger pass warnings to our filter,
    # which keeps only errors and the reports that show a real problem
    lg = logging.getLogger(_REPORT_LOGGER)
    _saved_transformers["report_level"] = lg.level
    lg.setLevel(logging.WARNING)
    lg.addFilter(_LOAD_REPORT_FILTER)
    try:
        from transformers.utils import logging as tf_logging
    except ImportError:  # pragma: no cover - a hard dependency
        tf_logging = None
    if tf_logging is not None:
        _saved_transformers["verbosity"] = tf_logging.get_verbosity()
        _saved_transformers["bars"] = tf_logging.is_progress_bar_enabled()
        tf_logging.set_verbosity_error()
        tf_logging.disable_progress_bar()  # "Loading weights" for every model load
    if verbosity == "quiet":
        _add_warning_filter("ignore")
    else:
        for pattern in EXPECTED_WARNINGS:
            _add_warning_filter("ignore", message=pattern)


def reset() -> None:
    """Back to the state before any quiet_libraries call (tests)."""
    global _verbosity
    _undo()
    _verbosity = "normal"
    _notes_seen.clear()


def _set_env(key: str, value: str) -> None:
    _saved_env.setdefault(key, os.environ.get(key))
    os.environ[key] = value


def _add_warning_filter(action: str, **kw) -> None:
    warnings.filterwarnings(action, **kw)
    _our_warning_filters.append(warnings.filters[0])


def _undo() -> None:
    for key, value in _saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    _saved_env.clear()
    for f in _our_warning_filters:
        with contextlib.suppress(ValueError):
            warnings.filters.remove(f)
    _our_warning_filters.clear()
    getattr(warnings, "_filters_mutated", lambda: None)()  # drop the warnings' once-caches
    lg = logging.getLogger(_REPORT_LOGGER)
    lg.removeFilter(_LOAD_REPORT_FILTER)
    if "report_level" in _saved_transformers:
        lg.setLevel(_saved_transformers.pop("report_level"))
    if "verbosity" in _saved_transformers or "bars" in _saved_transformers:
        from transformers.utils import logging as tf_logging
        if "verbosity" in _saved_transformers:
            tf_logging.set_verbosity(_saved_transformers.pop("verbosity"))
        if _saved_transformers.pop("bars", True):
            tf_logging.enable_progress_bar()


# ---------------------------------------------------------------- our own lines
def _write(msg: str, stream=None) -> None:
    stream = stream or sys.stdout
    if _bar is not None and _bar.visible:
        from tqdm import tqdm
        tqdm.write(msg, file=stream)
    else:
        print(msg, file=stream, flush=True)


def info(*args) -> None:
    """A pipeline line ("[data] ...", "[tracking] ..."): shown unless quiet."""
    if _verbosity != "quiet":
        _write(" ".join(str(a) for a in args))


def error_line(msg: str) -> None:
    """A problem the run survives (one line, stderr): shown at every level."""
    _write(msg, sys.stderr)


def note_once(key: tuple[str, str], msg: str) -> None:
    """An explanatory line, once per key in the process; not when quiet."""
    if key in _notes_seen:
        return
    _notes_seen.add(key)
    info(msg)


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Label what happens inside (notes read "[weak] ...")."""
    global _stage
    prev, _stage = _stage, name
    try:
        yield
    finally:
        _stage = prev


# ---------------------------------------------------------------- load reports
def parse_load_report(msg: str) -> tuple[str, str, dict[str, list[str]]] | None:
    """(model class, checkpoint path, {status: [keys]}) of a transformers LOAD REPORT
    message, or None if `msg` is not one."""
    text = _ANSI.sub("", msg)
    m = re.search(r"(\S+) LOAD REPORT\s*from:\s*(.+)", text)
    if m is None:
        return None
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) >= 2 and cells[1] in _STATUSES:
            rows.setdefault(cells[1], []).append(cells[0])
    return m.group(1), m.group(2).strip(), rows


def _first(key: str) -> str:
    return key.split(".", 1)[0]


def expected_load_report(rows: dict[str, list[str]]) -> bool:
    """Nothing in the report is a problem: only the classification head is new
    (MISSING) and only another task's head is left over (UNEXPECTED)."""
    if set(rows) - {"MISSING", "UNEXPECTED"}:
        return False
    return (all(_first(k) in HEAD_MODULES for k in rows.get("MISSING", []))
            and all(_first(k) in OTHER_TASK_HEADS for k in rows.get("UNEXPECTED", [])))


def model_label(path: str) -> str:
    """The config's name for a checkpoint path: an embedded model's name
    (minilm-l6), else the folder name or the hub id."""
    try:
        from w2s_base.training.models import EMBEDDED, cache_root, embedded_source
        p = Path(path).resolve()
        for name, emb in EMBEDDED.items():
            try:
                src = cache_root() / "models" / name if emb.gguf else embedded_source(name)
            except Exception:
                continue
            if Path(src).resolve() == p:
                return name
    except Exception:
        pass
    return Path(path).name if os.path.isabs(path) or os.path.exists(path) else path


class _LoadReportFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:
            return True
        parsed = parse_load_report(msg) if "LOAD REPORT" in msg else None
        if parsed is None:
            return record.levelno >= logging.ERROR  # the library's own level: errors only
        _cls, path, rows = parsed
        if not expected_load_report(rows):
            return True  # a real problem: shown as transformers wrote it, at every level
        if rows.get("MISSING"):
            model = model_label(path)
            where = _stage or "model"
            note_once((where, model), f"[{where}] new classification head for {model} "
                                      "(expected: it is what we train)")
        return False


_LOAD_REPORT_FILTER = _LoadReportFilter()


# ---------------------------------------------------------------- progress
def inner_bars() -> bool:
    """Whether per-model bars (training steps, features, predictions) should show:
    only when verbose, or when no stage bar is running (and not quiet). For the tqdm
    calls in w2s_base/training/classifier.py: `disable=None if console.inner_bars() else True`
    (None: tqdm's own choice, off when the output is not a terminal)."""
    if _verbosity == "verbose":
        return True
    return _verbosity != "quiet" and _bar is None


class StageBar:
    """One bar for a stage: done/total models, elapsed and ETA, the last model (and
    how many were trained vs found cached); one summary line when it closes."""

    def __init__(self, stage: str, total: int, unit: str = "model"):
        from tqdm.auto import tqdm
        self.stage, self.total, self.unit = stage, total, unit
        self.trained = self.cached = 0
        self.t0 = time.perf_counter()
        self._tqdm = tqdm(total=total, desc=f"[{stage}]", unit=unit, dynamic_ncols=True, leave=False,
                          disable=True if _verbosity == "quiet" else None,
                          bar_format="{desc} {n_fmt}/{total_fmt} " + unit + "s |{bar:24}| "
                                     "{elapsed}<{remaining}{postfix}")

    @property
    def visible(self) -> bool:
        return not self._tqdm.disable

    def advance(self, item: str | None = None, cached: bool = False, n: int = 1) -> None:
        if cached:
            self.cached += n
        else:
            self.trained += n
        if item:
            self._tqdm.set_postfix_str(f"{item}{' (cached)' if cached else ''}", refresh=False)
        self._tqdm.update(n)

    def close(self) -> None:
        self._tqdm.close()
        done = self.trained + self.cached
        if done:
            secs = time.perf_counter() - self.t0
            units = self.unit if done == 1 else self.unit + "s"
            info(f"[{self.stage}] {done} {units}: {self.trained} trained, {self.cached} cached "
                 f"({secs:.0f} s)")


@contextlib.contextmanager
def stage_progress(stage: str, total: int, unit: str = "model") -> Iterator[StageBar]:
    """The stage's one bar; `advance()` (module level) moves it from anywhere inside.
    While it runs, inner_bars() is False (nested bars off unless verbose)."""
    global _bar
    prev, _bar = _bar, StageBar(stage, total, unit)
    bar = _bar
    try:
        yield bar
    finally:
        _bar = prev
        bar.close()


def advance(item: str | None = None, cached: bool = False, n: int = 1) -> None:
    """Move the running stage bar (a no-op outside stage_progress)."""
    if _bar is not None:
        _bar.advance(item, cached, n)
