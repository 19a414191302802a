"""Per-cell summaries, derived from raw records (as stored), never instead of them."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from protolab.bench.suite import Cell, Suite
from protolab.core.latency import late_sends, total_ms, ttfb_ms
from protolab.core.record import RequestRecord
from protolab.core.stats import Summary, summarize
from protolab.netem.config import Direction
from protolab.netem.counters import late_words
from protolab.netem.trace import CapacityStats


@dataclass(frozen=True)
class CellSummary:
    label: str
    # The suite's words for the link; a direction whose capacity came from a delivery
    # trace adds "<dir> capacity": the trace's mean Mbit/s (p10-p90 over 100 ms windows)
    # (what the link offered, to read next to the goodput the protocol achieved).
    link: dict[str, str]
    rtt_ms: float
    samples: int
    failed: int
    ttfb: Summary | None
    total: Summary | None
    ttfb_rtts: float | None  # median TTFB in link RTTs (None without a link delay)
    goodput_mbps: float | None  # median over repetitions of body bits / repetition span
    saturated: tuple[str, ...]
    late_sends: int  # open load: requests sent more than 1 ms after they were due
    status: str
    error: str | None
    # Per traced direction ("up"/"down"): the trace's capacity statistics, in Mbit/s, and
    # "offered": what it offered during the cell's own repetitions (median over them, each
    # over the span goodput is measured on), the number to read goodput against.
    link_capacity: dict[str, dict[str, float | int]] = field(default_factory=dict)
    # How late the link's scheduled deliveries left during the measured repetitions
    # (`link_lateness`): the instrument's own error, which every number here inherits.
    lateness: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label, "link": self.link, "rtt_ms": self.rtt_ms,
            "samples": self.samples, "failed": self.failed,
            "ttfb_ms": self.ttfb.to_json() if self.ttfb else None,
            "total_ms": self.total.to_json() if self.total else None,
            "ttfb_rtts": self.ttfb_rtts, "goodput_mbps": self.goodput_mbps,
            "cpu_saturated": list(self.saturated), "late_sends": self.late_sends,
            "status": self.status, "error": self.error, "link_capacity": self.link_capacity,
            "link_lateness": self.lateness,
        }


def summarize_cell(
    suite: Suite,
    cell: Cell,
    repetitions: Mapping[int, list[RequestRecord]],
    *,
    saturated: tuple[str, ...] = (),
    status: str = "ok",
    error: str | None = None,
    link_epochs: Mapping[int, int] | None = None,
    link_counts: Sequence[Mapping[str, int]] = (),
) -> CellSummary:
    """`repetitions` by repetition number; `link_epochs`: when each one's link came up
    (`CellOutcome.link_epochs`), to read a delivery trace over the repetition's span;
    `link_counts`: what crossed the link in each measured one (`CellOutcome.link`)."""
    records = [r for rep in repetitions.values() for r in rep]
    ok = [r for r in records if r.ok]
    rtt = cell.rtt_ms
    ttfbs = [v for v in (ttfb_ms(r) for r in ok) if v is not None]
    totals = [v for v in (total_ms(r) for r in ok) if v is not None]
    ttfb = summarize(ttfbs, rng_seed=suite.seed) if ttfbs else None
    total = summarize(totals, rng_seed=suite.seed) if totals else None
    capacity = link_capacity(cell)
    offered = offered_capacity(cell, repetitions, link_epochs or {})
    return CellSummary(
        label=cell.variant.label,
        link={**cell.link_point,
              **{f"{d} capacity": _capacity_words(s) for d, s in capacity.items()},
              **{f"{d} offered": f"{mbps:.3g}" for d, mbps in offered.items()}},
        rtt_ms=rtt,
        samples=len(records),
        failed=len(records) - len(ok),
        ttfb=ttfb,
        total=total,
        ttfb_rtts=ttfb.p50 / rtt if ttfb and rtt > 0 else None,
        goodput_mbps=_median_or_none(
            [g for rep in repetitions.values() if (g := _goodput(rep)) is not None]
        ),
        saturated=saturated,
        late_sends=late_sends(records),
        status=status,
        error=error,
        link_capacity={d: {**s.to_json(), **({"offered": offered[d]} if d in offered else {})}
                       for d, s in capacity.items()},
        lateness=link_lateness(link_counts),
    )


def link_lateness(link_counts: Sequence[Mapping[str, int]]) -> dict[str, int]:
    """Over a cell's measured repetitions: how many deliveries the link scheduled, how
    many of them left at least ~1 ms late, and the worst one's slot edge in us. Empty
    where no repetition recorded it (a store written before the link reported it)."""
    known = [c for c in link_counts if "late_deliveries" in c]
    if not known:
        return {}
    return {"deliveries": sum(c["late_deliveries"] for c in known),
            "over_1ms": sum(c["late_1ms"] for c in known),
            "worst_us": max(c["late_worst_us"] for c in known)}


def link_notes(metrics: Mapping[str, float]) -> list[str]:
    """What a cell's stored link metrics say about the link as an instrument, in words,
    for `results show` and the report: drops the forwarder could not see, namespaces on
    another TCP default, deliveries it left late, what a delivery trace offered."""
    notes = []
    unseen = metrics.get("link_down_unseen_drops", 0) + metrics.get("link_up_unseen_drops", 0)
    if unseen:
        notes.append(f"{unseen:g} drops in the TUN queue (the forwarder fell behind)")
    if metrics.get("namespace_cc_mismatch"):
        notes.append("namespace TCP default not as asked")
    late = metrics.get("link_late_1ms", 0)
    if late:
        worst = metrics.get("link_late_worst_us", 0)
        # The forwarder held up (a VM's vCPU not run by its host) or behind (saturated):
        # either way every latency of the cell may carry it (docs/netem.md#timing).
        notes.append(f"link left {late:g} of {metrics.get('link_late_deliveries', 0):,.0f} "
                     f"deliveries ≥ 1 ms late (worst {late_words(worst)})")
    offered = offered_note(metrics)
    if offered:
        notes.append(offered)
    return notes


def link_capacity(cell: Cell) -> dict[str, CapacityStats]:
    """The capacity statistics of each direction of the cell's link that follows a trace."""
    return {d.value: c.trace.capacity() for d in Direction
            if (c := cell.link.direction(d)).trace is not None}


def offered_capacity(cell: Cell, repetitions: Mapping[int, list[RequestRecord]],
                     link_epochs: Mapping[int, int]) -> dict[str, float]:
    """Per traced direction, the Mbit/s its trace offered during the cell's repetitions:
    the median over repetitions, each over its span from first start to last completion
    (the span `goodput` divides by), read off the trace from the link's epoch. Empty
    where nothing is traced or no repetition's epoch is known."""
    offered: dict[str, float] = {}
    for d in Direction:
        trace = cell.link.direction(d).trace
        if trace is None:
            continue
        values = []
        for rep, records in repetitions.items():
            span = _span(records)
            epoch = link_epochs.get(rep)
            if span is None or epoch is None:
                continue
            start, end = ((t - epoch) / 1e6 for t in span)
            if start >= 0:
                values.append(trace.capacity_bps_between(start, end) / 1e6)
        if values:
            offered[d.value] = statistics.median(values)
    return offered


def offered_note(metrics: Mapping[str, float]) -> str | None:
    """A cell's stored `offered_*` (and goodput) metrics in words, for results and report:
    `trace offered down 9.1 Mbit/s (goodput 8.7)`; None without a trace."""
    offered = [f"{d} {metrics[f'offered_{d}']:.3g}" for d in ("down", "up")
               if f"offered_{d}" in metrics]
    if not offered:
        return None
    goodput = metrics.get("goodput")
    return ("trace offered " + ", ".join(offered) + " Mbit/s"
            + (f" (goodput {goodput:.3g})" if goodput is not None else ""))


def _span(records: list[RequestRecord]) -> tuple[int, int] | None:
    """First start to last completion of a repetition's completed requests."""
    done = [r for r in records if r.ok]
    if not done:
        return None
    start = min(r.start_ns for r in done)
    end = max(r.done_ns or r.start_ns for r in done)
    return (start, end) if end > start else None


def _capacity_words(stats: CapacityStats) -> str:
    """Mean Mbit/s and its p10-p90 over 100 ms windows, short enough for a column."""
    return f"{stats.mean:.3g} ({stats.p10:.2g}-{stats.p90:.3g})"


def _goodput(repetition: list[RequestRecord]) -> float | None:
    """Body bits of one repetition over the span from its first start to its last completion."""
    span = _span(repetition)
    body = sum(r.body_bytes for r in repetition if r.ok)
    if span is None or body == 0:
        return None
    return body * 8 / ((span[1] - span[0]) / 1e9) / 1e6


def _median_or_none(values: list[float]) -> float | None:
    return statistics.median(values) if values else None
