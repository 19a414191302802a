"""What the HTML report shows of a run, gathered once from the store: per cell the numbers
`results show` prints (and more: errors, CPU per part, drops, the hosts it ran on), the
run's verdicts and charts, and where its exports and captures lie.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protolab.bench.summary import link_notes
from protolab.core.latency import phases
from protolab.core.record import RequestRecord
from protolab.core.stats import Summary, summarize
from protolab.report.html_charts import Chart, run_charts
from protolab.store import (
    CellComparison,
    CellInfo,
    Metric,
    ResultsStore,
    RunInfo,
    TaskRun,
    host_warning,
)


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


def gather_section(store: ResultsStore, info: RunInfo, out_dir: Path, run_dir: Path | None,
                   ) -> RunSection:
    """One run as the report shows it: its cells' rows, verdicts and charts, whether it ran
    on several hosts, and its captures folder relative to `out_dir` when `run_dir` has one."""
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
    notes += link_notes(values)
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
