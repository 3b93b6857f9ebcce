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
import threading
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
_saved_handlers: list[logging.Handler] = []


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
    if not _tty():
        # A log file, not a terminal: the libraries' bars (tqdm, read when first imported)
        # would fill it with carriage returns and cursor codes, and colour codes
        # (NO_COLOR: rich, and others that honour it) would be noise; the stages' own
        # progress lines take their place, at every level.
        _set_env("TQDM_DISABLE", "1")
        _set_env("NO_COLOR", "1")
        _strip_ansi_from_library_logs()
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


class _NoAnsi(logging.Filter):
    """Strips colour codes from a record (transformers colours its load reports)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:
            return True
        if "\x1b[" in msg:
            record.msg, record.args = _ANSI_ANY.sub("", msg), None
        return True


_NO_ANSI = _NoAnsi()
_ANSI_ANY = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _strip_ansi_from_library_logs() -> None:
    """On the handlers transformers logs through (its library root logger's), so that
    every transformers.* record written to a log file is plain text."""
    try:
        from transformers.utils import logging as tf_logging
    except ImportError:  # pragma: no cover - a hard dependency
        return
    for h in tf_logging.get_logger().handlers:  # get_logger() with no name: the library root
        if _NO_ANSI not in h.filters:
            h.addFilter(_NO_ANSI)
            _saved_handlers.append(h)


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
    for h in _saved_handlers:
        h.removeFilter(_NO_ANSI)
    _saved_handlers.clear()
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
    if not _tty():  # a log file: the stage's progress lines say it, without \r and ANSI codes
        return False
    if _verbosity == "verbose":
        return True
    return _verbosity != "quiet" and _bar is None


def _tty() -> bool:
    """Whether progress goes to a terminal (stderr, where bars and progress lines go)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def _dur(seconds: float) -> str:
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{sec:02d}s" if m else f"{sec}s"


class StageBar:
    """A stage's progress: done/total items (models, debates), elapsed, rate and ETA,
    what it is doing now; one summary line when it closes.

    On a terminal it is one tqdm bar. Without one (nohup, slurm, CI: a log file) it
    writes plain lines to stderr, no control characters: one each time another
    `W2S_PROGRESS_PERCENT` % (default 10) of the stage's work is done, and one at
    least every `W2S_PROGRESS_SECONDS` (default 60) while it runs, so a log shows life
    during a long model or a long chunk of debates.

    Work may be finer than items (`work_total`: the debate stage counts turns, so a
    chunk of debates reports each turn): the percentage and the ETA are then over the
    work. The rate and the ETA come from the work finished in this process (cached
    items are not work), so the first estimate waits for the first finished unit and
    is never extrapolated from a stage that has not done anything yet."""

    def __init__(self, stage: str, total: int, unit: str = "model", *, initial: int = 0,
                 work_total: int | None = None, work_unit: str | None = None):
        self.stage, self.total, self.unit = stage, total, unit
        self.trained = self.cached = 0
        self.initial = initial  # done before this process started (a resumed stage)
        self.work_total, self.work_unit, self.work = work_total, work_unit, 0
        self.now = ""  # what it is doing (a model's step, a chunk's turn)
        self.t0 = time.perf_counter()
        self.lines = _verbosity != "quiet" and not _tty()
        self.every_s = _env_float("W2S_PROGRESS_SECONDS", 60.0)
        self.step = max(_env_float("W2S_PROGRESS_PERCENT", 10.0), 0.1) / 100
        self._next_frac = self.step
        self._last_line = self.t0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._tqdm = None
        if self.lines:
            self._line("started")
            self._beat = threading.Thread(target=self._heartbeat, daemon=True, name=f"progress-{stage}")
            self._beat.start()
        elif _verbosity != "quiet":
            from tqdm.auto import tqdm
            self._tqdm = tqdm(total=total, initial=initial, desc=f"[{stage}]", unit=unit, dynamic_ncols=True,
                              leave=False, bar_format="{desc} {n_fmt}/{total_fmt} " + unit + "s |{bar:24}| "
                                                      "{elapsed}<{remaining}{postfix}")

    @property
    def visible(self) -> bool:
        """Whether a tqdm bar holds the terminal (other lines go through tqdm.write)."""
        return self._tqdm is not None

    @property
    def done(self) -> int:
        return self.initial + self.trained + self.cached

    # ---- what moves it
    def advance(self, item: str | None = None, cached: bool = False, n: int = 1) -> None:
        with self._lock:
            if cached:
                self.cached += n
            else:
                self.trained += n
            if item:
                self.now = f"{item}{' (cached)' if cached else ''}"
        if self._tqdm is not None:
            if item:
                self._tqdm.set_postfix_str(self.now, refresh=False)
            self._tqdm.update(n)
        self._maybe_line()

    def advance_work(self, n: int = 1, now: str | None = None) -> None:
        """Finer work done (a debate's turn), counted toward the percentage and the ETA."""
        with self._lock:
            self.work += n
            if now is not None:
                self.now = now
        if self._tqdm is not None and now is not None:
            self._tqdm.set_postfix_str(now)
        self._maybe_line()

    def set_now(self, now: str) -> None:
        """What it is doing now (shown with the next line; cheap enough for every step)."""
        self.now = now

    # ---- the lines
    def _fraction(self) -> float:
        if self.work_total:
            return min(1.0, self.work / self.work_total)
        return min(1.0, self.done / self.total) if self.total else 1.0

    def _maybe_line(self) -> None:
        if self.lines and self._fraction() >= self._next_frac:
            self._line()

    def _heartbeat(self) -> None:
        while not self._stop.wait(min(1.0, self.every_s / 4)):
            if time.perf_counter() - self._last_line >= self.every_s:
                self._line()

    def status(self) -> str:
        """One line: counts, rate and ETA from this process's finished work, what it does now."""
        elapsed = time.perf_counter() - self.t0
        frac = self._fraction()
        units = f"{self.done}/{self.total} {self.unit}s"
        if self.cached or self.initial:
            units += f" ({self.initial + self.cached} cached)"
        parts = [f"[{self.stage}] {units}"]
        if self.work_total:
            parts.append(f"{self.work}/{self.work_total} {self.work_unit}s")
        parts.append(f"{100 * frac:.0f}%")
        finished = self.work if self.work_total else self.trained
        left = (self.work_total - self.work) if self.work_total else (self.total - self.done)
        label = self.work_unit if self.work_total else self.unit
        if finished and elapsed > 0:
            per_min = 60 * finished / elapsed
            parts.append(f"{per_min:.0f} {label}s/min" if per_min >= 10 else f"{per_min:.2g} {label}s/min"
                         if per_min >= 1 else f"{_dur(elapsed / finished)}/{label}")
            parts.append(f"elapsed {_dur(elapsed)}, ETA {_dur(left * elapsed / finished)}")
        else:
            parts.append(f"elapsed {_dur(elapsed)}, ETA after the first finished {label}")
        line = ", ".join(parts)
        return line + (f"; now: {self.now}" if self.now else "")

    def _line(self, prefix: str | None = None) -> None:
        with self._lock:
            self._last_line = time.perf_counter()
            while self._next_frac <= self._fraction():
                self._next_frac += self.step
            msg = self.status() if prefix is None else f"[{self.stage}] {prefix}: {self.total} {self.unit}s" + (
                f" ({self.initial} already done)" if self.initial else "")
        print(msg, file=sys.stderr, flush=True)

    def close(self) -> None:
        self._stop.set()
        if self._tqdm is not None:
            self._tqdm.close()
        done = self.done
        if done:
            secs = time.perf_counter() - self.t0
            units = self.unit if done == 1 else self.unit + "s"
            info(f"[{self.stage}] {done} {units}: {self.trained} "
                 f"{'trained' if self.unit in ('model', 'member', 'student') else 'done'}, "
                 f"{self.initial + self.cached} cached ({secs:.0f} s)")


@contextlib.contextmanager
def stage_progress(stage: str, total: int, unit: str = "model", **kw) -> Iterator[StageBar]:
    """The stage's one bar (or its progress lines without a terminal); `advance()` and
    `now()` (module level) move it from anywhere inside. While it runs, inner_bars()
    is False (nested bars off unless verbose)."""
    global _bar
    prev, _bar = _bar, StageBar(stage, total, unit, **kw)
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


def now(what: str) -> None:
    """Say what the running stage is doing (a model's training step): shown in its next
    progress line; a no-op outside stage_progress."""
    if _bar is not None:
        _bar.set_now(what)
