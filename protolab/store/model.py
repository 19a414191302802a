"""What the results store gives back: runs, cells, samples, metrics, CPU times.

Times of runs and cells are wall-clock UTC (for people); the samples keep the clients'
monotonic `now_ns()` values (for arithmetic between them).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from protolab.core.record import RequestRecord
from protolab.store.schema import CellState, RunStatus


@dataclass(frozen=True)
class CpuTimes:
    """CPU seconds each process spent during a cell, whether any was saturated, and which."""

    client: float | None = None
    server: float | None = None
    forwarder: float | None = None  # None when the cell ran without the emulated link
    saturated: bool = False
    # The parts that were CPU-bound ("client", "server", "forwarder"); empty with
    # `saturated` in a store from before they were recorded (which part is not known).
    saturated_parts: tuple[str, ...] = ()

    @property
    def cpu_bound(self) -> bool:
        return self.saturated or bool(self.saturated_parts)


@dataclass(frozen=True)
class RunInfo:
    id: int
    suite: str
    status: RunStatus
    started_at: datetime
    ended_at: datetime | None
    pid: int
    manifest: dict[str, Any]
    cells: int  # cells recorded so far
    cells_ok: int
    samples: int  # measured samples (warm-up excluded)

    @property
    def duration_s(self) -> float | None:
        return None if self.ended_at is None else (self.ended_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class CellInfo:
    id: int
    run_id: int
    index: int
    params: dict[str, Any]
    status: CellState  # running: not finished (yet); interrupted: its run ended first
    error: str | None
    cpu: CpuTimes | None  # None unless the cell finished through `finish_cell`
    started_at: datetime
    ended_at: datetime | None
    samples: int  # measured samples (warm-up excluded)


@dataclass(frozen=True)
class StoredSample:
    id: int
    cell_id: int
    repetition: int
    warmup: bool
    record: RequestRecord


@dataclass(frozen=True)
class TaskRun:
    """One attempt at one repetition of a cell: the worker and machine that ran it, its
    wall-clock span (epoch seconds) and how it ended (ok, failed, timeout, lost)."""

    repetition: int
    attempt: int
    worker: str  # "local", or the Dask worker's address
    host: dict[str, Any] | None  # `manifest.host_description()`; None: a lost worker never said
    started: float | None
    ended: float | None
    status: str
    error: str | None = None


@dataclass(frozen=True)
class Metric:
    cell_id: int
    name: str
    value: float
    unit: str


def iso(epoch_s: float) -> str:
    """A wall-clock time as the store writes it: ISO 8601, UTC, milliseconds (so the text
    sorts as the time does)."""
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds")


def iso_text(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="milliseconds")


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def run_info(row: sqlite3.Row, dead: bool) -> RunInfo:
    """A `runs` row with its counts; a `dead` run shows as interrupted at its last activity,
    as the next writer will record it (`ResultsStore.mark_stale_runs`)."""
    started_at = datetime.fromisoformat(row["started_at"])
    status, ended_at = row["status"], _time(row["ended_at"])
    if dead:
        status, ended_at = "interrupted", _time(row["last_activity"]) or started_at
    return RunInfo(
        id=row["id"], suite=row["suite"], status=status, started_at=started_at,
        ended_at=ended_at, pid=row["pid"], manifest=json.loads(row["manifest"]),
        cells=row["n_cells"], cells_ok=row["n_ok"], samples=row["n_samples"],
    )


def cell_info(row: sqlite3.Row, run_dead: bool) -> CellInfo:
    """A `cells` row; a cell still running in a dead run shows as interrupted where its
    last samples were stored, as the next writer will record it."""
    started_at = datetime.fromisoformat(row["started_at"])
    status, ended_at = row["status"], _time(row["ended_at"])
    if run_dead and status == "running":
        status, ended_at = "interrupted", _time(row["last_sample_at"]) or started_at
    cpu = None
    if row["saturated"] is not None:  # written by finish_cell, with or without CPU times
        parts = row["saturated_parts"]
        cpu = CpuTimes(client=row["cpu_client"], server=row["cpu_server"],
                       forwarder=row["cpu_forwarder"], saturated=bool(row["saturated"]),
                       saturated_parts=() if parts is None else tuple(
                           str(part) for part in json.loads(parts)))
    return CellInfo(
        id=row["id"], run_id=row["run_id"], index=row["idx"], params=json.loads(row["params"]),
        status=status, error=row["error"], cpu=cpu, started_at=started_at, ended_at=ended_at,
        samples=row["n_samples"],
    )
