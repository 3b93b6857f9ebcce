"""Training curves: an experiment tracker (trackio or wandb, off by default) and PNGs.

Tracker (config `tracking:`; `backend: none` by default, so nothing is imported):
one tracker run per trained model, as HF Trainer users see them: named
`<kind>/<name>` (e.g. `weak/none/minilm-l6/seed0`, `strong/w2s[weak-xent]/seed0`),
grouped under the pipeline run (`tracking.run_name`, default the run's name), each
logging `train/loss` and `train/lr` against the optimiser step from 0, so the
dashboard overlays every member's (or student's) curve on one `train/loss` chart.
One run per model, not one run with prefixed keys: wandb drops a step lower than
the run's last one, so several curves that each start at step 0 cannot share a run.
At the end one more run, `report`, holds the report table. A model whose curve was
already logged to the same store (a cached member on rerun) is not logged again:
`<run>/tracking.json` remembers what went where.

Where the data goes:
- trackio: its local SQLite store `$TRACKIO_DIR/<project>.db`. trackio reads
  TRACKIO_DIR when it is first imported (default ~/.cache/huggingface/trackio); when
  the variable is unset, the tracker sets it to `<run>/trackio` before that import.
  View: `TRACKIO_DIR=<run>/trackio trackio show --project <project>`.
- wandb: online when logged in; WANDB_MODE=offline writes `<run>/wandb/offline-run-*`
  (or under WANDB_DIR), to upload later with `wandb sync`.

PNGs, with or without a tracker (matplotlib's Agg canvas, no pyplot state):
`<run>/curves/<kind>.png` (every model of the stage in one plot) and
`<run>/curves/<kind>/<name>.png` (one model: loss per step, and the learning rate).

The pipeline calls `record_stage(tracker, run_dir, kind, {name: history}, tcfg)`
after each stage (both of the above) and `tracker.log_table(report_rows(report))`
at the end; the histories come from each member's / student's cached result.

The learning rate per step is computed from the TrainConfig by the definition fit
trains with (w2s_base/training/schedule.py), so the training loop only has to return
its losses.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Sequence

from w2s_base.config import TrackingConfig
from w2s_base.runfolder.artifacts import save_artifact
from w2s_base.training.schedule import lr_schedule
from w2s_run.report.statistics import Verdict

# the pyproject extra that installs each backend
EXTRAS = {"trackio": "tracking", "wandb": "wandb"}
CURVES = "curves"
LEDGER = "tracking.json"


class TrackingUnavailable(ImportError):
    """The configured backend's package is not installed (one line, naming the extra)."""


def import_backend(backend: str):
    """The backend's module, or TrackingUnavailable naming the extra to install."""
    try:
        if backend == "trackio":
            import trackio
            return trackio
        if backend == "wandb":
            import wandb
            return wandb
    except ImportError:
        extra = EXTRAS[backend]
        raise TrackingUnavailable(
            f"tracking.backend={backend} needs the {backend} package: "
            f"pip install 'w2s-debate[{extra}]' (or pip install {backend})") from None
    raise ValueError(f"unknown tracking backend {backend!r}")


# ---------------------------------------------------------------- report table
def report_rows(report) -> list[dict[str, Any]]:
    """The report's rows as flat dicts (one per weak labeller, student and the
    ceiling): what `Tracker.log_table` logs. Reads w2s_run/report/model.py's rows by field."""
    rows = []
    for r in report.rows:
        kind = r.kind
        if kind == "w2s":
            model = f"w2s[{r.labeller}|{r.loss}]"
        elif kind == "ceiling":
            model = "ceiling"
        else:
            model = r.name
        pgr = getattr(r, "pgr", None)
        ci = list(r.acc_ci or [None, None])
        rows.append({
            "model": model, "kind": kind, "accuracy": r.accuracy,
            "acc_ci_low": ci[0], "acc_ci_high": ci[1],
            "pgr": pgr.pgr if pgr is not None and pgr.verdict == Verdict.OK else None,
            "pgr_verdict": str(pgr.verdict) if pgr is not None else None,  # the text: trackers log plain strings
            "seeds": getattr(r, "seeds", None),
            "label_accuracy": getattr(r, "label_accuracy", None),
        })
    return rows


def _table(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    return columns, [[r.get(c) for c in columns] for r in rows]


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- the tracker
class Tracker:
    """Logs training curves and the report table to trackio or wandb.

        tracker = Tracker().start(cfg)          # cfg: RunConfig (reads cfg.tracking)
        tracker.log_stage("weak", {name: history}, cfg.weak.train)
        tracker.log_table(report_rows(report))
        tracker.finish()

    With backend none (the default) every method is a no-op and nothing is imported.
    A missing package fails at `start` (TrackingUnavailable, an ImportError). Once
    started, a tracker that fails to log (e.g. wandb not logged in) prints one line
    and stops tracking for the rest of the run: tracking never fails a training run."""

    def __init__(self):
        self.backend: str = "none"
        self.location: str | None = None  # where the runs went (a folder or a URL-ish note)
        self._mod = None
        self._cfg = None
        self._ledger_path: Path | None = None
        self._ledger: dict[str, dict[str, str]] = {}
        self._ledger_key = ""
        self._wandb_dir: str | None = None

    @property
    def enabled(self) -> bool:
        return self._mod is not None

    def start(self, cfg) -> "Tracker":
        t: TrackingConfig = cfg.tracking
        if t.backend == "none":
            return self
        from w2s_base.training.distributed import is_main
        if not is_main():  # under a multi-process launcher one process logs
            return self
        root = Path(cfg.run_dir)
        if t.backend == "trackio":
            os.environ.setdefault("TRACKIO_DIR", str((root / "trackio").resolve()))
            self._mod = import_backend("trackio")
            import trackio.utils
            self.location = str(trackio.utils.TRACKIO_DIR)  # fixed at its first import
            view = (f"TRACKIO_DIR={self.location} trackio show --project {t.project}")
        else:
            self._mod = import_backend("wandb")
            self._wandb_dir = None if os.environ.get("WANDB_DIR") else str(root.resolve())
            mode = os.environ.get("WANDB_MODE", "")
            base = os.environ.get("WANDB_DIR") or str(root)
            self.location = (f"{base}/wandb" if mode in ("offline", "dryrun", "disabled")
                             else f"wandb project {t.project}")
            view = (f"wandb sync {base}/wandb/offline-run-*" if mode in ("offline", "dryrun")
                    else "the wandb web page of the project")
        self.backend, self._cfg = t.backend, cfg
        self._group = t.run_name or cfg.name
        self._config = cfg.model_dump(mode="json")
        self._ledger_path = root / LEDGER
        self._ledger_key = f"{t.backend}|{t.project}|{self._group}|{self.location}"
        self._ledger = self._read_ledger()
        from w2s_base.console import info
        info(f"[tracking] {t.backend}: {self.location} (view: {view})")
        return self

    # -- what was logged before (a rerun logs only what is new)
    def _read_ledger(self) -> dict[str, dict[str, str]]:
        try:
            ledger = json.loads(self._ledger_path.read_text())
        except (OSError, ValueError):
            return {}
        if self.backend == "trackio" and not Path(self.location).is_dir():
            ledger.pop(self._ledger_key, None)  # the store was deleted: log everything again
        return ledger if isinstance(ledger, dict) else {}

    def _logged(self, run: str, digest: str) -> bool:
        return self._ledger.get(self._ledger_key, {}).get(run) == digest

    def _remember(self, run: str, digest: str) -> None:
        self._ledger.setdefault(self._ledger_key, {})[run] = digest
        text = json.dumps(self._ledger, indent=1, sort_keys=True)
        save_artifact(self._ledger_path, lambda tmp: tmp.write_text(text))

    # -- one tracker run
    def _run(self, name: str, config: dict, records: Iterable[tuple[int | None, dict]]) -> None:
        """Open one tracker run, log `records` ((step, metrics) pairs), close it."""
        project = self._cfg.tracking.project
        config = {**self._config, **config}
        if self.backend == "trackio":
            tr = self._mod
            with contextlib.redirect_stdout(io.StringIO()):  # trackio prints several lines a run
                tr.init(project=project, name=name, group=self._group, config=config,
                        auto_log_cpu=False, auto_log_gpu=False, embed=False)
                try:
                    for step, metrics in records:
                        tr.log(metrics, step=step)
                finally:
                    tr.finish()
        else:
            wb = self._mod
            settings = wb.Settings(console="off", silent=True, x_disable_stats=True, save_code=False)
            run = wb.init(project=project, name=name, group=self._group, config=config,
                          dir=self._wandb_dir, job_type=name.split("/")[0], reinit="create_new",
                          settings=settings)
            try:
                for step, metrics in records:
                    run.log(metrics, step=step)
            finally:
                run.finish()

    def _guarded(self, what: str, fn) -> None:
        if not self.enabled:
            return
        try:
            fn()
        except Exception as e:  # tracking must never fail a training run
            from w2s_base.console import error_line
            why = (str(e).strip().splitlines() or [""])[0]
            hint = "; log in with `wandb login`, or set WANDB_MODE=offline" if self.backend == "wandb" else ""
            error_line(f"[tracking] {self.backend} failed while logging {what} ({type(e).__name__}: {why}); "
                       f"tracking is off for the rest of this run, the curve PNGs are still written{hint}")
            self._mod = None

    def log_curve(self, kind: str, name: str, history: Sequence[float],
                  lrs: Sequence[float] | None = None) -> None:
        """One trained model's curve: a tracker run `<kind>/<name>` with `train/loss`
        (and `train/lr`) per optimiser step."""
        if not self.enabled or not history:
            return
        run = f"{kind}/{name}"
        digest = _digest([list(history), list(lrs) if lrs else None])
        if self._logged(run, digest):
            return

        def records():
            for i, loss in enumerate(history):
                m = {"train/loss": float(loss)}
                if lrs is not None and i < len(lrs):
                    m["train/lr"] = float(lrs[i])
                yield i, m

        def go():
            self._run(run, {"kind": kind, "model_name": name, "steps": len(history)}, records())
            self._remember(run, digest)
        self._guarded(f"the curve of {run}", go)

    def log_stage(self, kind: str, curves: Mapping[str, Sequence[float] | None], tcfg=None) -> None:
        """Every model of a stage ({name: history}; None or [] skipped); `tcfg` (the
        stage's TrainConfig) gives each curve its learning rate per step."""
        for name, history in curves.items():
            if history:
                self.log_curve(kind, name, history, lr_schedule(tcfg, len(history)) if tcfg else None)

    def log_table(self, rows: Sequence[Mapping[str, Any]], key: str = "report") -> None:
        """The report table (rows: flat dicts, e.g. report_rows(report)), in a tracker
        run named `key`, under the metric `key`."""
        if not self.enabled or not rows:
            return
        columns, data = _table(rows)
        digest = _digest([columns, data])
        if self._logged(key, digest):
            return

        def go():
            self._run(key, {"kind": "report"}, [(0, {key: self._mod.Table(columns=columns, data=data)})])
            self._remember(key, digest)
        self._guarded("the report table", go)

    def finish(self) -> None:
        """Every tracker run is closed as soon as it is logged; this ends the session."""
        self._mod = None

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc) -> None:
        self.finish()


# ---------------------------------------------------------------- PNGs
def curve_file_name(name: str) -> str:
    """A file name for a model's curve: `none/minilm-l6/seed0` -> `none_minilm-l6_seed0`."""
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", name).strip("_.") or "curve"


def _smooth(y: Sequence[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(y):
        acc += v
        if i >= window:
            acc -= y[i - window]
        out.append(acc / min(i + 1, window))
    return out


def _window(n: int) -> int:
    return max(1, min(25, n // 10))


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    save_artifact(path, lambda tmp: fig.savefig(tmp, format="png"))
    return path


Evals = Sequence[Mapping[str, float]]  # held-out {"step", "loss", "accuracy"} per epoch


def save_curve_png(path: str | Path, history: Sequence[float], title: str,
                   lrs: Sequence[float] | None = None, evals: Evals | None = None) -> Path:
    """One model's training loss per optimiser step (raw, and a moving average when
    there are 20 steps or more), and its learning rate on a second axis when given.
    With `evals` (held-out loss and accuracy after each epoch) a second panel beside
    it: held-out accuracy per epoch, and the held-out loss drawn over the training
    loss, so a model that fits its labels but not held-out data shows it."""
    path = Path(path)
    fig = _figure(11.0 if evals else 6.4, 3.8)
    ax = fig.add_subplot(1, 2, 1) if evals else fig.add_subplot()
    steps = list(range(1, len(history) + 1))
    w = _window(len(history))
    if w > 1:
        ax.plot(steps, history, color="#1f77b4", alpha=0.3, linewidth=0.8, label="training loss")
        ax.plot(steps, _smooth(history, w), color="#1f77b4", linewidth=1.6, label=f"training loss (mean of {w})")
    else:
        ax.plot(steps, history, color="#1f77b4", linewidth=1.4, marker="." if len(history) < 30 else None,
                label="training loss")
    if evals:
        ax.plot([e["step"] for e in evals], [e["loss"] for e in evals], color="#d62728", marker="o",
                linewidth=1.4, label="held-out loss (gold labels, per epoch)")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if lrs:
        ax2 = ax.twinx()
        ax2.plot(range(1, len(lrs) + 1), lrs, color="#7f7f7f", linestyle="--", linewidth=1, label="learning rate")
        ax2.set_ylabel("learning rate")
        ax2.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="best", fontsize=7)
    if evals:
        ax.set_title("loss", fontsize=9)
        bx = fig.add_subplot(1, 2, 2)
        bx.plot([e["step"] for e in evals], [e["accuracy"] for e in evals], color="#d62728", marker="o",
                linewidth=1.4, label="held-out accuracy (gold labels)")
        bx.axhline(0.5, color="#7f7f7f", ls=":", lw=1, label="0.5")
        bx.set_ylim(0, 1.02)
        bx.set_xlim(0, len(history) + 1)
        bx.set_xlabel("optimiser step (end of each epoch)")
        bx.set_ylabel("accuracy")
        bx.grid(alpha=0.3)
        bx.legend(loc="lower right", fontsize=7)
        bx.set_title("held-out accuracy", fontsize=9)
        fig.suptitle(title, fontsize=10)
    else:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def save_summary_png(path: str | Path, curves: Mapping[str, Sequence[float]], title: str,
                     evals: Mapping[str, Evals] | None = None) -> Path:
    """Every model's loss per step in one plot (moving averages when long), and with
    `evals` every model's held-out accuracy per epoch beside it, in the same colours."""
    path = Path(path)
    evals = {k: v for k, v in (evals or {}).items() if v and k in curves}
    n = len(curves)
    legend_outside = n > 8
    fig = _figure((9.0 if legend_outside else 6.4) + (4.6 if evals else 0), 4.0)
    ax = fig.add_subplot(1, 2, 1) if evals else fig.add_subplot()
    cmap = _colours(n)
    for i, (name, h) in enumerate(curves.items()):
        w = _window(len(h))
        ax.plot(range(1, len(h) + 1), _smooth(h, w) if w > 1 else list(h), color=cmap[i], linewidth=1.3,
                label=name)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("training loss" + (" (moving average)" if any(_window(len(h)) > 1 for h in curves.values())
                                     else ""))
    ax.grid(alpha=0.3)
    if evals:
        bx = fig.add_subplot(1, 2, 2)
        for i, name in enumerate(curves):
            if name in evals:
                e = evals[name]
                bx.plot([x["step"] for x in e], [x["accuracy"] for x in e], color=cmap[i], marker="o",
                        markersize=3, linewidth=1.2)
        bx.axhline(0.5, color="#7f7f7f", ls=":", lw=1)
        bx.set_ylim(0, 1.02)
        bx.set_xlabel("optimiser step (end of each epoch)")
        bx.set_ylabel("held-out accuracy (gold labels)")
        bx.grid(alpha=0.3)
        bx.set_title("held-out accuracy", fontsize=9)
        ax.set_title("training loss", fontsize=9)
        fig.suptitle(title, fontsize=10)
    else:
        ax.set_title(title, fontsize=10)
    if n:
        if legend_outside:
            (bx if evals else ax).legend(*ax.get_legend_handles_labels(), loc="upper left",
                                         bbox_to_anchor=(1.01, 1.0), fontsize=7, ncol=1 + n // 25)
        else:
            ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _colours(n: int) -> list:
    from matplotlib import colormaps
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


STAGE_TITLES = {"weak": "weak members", "strong": "strong students and ceiling"}


def save_stage_curves(run_dir: str | Path, kind: str, curves: Mapping[str, Sequence[float] | None],
                      tcfg=None, evals: Mapping[str, Evals] | None = None) -> list[Path]:
    """The PNGs of one stage ({model name: history}; None or [] skipped):
    `<run>/curves/<kind>.png` with every curve and `<run>/curves/<kind>/<name>.png`
    per model (with its learning rate when `tcfg` is given). A PNG whose curve is
    unchanged since it was drawn (`curves/index.json`) is not drawn again, so a
    cached rerun costs nothing. Returns the files written."""
    root = Path(run_dir) / CURVES
    index_path = root / "index.json"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):
        index = {}
    curves = {name: list(map(float, h)) for name, h in curves.items() if h}
    written: list[Path] = []
    used: dict[str, str] = {}
    for name, history in curves.items():
        fname = curve_file_name(name)
        if fname in used and used[fname] != name:  # two names, one file name
            fname = f"{fname}-{hashlib.sha1(name.encode()).hexdigest()[:6]}"
        used[fname] = name
        rel = f"{kind}/{fname}.png"
        lrs = lr_schedule(tcfg, len(history)) if tcfg is not None else None
        title = f"{kind} {name}: loss per step ({len(history)} steps)"
        ev = [dict(e) for e in (evals or {}).get(name) or []] or None
        digest = _digest([title, history, lrs] + ([ev] if ev else []))  # unchanged digests without evals
        if index.get(rel) != digest or not (root / rel).exists():
            written.append(save_curve_png(root / rel, history, title, lrs, ev))
            index[rel] = digest
    if curves:
        rel = f"{kind}.png"
        some = {k: [dict(e) for e in v] for k, v in (evals or {}).items() if v and k in curves}
        title = (f"{STAGE_TITLES.get(kind, kind)}: training loss"
                 + (" and held-out accuracy" if some else "") + f" ({len(curves)} models)")
        digest = _digest([title, curves] + ([some] if some else []))
        if index.get(rel) != digest or not (root / rel).exists():
            written.append(save_summary_png(root / rel, curves, title, some))
            index[rel] = digest
    if written:
        text = json.dumps(index, indent=1, sort_keys=True)
        save_artifact(index_path, lambda tmp: tmp.write_text(text))
    return written


def record_stage(tracker: Tracker, run_dir: str | Path, kind: str,
                 curves: Mapping[str, Sequence[float] | None], tcfg=None,
                 evals: Mapping[str, Evals] | None = None) -> list[Path]:
    """A finished stage's curves ({model name: loss per step}; `evals`: {model name:
    held-out loss and accuracy per epoch}): the PNGs under `<run>/curves/` and, when a
    tracker is on, one tracker run per model (training loss). Call it on the main
    process only. Returns the PNGs written."""
    written = save_stage_curves(run_dir, kind, curves, tcfg, evals)
    tracker.log_stage(kind, curves, tcfg)
    return written


__all__ = ["TrackingConfig", "TrackingUnavailable", "Tracker", "lr_schedule", "report_rows",
           "save_curve_png", "save_summary_png", "save_stage_curves", "record_stage", "curve_file_name"]
