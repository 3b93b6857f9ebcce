"""`run.py verify`: can a run folder prove its own integrity?

Checked against the run's config of record (runs/<name>/config.yaml), reading only
(jsonl.read_only: nothing in the folder is written, created or compacted):

- every store record's checksum (debate/transcripts.jsonl, timings.jsonl, each
  labeller's labels.jsonl: w2s_base/runfolder/jsonl.py);
- every cached result (weak members, out-of-fold members, students) keyed as the
  stages would key it now from the config of record and the data: the same code the
  run uses (splits, placements, member inputs, student labels) runs under
  stage_cache.audit(), which records instead of training; and each result's own
  checksum (`result_sha`);
- splits.json against the split the data and config draw now;
- every file report.json was built from against the sha256 it recorded (`inputs`).

A problem is reported once per file (damaged, stale or missing, with every reason),
each with the command that rebuilds it; what depends on a missing or damaged result
cannot be keyed and is listed as not checked.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from w2s_base.config import ConfigError, RunConfig, load_config
from w2s_base.runfolder.jsonl import StoreScan, scan_jsonl
from w2s_base.runfolder.layout import RunLayout
from w2s_base.runfolder.stage_cache import CacheCheck, NotBuilt, audit, file_sha256

Status = Literal["damaged", "stale", "missing"]
_SEVERITY = {"stale": 0, "missing": 1, "damaged": 2}


class Finding(BaseModel):
    path: str            # under the run folder
    status: Status
    problems: list[str]
    rebuild: str         # the command that regenerates it


class VerifyResult(BaseModel):
    run: str                     # the run folder
    exists: bool = True
    config: str = ""             # the config checked against (the config of record, if there is one)
    findings: list[Finding] = []
    unchecked: list[str] = []    # what could not be keyed: it depends on something missing or damaged
    notes: list[str] = []        # what is sound but could not be fully checked (legacy records)

    @property
    def intact(self) -> bool:
        return self.exists and not self.findings and not self.unchecked

    @property
    def exit_code(self) -> int:
        return 2 if not self.exists else 0 if self.intact else 1


class _Refused(Exception):
    """A debate the store does not hold: verify never generates one."""


def _refuse():
    raise _Refused


class _Collector:
    def __init__(self, root: Path, rebuild: str):
        self.root, self.rebuild = root, rebuild
        self.found: dict[str, Finding] = {}
        self.unchecked: list[str] = []
        self.notes: list[str] = []

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def add(self, path: Path | str, status: Status, problem: str) -> None:
        key = path if isinstance(path, str) else self.rel(path)
        f = self.found.get(key)
        if f is None:
            self.found[key] = Finding(path=key, status=status, problems=[problem], rebuild=self.rebuild)
        else:
            if _SEVERITY[status] > _SEVERITY[f.status]:
                f.status = status
            if problem not in f.problems:
                f.problems.append(problem)

    def cache(self, checks: list[CacheCheck]) -> None:
        for c in checks:
            if c.status != "ok":
                self.add(c.path, c.status, c.detail or c.status)


def _stores(cfg: RunConfig) -> list[Path]:
    lay = cfg.layout
    labels = sorted(lay.root.glob("weak/*/labels.jsonl")) + sorted(lay.root.glob("replicates/*/weak/*/labels.jsonl"))
    return [p for p in (lay.transcripts, lay.timings) if p.exists()] + labels


def _check_stores(cfg: RunConfig, out: _Collector) -> None:
    for path in _stores(cfg):
        scan = StoreScan(path)
        for _ in scan_jsonl(path, scan):
            pass
        for n, why in scan.damaged:
            out.add(path, "damaged", f"line {n}: {why}")
        if scan.legacy:
            out.notes.append(f"{out.rel(path)}: {scan.legacy} record(s) predate checksums (read unverified)")


def _check_draw(cfg: RunConfig, r: int, shared_splits, out: _Collector):
    """Key every member and student of replicate r as the run would; returns its splits."""
    from strong.stage import ceiling_out_of_fold, student, student_keys, student_labels
    from w2s_run.pipeline import generate_transcripts, placements, prepare_data
    from weak.stage import MemberTrainer, members_of, run_labeller

    d_cfg, lay = cfg.for_replicate(r), cfg.replicate_layout(r)
    splits = shared_splits if shared_splits is not None else prepare_data(d_cfg, lay)[0]
    drawn = {k: [s.id for s in getattr(splits, k)] for k in ("weak_train", "transfer", "test")}
    if not lay.splits.exists():
        out.add(lay.splits, "missing", "no splits.json")
    else:
        try:
            if json.loads(lay.splits.read_bytes()) != drawn:
                out.add(lay.splits, "stale", "the data and config of record draw another split")
        except (json.JSONDecodeError, UnicodeDecodeError):
            out.add(lay.splits, "damaged", "unreadable")
    trainer = MemberTrainer(d_cfg, splits, lay)
    where = f"replicate {r}: " if cfg.replicates > 1 else ""

    transcripts: dict = {}
    if d_cfg.debates_needed() or d_cfg.controls_needed():
        try:
            transcripts = generate_transcripts(d_cfg, splits, lay, placements(d_cfg, splits, trainer), _refuse)
        except _Refused:
            out.add(lay.transcripts, "missing", "debates the config of record asks for are not stored")
        except NotBuilt as e:
            out.unchecked.append(f"{where}the debates placed against the reference (needs {out.rel(e.check.path)})")

    labellers = {}
    for lab in d_cfg.labellers:
        tr = transcripts.get(lab.source.key) if lab.source.reads_transcripts else None
        if lab.source.reads_transcripts and tr is None:
            out.unchecked.append(f"{where}the members of labeller {lab.name} (their transcripts are not all stored)")
            continue
        ok = True
        for model, seed, k in members_of(d_cfg, lab):
            try:
                trainer(lab.source, model, seed, k, tr)
            except NotBuilt:
                ok = False
        if ok:
            labellers[lab.name] = run_labeller(d_cfg, lab, trainer, tr)  # read back, nothing written
    for key in student_keys(d_cfg, [lab.name for lab in d_cfg.labellers]):
        if not key.is_ceiling and key.labeller not in labellers:
            out.unchecked.append(f"{where}student {key.folder}/seed{key.seed} (its labeller's members are not "
                                 "all sound)")
            continue
        try:
            student(d_cfg, splits, lay, None, key, student_labels(key, splits, labellers))
        except NotBuilt:
            pass  # recorded by the audit
    try:  # the audit's out-of-fold ceiling (report.json records its folds among its inputs)
        ceiling_out_of_fold(d_cfg, splits, lay, None)
    except NotBuilt:
        pass
    return splits


def _check_report(layout: RunLayout, out: _Collector) -> None:
    f = layout.report_json
    if not f.exists():
        out.add(f, "missing", "no report")
        return
    try:
        inputs = json.loads(f.read_bytes()).get("inputs")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        out.add(f, "damaged", "unreadable")
        return
    if not inputs:
        out.notes.append(f"{out.rel(f)} predates recorded inputs: its sources could not be checked")
        return
    for rel, sha in inputs.items():
        p = layout.root / rel
        if not p.exists():
            out.add(p, "missing", f"{out.rel(f)} was built from it")
        elif file_sha256(p) != sha:
            out.add(p, "stale", f"changed since {out.rel(f)} was built from it")


def verify_run(cfg: RunConfig, command: str | None = None) -> VerifyResult:
    """Check cfg's run folder; `command` (default: a run of its config of record) is the
    rebuild command each finding names."""
    layout = cfg.layout
    if not layout.root.is_dir():
        return VerifyResult(run=str(layout.root), exists=False)
    used = cfg
    out = _Collector(layout.root, command or f"python run.py --config {layout.config}")
    if layout.config.exists():
        try:
            used = load_config(layout.config)
        except ConfigError as e:
            out.add(layout.config, "damaged", str(e).splitlines()[0])
    else:
        out.add(layout.config, "missing", "no config of record: checked against the given config")
    if used.model_dump(mode="json") != cfg.model_dump(mode="json"):
        out.notes.append("the given config differs from the config of record: checked against the config of record")
    with audit() as checks:
        _check_stores(used, out)
        shared = None
        for r in range(used.replicates):
            splits = _check_draw(used, r, shared, out)
            if not used.replicate_splits:
                shared = splits
    out.cache(checks)
    _check_report(used.layout, out)
    if used.replicates > 1:
        for r in range(used.replicates):
            _check_report(used.replicate_layout(r), out)
    return VerifyResult(run=str(layout.root), config=str(layout.config if layout.config.exists() else "given"),
                        findings=sorted(out.found.values(), key=lambda f: f.path),
                        unchecked=list(dict.fromkeys(out.unchecked)), notes=out.notes)


def render(res: VerifyResult) -> str:
    if not res.exists:
        return f"no run folder at {res.run}"
    lines = [f"{f.status:<8} {f.path}: {'; '.join(f.problems)}\n         rebuild: {f.rebuild}"
             for f in res.findings]
    lines += [f"not checked: {u}" for u in res.unchecked]
    lines += [f"note: {n}" for n in res.notes]
    lines.append(f"{res.run}: intact" if res.intact else
                 f"{res.run}: {len(res.findings)} file(s) damaged, stale or missing"
                 + (f", {len(res.unchecked)} not checked" if res.unchecked else ""))
    return "\n".join(lines)


def print_verify(cfg: RunConfig) -> int:
    """run.py verify: prints the findings (or "intact"); the exit code: 0 intact, 1 when
    something is wrong, 2 for a missing run."""
    res = verify_run(cfg)
    if not res.exists:
        print(f"error: {render(res)}", file=sys.stderr)
    else:
        print(render(res))
    return res.exit_code
