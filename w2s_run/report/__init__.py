"""The report room: scoring every labeller and student (scoring.py) into a typed,
versioned Report (model.py), its markdown table and run comparison (render.py),
the bar plot (plot.py) and the transcript viewer (viewer.py)."""
from __future__ import annotations

import json
from pathlib import Path

from w2s_base.runfolder.jsonl import save_json, write_text_atomic
from w2s_base.runfolder.layout import RunLayout

from w2s_run.report.model import SCHEMA_VERSION, Report
from w2s_run.report.plot import plot_report
from w2s_run.report.render import render_table


class ReportError(ValueError):
    """A report.json that is missing, unreadable or of another schema version."""


def write_report(report: Report, layout: RunLayout) -> Path:
    save_json(layout.report_json, report.model_dump(mode="json"))
    write_text_atomic(layout.report_md, render_table(report))
    plot_report(report, layout.report_png)
    return layout.report_json


def read_report(layout: RunLayout) -> Report:
    f = layout.report_json
    if not f.exists():
        raise ReportError(f"no report at {f}: run the pipeline for {layout.root} first")
    data = json.loads(f.read_text())
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ReportError(f"{f} has report schema version {data.get('schema_version')}, this build "
                          f"reads {SCHEMA_VERSION}: rerun the run (finished stages are cached) to rewrite it")
    return Report.model_validate(data)
