"""The pipeline, top to bottom, in the order it really runs:

    data -> weak reference (only for market-making) -> debates -> weak labellers
         -> audit (an out-of-fold ceiling on transfer; logged before any student trains)
         -> strong students and ceiling -> report

Each stage reads typed inputs and leaves its outputs in the run folder
(w2s_base/runfolder/layout.py), where a rerun finds them: finished transcripts, members and
students are reused as long as the settings that produced them are unchanged.
`run.py` parses the command line and calls `run_pipeline`.
"""
from __future__ import annotations

import json
import resource
import time
from contextlib import contextmanager

from w2s_base import console
from w2s_base.backend_specs import backend_spec
from w2s_base.training import distributed as dist
from w2s_base.config import ControlKind, RunConfig
from w2s_base.decision import predicted_label
from w2s_base.runfolder import faults
from w2s_base.runfolder.environment import environment
from w2s_base.runfolder.jsonl import JsonlWriter, save_json, writable, write_text_atomic
from w2s_base.runfolder.layout import RunLayout
from w2s_run.errors import StageFailed  # noqa: F401  (raised here; its home is torch-free)
from w2s_base.runfolder.stage_cache import file_sha256
from w2s_run.services.preflight import preflight
from w2s_base.protocols import protocol as protocol_spec
from w2s_base.runfolder.runlock import RunLock, describe, write_config_of_record
from w2s_run.services.tracking import Tracker, record_stage, report_rows
from data.dedupe import dedupe_samples
from data.fit import FitResult, fit_samples, make_reader
from data.schema import Sample
from data.source import samples_for
from data.splits import Splits, make_splits
from debate.quotes import QuoteTally
from debate.transcript import Transcript
from w2s_run.report import write_report
from w2s_run.report.audit import build_audit
from w2s_run.report.model import Audit, Report, RunMeta
from w2s_run.report.render import gold_side_line, render_audit, render_summary, render_table
from w2s_run.report.scoring import build_report, pool_reports
from strong.stage import CEILING_FOLDS, ceiling_out_of_fold, ceiling_out_of_fold_path, run_strong, strong_trainer
from weak.inputs import weak_view
from weak.stage import MemberTrainer, quote_grades, run_weak, write_quote_grades

Transcripts = dict[str, dict[tuple[str, int], Transcript]]  # {source: {(sample id, k): transcript}}; a source is a protocol or a control tag


class StageClock:
    """Wall time and the process's peak RSS (MB) at the end of each stage."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.peak_rss_mb: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        t = time.perf_counter()
        with console.stage(name):  # library notes read "[weak] ..."
            yield
        self.seconds[name] = round(time.perf_counter() - t, 1)
        self.peak_rss_mb[name] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def log(*args) -> None:
    if dist.is_main():  # under a multi-process launcher, one process speaks
        console.info(*args)  # not with --quiet


# ---------------------------------------------------------------- the stages
def fit_to_readers(cfg: RunConfig, samples: list[Sample]) -> FitResult:
    """Over-long texts, handled before splitting, by ONE rule that does not depend on
    which labellers this invocation trains (so `--no-debate`, a debate run and a run
    with fewer labellers get the same pool and the same test set):

    - readers: `weak.model` and every model any entry of `weak.labellers` names
      (trained now or not), each at `weak.train.max_length`, and `strong.model` at
      `strong.train.max_length`; with `data.fit_also` (a sweep's pairs), their weak and
      strong models likewise;
    - every weak reader always keeps `weak.transcript_reserve` tokens free (at most
      half its context: the sample must fit too), whether or not a labeller of this
      run reads a transcript;
    - a weak reader is measured on what it reads: with `weak.sees: without_passage`,
      the question and candidate without the passage (weak/inputs.py weak_view)."""
    w, s = cfg.weak, cfg.strong
    also = cfg.data.fit_also  # a sweep's other pairs: every pair draws the same pool
    weak_models = list(dict.fromkeys([w.model] + [m for lab in w.labellers for m in lab.models or []]
                                     + [p.weak for p in also]))
    names = [f"weak {m}" for m in weak_models]
    readers = [make_reader(n, w.train.max_length, m, cfg.trust_remote_code) for n, m in zip(names, weak_models)]
    readers += [make_reader(f"strong {m}", s.train.max_length, m, cfg.trust_remote_code)
                for m in dict.fromkeys([s.model] + [p.strong for p in also])]
    reserve = min(w.transcript_reserve, w.train.max_length // 2)
    views = {} if w.sees == "all" else dict.fromkeys(names, lambda x: weak_view(x, w.sees))
    return fit_samples(samples, readers, cfg.data.overlong, dict.fromkeys(names, reserve), views)


def prepare_data(cfg: RunConfig, layout: RunLayout) -> tuple[Splits, FitResult]:
    """The pool (over-long texts fitted, then duplicate texts removed: data/dedupe.py)
    split into weak_train / transfer / test; the returned FitResult carries the
    dedupe counts (`dedupe`), so the report's data summary holds both."""
    d = cfg.data
    fit = fit_to_readers(cfg, samples_for(d))
    if fit.n_overlong:
        log(f"[data] {fit.n_overlong} of {fit.n_in} texts are longer than a model reads "
            f"({', '.join(f'{n}: {r.n_overlong}' for n, r in fit.readers.items())}): "
            f"{d.overlong} ({fit.n_dropped} dropped, {fit.n_cut} cut)")
    # After fitting: the texts the models read are the ones that must not repeat
    # (a middle cut can make two long texts alike).
    dd = dedupe_samples(fit.samples)
    if dd.n_duplicates or dd.n_conflicting:
        log(f"[data] duplicate texts (same after normalising case, spacing and surrounding "
            f"punctuation): {dd.n_duplicates} copies dropped, {dd.n_conflicting} samples of "
            f"{dd.n_conflicting_texts} texts with conflicting labels dropped; {dd.n_out} of {dd.n_in} kept")
    fit = fit.model_copy(update={"samples": dd.samples, "dedupe": dd.summary()})
    splits = make_splits(fit.samples, d.n_weak_train, d.n_transfer, d.n_test, d.seed, d.balance)
    write_splits(splits, layout)
    log(f"[data] {d.task}: weak_train {len(splits.weak_train)}, transfer {len(splits.transfer)}, "
        f"test {len(splits.test)}")
    return splits, fit


def write_splits(splits: Splits, layout: RunLayout) -> None:
    if dist.is_main() and writable():  # not under run.py verify, which recomputes them to compare
        write_text_atomic(layout.splits, json.dumps({k: [s.id for s in getattr(splits, k)]
                                                     for k in ("weak_train", "transfer", "test")}))


def place_against_reference(cfg: RunConfig, splits: Splits, weak: MemberTrainer) -> dict[str, int]:
    """Market-making's sides: for every sample, the label the plain weak model
    (weak.reference) did NOT pick. On transfer and test that is the reference
    labeller (trained, or loaded, first); on weak_train, where the reference was
    trained on the labels, out-of-fold predictions of its first model and seed."""
    ref_cfg = next(lab for lab in cfg.weak.labellers if lab.name == cfg.weak.reference)
    ref = run_weak(cfg, weak, {}, only=[cfg.weak.reference])[cfg.weak.reference]
    oof = weak.out_of_fold((ref_cfg.models or [cfg.weak.model])[0], ref_cfg.seeds[0], cfg.weak.placement_folds)
    p1 = {**oof, **ref.transfer_p1, **ref.test_p1}
    return {s.id: 1 - predicted_label(p1[s.id]) for s in splits.all()}  # a tie: the reference picked 0


SPLITS = ("weak_train", "transfer", "test")


def consultant_gold_side(cfg: RunConfig, splits: Splits, transcripts: Transcripts) -> dict[str, dict[str, float]]:
    """Per protocol placed against the reference (market-making), per split: the share of
    its transcripts whose consultant argues the gold label. The placements differ by
    split (place_against_reference: out-of-fold models on weak_train, the reference
    trained on all of weak_train on transfer and test), so the consultant may argue the
    gold side at another rate in the labels the weak model learns from than in those it
    is scored on; the report shows both."""
    out = {}
    for protocol in cfg.debates_needed():
        if protocol not in transcripts or not protocol_spec(protocol).needs_reference:
            continue
        split_of = {s.id: name for name in SPLITS for s in getattr(splits, name)}
        argued: dict[str, list[bool]] = {name: [] for name in SPLITS}
        for t in transcripts[protocol].values():
            argued[split_of[t.sample_id]].append(t.a_label == t.gold_label)
        out[protocol] = {name: sum(v) / len(v) for name, v in argued.items() if v}
    return out


def placements(cfg: RunConfig, splits: Splits, weak: MemberTrainer) -> dict[str, dict[str, int]]:
    """{protocol: side A's label per sample} of the protocols placed against the reference
    (trained first, so that no weak base is loaded beside the debater)."""
    out = {p: place_against_reference(cfg, splits, weak)
           for p in cfg.debates_needed() if protocol_spec(p).needs_reference}
    weak.release()  # the reference's weak base is done: free it before the debater loads
    return out


def shared_backend(cfg: RunConfig):
    """The debater, loaded on first use and shared by every replicate's debates (each
    replicate's sampling seeds travel with its requests)."""
    from debate.backends import make_backend
    loaded = []

    def backend():
        if not loaded:
            loaded.append(make_backend(cfg.debate))
        return loaded[0]
    return backend


def generate_transcripts(cfg: RunConfig, splits: Splits, layout: RunLayout, placed: dict[str, dict[str, int]],
                         backend_factory) -> Transcripts:
    """Every transcript the labellers read: per protocol, K per sample (the largest
    `debates` a labeller of that protocol asks for); `placed` from `placements`."""
    from debate.controls import deceptive_control, positive_control, shuffled_control
    from debate.engine import DebateRunner, store_missing

    need = cfg.debates_needed()
    samples: list[Sample] = splits.all()
    runner = DebateRunner(cfg.debate, layout.transcripts, backend_factory, tuple(need))
    backend = backend_spec(cfg.debate.backend)
    out: Transcripts = {}
    # debate.mislead tells no debater to mislead where the weak judge trains against gold
    # (as the scripted deceptive control: debate/controls.py says why)
    honest = frozenset(s.id for s in splits.weak_train)
    for protocol, k in need.items():
        fixed = placed.get(protocol)
        if dist.world() > 1 and backend.in_process_engine and runner.missing(samples, protocol, k, fixed, honest):
            raise StageFailed("an in-process vLLM engine cannot start inside a multi-process launch: "
                              "generate the debates first with `python run.py --until debate ...`, "
                              "then launch the training")
        with dist.main_first():  # the main process generates; the others then read the store
            out[protocol] = runner.run(samples, protocol, k, fixed_a_labels=fixed, honest=honest)
        if cfg.debate.mislead is not None:
            told = sum(bool(t.deceptive) for t in out[protocol].values())
            log(f"[debate] [CONTROL] debate.mislead: {protocol}: the wrong side was told to mislead in {told} "
                f"of {len(out[protocol])} debates (rate {cfg.debate.mislead.rate:g} of transfer and test)")
        missing = len(samples) * k - len(out[protocol])
        if missing:
            raise StageFailed(f"{missing} {protocol} transcripts failed; rerun to retry them "
                              "(finished ones are kept)")
        for rates in consultant_gold_side(cfg, splits, {protocol: out[protocol]}).values():
            log(f"[debate] {gold_side_line(protocol, rates)}")
    for tag, (spec, k) in cfg.controls_needed().items():  # calibration, never a method's result
        if spec.kind == ControlKind.POSITIVE:
            out[tag] = positive_control(samples, k, spec.reliability, cfg.debate.seed,
                                        protocol_spec(spec.protocol).num_turns(cfg.debate))
        elif spec.kind == ControlKind.DECEPTIVE:  # honest where the weak judge trains against gold
            out[tag] = deceptive_control(samples, k, spec.rate, cfg.debate.seed,
                                         protocol_spec(spec.protocol).num_turns(cfg.debate),
                                         honest={s.id for s in splits.weak_train})
        else:
            out[tag] = shuffled_control(samples, out[spec.of], cfg.debate.seed)
        if dist.is_main() and writable():  # stored for the viewer; made in-process on every run
            store_missing(layout.transcripts, list(out[tag].values()))
        log(f"[control] {tag}: {len(out[tag])} transcripts")
    return out


def run_pipeline(cfg: RunConfig, until: str | None = None) -> Report | None:
    """The whole run; `until` stops after that stage ("debate", "weak", "audit", "strong")."""
    preflight(cfg, until)  # every model, file and folder the run needs, before anything loads
    if dist.device().type == "cuda":  # refuse a config whose training cannot fit, before the spend
        from w2s_run.services.plan import plan
        plan(cfg)
    layout = cfg.layout
    # One run per folder (a second is refused, naming this one); the other ranks of a
    # multi-process launch belong to this run and take no lock.
    # An OS fault inside the run folder, from wherever it comes (the stores raise it
    # themselves; a library saving weights does not), ends the run as one line.
    with faults.under(layout.root), RunLock(layout.root, enabled=dist.is_main()) as lock:
        if lock.stale:
            log(f"[run] the last run here ({describe(lock.stale)}) was killed; resuming its work")
        env = environment()
        if dist.is_main():
            write_config_of_record(cfg, layout)
            save_json(layout.environment, env)
        return _run_stages(cfg, layout, until, env)


class Draw:
    """One replicate of the run: its config (seeds), its own files, and what its stages made."""

    def __init__(self, cfg: RunConfig, r: int):
        self.r, self.cfg, self.layout = r, cfg.for_replicate(r), cfg.replicate_layout(r)
        self.name = f"replicate {r + 1} of {cfg.replicates}" if cfg.replicates > 1 else ""
        self.splits: Splits
        self.fit: FitResult
        self.weak: MemberTrainer
        self.transcripts: Transcripts = {}
        self.labellers: dict = {}
        self.quotes: dict[str, QuoteTally] = {}  # {source: its quotes' grades counted} (weak.verify_quotes)
        self.students: dict = {}
        self.audit: Audit | None = None
        self.strong = None  # the strong model's trainer, made by the audit and used by the students

    def say(self, what: str) -> None:
        """Names the replicate and its seeds before its share of a stage (silent for one draw)."""
        if self.name:
            c = self.cfg
            log(f"[{self.name}] {what}: debate.seed {c.debate.seed}, weak seeds "
                f"{sorted({x for lab in c.weak.labellers for x in lab.seeds})}, strong seeds {c.strong.seeds}"
                + (f", data.seed {c.data.seed}" if c.replicate_splits else ""))


def _run_stages(cfg: RunConfig, layout: RunLayout, until: str | None, env: dict) -> Report | None:
    """Stage-major over the replicates: every replicate's data, then every replicate's
    debates (one debater), weak labellers, students; each replicate reuses what the
    content-addressed stores hold for its own seeds."""
    clock = StageClock()
    tracker = Tracker().start(cfg)  # tracking.backend none: does nothing
    draws = [Draw(cfg, r) for r in range(cfg.replicates)]
    with clock.stage("data"):
        for d in draws:
            if d.r == 0 or cfg.replicate_splits:
                d.say("data")
                d.splits, d.fit = prepare_data(d.cfg, d.layout)
            else:  # the same split: one fit and one draw of the split serve every replicate
                d.splits, d.fit = draws[0].splits, draws[0].fit
                write_splits(d.splits, d.layout)
            d.weak = MemberTrainer(d.cfg, d.splits, d.layout)
    if cfg.debates_needed() or cfg.controls_needed():
        with clock.stage("debate"):
            # every replicate's placements before the debater loads, then its debates
            placed = [placements(d.cfg, d.splits, d.weak) for d in draws]
            backend = shared_backend(cfg)
            for d, p in zip(draws, placed):
                d.say("debates")
                d.transcripts = generate_transcripts(d.cfg, d.splits, d.layout, p, backend)
    if until == "debate":
        return _stopped("debate", draws)
    with clock.stage("weak"):
        for d in draws:
            d.say("weak labellers")
            d.labellers = run_weak(d.cfg, d.weak, d.transcripts)
            grades = quote_grades(d.cfg, d.splits, d.transcripts)
            if dist.is_main() and writable():  # not under run.py verify, which only reads
                write_quote_grades(d.layout.quote_grades, grades)
            d.quotes = {source: QuoteTally.of(records, d.cfg.weak.fuzzy_quote_threshold)
                        for source, records in grades.items()}
            d.weak.release()  # free the weak base before the next one (and the strong model) loads
    if dist.is_main():
        record_stage(tracker, layout.root, "weak", {f"{_prefix(d)}{k}": v for d in draws
                                                     for k, v in d.weak.histories.items()}, cfg.weak.train,
                     {f"{_prefix(d)}{k}": v for d in draws for k, v in d.weak.eval_histories.items()})
    if until == "weak":
        return _stopped("weak", draws)
    with clock.stage("audit"):  # before any student trains
        for d in draws:
            d.say("audit")
            d.strong = strong_trainer(d.cfg)
            d.audit = run_audit(d)
    if until == "audit":  # the audit printed, no student trained (a rerun reuses the folds)
        return _stopped("audit", draws)
    with clock.stage("strong"):
        strong_curves: dict[str, list[float]] = {}
        strong_evals: dict[str, list[dict]] = {}
        for d in draws:
            d.say("students")
            curves: dict[str, list[float]] = {}
            evals: dict[str, list[dict]] = {}
            d.students = run_strong(d.cfg, d.splits, d.labellers, d.layout, histories=curves,
                                    eval_histories=evals, trainer=d.strong)
            strong_curves.update({f"{_prefix(d)}{k}": v for k, v in curves.items()})
            strong_evals.update({f"{_prefix(d)}{k}": v for k, v in evals.items()})
    if dist.is_main():
        record_stage(tracker, layout.root, "strong", strong_curves, cfg.strong.train, strong_evals)
    if not dist.is_main():
        return None
    transcripts = any(d.transcripts for d in draws)
    meta = RunMeta(task=cfg.data.task, weak_model=cfg.weak.model, strong_model=cfg.strong.model,
                   debate=cfg.debate.model_dump(mode="json") if transcripts else None, fit=draws[0].fit.summary(),
                   seconds=clock.seconds, peak_rss_mb_after=clock.peak_rss_mb,
                   environment=env)
    reports = [build_report(cfg.name, d.splits, d.labellers, d.students, cfg.weak.reference,
                            meta.model_copy(update={
                                "fit": d.fit.summary(),
                                "consultant_gold_side": consultant_gold_side(d.cfg, d.splits, d.transcripts),
                                "quotes": d.quotes,
                                **({"debate": d.cfg.debate.model_dump(mode="json")} if transcripts else {})}))
               for d in draws]
    reports = [rep.model_copy(update={"inputs": report_inputs(d), "audit": d.audit}) for d, rep in zip(draws, reports)]
    if len(draws) > 1:
        for d, rep in zip(draws, reports):
            write_report(rep, d.layout)
        report = pool_reports(reports, [(d.splits, d.labellers, d.students) for d in draws])
        report = report.model_copy(update={"inputs": {k: v for rep in reports for k, v in rep.inputs.items()}})
    else:
        report = reports[0]
    path = write_report(report, layout)
    tracker.log_table(report_rows(report))
    tracker.finish()
    # report.json holds this invocation's times (seconds when everything was cached);
    # the log keeps every invocation's, so the cold run's cost stays on record.
    with JsonlWriter(layout.timings) as f:
        f.write({"finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "seconds": clock.seconds,
                 "peak_rss_mb_after": clock.peak_rss_mb})
    # --quiet: the final table alone (README: "only errors and the final table")
    print(render_summary(report) if console.verbosity() == "quiet" else render_table(report))
    if transcripts:
        from w2s_run.report.viewer import write_viewer
        console.info(f"[view] debates: {write_viewer(draws[0].layout)}")
    console.info(f"[report] {path}")
    return report


def run_audit(d: Draw) -> Audit:
    """The audit of one draw (w2s_run/report/audit.py), logged before its students train:
    the out-of-fold ceiling on transfer first (cached), then the measurements."""
    c = d.cfg
    ceiling_p1 = ceiling_out_of_fold(c, d.splits, d.layout, d.strong)
    transcripts = {lab.name: d.transcripts[lab.source.key] for lab in c.labellers
                   if lab.name in d.labellers and lab.source.reads_transcripts}
    audit = build_audit(d.splits, d.labellers, ceiling_p1, transcripts, c.weak.reference,
                        f"out of fold on transfer ({CEILING_FOLDS} folds, strong seed {c.strong.seeds[0]}; each "
                        f"sample predicted by a ceiling trained on the other folds' gold labels)")
    for line in render_audit(audit):
        if line:
            log(f"[audit] {line}")
    return audit


def _stopped(stage: str, draws: list[Draw]) -> None:
    """An `--until` run's last words: what the stages made and where (printed also
    with --quiet: it is this run's final table); the CLI adds the next command."""
    if not dist.is_main():
        return None
    if stage == "debate":
        store = draws[0].layout.transcripts  # one store serves every replicate
        made = {source: sum(len(d.transcripts.get(source, {})) for d in draws)
                for source in dict.fromkeys(s for d in draws for s in d.transcripts)}
        what = ", ".join(f"{source} {n}" for source, n in made.items()) or "none (no labeller reads a debate)"
        print(f"[until debate] transcripts: {what}; stored in {store}")
    elif stage == "audit":
        for d in draws:
            a, where = d.audit, ceiling_out_of_fold_path(d.layout, d.cfg.strong.seeds[0], 0).parent.parent
            if console.verbosity() == "quiet":  # the audit is this run's final table (run_audit logged it otherwise)
                print("\n".join(render_audit(a)).strip())
            print(f"[until audit] {d.name + ': ' if d.name else ''}audit of {a.n} transfer samples: ceiling "
                  f"{100 * a.ceiling_accuracy:.1f} % out of fold ({CEILING_FOLDS} folds in {where}/), "
                  f"{len(a.gaps)} labellers' gaps, {len(a.capa)} CAPA pairs, {len(a.sensitivity)} judges' "
                  "sensitivity; no student trained")
    else:
        for d in draws:
            labs = ", ".join(f"{name} ({len(lab.transfer_p1)} transfer labels, {len(lab.test_p1)} test "
                             "predictions)" for name, lab in d.labellers.items())
            where = d.layout.draw_root / "weak"
            print(f"[until weak] {d.name + ': ' if d.name else ''}weak labellers: {labs or 'none'}; in {where}/")
    return None
def report_inputs(d: Draw) -> dict[str, str]:
    """{path under the run folder: sha256} of every file a draw's report is built from:
    its weak members' and students' results and its labellers' outputs (run.py verify
    checks them against these)."""
    lay = d.layout
    files = sorted(d.weak.results) + [p for name in d.labellers for p in (lay.labeller_json(name), lay.labels(name))]
    files += [lay.student(k.folder, k.seed) / "result.json" for k in d.students]
    files += [ceiling_out_of_fold_path(lay, d.cfg.strong.seeds[0], f) for f in range(CEILING_FOLDS)] if d.audit else []
    return {str(f.relative_to(lay.root)): file_sha256(f) for f in files if f.exists()}


def _prefix(d: Draw) -> str:
    """A training curve's name prefix: none for replicate 0 (the run itself), r<r>/ otherwise."""
    return f"r{d.r}/" if d.r else ""
