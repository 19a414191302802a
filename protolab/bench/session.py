"""One `protolab bench` run: the runner's records into the store, then summaries and charts.

Raw first: every repetition's records are written to the store as soon as they exist
(one transaction each), so an interrupted run keeps what finished. Summaries and
charts are computed afterwards from what the store holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from protolab.bench.runner import CellOutcome, Reporter, run_cells
from protolab.bench.store import CpuTimes, ResultsStore, manifest
from protolab.bench.suite import Cell, Suite, expand
from protolab.bench.summary import CellSummary, summarize_cell
from protolab.core.latency import total_ms, ttfb_ms
from protolab.core.record import RequestRecord
from protolab.core.rtt import HANDSHAKE_RTTS
from protolab.report import charts


@dataclass
class BenchResult:
    run_id: int
    status: str  # complete, interrupted, failed
    summaries: list[CellSummary] = field(default_factory=list)
    charts: list[Path] = field(default_factory=list)
    out_dir: Path | None = None


def run_bench(
    suite: Suite,
    store: ResultsStore,
    out_root: Path,
    *,
    repetitions: int | None = None,
    reporter: Reporter | None = None,
) -> BenchResult:
    settings = {"suite": suite.name, "variants": [v.__dict__ for v in suite.variants],
                "link": {"profile": suite.link.profile, "points": suite.link.points()},
                "workload": suite.workload.__dict__, "repetitions": repetitions
                or suite.repetitions, "warmup": suite.warmup, "timeout_s": suite.timeout_s}
    run_id = store.begin_run(suite.name, manifest(settings, {"link_seed": suite.seed}))
    out_dir = out_root / f"run-{run_id}"
    cells = expand(suite)
    cell_ids = {cell.index: store.add_cell(run_id, cell.index, cell.params(suite))
                for cell in cells}

    def on_rep(outcome: CellOutcome, rep: int, warm: bool, records: list[RequestRecord]) -> None:
        store.add_samples(cell_ids[outcome.cell.index], records, rep, warm)

    result = BenchResult(run_id, "failed", out_dir=out_dir)
    try:
        outcomes = run_cells(suite, out_dir, repetitions=repetitions, on_cell_rep=on_rep,
                             reporter=reporter)
    except KeyboardInterrupt:
        store.finish_run(run_id, "interrupted")
        result.status = "interrupted"
        return result
    except BaseException:
        store.finish_run(run_id, "failed")
        raise
    for outcome in outcomes:
        cell_id = cell_ids[outcome.cell.index]
        store.finish_cell(cell_id, outcome.status, outcome.error, CpuTimes(
            client=outcome.cpu["client"], server=outcome.cpu["server"],
            forwarder=outcome.cpu["forwarder"], saturated=bool(outcome.saturated)))
        summary = _summary_from_store(store, suite, outcome, cell_id)
        result.summaries.append(summary)
        _store_metrics(store, suite, cell_id, summary, outcome)
    store.finish_run(run_id, "complete")
    result.status = "complete"
    result.charts = draw_charts(suite, store, cells, cell_ids, out_dir)
    return result


def _summary_from_store(
    store: ResultsStore, suite: Suite, outcome: CellOutcome, cell_id: int
) -> CellSummary:
    by_rep: dict[int, list[RequestRecord]] = {}
    for sample in store.stored_samples(cell_id):
        by_rep.setdefault(sample.repetition, []).append(sample.record)
    return summarize_cell(suite, outcome.cell, list(by_rep.values()),
                          saturated=tuple(outcome.saturated), status=outcome.status,
                          error=outcome.error)


def _store_metrics(
    store: ResultsStore, suite: Suite, cell_id: int, summary: CellSummary, outcome: CellOutcome
) -> None:
    if summary.ttfb is not None:
        for name in ("p50", "p90", "p99", "p999"):
            store.add_metric(cell_id, f"ttfb_{name}", getattr(summary.ttfb, name), "ms")
    if summary.total is not None:
        for name in ("p50", "p90", "p99", "p999"):
            store.add_metric(cell_id, f"total_{name}", getattr(summary.total, name), "ms")
    if summary.ttfb_rtts is not None:
        store.add_metric(cell_id, "ttfb_rtts", summary.ttfb_rtts, "RTT")
    if suite.workload.load == "open":
        store.add_metric(cell_id, "late_sends", summary.late_sends, "requests")
    if summary.goodput_mbps is not None:
        store.add_metric(cell_id, "goodput", summary.goodput_mbps, "Mbit/s")
    for key in ("down_dropped_loss", "down_dropped_queue", "down_dropped_droplist",
                "up_dropped_loss", "down_unseen_drops", "up_unseen_drops"):
        total = sum(rep.get(key, 0) for rep in outcome.link)
        store.add_metric(cell_id, f"link_{key}", total, "packets")


def _metric(suite: Suite) -> tuple[str, object]:
    """What a suite's charts plot: TTFB for fresh-connection workloads, else completion."""
    if suite.workload.fresh_connection:
        return "TTFB", ttfb_ms
    return "completion time", total_ms


def _numeric(text: str) -> float | None:
    m = re.match(r"\s*([0-9]*\.?[0-9]+)", text)
    return float(m.group(1)) if m else None


def draw_charts(
    suite: Suite, store: ResultsStore, cells: list[Cell], cell_ids: dict[int, int], out_dir: Path
) -> list[Path]:
    """The charts this suite's shape calls for; each names the link and the workload."""
    name, measure = _metric(suite)
    workload = f"{suite.workload.count} x {', '.join(sorted(set(suite.workload.paths)))}"
    records = {c.index: [r for r in store.samples(cell_ids[c.index]) if r.ok] for c in cells}
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
    from protolab.bench.stats import summarize

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
    from protolab.bench.summary import rtt_ms

    series: dict[str, tuple[list[float], list[float]]] = {}
    for c in cells:
        xs, ys = series.setdefault(c.variant.label, ([], []))
        rtt = rtt_ms(suite, c)
        for v in values[c.index]:
            xs.append(rtt)
            ys.append(v)
    return charts.ttfb_vs_rtt(series, out_dir / "ttfb-vs-rtt", link=suite.link.profile,
                              workload=workload, theoretical=HANDSHAKE_RTTS)


def _unit(key: str) -> str:
    return {"delay": "ms one-way", "loss": "%", "rate": "Mbit/s", "jitter": "ms"}.get(key, "")


def _describe(point: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items()) or "no impairment"
