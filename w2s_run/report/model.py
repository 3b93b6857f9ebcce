"""report.json as a schema: a typed, versioned record of one run's results.

Bump SCHEMA_VERSION whenever a field changes meaning or goes away; readers
(`run.py compare`, the viewer, users' notebooks) check it.
"""
from __future__ import annotations

import json
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from w2s_base.config import ControlKind, ControlSpec, ControlTag
from w2s_base.runfolder.layout import RunLayout
from debate.quotes import QuoteTally
from w2s_run.report.statistics import (AccuracyDifferenceResult, CapaResult, ErrorBreakdown, GapResult,
                                       PairedDifferenceResult, PGRResult, PooledDifference, PooledPGR, RateResult,
                                       SeedSpread)

# 2: PGR with its verdict and dropped share, the weak-ceiling gap, paired student
#    comparisons, seed spread and error breakdowns (w2s_run/report/statistics.py).
# 3: each comparison records the reference student's loss (reference_loss).
SCHEMA_VERSION = 3


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid")
    accuracy: float                   # test accuracy (mean over seeds for students/ceiling)
    acc_ci: list[float]               # 95 % bootstrap interval over test samples


class MemberScore(BaseModel):
    accuracy: float
    ece: float


class WeakRow(_Row):
    kind: Literal["weak"] = "weak"
    name: str                          # the labeller's name (weak.labellers[].name)
    protocol: str
    control: ControlTag | None = None  # a control (its tag in report.json): calibration, never a method's result
    mislead: float | None = None       # reads real debates told to mislead at this rate (debate.mislead): a control too
    vs_reference: PairedDifferenceResult | None = None  # its test accuracy against the plain weak model
    aggregate: str
    ece: float
    label_accuracy: float              # its soft labels on transfer (the student's supervision)
    label_ece: float
    members: dict[str, MemberScore]


class StudentRow(_Row):
    kind: Literal["w2s"] = "w2s"
    labeller: str
    loss: str
    seeds: int
    seed_accuracy: list[float]
    seed_spread: SeedSpread
    pgr: PGRResult                     # against the reference weak model; print pgr.verdict unless OK
    errors: ErrorBreakdown             # where its accuracy comes from, against its own labeller


class CeilingRow(_Row):
    kind: Literal["ceiling"] = "ceiling"
    seeds: int
    seed_accuracy: list[float]
    seed_spread: SeedSpread


class Comparison(BaseModel):
    """The paper's question for one student: W2S on these labels vs W2S on the plain
    weak labels, paired over test samples. The config only admits a labeller's loss
    that the reference labeller also trains (RunConfig._check), so `reference_loss`,
    the loss of the reference's student compared with, is `loss`; it is recorded, and
    the table names it where it differs."""
    labeller: str
    loss: str
    reference_labeller: str
    reference_loss: str
    result: PairedDifferenceResult


Row = Annotated[Union[WeakRow, StudentRow, CeilingRow], Field(discriminator="kind")]


def row_id(r: WeakRow | StudentRow | CeilingRow) -> str:
    """A row's stable identity across runs: `weak:<labeller>`, `w2s:<labeller>:<loss>`,
    `ceiling` (the keys of PerSample.correct; what `run.py compare` pairs rows on). A labeller
    name holds no ':' or '|' (its config pattern), so the id is unambiguous and, with the
    registered losses, safe in a markdown cell."""
    if isinstance(r, StudentRow):
        return f"w2s:{r.labeller}:{r.loss}"
    return "ceiling" if isinstance(r, CeilingRow) else f"weak:{r.name}"


class PerSample(BaseModel):
    """Every row's correctness on every test sample, in test order: what `run.py compare`
    pairs two runs on (by test id), and what a reader needs to recompute any interval."""
    model_config = ConfigDict(extra="forbid")
    ids: list[str]                      # test sample ids
    gold: list[int]                     # their gold labels
    correct: dict[str, list[float]]     # row_id -> per-sample correctness: 0/1 for a weak labeller;
                                        # students and ceiling: the fraction of seeds right (4 decimals)


class RunMeta(BaseModel):
    task: str
    weak_model: str
    strong_model: str
    debate: dict | None = None         # the debate config, when transcripts were used
    fit: dict | None = None            # over-long texts: policy, counts per model (data/fit.py); duplicate texts under "dedupe"
    # market-making: per protocol and split, the share of samples whose consultant argues
    # the gold label (w2s_run/pipeline.py consultant_gold_side)
    consultant_gold_side: dict[str, dict[str, float]] = {}
    # weak.verify_quotes: per source (protocol or control tag), its quotes counted per grade
    # (verified / fuzzy / unverified) per debater and per transcript (debate/quotes.py)
    quotes: dict[str, QuoteTally] = {}
    environment: dict | None = None    # packages, code commit, device (w2s_base/runfolder/environment.py)
    seconds: dict[str, float] = {}     # this invocation's stage times
    peak_rss_mb_after: dict[str, float] = {}


class PooledComparison(BaseModel):
    """One comparison of the report pooled over the run's replicates
    (statistics.pooled_difference): a weak labeller against the reference labeller
    (kind "weak"), a student against the reference's student (kind "student", name and
    reference "labeller|loss"), or the ceiling against the reference labeller (kind "gap")."""
    kind: Literal["weak", "student", "gap"]
    name: str
    reference: str
    result: PooledDifference


class PooledPGRRow(BaseModel):
    """One W2S student's PGR pooled over the run's replicates (statistics.pooled_pgr):
    always against the plain weak model `reference`, as each draw's PGR is, and gated on
    the pooled ceiling − weak gap."""
    labeller: str
    loss: str
    reference: str
    result: PooledPGR


class AuditGap(BaseModel):
    """A weak labeller's accuracy on the transfer split against the strong ceiling's
    (out-of-fold), paired over transfer samples: `result.acc` the ceiling's,
    `result.reference_acc` the labeller's, `result.acc_diff` ceiling − labeller."""
    labeller: str
    control: ControlTag | None = None
    mislead: float | None = None       # debate.mislead's rate (WeakRow.mislead)
    accuracy: float                    # the labeller's accuracy on transfer (its soft labels' argmax)
    acc_ci: list[float]
    result: AccuracyDifferenceResult


class AuditCapa(BaseModel):
    """CAPA (statistics.capa) of two models on the transfer split: two members of one
    labeller (kind "members") or a labeller and the out-of-fold ceiling (kind "ceiling")."""
    kind: Literal["members", "ceiling"]
    labeller: str
    a: str
    b: str
    result: CapaResult


class AuditSensitivity(BaseModel):
    """How a labeller that reads transcripts follows them, over every (member, transfer
    sample) pair, each member reading its own transcript k (statistics.rate, clustered by
    sample). The side a transcript favours: audit.favoured_label."""
    labeller: str
    protocol: str
    control: ControlTag | None = None
    mislead: float | None = None       # debate.mislead's rate (WeakRow.mislead)
    transcript_right: RateResult       # P(transcript side = gold): the critic's accuracy
    follows_transcript: RateResult     # P(prediction = transcript side)
    follows_gold: RateResult           # P(prediction = gold)
    follows_wrong_transcript: RateResult  # P(prediction = transcript side | transcript side != gold)


class Audit(BaseModel):
    """What the run can be expected to show, measured before any student trains
    (w2s_run/report/audit.py): the capability gap and error similarity on the transfer
    split, and how the weak judges follow their transcripts; `expectation` says what the
    literature leads one to expect under these conditions, never a result."""
    split: Literal["transfer"] = "transfer"
    n: int                             # transfer samples
    ceiling: str                       # how the ceiling's transfer predictions were made
    ceiling_accuracy: float
    ceiling_acc_ci: list[float]
    gaps: list[AuditGap]
    capa: list[AuditCapa]
    sensitivity: list[AuditSensitivity]
    expectation: list[str]


class Report(BaseModel):
    """One draw's results. A run with `replicates` > 1 writes a Report whose own fields are
    replicate 0's draw (what a one-draw reader has always read), `replicates` every
    draw's Report (replicate 0 included), `pooled` every comparison pooled over them and
    `pooled_pgr` every student's PGR pooled over them; a one-draw run leaves them empty."""
    model_config = ConfigDict(extra="forbid")
    schema_version: int = SCHEMA_VERSION
    run: str
    n_test: int
    reference: str                     # the plain weak labeller every PGR is measured against
    weak_accuracy: float
    ceiling_accuracy: float
    pgr_defined: bool
    gap: GapResult                     # ceiling - weak, paired interval; PGR means something only if significant
    rows: list[Row]
    comparisons: list[Comparison] = []
    warnings: list[str] = []
    meta: RunMeta | None = None
    per_sample: PerSample | None = None  # None in reports written before it existed
    replicates: list["Report"] = []
    pooled: list[PooledComparison] | None = None
    pooled_pgr: list[PooledPGRRow] | None = None
    # the audit printed before any student trained (replicate 0's in a pooled report); None in
    # older reports and in reports built without one
    audit: Audit | None = None
    # {path under the run folder: sha256} of each file it was built from (weak members' and
    # students' results, labellers' outputs): run.py verify checks them. Empty in older reports.
    inputs: dict[str, str] = {}

    def weak_rows(self) -> list[WeakRow]:
        return [r for r in self.rows if isinstance(r, WeakRow)]

    def student_rows(self) -> list[StudentRow]:
        return [r for r in self.rows if isinstance(r, StudentRow)]

    def ceiling_row(self) -> CeilingRow:
        return next(r for r in self.rows if isinstance(r, CeilingRow))

    def control_of(self, labeller: str) -> ControlSpec | None:
        """The control a labeller is, or None for a method (or a name not in the rows)."""
        return next((r.control for r in self.weak_rows() if r.name == labeller), None)

    def mislead_of(self, labeller: str) -> float | None:
        """debate.mislead's rate where the labeller reads real debates told to mislead, else None."""
        return next((r.mislead for r in self.weak_rows() if r.name == labeller), None)

    def deceptive_rows(self) -> list[WeakRow]:
        """The labellers reading debates with deliberate deception, by rate: the scripted
        deceptive control's (debate/controls.py), then real debates told to mislead
        (debate.mislead): the doses of the report's dose-response."""
        rows = [r for r in self.weak_rows() if r.control and r.control.kind == ControlKind.DECEPTIVE]
        real = [r for r in self.weak_rows() if r.mislead is not None]
        return sorted(rows, key=lambda r: r.control.rate) + sorted(real, key=lambda r: r.mislead)


class ReportError(ValueError):
    """A report.json that is missing, unreadable or of another schema version."""


def read_report(layout: RunLayout) -> Report:
    """The run's report.json, checked to be of this build's schema version."""
    f = layout.report_json
    if not f.exists():
        raise ReportError(f"no report at {f}: run the pipeline for {layout.root} first")
    data = json.loads(f.read_text())
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ReportError(f"{f} has report schema version {data.get('schema_version')}, this build "
                          f"reads {SCHEMA_VERSION}: rerun the run (finished stages are cached) to rewrite it")
    return Report.model_validate(data)
