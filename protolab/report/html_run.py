"""One run's section of the HTML report: its files, its manifest (versions, machine,
settings, seeds, variants), its claims and verdicts, one row per cell, and its charts.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

from protolab.bench.claims import Claim, Side
from protolab.report.html_data import RunSection
from protolab.report.html_markup import (
    LINK_UNITS,
    esc,
    link_sort_key,
    num_td,
    num_text,
    sortable_table,
    td,
)
from protolab.store import RunInfo


def section_html(s: RunSection) -> str:
    info = s.info
    rid = info.id
    parts = [f'<section class="run" id="run-{rid}"><h2>Run {rid}: {esc(info.suite)} '
             f'<span class="status status-{esc(info.status)}">{esc(info.status)}</span></h2>']
    files = [f'<a href="{esc(path)}">{esc(path)}</a> ({fmt.upper()}: '
             + ("one row per request, every timestamp and phase" if fmt == "csv" else
                "the whole run, nested: manifest, cells, metrics, samples") + ")"
             for fmt, path in s.exports.items()]
    if s.captures is not None:
        files.append(f'<a href="{esc(s.captures)}/">{esc(s.captures)}/</a> (per cell and '
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
    rows = "".join(f"<tr><th scope=\"row\">{esc(k)}</th><td>{esc(v)}</td></tr>"
                   for k, v in _manifest_rows(s.info))
    variants = (s.info.manifest.get("settings") or {}).get("variants") or []
    table = (f'<details open><summary>Manifest: versions, machine, settings, seeds'
             f'</summary><div class="scroll"><table class="kv" id="manifest-{s.info.id}">'
             f"<tbody>{rows}</tbody></table></div>")
    if variants:
        keys = list(dict.fromkeys(k for v in [{"label": 0, "protocol": 0}, *variants]
                                  for k in v))
        heads = [(k, "text", "") for k in keys]
        body = ["<tr>" + "".join(td(esc(json.dumps(v.get(k)) if not isinstance(v.get(k), str)
                                        else v.get(k))) for k in keys) + "</tr>"
                for v in variants]
        table += sortable_table(f"variants-{s.info.id}", "Variants: every setting of every "
                                "protocol variant the run measured (windows in bytes)", heads,
                                body)
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
            f"{num_text(low, 3)[0]} – {num_text(high, 3)[0]}"
        n = f"{v.get('n_a', '-')}" + (f" / {v['n_b']}" if v.get("n_b") else "")
        word = str(v["verdict"])
        rows.append(
            f'<tr data-row="{i}">' + td(esc(v["claim"]))
            + td(esc(data.get("text", "")) + (f'<div class="note">{esc(v["note"])}</div>'
                                              if v.get("note") else ""))
            + td(esc(predicted)) + td(esc(where)) + num_td(v.get("value"), 3)
            + td(esc(ci), repr(float(low)) if low is not None else "", "num")
            + td(esc(unit)) + td(esc(n))
            + td(f'<span class="verdict {word}">{esc(word)}</span>', word)
            + td(esc(data.get("source", "-"))) + "</tr>")
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
            + sortable_table(f"verdicts-{rid}", caption, headers, rows))


def _cells_html(s: RunSection) -> str:
    rid = s.info.id
    links = [c.link for c in s.cells]
    keys = list(dict.fromkeys(k for link in links for k in link))
    swept = [k for k in keys if len({link.get(k, "-") for link in links}) > 1]
    shared = {k: v for k, v in (links[0].items() if links else ()) if k not in swept}
    profile = (s.info.manifest.get("settings") or {}).get("link", {}).get("profile", "")
    headers: list[tuple[str, str, str]] = [
        ("#", "num", "cell index"), ("variant", "text", "the variant's label in the suite")]
    headers += [(f"{k} ({LINK_UNITS.get(k, 'as given')})", "text", f"link {k}, per cell")
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
        cells = [num_td(c.index, 0), f'<td title="{esc(settings)}">{esc(c.label)}</td>']
        cells += [td(esc(c.link.get(k, "-")), link_sort_key(c.link.get(k, ""))) for k in swept]
        if s.distributed:
            cells.append(td(esc(c.hosts or "-"), cls="host"))
        cells += [td(f'<span class="status status-{esc(c.status)}">{esc(c.status)}</span>',
                     c.status), num_td(c.ok, 0),
                  num_td(c.failed, 0, "num bad" if c.failed else "num")]
        for summary in (c.ttfb, c.total):
            for stat in ("p50", "p90", "p99", "p999"):
                cells.append(num_td(getattr(summary, stat) if summary else None))
            if summary is None:
                cells.append(td("-", "", "num"))
            else:
                low, high = summary.median_ci_low, summary.median_ci_high
                cells.append(td(f"{num_text(low)[0]} – {num_text(high)[0]}", repr(float(low)),
                                "num"))
        cells += [num_td(c.ttfb_rtts), num_td(c.goodput_mbps)]
        bound = c.saturated_parts or (("client", "server", "forwarder") if c.saturated else ())
        cells += [num_td(c.cpu[part], 2, "num bad" if part in bound else "num")
                  for part in ("client", "server", "forwarder")]
        cells.append(td(esc("; ".join(c.notes)), None, "notes bad" if
                        (c.failed or c.saturated or c.status != "ok") else "notes"))
        rows.append(f'<tr data-row="{c.index}">{"".join(cells)}</tr>')
    where = " ".join(f"{k}={v}" for k, v in shared.items())
    caption = (
        f"One row per cell (a variant on one link): {len(s.cells)} cells. Link: {esc(profile)}"
        + (f" {esc(where)}" if where else "") + (f"; {', '.join(map(esc, swept))} per cell"
                                                  if swept else "")
        + ". TTFB: request start (or, under open load, its intended send time) to the first "
        "response byte; total: to the last. Percentiles over every successful measured "
        "request (warm-up left out), p99.9 = 99.9th percentile; the CI is a bootstrap 95% "
        "interval of the median. Hover a variant for its settings; click a header to sort."
        + (" The run was distributed: the host column names the machine(s) each cell's "
           "repetitions ran on." if s.distributed else ""))
    warning = (f'<p class="warning host-warning">{esc(s.host_warning)}</p>'
               if s.host_warning else "")
    return (f'<h3 id="cells-{rid}-title">Cells</h3>' + warning
            + sortable_table(f"cells-{rid}", caption, headers, rows))


def _charts_html(s: RunSection) -> str:
    rid = s.info.id
    parts = [f'<h3 id="charts-{rid}-title">Charts</h3>']
    if not s.charts:
        parts.append("<p>No charts for this run.</p>")
    for i, chart in enumerate(s.charts):
        parts.append(f'<figure class="chart" data-kind="{esc(chart.kind)}" '
                     f'id="chart-{rid}-{i}"><h4>{esc(chart.title)}</h4>{chart.svg}'
                     f"<figcaption>{esc(chart.caption)}</figcaption></figure>")
    for note in s.chart_notes:
        parts.append(f'<p class="note">{esc(note)}</p>')
    return "".join(parts)
