"""The charts of one stored run, as SVG markup ready to inline in the HTML report.

The run's suite is rebuilt from what the store holds (the manifest's settings, each
cell's parameters), so `run_charts.draw_charts` draws the same charts `bench` draws,
from the same stored records. Two more come from what only some runs keep: per-stream
head-of-line waterfalls with the link's drops and the stalls they caused (runs whose
captures were analysed, `protolab/hol`), and handshake ladders from the captured pcap and
key log (`bench --capture`; drawn by the tracer, `protolab/trace/svg.py`).

Every SVG is made safe to share one HTML document with the others: its XML prologue and
global style sheet are dropped and its ids get a prefix of their own (matplotlib names
glyphs and clip paths by hash; the tracer names its arrow head `a`).
"""

from __future__ import annotations

import io
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from protolab.bench.runner import CellCapture
from protolab.bench.suite import Cell, LinkSpec, Suite, Variant, Workload, link_overrides
from protolab.core.record import RequestRecord
from protolab.errors import LabError
from protolab.hol.model import Drop, Piece
from protolab.netem.profiles import build_profile
from protolab.report.run_charts import draw_charts
from protolab.store import CellInfo, ResultsStore, RunInfo
from protolab.trace.decode import LinkTiming, decode_capture
from protolab.trace.keylog import load_keylog
from protolab.trace.svg import render_svg

MAX_LADDERS = 4  # handshake ladders per run (one per cell, first measured repetition)
MAX_HOL = 4  # HOL waterfalls per run


@dataclass(frozen=True)
class Chart:
    """One chart of the report: what a newcomer reads above and below it, and the SVG."""

    kind: str  # cdf, percentiles, ttfb-rtt, waterfall, hol, ladder
    title: str
    caption: str
    svg: str  # inline-ready markup (ids prefixed, no prologue)


def rebuild(info: RunInfo, cells: Sequence[CellInfo]) -> tuple[Suite, list[Cell]]:
    """The run's suite and cells as `bench` had them, from the manifest and the cells'
    stored parameters; ValueError when the run did not record them (a run written by
    another tool, or an older lab)."""
    settings = info.manifest.get("settings") or {}
    if not settings.get("variants") or "link" not in settings:
        raise ValueError("its manifest records no suite settings")
    seed = int((info.manifest.get("seeds") or {}).get("link_seed", 1))
    try:
        profile = str(settings["link"]["profile"])
        points = [dict(p) for p in settings["link"]["points"]]
        workload = dict(settings["workload"])
        if isinstance(workload.get("headers"), list):  # stored as pairs
            workload["headers"] = dict(workload["headers"])
        workload["paths"] = list(workload.get("paths", ()))
        suite = Suite(
            name=info.suite, description="", expected="",
            variants=tuple(Variant.from_json(v) for v in settings["variants"]),
            link=_link_spec(profile, points), workload=Workload.from_json(workload),
            repetitions=int(settings.get("repetitions", 1)),
            warmup=int(settings.get("warmup", 0)), seed=seed)
        built = [Cell(c.index, Variant.from_json(c.params["variant"]), dict(c.params["link"]),
                      build_profile(profile, link_overrides(c.params["link"], seed)))
                 for c in cells]
    except (LabError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"its stored settings cannot be read back ({exc})") from exc
    return suite, built


def _link_spec(profile: str, points: list[dict[str, str]]) -> LinkSpec:
    """A link spec whose points are `points`: a sweep over the keys that vary when the
    points are exactly that sweep (so the charts against the swept parameter are drawn),
    else the points listed one by one."""
    keys = sorted({k for p in points for k in p})
    varying = [k for k in keys if len({p.get(k) for p in points}) > 1]
    shared = {k: v for k, v in points[0].items() if k not in varying} if points else {}
    sweep = {k: tuple(dict.fromkeys(p[k] for p in points if k in p)) for k in varying}
    candidate = LinkSpec(profile=profile, overrides=shared, sweep=sweep)
    if candidate.points() == points:
        return candidate
    return LinkSpec(profile=profile, extra=tuple(points))


def run_charts(
    store: ResultsStore, info: RunInfo, cells: Sequence[CellInfo],
    measured: Mapping[int, list[RequestRecord]], captures: Path | None, prefix: str,
) -> tuple[list[Chart], list[str]]:
    """Every chart the run's data supports, and a note for each one it could not draw."""
    notes: list[str] = []
    charts: list[Chart] = []
    try:
        suite, built = rebuild(info, cells)
    except ValueError as exc:
        return [], [f"no charts: {exc}"]
    with tempfile.TemporaryDirectory(prefix="protolab-report-") as tmp:
        paths: list[Path] = []
        try:
            paths = draw_charts(suite, built, dict(measured), Path(tmp))
        except ValueError as exc:  # nothing to draw (every request failed, ...)
            notes.append(f"charts not drawn: {exc}")
        for path in sorted((p for p in paths if p.suffix == ".svg"), key=_chart_order):
            title, caption, kind = _describe(path.stem, suite, built)
            charts.append(Chart(kind, title, caption,
                                inline_svg(path.read_text(), f"{prefix}-{path.stem}")))
    charts += _hol_charts(store, cells, built, prefix, notes)
    if captures is not None:
        charts += _ladders(cells, built, captures, prefix, notes)
    return charts, notes


def _chart_order(path: Path) -> tuple[int, str]:
    order = ("cdf", "percentiles", "ttfb-vs-rtt", "waterfall")
    rank = next((i for i, name in enumerate(order) if path.stem.startswith(name)), len(order))
    return rank, path.stem


def _describe(stem: str, suite: Suite, cells: Sequence[Cell]) -> tuple[str, str, str]:
    """Title, caption and kind of one of draw_charts' files, from its name."""
    metric = "time to first byte (TTFB)" if suite.workload.fresh_connection else \
        "completion time"
    workload = (f"{suite.workload.count} request(s) of {', '.join(suite.workload.paths)} per "
                "repetition" + (", each on a new connection" if suite.workload.fresh_connection
                                else ""))
    points = suite.link.points()
    if stem.startswith("cdf-"):
        point = points[int(stem.split("-", 1)[1])]
        where = ", ".join(f"{k}={v}" for k, v in point.items()) or "no impairment"
        return (f"Distribution of {metric}, link {suite.link.profile} {where}",
                f"One line per protocol variant. A point (x, y) says: a fraction y of its "
                f"requests took at most x ms. Lines further left are faster; a line that "
                f"climbs late on the right has a long tail (slow p99). Grey lines mark the "
                f"median (0.5), p90 and p99. Workload: {workload}; warm-up left out.", "cdf")
    if stem.startswith("percentiles-vs-"):
        key = stem.removeprefix("percentiles-vs-")
        return (f"{metric[0].upper()}{metric[1:]} against the link's {key}",
                f"Each variant's median (solid, with its 95% bootstrap confidence interval "
                f"shaded) and p99 (dashed) at every {key} the run swept. A line that rises "
                f"steeply is sensitive to {key}; the gap between a variant's median and p99 "
                f"is its tail. Workload: {workload}.", "percentiles")
    if stem == "ttfb-vs-rtt":
        return ("Time to first byte against the link's round-trip time",
                "Each dot is one request. A solid line is the least-squares fit of a "
                "variant: its slope is how many round trips the request costs before its "
                "first byte (the legend gives it, with the intercept: processing time). "
                "Dotted grey lines are what the protocols' designs predict (DESIGN.md: "
                "TCP 2 RTT, TLS 1.2 4, TLS 1.3 3, QUIC 2, QUIC 0-RTT 1). A fit on its "
                "dotted line means the lab reproduces the textbook.", "ttfb-rtt")
    index = int(stem.split("-")[1])
    cell = next((c for c in cells if c.index == index), None)
    label = cell.variant.label if cell else "?"
    return (f"Waterfall of cell {index} ({label}), last repetition",
            "One row per request or stream, time from the first request's start. Light "
            "bar: waiting for the first byte; dark bar: receiving; each | tick is one "
            "arrival of body data. A gap between ticks is a stall (on HTTP/2 one lost "
            "packet stalls every stream of the connection; on HTTP/3 only the stream "
            "whose data was lost). A thin grey bar before a row is connection set-up.",
            "waterfall")


def _hol_charts(store: ResultsStore, cells: Sequence[CellInfo], built: Sequence[Cell],
                prefix: str, notes: list[str]) -> list[Chart]:
    labels = {c.index: c.variant.label for c in built}
    charts: list[Chart] = []
    for cell in cells:
        if len(charts) >= MAX_HOL:
            notes.append(f"head-of-line waterfalls: only the first {MAX_HOL} cells drawn")
            break
        pieces = store.hol_pieces(cell.id)
        if not pieces:
            continue
        rep = pieces[0][0]
        drops = [d for r, d in store.hol_drops(cell.id) if r == rep]
        svg = hol_waterfall([p for r, p in pieces if r == rep], drops)
        label = labels.get(cell.index, cell.params.get("label", "?"))
        charts.append(Chart(
            "hol", f"Head-of-line delay per stream, cell {cell.index} ({label}), "
            f"repetition {rep}",
            "One row per stream. Each bar runs from when a piece of the stream's body had "
            "crossed the link to when the application got it: that is its head-of-line "
            "delay. Red: held by a lost packet that carried this stream's own data; orange: "
            "held by another stream's lost packet (HOL blocking across streams, TCP's); "
            "purple: data that crossed late (reordering); grey: delay no drop explains "
            "(processing). Red crosses: the link's drops, on the rows of the streams whose "
            "data they carried (on the bottom row when they carried none). Measured from "
            "the captured packets (docs/hol.md).",
            inline_svg(svg, f"{prefix}-hol-{cell.index}")))
    return charts


_CAUSE_COLOURS = {"none": "#c8d6e5", "own": "#c0392b", "others": "#e67e22",
                  "late": "#8e44ad", "unattributed": "#7f8c8d"}


def hol_waterfall(pieces: Sequence[Piece], drops: Sequence[Drop]) -> str:
    """SVG: per stream, each piece's [crossed the link, reached the application] interval
    coloured by what held it; the link's drops as crosses on the streams they carried."""
    streams = sorted({p.stream_id for p in pieces})
    row = {s: i for i, s in enumerate(streams)}
    t0 = min([p.link_ns for p in pieces] + [d.at_ns for d in drops])

    def ms(t: int) -> float:
        return (t - t0) / 1e6

    fig = Figure(figsize=(8.5, max(3.0, 0.35 * len(streams) + 1.8)), layout="constrained")
    ax = fig.add_subplot()
    ax.grid(True, color="0.9", linewidth=0.8)
    ax.set_axisbelow(True)
    for cause, colour in _CAUSE_COLOURS.items():
        segments = [[(ms(p.link_ns), row[p.stream_id]), (ms(p.app_ns), row[p.stream_id])]
                    for p in pieces if p.cause == cause and p.app_ns is not None]
        if segments:
            ax.add_collection(LineCollection(segments, colors=colour, linewidths=6,
                                             label=_CAUSE_WORDS[cause]))
    crossed = [(ms(p.link_ns), row[p.stream_id]) for p in pieces]
    ax.plot([x for x, _ in crossed], [y for _, y in crossed], linestyle="none", marker="|",
            markersize=7, color="black", markeredgewidth=0.6, label="piece crossed the link")
    marks: list[tuple[float, float]] = [(ms(d.at_ns), row[s]) for d in drops
                                         for s in d.streams if s in row]
    marks += [(ms(d.at_ns), -0.6) for d in drops if not any(s in row for s in d.streams)]
    if marks:
        ax.plot([x for x, _ in marks], [y for _, y in marks], linestyle="none", marker="x",
                markersize=9, color="#c0392b", markeredgewidth=2, label="packet dropped")
    ax.set_yticks(range(len(streams)), [f"stream {s}" for s in streams], fontsize=8)
    ax.set_ylim(-1, len(streams))
    ax.invert_yaxis()
    ax.autoscale(axis="x")
    ax.set_xlabel("time since the first piece crossed the link (ms)")
    ax.set_ylabel("stream")
    ax.set_title("head-of-line delay per stream (bar: crossed the link → reached the app)",
                 fontsize=10)
    ax.legend(loc="lower right", fontsize=7)
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


_CAUSE_WORDS = {"none": "not held", "own": "held by its own loss",
                "others": "held by another stream's loss", "late": "crossed late",
                "unattributed": "unexplained delay"}


def _ladders(cells: Sequence[CellInfo], built: Sequence[Cell], captures: Path, prefix: str,
             notes: list[str]) -> list[Chart]:
    """A handshake ladder per captured cell (its first measured repetition's capture)."""
    by_index = {c.index: c for c in built}
    charts: list[Chart] = []
    for info in cells:
        cell = by_index.get(info.index)
        if cell is None:
            continue
        folder = next((d for d in (CellCapture.of(captures, cell, rep).directory
                                   for rep in range(64)) if (d / "link.pcap").exists()), None)
        if folder is None:
            continue
        if len(charts) >= MAX_LADDERS:
            notes.append(f"handshake ladders: only the first {MAX_LADDERS} captured cells "
                         "drawn (`protolab trace --pcap` decodes the others)")
            break
        try:
            keylog = folder / "keylog.txt"
            decoded = decode_capture((folder / "link.pcap").read_bytes(),
                                     load_keylog(keylog if keylog.exists() else None),
                                     LinkTiming(int(cell.rtt_ms * 1e6) or None))
        except (LabError, OSError) as exc:
            notes.append(f"cell {info.index}: capture not decoded ({exc})")
            continue
        if decoded.main is None:
            continue
        charts.append(Chart(
            "ladder", f"Handshake ladder, cell {info.index} ({cell.variant.label}), "
            f"from {folder.name}",
            "Client on the left, server on the right, time flowing down. Each slanted arrow "
            "is one packet, from when it left to when it arrived (the slant is the link's "
            "one-way delay), labelled with the TCP, TLS, QUIC and HTTP messages it carried "
            "(TLS 1.3 and QUIC decrypted with the run's key log). Red dashed lines: when "
            "the request could leave and when the first response byte came, in ms and in "
            "round trips.",
            inline_svg(render_svg(decoded.main), f"{prefix}-ladder-{info.index}")))
    return charts


_PROLOGUE = re.compile(r"<\?xml[^>]*\?>|<!DOCTYPE[^>]*>|<!--.*?-->", re.S)
_STYLE = re.compile(r"<style[^>]*>.*?</style>", re.S)
_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(url\(#|href="#)([^)"]+)')


def inline_svg(svg: str, prefix: str) -> str:
    """`svg` ready to sit beside others in one HTML document: no prologue, no global
    style sheet, every id (and every reference to one) prefixed with `prefix`."""
    text = _STYLE.sub("", _PROLOGUE.sub("", svg)).strip()
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", prefix)
    text = _ID.sub(lambda m: f'id="{safe}-{m.group(1)}"', text)
    return _REF.sub(lambda m: f"{m.group(1)}{safe}-{m.group(2)}", text)
