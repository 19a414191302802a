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
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from protolab.bench.claims import Claim, Side
from protolab.core.latency import phases
from protolab.core.record import RequestRecord
from protolab.core.stats import Summary, summarize
from protolab.report.html_charts import Chart, run_charts
from protolab.report.html_page import PAGE_SCRIPT, PAGE_STYLE
from protolab.store import (
    CellComparison,
    CellInfo,
    Metric,
    ResultsStore,
    RunInfo,
    TaskRun,
    compare_runs,
    export_run,
    host_warning,
)
from protolab.store.export import write_file


@dataclass(frozen=True)
class CellRow:
    """One cell as the report shows it: the numbers `results show` prints, and more."""

    index: int
    label: str
    variant: dict[str, Any]
    link: dict[str, str]
    status: str
    error: str | None
    ok: int
    failed: int
    errors: dict[str, int]  # error name -> failed requests
    ttfb: Summary | None
    total: Summary | None
    ttfb_rtts: float | None
    goodput_mbps: float | None
    cpu: dict[str, float | None]
    saturated: bool
    # The CPU-bound parts (client, server, forwarder); empty with `saturated` when the
    # store predates recording them.
    saturated_parts: tuple[str, ...]
    notes: tuple[str, ...]
    hosts: str = ""  # the machines its repetitions ran on ("lab-a", "lab-a ×2, lab-b ×1")


@dataclass
class RunSection:
    info: RunInfo
    cells: list[CellRow]
    verdicts: list[dict[str, Any]]
    charts: list[Chart] = field(default_factory=list)
    chart_notes: list[str] = field(default_factory=list)
    exports: dict[str, str] = field(default_factory=dict)  # format -> relative path
    captures: str | None = None  # relative path of the captures folder
    distributed: bool = False  # its repetitions ran on more than one host
    host_warning: str | None = None  # its cells ran on machines that differ (store.host_warning)


@dataclass(frozen=True)
class Comparison:
    a: int
    b: int
    rows: list[CellComparison]
    host_warning: str | None = None  # A's and B's cells ran on machines that differ


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
        section = _section(store, infos[run], out.parent, (run_dirs or {}).get(run))
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


def _section(store: ResultsStore, info: RunInfo, out_dir: Path, run_dir: Path | None,
             ) -> RunSection:
    cells = store.cells(info.id)
    measured = {c.index: store.samples(c.id) for c in cells}
    tasks = {c.index: store.cell_tasks(c.id) for c in cells}
    names = {t.host.get("hostname") for ts in tasks.values() for t in ts if t.host}
    distributed = len(names) > 1
    rows = [_cell_row(c, measured[c.index], store.metrics(c.id),
                      _hosts_words(tasks[c.index]) if distributed else "") for c in cells]
    captures = run_dir / "captures" if run_dir is not None else None
    if captures is not None and not captures.is_dir():
        captures = None
    section = RunSection(info, rows, store.verdicts(info.id), distributed=distributed,
                         host_warning=host_warning(store, info.id, info.id))
    section.charts, section.chart_notes = run_charts(store, info, cells, measured, captures,
                                                     prefix=f"r{info.id}")
    if captures is not None:
        section.captures = os.path.relpath(captures, out_dir)
    return section


def _hosts_words(tasks: Sequence[TaskRun]) -> str:
    """The machines that ran a cell's repetitions (each repetition's last attempt)."""
    last: dict[int, TaskRun] = {}
    for task in tasks:
        last[task.repetition] = task
    counts = Counter(str(t.host.get("hostname", "?")) if t.host else "?" for t in last.values())
    if len(counts) == 1:
        return next(iter(counts))
    return ", ".join(f"{name} ×{n}" for name, n in counts.most_common())


def _summary(records: Sequence[RequestRecord], phase: str) -> Summary | None:
    """As `results show` computes it: successful samples, the one latency origin, seed 0."""
    values = [v for v in (phases(r)[phase] for r in records if r.ok) if v is not None]
    return summarize(values, rng_seed=0) if values else None


def _cell_row(cell: CellInfo, records: list[RequestRecord], metrics: list[Metric],
              hosts: str = "") -> CellRow:
    values = {m.name: m.value for m in metrics}
    errors = Counter(r.error or "failed" for r in records if not r.ok)
    cpu: dict[str, float | None] = {"client": None, "server": None, "forwarder": None}
    if cell.cpu is not None:
        cpu = {"client": cell.cpu.client, "server": cell.cpu.server,
               "forwarder": cell.cpu.forwarder}
    saturated = bool(cell.cpu and cell.cpu.cpu_bound)
    parts = cell.cpu.saturated_parts if cell.cpu else ()
    notes = []
    if cell.status != "ok":
        notes.append(cell.status + (f": {cell.error}" if cell.error else ""))
    if errors:
        notes.append(f"{sum(errors.values())} failed: "
                     + ", ".join(f"{name} ×{n}" for name, n in errors.most_common()))
    if saturated:
        # The parts the runner measured above 0.9 CPU seconds per wall second.
        notes.append(f"CPU-bound ({', '.join(parts) if parts else 'which part: not recorded'})"
                     ": these numbers measure Python, not the protocol")
    if values.get("late_sends"):
        notes.append(f"{values['late_sends']:g} requests sent late (open load)")
    dropped = {k.removeprefix("link_").removesuffix("_dropped_loss"): v
               for k, v in values.items() if k.endswith("_dropped_loss") and v}
    for direction, n in dropped.items():
        notes.append(f"link dropped {n:g} {direction} packets (loss)")
    queue = values.get("link_down_dropped_queue", 0)
    if queue:
        notes.append(f"link dropped {queue:g} down packets (queue full)")
    unseen = values.get("link_down_unseen_drops", 0) + values.get("link_up_unseen_drops", 0)
    if unseen:
        notes.append(f"{unseen:g} drops in the TUN queue (the forwarder fell behind)")
    if values.get("namespace_cc_mismatch"):
        notes.append("namespace TCP default not as asked")
    variant = cell.params.get("variant")
    workload = cell.params.get("workload")
    fresh = isinstance(workload, dict) and bool(workload.get("fresh_connection"))
    return CellRow(
        index=cell.index, label=str(cell.params.get("label") or f"cell {cell.index}"),
        variant=dict(variant) if isinstance(variant, dict) else {},
        link={str(k): str(v) for k, v in (cell.params.get("link") or {}).items()},
        status=cell.status, error=cell.error, ok=sum(r.ok for r in records),
        failed=sum(not r.ok for r in records), errors=dict(errors),
        ttfb=_summary(records, "ttfb_ms"), total=_summary(records, "total_ms"),
        ttfb_rtts=values.get("ttfb_rtts"),
        # As bench's summary: a tiny GET per fresh connection has no meaningful goodput.
        goodput_mbps=None if fresh else values.get("goodput"),
        cpu=cpu, saturated=saturated, saturated_parts=tuple(parts), notes=tuple(notes),
        hosts=hosts)


# --- rendering ---------------------------------------------------------------------------


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _num(value: float | None, digits: int | None = None) -> tuple[str, str]:
    """(shown text, sort key) of a number; '-' and an empty key for none."""
    if value is None:
        return "-", ""
    if digits is None:
        digits = 1 if abs(value) >= 10 else 2
    return f"{value:.{digits}f}", repr(float(value))


def _td(text: str, key: str | None = None, cls: str = "") -> str:
    attrs = (f' data-v="{_e(key)}"' if key is not None else "") + (
        f' class="{cls}"' if cls else "")
    return f"<td{attrs}>{text}</td>"


def _num_td(value: float | None, digits: int | None = None, cls: str = "num") -> str:
    text, key = _num(value, digits)
    return _td(text, key, cls)


def _table(table_id: str, caption: str, headers: Sequence[tuple[str, str, str]],
           rows: Sequence[str]) -> str:
    """A sortable table; headers are (label, type num|text, tooltip)."""
    heads = "".join(
        f'<th scope="col" data-type="{kind}" title="{_e(tip or "click to sort")}">'
        f"{_e(label)}</th>" for label, kind, tip in headers)
    return (f'<div class="scroll"><table class="sortable" id="{table_id}">'
            f"<caption>{caption}</caption><thead><tr>{heads}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def render(sections: Sequence[RunSection], comparisons: Sequence[Comparison], *,
           store_path: Path | None = None, now: datetime | None = None) -> str:
    """The whole HTML document."""
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    names = ", ".join(f"run {s.info.id} ({s.info.suite})" for s in sections)
    nav = "".join(f'<li><a href="#run-{s.info.id}">run {s.info.id}: {_e(s.info.suite)}</a></li>'
                  for s in sections)
    if comparisons:
        nav += '<li><a href="#compare">comparison</a></li>'
    warnings = [(f"run {c.b} vs run {c.a}: ", c.host_warning) for c in comparisons
                if c.host_warning] + [(f"run {s.info.id}: ", s.host_warning) for s in sections
                                      if s.host_warning]
    warning_html = "".join(f'<p class="warning host-warning">{_e(where + text)}</p>'
                           for where, text in warnings)
    body = [f"<header><h1>protolab report: {_e(names)}</h1>"
            f"<p class=\"meta\">written {stamp}"
            + (f" from {_e(store_path)}" if store_path is not None else "")
            + ". Everything is in this one file; it loads nothing from the network.</p>"
            f"<nav><ul>{nav}</ul></nav>{warning_html}</header>", "<main>"]
    if comparisons:
        body.append(_comparison_html(sections, comparisons))
    body += [_section_html(s) for s in sections]
    body.append("</main>")
    data = json.dumps(_report_json(sections, comparisons), default=str).replace("</", "<\\/")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
        f"<title>protolab report: {_e(names)}</title><style>{PAGE_STYLE}</style></head>"
        f"<body>{''.join(body)}"
        f'<script type="application/json" id="report-data">{data}</script>'
        f"<script>{PAGE_SCRIPT}</script></body></html>\n")


def _section_html(s: RunSection) -> str:
    info = s.info
    rid = info.id
    parts = [f'<section class="run" id="run-{rid}"><h2>Run {rid}: {_e(info.suite)} '
             f'<span class="status status-{_e(info.status)}">{_e(info.status)}</span></h2>']
    files = [f'<a href="{_e(path)}">{_e(path)}</a> ({fmt.upper()}: '
             + ("one row per request, every timestamp and phase" if fmt == "csv" else
                "the whole run, nested: manifest, cells, metrics, samples") + ")"
             for fmt, path in s.exports.items()]
    if s.captures is not None:
        files.append(f'<a href="{_e(s.captures)}/">{_e(s.captures)}/</a> (per cell and '
                     "repetition: link.pcap and keylog.txt for Wireshark, qlog/ for qvis)")
    if files:
        parts.append("<p class=\"files\">Files: " + "; ".join(files) + ".</p>")
    parts.append(_manifest_html(s))
    parts.append(_verdicts_html(s))
    parts.append(_cells_html(s))
    parts.append(_charts_html(s))
    parts.append("</section>")
    return "".join(parts)


def _manifest_rows(info: RunInfo) -> list[tuple[str, str]]:
    m = info.manifest
    git = m.get("git") or {}
    revision = (str(git.get("note", "-")) if git.get("revision") is None else
                str(git["revision"]) + (" (with local changes)" if git.get("dirty") else ""))
    python = m.get("python") or {}
    kernel = m.get("kernel") or {}
    cpu = m.get("cpu") or {}
    rows = [
        ("suite", info.suite), ("status", info.status),
        ("started (UTC)", info.started_at.strftime("%Y-%m-%d %H:%M:%S")),
        ("ended (UTC)", info.ended_at.strftime("%Y-%m-%d %H:%M:%S") if info.ended_at else "-"),
        ("duration", "-" if info.duration_s is None else f"{info.duration_s:.1f} s"),
        ("cells ok / recorded", f"{info.cells_ok} / {info.cells}"),
        ("measured samples", str(info.samples)),
        ("protolab", str(m.get("lab_version", "?"))), ("git revision", revision),
        ("Python", " ".join(str(python.get(k, "")) for k in ("implementation", "version"))
         + (f" ({python['executable']})" if python.get("executable") else "")),
        ("kernel", " ".join(str(kernel.get(k, "")) for k in ("system", "release", "machine"))
         + (f" — {kernel['version']}" if kernel.get("version") else "")),
        ("host", str(m.get("host", "-"))),
        ("CPU", f"{cpu.get('model', '?')} × {cpu.get('count', '?')}"),
    ]
    rows += [(f"package {k}", str(v) if v else "not installed")
             for k, v in (m.get("packages") or {}).items()]
    rows += [(f"seed {k}", str(v)) for k, v in (m.get("seeds") or {}).items()]
    settings = dict(m.get("settings") or {})
    settings.pop("variants", None)
    rows += [(f"setting {k}", v) for k, v in _flatten(settings)]
    return rows


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        out = []
        for i, v in enumerate(value):
            out += _flatten(v, f"{prefix}[{i}]")
        return out or [(prefix, "[]")]
    text = json.dumps(value) if isinstance(value, list | bool) or value is None else str(value)
    return [(prefix, text)]


def _manifest_html(s: RunSection) -> str:
    rows = "".join(f"<tr><th scope=\"row\">{_e(k)}</th><td>{_e(v)}</td></tr>"
                   for k, v in _manifest_rows(s.info))
    variants = (s.info.manifest.get("settings") or {}).get("variants") or []
    table = (f'<details open><summary>Manifest: versions, machine, settings, seeds'
             f'</summary><div class="scroll"><table class="kv" id="manifest-{s.info.id}">'
             f"<tbody>{rows}</tbody></table></div>")
    if variants:
        keys = list(dict.fromkeys(k for v in [{"label": 0, "protocol": 0}, *variants]
                                  for k in v))
        heads = [(k, "text", "") for k in keys]
        body = ["<tr>" + "".join(_td(_e(json.dumps(v.get(k)) if not isinstance(v.get(k), str)
                                        else v.get(k))) for k in keys) + "</tr>"
                for v in variants]
        table += _table(f"variants-{s.info.id}", "Variants: every setting of every protocol "
                        "variant the run measured (windows in bytes)", heads, body)
    return table + "</details>"


def _claim(data: Mapping[str, Any]) -> Claim | None:
    try:
        fields = dict(data)
        fields["a"] = Side(**fields["a"])
        fields["b"] = Side(**fields["b"]) if fields.get("b") else None
        return Claim(**fields)
    except (TypeError, KeyError, ValueError):
        return None


def _verdicts_html(s: RunSection) -> str:
    rid = s.info.id
    if not s.verdicts:
        return (f'<h3 id="verdicts-{rid}-title">Claims and verdicts</h3><p>This run\'s suite '
                "declares no claims.</p>")
    rows = []
    counts = Counter(v["verdict"] for v in s.verdicts)
    for i, v in enumerate(s.verdicts):
        data = v.get("claim_json") or {}
        claim = _claim(data)
        try:
            predicted = claim.prediction() if claim else "-"
        except ValueError:
            predicted = "-"
        where = " ".join(f"{k}={val}" for k, val in (v.get("conditions") or {}).items()) or "-"
        unit = str(v.get("unit") or "")
        low, high = v.get("ci_low"), v.get("ci_high")
        ci = "-" if low is None or high is None else \
            f"{_num(low, 3)[0]} – {_num(high, 3)[0]}"
        n = f"{v.get('n_a', '-')}" + (f" / {v['n_b']}" if v.get("n_b") else "")
        word = str(v["verdict"])
        rows.append(
            f'<tr data-row="{i}">' + _td(_e(v["claim"]))
            + _td(_e(data.get("text", "")) + (f'<div class="note">{_e(v["note"])}</div>'
                                              if v.get("note") else ""))
            + _td(_e(predicted)) + _td(_e(where)) + _num_td(v.get("value"), 3)
            + _td(_e(ci), repr(float(low)) if low is not None else "", "num")
            + _td(_e(unit)) + _td(_e(n))
            + _td(f'<span class="verdict {word}">{_e(word)}</span>', word)
            + _td(_e(data.get("source", "-"))) + "</tr>")
    headers = [("claim", "text", "the claim's id in the suite file"),
               ("what the source says", "text", ""),
               ("predicted", "text", "the relation the measurement must satisfy"),
               ("where (link)", "text", "the link parameters this verdict was measured on"),
               ("measured", "num", "median, slope or ratio of medians, in the unit column"),
               ("95% CI", "num", "bootstrap confidence interval of the measured value"),
               ("unit", "text", "ms, RTT (per RTT for slopes), x (ratio A/B), bytes"),
               ("n (A / B)", "text", "samples on each side"),
               ("verdict", "text", ""), ("source", "text", "")]
    summary = ", ".join(f"{counts[w]} {w}" for w in ("holds", "refuted", "inconclusive")
                        if counts[w])
    caption = (f"{len(s.verdicts)} verdicts ({summary}). <b>holds</b>: the whole 95% CI lies "
               "where the claim says; <b>refuted</b>: it lies wholly on the other side; "
               "<b>inconclusive</b>: it straddles the line, so these samples cannot decide. "
               "Computed after the run from the stored raw samples (protolab/bench/claims.py)."
               " Click a column header to sort.")
    return (f'<h3 id="verdicts-{rid}-title">Claims and verdicts</h3>'
            + _table(f"verdicts-{rid}", caption, headers, rows))


def _cells_html(s: RunSection) -> str:
    rid = s.info.id
    links = [c.link for c in s.cells]
    keys = list(dict.fromkeys(k for link in links for k in link))
    swept = [k for k in keys if len({link.get(k, "-") for link in links}) > 1]
    shared = {k: v for k, v in (links[0].items() if links else ()) if k not in swept}
    profile = (s.info.manifest.get("settings") or {}).get("link", {}).get("profile", "")
    headers: list[tuple[str, str, str]] = [
        ("#", "num", "cell index"), ("variant", "text", "the variant's label in the suite")]
    headers += [(f"{k} ({_UNITS.get(k, 'as given')})", "text", f"link {k}, per cell")
                for k in swept]
    if s.distributed:
        headers.append(("host", "text", "the machine that ran the cell's repetitions "
                        "(the run was distributed)"))
    headers += [("status", "text", ""), ("ok", "num", "successful measured requests"),
                ("failed", "num", "failed measured requests")]
    for phase in ("TTFB", "total"):
        headers += [(f"{phase} p50 (ms)", "num", f"median {phase}"),
                    (f"{phase} p90 (ms)", "num", ""), (f"{phase} p99 (ms)", "num", ""),
                    (f"{phase} p99.9 (ms)", "num", ""),
                    (f"{phase} median 95% CI (ms)", "num",
                     "bootstrap 95% confidence interval of the median")]
    headers += [("TTFB (RTT)", "num", "median TTFB in link round trips"),
                ("goodput (Mbit/s)", "num", "body bits per second of a repetition, median"),
                ("CPU client (s)", "num", "CPU seconds of the client during the cell"),
                ("CPU server (s)", "num", ""), ("CPU forwarder (s)", "num",
                                                "the emulated link's forwarder"),
                ("notes", "text", "failures with their error, CPU saturation (which "
                 "part), drops")]
    rows = []
    for c in s.cells:
        settings = ", ".join(f"{k}={v}" for k, v in c.variant.items() if k != "label")
        cells = [_num_td(c.index, 0), f'<td title="{_e(settings)}">{_e(c.label)}</td>']
        cells += [_td(_e(c.link.get(k, "-")), _sort_text(c.link.get(k, ""))) for k in swept]
        if s.distributed:
            cells.append(_td(_e(c.hosts or "-"), cls="host"))
        cells += [_td(f'<span class="status status-{_e(c.status)}">{_e(c.status)}</span>',
                      c.status), _num_td(c.ok, 0),
                  _num_td(c.failed, 0, "num bad" if c.failed else "num")]
        for summary in (c.ttfb, c.total):
            for stat in ("p50", "p90", "p99", "p999"):
                cells.append(_num_td(getattr(summary, stat) if summary else None))
            if summary is None:
                cells.append(_td("-", "", "num"))
            else:
                low, high = summary.median_ci_low, summary.median_ci_high
                cells.append(_td(f"{_num(low)[0]} – {_num(high)[0]}", repr(float(low)), "num"))
        cells += [_num_td(c.ttfb_rtts), _num_td(c.goodput_mbps)]
        bound = c.saturated_parts or (("client", "server", "forwarder") if c.saturated else ())
        cells += [_num_td(c.cpu[part], 2, "num bad" if part in bound else "num")
                  for part in ("client", "server", "forwarder")]
        cells.append(_td(_e("; ".join(c.notes)), None, "notes bad" if
                         (c.failed or c.saturated or c.status != "ok") else "notes"))
        rows.append(f'<tr data-row="{c.index}">{"".join(cells)}</tr>')
    where = " ".join(f"{k}={v}" for k, v in shared.items())
    caption = (
        f"One row per cell (a variant on one link): {len(s.cells)} cells. Link: {_e(profile)}"
        + (f" {_e(where)}" if where else "") + (f"; {', '.join(map(_e, swept))} per cell"
                                                 if swept else "")
        + ". TTFB: request start (or, under open load, its intended send time) to the first "
        "response byte; total: to the last. Percentiles over every successful measured "
        "request (warm-up left out), p99.9 = 99.9th percentile; the CI is a bootstrap 95% "
        "interval of the median. Hover a variant for its settings; click a header to sort."
        + (" The run was distributed: the host column names the machine(s) each cell's "
           "repetitions ran on." if s.distributed else ""))
    warning = (f'<p class="warning host-warning">{_e(s.host_warning)}</p>'
               if s.host_warning else "")
    return (f'<h3 id="cells-{rid}-title">Cells</h3>' + warning
            + _table(f"cells-{rid}", caption, headers, rows))


_UNITS = {"delay": "one-way", "loss": "%", "rate": "bit/s", "jitter": "ms", "queue": "packets",
          "burst": "length", "drop": "packet list", "reorder": "on/off", "seed": "seed"}


def _sort_text(text: str) -> str:
    """A sort key for link words: their leading number when they have one (50ms, 2%)."""
    head = ""
    for ch in text.strip():
        if ch.isdigit() or ch in ".-" and not head.count(ch):
            head += ch
        else:
            break
    try:
        return repr(float(head))
    except ValueError:
        return text


def _charts_html(s: RunSection) -> str:
    rid = s.info.id
    parts = [f'<h3 id="charts-{rid}-title">Charts</h3>']
    if not s.charts:
        parts.append("<p>No charts for this run.</p>")
    for i, chart in enumerate(s.charts):
        parts.append(f'<figure class="chart" data-kind="{_e(chart.kind)}" '
                     f'id="chart-{rid}-{i}"><h4>{_e(chart.title)}</h4>{chart.svg}'
                     f"<figcaption>{_e(chart.caption)}</figcaption></figure>")
    for note in s.chart_notes:
        parts.append(f'<p class="note">{_e(note)}</p>')
    return "".join(parts)


def _ratio_cells(phase: Any) -> tuple[list[str], str]:
    """A, B, B/A and its CI of one phase; and whether B got worse, better or neither."""
    ratio = phase.ratio
    change = "same"
    if ratio is not None and ratio.ci_low > 1:
        change = "worse"
    elif ratio is not None and ratio.ci_high < 1:
        change = "better"
    cls = {"worse": "num bad", "better": "num good", "same": "num"}[change]
    cells = [_num_td(phase.a_ms), _num_td(phase.b_ms),
             _num_td(ratio.value if ratio else None, 3, cls),
             _td("-" if ratio is None else f"{ratio.ci_low:.3f} – {ratio.ci_high:.3f}",
                 "" if ratio is None else repr(ratio.ci_low), cls)]
    return cells, change


def _comparison_html(sections: Sequence[RunSection],
                     comparisons: Sequence[Comparison]) -> str:
    suites = {s.info.id: s.info.suite for s in sections}
    parts = ['<section id="compare"><h2>Comparison: B / A per shared cell</h2>']
    for comp in comparisons:
        links = [row.params.get("link", {}) for row in comp.rows]
        link_list = [link if isinstance(link, dict) else {} for link in links]
        keys = list(dict.fromkeys(k for link in link_list for k in link))
        swept = [k for k in keys if len({str(link.get(k, "-")) for link in link_list}) > 1]
        headers: list[tuple[str, str, str]] = [("variant", "text", "")]
        headers += [(f"{k} ({_UNITS.get(k, 'as given')})", "text", "") for k in swept]
        headers += [("n A / B", "text", "successful samples of each run")]
        for phase in ("TTFB", "total"):
            headers += [(f"{phase} A (ms)", "num", f"run {comp.a}'s median"),
                        (f"{phase} B (ms)", "num", f"run {comp.b}'s median"),
                        (f"{phase} B/A", "num", "ratio of the medians; above 1: B slower"),
                        (f"{phase} B/A 95% CI", "num", "bootstrap CI of the ratio")]
        headers.append(("change", "text", "worse: a ratio's whole CI above 1"))
        machines = any(row.hosts_differ for row in comp.rows)
        if machines:
            headers.append(("machines", "text", "what differs between the machines that ran "
                            "the cell in A and in B"))
        rows = []
        worse = 0
        for i, (row, link) in enumerate(zip(comp.rows, link_list, strict=True)):
            ttfb, ttfb_change = _ratio_cells(row.ttfb)
            total, total_change = _ratio_cells(row.total)
            changes = {ttfb_change, total_change}
            change = "worse" if "worse" in changes else "better" if "better" in changes \
                else "same"
            worse += change == "worse"
            label = str(row.params.get("label") or row.params.get("protocol")
                        or json.dumps(row.params))
            rows.append(
                f'<tr data-row="{i}" class="{change}">' + _td(_e(label))
                + "".join(_td(_e(link.get(k, "-")), _sort_text(str(link.get(k, ""))))
                          for k in swept)
                + _td(f"{row.n_a} / {row.n_b}") + "".join(ttfb) + "".join(total)
                + _td(f'<span class="change {change}">{change}</span>', change)
                + (_td(_e(f"differ: {', '.join(row.hosts_differ)}" if row.hosts_differ
                          else "alike"), cls="bad hosts-differ" if row.hosts_differ else "")
                   if machines else "") + "</tr>")
        caption = (
            f"Run {comp.b} ({_e(suites.get(comp.b, '?'))}) against run {comp.a} "
            f"({_e(suites.get(comp.a, '?'))}), the baseline: {len(comp.rows)} cells with "
            f"equal parameters, {worse} worse. B/A is the ratio of median times (above 1: run "
            f"{comp.b} slower) with its 95% bootstrap CI; rows whose TTFB or total ratio has "
            "its whole CI above 1 are marked <b>worse</b> (red), wholly below 1 "
            "<b>better</b> (green). Cells only one run has are left out.")
        if comp.host_warning:
            caption += (" <b>machines</b>: what differs between the hosts that ran the cell "
                        "in the two runs.")
        warning = (f'<p class="warning host-warning">{_e(comp.host_warning)}</p>'
                   if comp.host_warning else "")
        if comp.rows:
            parts.append(f"<h3>Run {comp.b} vs run {comp.a}</h3>" + warning
                         + _table(f"compare-{comp.a}-{comp.b}", caption, headers, rows))
        else:
            parts.append(f"<h3>Run {comp.b} vs run {comp.a}</h3><p>The two runs share no "
                         "cell parameters: nothing to compare.</p>")
    parts.append("</section>")
    return "".join(parts)


def _summary_json(summary: Summary | None) -> dict[str, float] | None:
    if summary is None:
        return None
    return {"p50": summary.p50, "p90": summary.p90, "p99": summary.p99, "p999": summary.p999,
            "median_ci_low": summary.median_ci_low, "median_ci_high": summary.median_ci_high}


def _report_json(sections: Sequence[RunSection],
                 comparisons: Sequence[Comparison]) -> dict[str, Any]:
    """What the page shows, for programs (the raw samples are in the exports)."""
    return {
        "format": "protolab-report", "runs": [{
            "id": s.info.id, "suite": s.info.suite, "status": s.info.status,
            "manifest": s.info.manifest, "verdicts": s.verdicts, "exports": s.exports,
            "captures": s.captures, "charts": [c.title for c in s.charts],
            "distributed": s.distributed, "host_warning": s.host_warning,
            "cells": [{"index": c.index, "label": c.label, "link": c.link,
                       "status": c.status, "error": c.error, "ok": c.ok, "failed": c.failed,
                       "errors": c.errors, "ttfb_ms": _summary_json(c.ttfb),
                       "total_ms": _summary_json(c.total), "ttfb_rtts": c.ttfb_rtts,
                       "goodput_mbps": c.goodput_mbps, "cpu_s": c.cpu,
                       "cpu_saturated": c.saturated,
                       "cpu_saturated_parts": list(c.saturated_parts),
                       "hosts": c.hosts or None, "notes": list(c.notes)}
                      for c in s.cells]} for s in sections],
        "comparisons": [{"a": comp.a, "b": comp.b, "host_warning": comp.host_warning,
                         "cells": [{
            "params": row.params, "n_a": row.n_a, "n_b": row.n_b,
            "hosts_differ": list(row.hosts_differ),
            **{phase: {"a_ms": m.a_ms, "b_ms": m.b_ms,
                       "ratio": None if m.ratio is None else {
                           "value": m.ratio.value, "ci_low": m.ratio.ci_low,
                           "ci_high": m.ratio.ci_high}}
               for phase, m in (("ttfb", row.ttfb), ("total", row.total))}}
            for row in comp.rows]} for comp in comparisons],
    }
