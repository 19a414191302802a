"""The charts a run's shape calls for, drawn from its stored raw records.

Reads the bench layer's suite and cells and the records the session read back from the
store; the bench layer never imports this (the path is one way: bench -> store ->
summaries, charts, report).
"""

from __future__ import annotations

import re
from pathlib import Path

from protolab.bench.suite import Cell, Suite
from protolab.core.latency import total_ms, ttfb_ms
from protolab.core.record import RequestRecord
from protolab.core.rtt import HANDSHAKE_RTTS
from protolab.core.stats import summarize
from protolab.report import charts


def _metric(suite: Suite) -> tuple[str, object]:
    """What a suite's charts plot: TTFB for fresh-connection workloads, else completion."""
    if suite.workload.fresh_connection:
        return "TTFB", ttfb_ms
    return "completion time", total_ms


def _numeric(text: str) -> float | None:
    m = re.match(r"\s*([0-9]*\.?[0-9]+)", text)
    return float(m.group(1)) if m else None


def draw_charts(
    suite: Suite, cells: list[Cell], measured: dict[int, list[RequestRecord]], out_dir: Path
) -> list[Path]:
    """The charts this suite's shape calls for; each names the link and the workload.
    `measured` holds each cell's stored records (warm-up left out), by cell index."""
    name, measure = _metric(suite)
    workload = f"{suite.workload.count} x {', '.join(sorted(set(suite.workload.paths)))}"
    records = {c.index: [r for r in measured.get(c.index, []) if r.ok] for c in cells}
    values = {c.index: [v for r in records[c.index] if (v := measure(r)) is not None]  # type: ignore[operator]
              for c in cells}
    written: list[Path] = []
    points = suite.link.points()
    for p, point in enumerate(points):
        series = {c.variant.label: values[c.index] for c in cells
                  if c.link_point == point and values[c.index]}
        if series:
            link = f"{suite.link.profile} {_describe(point)}"
            written += charts.latency_cdf(series, out_dir / f"cdf-{p}", link=link,
                                          workload=workload, metric=name)
    swept = sorted(suite.link.sweep)
    if len(swept) == 1 and len(points) > 1:
        written += _percentile_chart(suite, cells, values, swept[0], out_dir, workload, name)
        if swept[0] == "delay" and suite.workload.fresh_connection:
            written += _ttfb_rtt_chart(suite, cells, values, out_dir, workload)
    arrivals = [c for c in cells if any(r.arrivals for r in records[c.index])]
    for c in arrivals[:4]:
        last = records[c.index][-suite.workload.count:]
        written += charts.waterfall(
            last, out_dir / f"waterfall-{c.index}-{c.variant.label}",
            link=f"{suite.link.profile} {_describe(c.link_point)}",
            workload=f"{workload}, {c.variant.label}")
    return written


def _percentile_chart(
    suite: Suite, cells: list[Cell], values: dict[int, list[float]], key: str, out_dir: Path,
    workload: str, name: str,
) -> list[Path]:
    series: dict[str, list[charts.SeriesPoint]] = {}
    for c in cells:
        x = _numeric(c.link_point.get(key, ""))
        if x is None or not values[c.index]:
            continue
        s = summarize(values[c.index], rng_seed=suite.seed)
        series.setdefault(f"{c.variant.label} p50", []).append(
            charts.SeriesPoint(x, s.p50, s.median_ci_low, s.median_ci_high))
        series.setdefault(f"{c.variant.label} p99", []).append(charts.SeriesPoint(x, s.p99))
    if not series:
        return []
    fixed = {k: v for k, v in suite.link.overrides.items()}
    return charts.percentile_lines(
        series, out_dir / f"percentiles-vs-{key}", parameter=key,
        parameter_unit=_unit(key), link=f"{suite.link.profile} {_describe(fixed)}",
        workload=workload, ylabel=f"{name} (ms)")


def _ttfb_rtt_chart(
    suite: Suite, cells: list[Cell], values: dict[int, list[float]], out_dir: Path,
    workload: str,
) -> list[Path]:
    series: dict[str, tuple[list[float], list[float]]] = {}
    for c in cells:
        xs, ys = series.setdefault(c.variant.label, ([], []))
        rtt = c.rtt_ms
        for v in values[c.index]:
            xs.append(rtt)
            ys.append(v)
    return charts.ttfb_vs_rtt(series, out_dir / "ttfb-vs-rtt", link=suite.link.profile,
                              workload=workload, theoretical=HANDSHAKE_RTTS)


def _unit(key: str) -> str:
    return {"delay": "ms one-way", "loss": "%", "rate": "Mbit/s", "jitter": "ms"}.get(key, "")


def _describe(point: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items()) or "no impairment"
