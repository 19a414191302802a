"""The HTML report: one self-contained file for one run or several, read from the store.

Everything is inside the file: the style sheet, about forty lines of script (sortable
tables), the data (also as JSON, for programs) and the charts (inline SVG). It loads
nothing: a Content-Security-Policy of `default-src 'none'` makes the browser refuse any
fetch, so it reads the same from `file://` on a machine with no network as anywhere.
Beside it go the runs' raw samples as CSV and JSON (`protolab/store/export.py`); the
report links them, and the run's captures, by relative paths.

The numbers are the ones `protolab results show` and `results compare` print, computed
the same way from the same stored records (`core.latency.phases`, `core.stats.summarize`
with seed 0, `store.compare_runs`).

The parts: html_data.py gathers a run from the store (its cells' rows, verdicts, charts
from html_charts.py); html_run.py renders a run's section and html_compare.py the
comparison, from html_markup.py's cells and tables; html_json.py is the data for
programs; html_page.py the style sheet and script. This module writes the document.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from protolab.report.html_compare import comparison_html
from protolab.report.html_data import CellRow, Comparison, RunSection, gather_section
from protolab.report.html_json import report_json
from protolab.report.html_markup import esc
from protolab.report.html_page import PAGE_SCRIPT, PAGE_STYLE
from protolab.report.html_run import section_html
from protolab.store import ResultsStore, compare_runs, export_run, host_warning
from protolab.store.export import write_file

__all__ = ["CellRow", "Comparison", "RunSection", "render", "write_report"]


def write_report(
    store: ResultsStore, runs: Sequence[int], out: Path, *, baseline: int | None = None,
    run_dirs: Mapping[int, Path] | None = None,
) -> list[Path]:
    """Write the report of `runs` (and `baseline`, compared with each) to `out`, with each
    run's CSV and JSON export beside it; returns every file written, the report first.
    A run id the store does not hold is a StoreError before anything is written."""
    order = list(dict.fromkeys([*([baseline] if baseline is not None else []), *runs]))
    infos = {run: store.run(run) for run in order}  # unknown ids fail here, first
    written: list[Path] = []
    sections = []
    for run in order:
        section = gather_section(store, infos[run], out.parent, (run_dirs or {}).get(run))
        for fmt in ("csv", "json"):
            path = out.parent / f"run-{run}.{fmt}"
            export_run(store, run, "csv" if fmt == "csv" else "json", path)
            section.exports[fmt] = path.name
            written.append(path)
        sections.append(section)
    base = baseline if baseline is not None else order[0]
    comparisons = [Comparison(base, run, compare_runs(store, base, run),
                              host_warning(store, base, run))
                   for run in order if run != base]
    write_file(out, render(sections, comparisons, store_path=store.path))
    return [out, *written]

def render(sections: Sequence[RunSection], comparisons: Sequence[Comparison], *,
           store_path: Path | None = None, now: datetime | None = None) -> str:
    """The whole HTML document."""
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    names = ", ".join(f"run {s.info.id} ({s.info.suite})" for s in sections)
    nav = "".join(f'<li><a href="#run-{s.info.id}">run {s.info.id}: {esc(s.info.suite)}</a></li>'
                  for s in sections)
    if comparisons:
        nav += '<li><a href="#compare">comparison</a></li>'
    warnings = [(f"run {c.b} vs run {c.a}: ", c.host_warning) for c in comparisons
                if c.host_warning] + [(f"run {s.info.id}: ", s.host_warning) for s in sections
                                      if s.host_warning]
    warning_html = "".join(f'<p class="warning host-warning">{esc(where + text)}</p>'
                           for where, text in warnings)
    body = [f"<header><h1>protolab report: {esc(names)}</h1>"
            f"<p class=\"meta\">written {stamp}"
            + (f" from {esc(store_path)}" if store_path is not None else "")
            + ". Everything is in this one file; it loads nothing from the network.</p>"
            f"<nav><ul>{nav}</ul></nav>{warning_html}</header>", "<main>"]
    if comparisons:
        body.append(comparison_html(sections, comparisons))
    body += [section_html(s) for s in sections]
    body.append("</main>")
    data = json.dumps(report_json(sections, comparisons), default=str).replace("</", "<\\/")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
        f"<title>protolab report: {esc(names)}</title><style>{PAGE_STYLE}</style></head>"
        f"<body>{''.join(body)}"
        f'<script type="application/json" id="report-data">{data}</script>'
        f"<script>{PAGE_SCRIPT}</script></body></html>\n")
