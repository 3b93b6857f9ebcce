"""The report room: scoring every labeller and student (scoring.py) into a typed,
versioned Report (model.py), its markdown table and run comparison (render.py),
the bar plot (plot.py) and the transcript viewer (viewer.py)."""
from __future__ import annotations

from pathlib import Path

from w2s_base.runfolder.jsonl import save_json, write_text_atomic
from w2s_base.runfolder.layout import RunLayout

from w2s_run.report.model import Report, ReportError, read_report
from w2s_run.report.plot import plot_report
from w2s_run.report.render import render_table


def write_report(report: Report, layout: RunLayout) -> Path:
    save_json(layout.report_json, report.model_dump(mode="json"))
    write_text_atomic(layout.report_md, render_table(report))
    plot_report(report, layout.report_png)
    return layout.report_json


__all__ = ["Report", "ReportError", "read_report", "write_report"]
