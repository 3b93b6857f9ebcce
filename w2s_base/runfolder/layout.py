"""The run folder: the one owner of every path under runs/<name>/.

    runs/<name>/
      config.yaml             the validated config of record
      environment.json        packages, code commit, device and threads of the last invocation
      splits.json             sample ids of weak_train / transfer / test
      timings.jsonl           every invocation's stage times and peak RSS
      debate/transcripts.jsonl   every transcript, content-addressed, append-only
      weak/members/<protocol>/<model>/seed<s>[-debate<k>]/   one trained weak member
      weak/<labeller>/labeller.json, labels.jsonl            a labeller's outputs
      strong/<labeller>-<loss>/seed<s>/                      one student (ceiling: strong/ceiling/)
      report.json, report.md, report.png   the run's report (with replicates: every draw's and the pooled one)
      replicates/r<r>/        with `replicates` > 1, replicate r's own draw: its splits.json,
                              weak/<labeller>/ and report.json/.md/.png (the stores above stay shared)
      debates.html + debates/   the transcript viewer: a small page, its filter index and paged data files
      inspect/                  `run.py export --format inspect`: inspect_ai eval logs

    a capability-gap sweep (`sweep:` in the config; w2s_run/sweep.py) instead holds:
      config.yaml             the sweep's config of record
      sweep/<pair>/           each (weak, strong) pair's own run folder, laid out as above
      sweep.json, sweep.md, sweep.png   PGR against the weak-ceiling gap, one point per pair and student
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


def slug(text: str) -> str:
    """A folder-safe (and peft-adapter-safe: no '.') name for a labeller, model or run."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")[-48:] or "x"


@dataclass(frozen=True)
class RunLayout:
    root: Path
    # The folder of one draw's own files (splits, labellers' outputs, its report), relative
    # to root: "" for a one-draw run, whose files lie in the run folder itself.
    draw: str = ""

    def for_replicate(self, r: int) -> "RunLayout":
        """Replicate r's draw of a run with several replicates; the content-addressed stores
        (transcripts, weak members, students) stay the run's."""
        return RunLayout(self.root, f"replicates/r{r}")

    @property
    def draw_root(self) -> Path:
        return self.root / self.draw if self.draw else self.root

    @classmethod
    def find(cls, name_or_path: str, output_dir: str = "runs") -> "RunLayout":
        """A run given as its folder or as its name under output_dir. A path (it holds a
        separator) is taken as given, also when it does not exist: `runs/x` is never
        looked up as `runs/runs/x`."""
        p = Path(name_or_path)
        return cls(p if p.is_dir() or len(p.parts) > 1 else Path(output_dir) / name_or_path)

    # -- the run as a whole
    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def splits(self) -> Path:
        return self.draw_root / "splits.json"

    @property
    def environment(self) -> Path:
        return self.root / "environment.json"

    @property
    def timings(self) -> Path:
        return self.root / "timings.jsonl"

    @property
    def report_json(self) -> Path:
        return self.draw_root / "report.json"

    @property
    def report_md(self) -> Path:
        return self.draw_root / "report.md"

    @property
    def report_png(self) -> Path:
        return self.draw_root / "report.png"

    @property
    def viewer(self) -> Path:
        return self.root / "debates.html"

    # -- a capability-gap sweep
    @property
    def sweep_runs(self) -> Path:
        """The folder that holds each pair's run folder (the pairs' output_dir)."""
        return self.root / "sweep"

    @property
    def sweep_json(self) -> Path:
        return self.root / "sweep.json"

    @property
    def sweep_md(self) -> Path:
        return self.root / "sweep.md"

    @property
    def sweep_png(self) -> Path:
        return self.root / "sweep.png"

    # -- debate
    @property
    def transcripts(self) -> Path:
        return self.root / "debate" / "transcripts.jsonl"

    # -- weak
    def member(self, source: str, model: str, seed: int, k: int | None) -> Path:
        """One weak member reading `source` (a protocol, or a control's tag); k is None
        for members that read no transcript."""
        name = f"seed{seed}" + (f"-debate{k}" if k is not None else "")
        return self.root / "weak" / "members" / slug(source) / slug(model) / name

    def labeller(self, name: str) -> Path:
        return self.draw_root / "weak" / slug(name)

    def labeller_json(self, name: str) -> Path:
        return self.labeller(name) / "labeller.json"

    def labels(self, name: str) -> Path:
        return self.labeller(name) / "labels.jsonl"

    @property
    def quote_grades(self) -> Path:
        """Every transcript's quote grades as the weak members read them (weak.verify_quotes)."""
        return self.draw_root / "weak" / "quote_grades.jsonl"

    def labeller_jsons(self) -> list[Path]:
        weak = self.draw_root / "weak"
        return sorted(weak.glob("*/labeller.json")) if weak.is_dir() else []

    # -- strong
    def student(self, folder: str, seed: int) -> Path:
        return self.root / "strong" / slug(folder) / f"seed{seed}"
