"""Comparison charts as PNG and SVG files: CDFs, percentile curves, TTFB vs RTT, waterfalls.

Each function takes already-derived numbers (milliseconds unless said otherwise), the
link and workload the numbers came from (they go in the title), and an output path
*stem*; it writes `stem.png` and `stem.svg` (or the `formats` asked for) and returns
the written paths. Figures are drawn on `matplotlib.figure.Figure` objects, never
through pyplot, so nothing needs a display and no global figure state is shared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from protolab.core.record import RequestRecord
from protolab.core.rtt import HANDSHAKE_RTTS
from protolab.core.stats import Summary, fit_line

FORMATS: tuple[str, ...] = ("png", "svg")
DPI = 150
_THEORY_NAMES = {
    "cleartext": "TCP, no TLS",
    "tls1.2": "TLS 1.2",
    "tls1.3": "TLS 1.3",
    "tls1.3-resumed": "TLS 1.3 resumed",
    "quic": "QUIC 1-RTT",
    "quic-0rtt": "QUIC 0-RTT",
}


_STAT_STYLES = {"p50": "-", "p90": "-.", "p99": "--", "p999": ":"}


@dataclass(frozen=True)
class SeriesPoint:
    """One point of a curve, with an optional confidence band around it."""

    x: float
    y: float
    low: float | None = None
    high: float | None = None


def points_from_summaries(
    pairs: Sequence[tuple[float, Summary]], stat: str = "p50"
) -> list[SeriesPoint]:
    """(parameter value, Summary) pairs as points of one statistic; p50 carries its CI."""
    points = []
    for x, summary in pairs:
        y = float(getattr(summary, stat))
        if stat == "p50":
            points.append(SeriesPoint(x, y, summary.median_ci_low, summary.median_ci_high))
        else:
            points.append(SeriesPoint(x, y))
    return points


def latency_cdf(
    series: Mapping[str, Sequence[float]],
    out: Path,
    *,
    link: str,
    workload: str,
    metric: str = "latency",
    log_x: bool = False,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Empirical CDF of each protocol's latencies (values in ms), one line per label."""
    if not series or not any(len(v) for v in series.values()):
        raise ValueError("latency_cdf: no values to plot")
    fig, ax = _figure()
    for label, values in series.items():
        data = np.sort(np.asarray(values, dtype=float))
        if data.size == 0:
            continue
        y = np.arange(1, data.size + 1) / data.size
        ax.step(data, y, where="post", linewidth=1.6,
                label=f"{label} (n={data.size}, p50 {np.median(data):.1f} ms)")
    for level in (0.5, 0.9, 0.99):
        ax.axhline(level, color="0.8", linewidth=0.8, zorder=0)
    if log_x:
        ax.set_xscale("log")
    ax.set_ylim(0, 1.01)
    ax.set_xlabel(f"{metric} (ms)")
    ax.set_ylabel("fraction of requests ≤ x")
    _title(ax, f"{metric} CDF", link, workload)
    ax.legend(loc="lower right")
    return _save(fig, out, formats)


def percentile_lines(
    series: Mapping[str, Sequence[SeriesPoint]],
    out: Path,
    *,
    parameter: str,
    parameter_unit: str,
    link: str,
    workload: str,
    ylabel: str = "latency (ms)",
    log_y: bool = False,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Statistics against a swept parameter (e.g. "h2 p50", "h2 p99" vs loss %), CI bands."""
    if not series or not any(series.values()):
        raise ValueError("percentile_lines: no points to plot")
    fig, ax = _figure()
    colours: dict[str, str] = {}
    for label, points in series.items():
        ordered = sorted(points, key=lambda p: p.x)
        if not ordered:
            continue
        # "h2 p50" and "h2 p99" share h2's colour; the statistic sets the line style.
        group, _, stat = label.rpartition(" ")
        if not stat.startswith("p") or not group:
            group, stat = label, ""
        colour = colours.setdefault(group, f"C{len(colours) % 10}")
        xs = [p.x for p in ordered]
        (line,) = ax.plot(xs, [p.y for p in ordered], marker="o", markersize=4, label=label,
                          color=colour, linestyle=_STAT_STYLES.get(stat, "-"))
        banded = [p for p in ordered if p.low is not None and p.high is not None]
        if banded:
            ax.fill_between([p.x for p in banded], [p.low or 0.0 for p in banded],
                            [p.high or 0.0 for p in banded], color=line.get_color(),
                            alpha=0.2, linewidth=0)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(f"{parameter} ({parameter_unit})")
    ax.set_ylabel(ylabel)
    _title(ax, f"{ylabel.split(' (')[0]} vs {parameter}", link, workload)
    ax.legend(loc="upper left", title="shaded: 95% CI of the median")
    return _save(fig, out, formats)


def ttfb_vs_rtt(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    out: Path,
    *,
    link: str,
    workload: str,
    theoretical: Mapping[str, float] = HANDSHAKE_RTTS,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Scatter of (RTT ms, TTFB ms) per stack, its least-squares line, and the theory lines.

    `theoretical` maps a name to round trips before the first byte (DESIGN.md's table);
    each is drawn as a dashed line through the origin with that slope.
    """
    if not series or not any(len(x) for x, _ in series.values()):
        raise ValueError("ttfb_vs_rtt: no points to plot")
    fig, ax = _figure()
    top = max(max(x) for x, _ in series.values() if len(x))
    grid = np.linspace(0, top * 1.05, 50)
    by_slope: dict[float, list[str]] = {}
    for name, rtts in theoretical.items():
        by_slope.setdefault(float(rtts), []).append(_THEORY_NAMES.get(name, name))
    for rtts, names in sorted(by_slope.items(), reverse=True):
        ax.plot(grid, grid * rtts, color="0.55", linestyle=":", linewidth=1.2, zorder=3)
        ax.annotate(f"{rtts:g} RTT ({', '.join(names)})", (grid[-1], grid[-1] * rtts),
                    fontsize=7, color="0.35", ha="right", va="bottom")
    for label, (rtt, ttfb) in series.items():
        if not len(rtt):
            continue
        points = ax.scatter(rtt, ttfb, s=14, alpha=0.6)
        text = label
        if len(set(rtt)) >= 2:
            fit = fit_line(rtt, ttfb)
            ci = ""
            if fit.slope_ci_low is not None and fit.slope_ci_high is not None:
                ci = f" ± {(fit.slope_ci_high - fit.slope_ci_low) / 2:.2f}"
            text = f"{label}: {fit.slope:.2f}{ci} RTT + {fit.intercept:.1f} ms"
            ax.plot(grid, [fit.predict(x) for x in grid], color=points.get_facecolor()[0],
                    linewidth=1.6)
        points.set_label(text)
    ax.set_xlim(0, top * 1.05)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("link RTT (ms)")
    ax.set_ylabel("time to first byte (ms)")
    _title(ax, "TTFB vs RTT (fitted slope = RTTs per request)", link, workload)
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, out, formats)


def waterfall(
    records: Sequence[RequestRecord],
    out: Path,
    *,
    link: str,
    workload: str,
    labels: Sequence[str] | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """One row per request/stream of a cell: waiting, receiving, and each data arrival.

    Time 0 is the earliest request start. A light bar runs from the request's start to
    its first byte, a dark one from first byte to done; ticks mark data arrivals, so a
    stream stalled behind another's loss shows as a gap between ticks. Connection set-up
    (for requests that opened their connection) is a thin grey bar before the start.
    """
    if not records:
        raise ValueError("waterfall: no records to plot")
    if labels is not None and len(labels) != len(records):
        raise ValueError("waterfall: one label per record")
    t0 = min(min(r.start_ns, r.conn_start_ns or r.start_ns) for r in records)

    def ms(t: int) -> float:
        return (t - t0) / 1e6

    height = max(3.0, 0.32 * len(records) + 1.6)
    fig, ax = _figure(height=height)
    for row, record in enumerate(records):
        y = len(records) - 1 - row  # first request on top
        if record.new_connection and record.conn_start_ns is not None:
            ready = record.handshake_ns or record.connected_ns
            if ready is not None:
                ax.barh(y, ms(ready) - ms(record.conn_start_ns), left=ms(record.conn_start_ns),
                        height=0.18, color="0.6")
        end = record.done_ns or max((t for t, _ in record.arrivals), default=None)
        first = record.first_byte_ns
        failed = not record.ok
        wait_end = first if first is not None else end
        if wait_end is not None:
            ax.barh(y, ms(wait_end) - ms(record.start_ns), left=ms(record.start_ns),
                    height=0.5, color="#f4b6b6" if failed else "#b9d3ee")
        if first is not None and end is not None:
            ax.barh(y, ms(end) - ms(first), left=ms(first), height=0.5,
                    color="#c0392b" if failed else "#2c6fbb")
        if wait_end is None:  # failed before any response: mark where it started
            ax.plot([ms(record.start_ns)], [y], linestyle="none", marker="x", color="#c0392b")
        if record.arrivals:
            ax.plot([ms(t) for t, _ in record.arrivals], [y] * len(record.arrivals),
                    linestyle="none", marker="|", markersize=9, color="black",
                    markeredgewidth=0.8)
    names = list(labels) if labels is not None else [_row_label(r) for r in records]
    ax.set_yticks(range(len(records)), list(reversed(names)), fontsize=8)
    ax.set_ylim(-0.7, len(records) - 0.3)
    ax.set_xlim(left=min(0.0, ax.get_xlim()[0]))
    ax.set_xlabel("time since the first request started (ms)")
    ax.set_ylabel("request / stream")
    ax.grid(axis="y", visible=False)
    _title(ax, "per-stream waterfall (light: waiting, dark: receiving, |: data arrival)",
           link, workload)
    return _save(fig, out, formats)


def _row_label(record: RequestRecord) -> str:
    stream = f" s{record.stream_id}" if record.stream_id is not None else ""
    failed = f" [{record.error}]" if record.error else ""
    return f"{record.protocol} c{record.connection_id}{stream} {record.path}{failed}"


def _figure(height: float = 4.8) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(8.5, height), layout="constrained")
    ax = fig.add_subplot()
    ax.grid(True, color="0.9", linewidth=0.8)
    ax.set_axisbelow(True)
    return fig, ax


def _title(ax: Axes, what: str, link: str, workload: str) -> None:
    ax.set_title(f"{what}\n{workload} — link: {link}", fontsize=10)


def _save(fig: Figure, out: Path, formats: Sequence[str]) -> list[Path]:
    unknown = [f for f in formats if f not in ("png", "svg")]
    if unknown or not formats:
        raise ValueError(f"chart formats are png and svg, not {unknown or 'none'}")
    stem = out.with_suffix("") if out.suffix in (".png", ".svg") else out
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        # No date in the SVG metadata: the same data gives the same file.
        metadata = {"Date": None} if fmt == "svg" else None
        fig.savefig(path, format=fmt, dpi=DPI, metadata=metadata)
        paths.append(path)
    return paths
