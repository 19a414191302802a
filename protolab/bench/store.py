"""The results store: runs, cells, raw samples and derived metrics in one SQLite file.

Raw first: every `RequestRecord` a client produced is stored as it is (with its
data-arrival events), so any summary can be recomputed later; `samples()` gives the
records back unchanged. Each write is one transaction and the database runs in WAL
mode, so a run killed at any point leaves a consistent file whose run is still
`running`; the next open marks such runs `interrupted` when their process is gone.

Times of runs and cells are wall-clock UTC (for people); the samples keep the clients'
monotonic `now_ns()` values (for arithmetic between them).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import platform
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, TextIO

from protolab.bench.stats import Ratio, median, median_ratio
from protolab.core.latency import phases
from protolab.core.record import MessageTiming, RequestRecord
from protolab.errors import StoreError

SCHEMA_VERSION = 2
DEFAULT_DB = Path("results/protolab.db")

RunStatus = Literal["running", "complete", "interrupted", "failed"]
CellStatus = Literal["ok", "failed", "timeout"]
ExportFormat = Literal["csv", "json"]
RUN_STATUSES: tuple[RunStatus, ...] = ("running", "complete", "interrupted", "failed")
CELL_STATUSES: tuple[CellStatus, ...] = ("ok", "failed", "timeout")

# Packages whose versions change what a run measures (DESIGN.md: the manifest).
MANIFEST_PACKAGES = (
    "protolab", "aioquic", "h2", "h11", "hpack", "cryptography", "grpcio", "protobuf",
    "websockets", "hdrhistogram", "numpy",
)

_SCHEMA = """
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    suite       TEXT NOT NULL,
    status      TEXT NOT NULL
                CHECK (status IN ('running', 'complete', 'interrupted', 'failed')),
    started_at  TEXT NOT NULL,          -- ISO 8601, UTC
    ended_at    TEXT,
    host        TEXT NOT NULL,          -- pid liveness is only judged on the same host
    pid         INTEGER NOT NULL,
    pid_start   INTEGER,                -- /proc start time of pid, so a reused pid is not alive
    manifest    TEXT NOT NULL           -- JSON: versions, kernel, CPU, settings, seeds
);
CREATE TABLE cells (
    id             INTEGER PRIMARY KEY,
    run_id         INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    idx            INTEGER NOT NULL,
    params         TEXT NOT NULL,       -- JSON: protocol, link, workload, repetition
    status         TEXT NOT NULL CHECK (status IN ('running', 'ok', 'failed', 'timeout')),
    error          TEXT,
    cpu_client     REAL,                -- CPU seconds during the cell
    cpu_server     REAL,
    cpu_forwarder  REAL,
    saturated      INTEGER,             -- 1: some process was CPU-bound; numbers measure Python
    started_at     TEXT NOT NULL,
    ended_at       TEXT,
    UNIQUE (run_id, idx)
);
CREATE TABLE samples (
    id               INTEGER PRIMARY KEY,
    cell_id          INTEGER NOT NULL REFERENCES cells(id) ON DELETE CASCADE,
    repetition       INTEGER NOT NULL,
    warmup           INTEGER NOT NULL,
    protocol         TEXT NOT NULL,
    method           TEXT NOT NULL,
    path             TEXT NOT NULL,
    start_ns         INTEGER NOT NULL,
    connection_id    INTEGER NOT NULL,
    new_connection   INTEGER NOT NULL,
    conn_start_ns    INTEGER,
    connected_ns     INTEGER,
    handshake_ns     INTEGER,
    request_sent_ns  INTEGER,
    first_byte_ns    INTEGER,
    done_ns          INTEGER,
    status           INTEGER,
    stream_id        INTEGER,
    bytes_out        INTEGER NOT NULL,
    bytes_in         INTEGER NOT NULL,
    body_bytes       INTEGER NOT NULL,
    body_verified    INTEGER,
    alpn             TEXT,
    tls_version      TEXT,
    cipher           TEXT,
    resumed          INTEGER NOT NULL,
    early_data       INTEGER NOT NULL,
    error            TEXT,
    error_detail     TEXT,
    upgraded_ns      INTEGER,
    intended_ns      INTEGER,            -- open-loop: when the load model meant to send it
    content          BLOB,              -- the body, only when the request asked to keep it
    transport        TEXT NOT NULL      -- JSON object of integer counters
);
CREATE INDEX samples_by_cell ON samples (cell_id);
CREATE TABLE arrivals (
    sample_id  INTEGER NOT NULL REFERENCES samples(id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    t_ns       INTEGER NOT NULL,
    bytes      INTEGER NOT NULL,
    PRIMARY KEY (sample_id, seq)
) WITHOUT ROWID;
CREATE TABLE messages (               -- per message of WebSocket, gRPC streams, push
    sample_id    INTEGER NOT NULL REFERENCES samples(id) ON DELETE CASCADE,
    idx          INTEGER NOT NULL,
    seq          INTEGER NOT NULL,
    size         INTEGER NOT NULL,
    sent_ns      INTEGER,
    received_ns  INTEGER NOT NULL,
    born_ns      INTEGER,
    PRIMARY KEY (sample_id, idx)
) WITHOUT ROWID;
CREATE TABLE metrics (
    cell_id  INTEGER NOT NULL REFERENCES cells(id) ON DELETE CASCADE,
    name     TEXT NOT NULL,
    value    REAL NOT NULL,
    unit     TEXT NOT NULL,
    PRIMARY KEY (cell_id, name)
) WITHOUT ROWID;
CREATE INDEX cells_by_run ON cells (run_id);
"""

# RequestRecord fields stored as columns of `samples`, in order; arrivals and messages
# have their own tables and transport is JSON. A test checks this list against the dataclass.
RECORD_COLUMNS = (
    "protocol", "method", "path", "start_ns", "connection_id", "new_connection",
    "conn_start_ns", "connected_ns", "handshake_ns", "request_sent_ns", "first_byte_ns",
    "done_ns", "status", "stream_id", "bytes_out", "bytes_in", "body_bytes", "body_verified",
    "alpn", "tls_version", "cipher", "resumed", "early_data", "error", "error_detail",
    "upgraded_ns", "intended_ns", "content",
)
_CSV_RECORD_COLUMNS = tuple(c for c in RECORD_COLUMNS if c != "content")  # CSV: size only
# MessageTiming fields, columns of `messages` (checked against the dataclass by a test).
MESSAGE_COLUMNS = ("seq", "size", "sent_ns", "received_ns", "born_ns")
_BOOL_COLUMNS = frozenset({"new_connection", "resumed", "early_data"})


@dataclass(frozen=True)
class CpuTimes:
    """CPU seconds each process spent during a cell, and whether any was saturated."""

    client: float | None = None
    server: float | None = None
    forwarder: float | None = None  # None when the cell ran without the emulated link
    saturated: bool = False


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
    status: Literal["running", "ok", "failed", "timeout"]  # running: never finished
    error: str | None
    cpu: CpuTimes | None
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
class Metric:
    cell_id: int
    name: str
    value: float
    unit: str


@dataclass(frozen=True)
class MedianComparison:
    """One phase of one matched cell: medians in ms, and B / A with a bootstrap CI."""

    a_ms: float | None
    b_ms: float | None
    ratio: Ratio | None  # None when either side has no successful sample


@dataclass(frozen=True)
class CellComparison:
    params: dict[str, Any]  # the cell parameters both runs share (repetition removed)
    n_a: int
    n_b: int
    ttfb: MedianComparison
    total: MedianComparison


class ResultsStore:
    """One SQLite results database. Synchronous; safe to call from one thread at a time."""

    def __init__(
        self,
        path: Path | str = DEFAULT_DB,
        *,
        create: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Open (and with `create`, make) the database; marks stale running runs."""
        self.path = Path(path)
        if not create and not self.path.exists():
            raise StoreError(
                f"no results database at {self.path}", hint="run `protolab bench` or pass --db"
            )
        self._clock = clock
        self._lock = threading.RLock()
        if create and not self.path.parent.is_dir():
            # The database's own directory is made (as `mkdir` would: results/ in a fresh
            # checkout), never a tree: a mistyped --db path is an error, not new directories.
            if not self.path.parent.parent.is_dir():
                raise StoreError(f"directory {self.path.parent.parent} does not exist",
                                 hint="create it first, or choose another --db")
            try:
                self.path.parent.mkdir(exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create {self.path.parent}: {exc.strerror}") from exc
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open results database {self.path}: {exc}") from exc
        try:
            self._open()
            self.mark_stale_runs()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(
                f"{self.path} is not a usable results database ({exc})",
                hint="choose another --db, or move the file away",
            ) from exc
        except BaseException:
            self._db.close()
            raise

    def _open(self) -> None:
        self._db.execute("PRAGMA foreign_keys = ON")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has results schema {version}; this protolab reads up to "
                f"{SCHEMA_VERSION}",
                hint="upgrade protolab or choose another --db",
            )
        if version == 0:
            tables = self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables:
                raise StoreError(
                    f"{self.path} is an SQLite database but not a protolab results store",
                    hint="choose another --db",
                )
            # WAL: readers (results list) never block the runner, and a crash mid-write
            # rolls back to the last committed cell.
            self._db.execute("PRAGMA journal_mode = WAL")
            with self._lock:  # one script, one transaction: no half-created schema
                self._db.executescript(
                    f"BEGIN IMMEDIATE;\n{_SCHEMA}\nPRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;"
                )
        else:
            self._db.execute("PRAGMA journal_mode = WAL")
            self._migrate(version)
        self._db.execute("PRAGMA synchronous = NORMAL")

    def _migrate(self, version: int) -> None:
        """Bring an older store up to SCHEMA_VERSION, each step in one transaction."""
        steps = {1: "ALTER TABLE samples ADD COLUMN intended_ns INTEGER;"}
        for from_version in range(version, SCHEMA_VERSION):
            with self._lock:
                self._db.executescript(
                    f"BEGIN IMMEDIATE;\n{steps[from_version]}\n"
                    f"PRAGMA user_version = {from_version + 1};\nCOMMIT;"
                )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _now(self) -> str:
        return _iso(self._clock())

    # --- writing -----------------------------------------------------------------------

    def begin_run(self, suite: str, manifest: Mapping[str, Any]) -> int:
        with self._tx() as db:
            cursor = db.execute(
                "INSERT INTO runs (suite, status, started_at, host, pid, pid_start, manifest)"
                " VALUES (?, 'running', ?, ?, ?, ?, ?)",
                (suite, self._now(), socket.gethostname(), os.getpid(),
                 _process_start(os.getpid()), _dumps(manifest)),
            )
            return _rowid(cursor)

    def add_cell(self, run_id: int, index: int, params: Mapping[str, Any]) -> int:
        self._run_exists(run_id)
        with self._tx() as db:
            try:
                cursor = db.execute(
                    "INSERT INTO cells (run_id, idx, params, status, started_at)"
                    " VALUES (?, ?, ?, 'running', ?)",
                    (run_id, index, json.dumps(params), self._now()),  # keep key order
                )
            except sqlite3.IntegrityError as exc:
                raise StoreError(f"run {run_id} already has a cell {index}") from exc
            return _rowid(cursor)

    def add_samples(
        self, cell_id: int, records: Iterable[RequestRecord], repetition: int, warmup: bool
    ) -> list[int]:
        """Store one request record per row (and its arrivals); returns the sample ids."""
        self._cell_exists(cell_id)
        placeholders = ", ".join("?" * (len(RECORD_COLUMNS) + 4))
        insert = (
            f"INSERT INTO samples (cell_id, repetition, warmup, {', '.join(RECORD_COLUMNS)},"
            f" transport) VALUES ({placeholders})"
        )
        ids: list[int] = []
        with self._tx() as db:
            for record in records:
                values = [getattr(record, name) for name in RECORD_COLUMNS]
                cursor = db.execute(
                    insert,
                    (cell_id, repetition, int(warmup), *values, _dumps(record.transport)),
                )
                sample_id = _rowid(cursor)
                db.executemany(
                    "INSERT INTO arrivals (sample_id, seq, t_ns, bytes) VALUES (?, ?, ?, ?)",
                    [(sample_id, seq, t, n) for seq, (t, n) in enumerate(record.arrivals)],
                )
                db.executemany(
                    f"INSERT INTO messages (sample_id, idx, {', '.join(MESSAGE_COLUMNS)})"
                    f" VALUES (?, ?, {', '.join('?' * len(MESSAGE_COLUMNS))})",
                    [(sample_id, idx, *(getattr(m, name) for name in MESSAGE_COLUMNS))
                     for idx, m in enumerate(record.messages)],
                )
                ids.append(sample_id)
        return ids

    def finish_cell(
        self,
        cell_id: int,
        status: CellStatus,
        error: str | None = None,
        cpu: CpuTimes | None = None,
    ) -> None:
        if status not in CELL_STATUSES:
            raise StoreError(f"cell status must be one of {', '.join(CELL_STATUSES)}")
        self._cell_exists(cell_id)
        cpu = cpu or CpuTimes()
        with self._tx() as db:
            db.execute(
                "UPDATE cells SET status = ?, error = ?, cpu_client = ?, cpu_server = ?,"
                " cpu_forwarder = ?, saturated = ?, ended_at = ? WHERE id = ?",
                (status, error, cpu.client, cpu.server, cpu.forwarder, int(cpu.saturated),
                 self._now(), cell_id),
            )

    def add_metric(self, cell_id: int, name: str, value: float, unit: str) -> None:
        """A derived number for a cell (goodput, p99, ...); the same name again replaces it."""
        self._cell_exists(cell_id)
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO metrics (cell_id, name, value, unit) VALUES (?, ?, ?, ?)",
                (cell_id, name, float(value), unit),
            )

    def finish_run(self, run_id: int, status: RunStatus) -> None:
        if status not in RUN_STATUSES or status == "running":
            raise StoreError("a run finishes as complete, interrupted or failed")
        self._run_exists(run_id)
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET status = ?, ended_at = ? WHERE id = ?",
                (status, self._now(), run_id),
            )

    def mark_stale_runs(self) -> list[int]:
        """Mark `interrupted` every running run whose process is gone; returns their ids."""
        host = socket.gethostname()
        with self._tx() as db:
            rows = db.execute(
                "SELECT id, pid, pid_start FROM runs WHERE status = 'running' AND host = ?",
                (host,),
            ).fetchall()
            stale = [run_id for run_id, pid, start in rows if not _alive(pid, start)]
            for run_id in stale:
                # No end time is known; the last finished cell is the best estimate.
                db.execute(
                    "UPDATE runs SET status = 'interrupted', ended_at = coalesce("
                    "(SELECT max(ended_at) FROM cells WHERE run_id = ?), started_at)"
                    " WHERE id = ?",
                    (run_id, run_id),
                )
        return stale

    # --- reading -----------------------------------------------------------------------

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            cursor = self._db.execute(sql, args)
            cursor.row_factory = sqlite3.Row
            return cursor.fetchall()

    _RUN_SELECT = (
        "SELECT r.*,"
        " (SELECT count(*) FROM cells c WHERE c.run_id = r.id) AS n_cells,"
        " (SELECT count(*) FROM cells c WHERE c.run_id = r.id AND c.status = 'ok') AS n_ok,"
        " (SELECT count(*) FROM samples s JOIN cells c ON s.cell_id = c.id"
        "  WHERE c.run_id = r.id AND NOT s.warmup) AS n_samples"
        " FROM runs r"
    )

    def runs(self) -> list[RunInfo]:
        return [_run_info(row) for row in self._query(f"{self._RUN_SELECT} ORDER BY r.id")]

    def run(self, run_id: int) -> RunInfo:
        rows = self._query(f"{self._RUN_SELECT} WHERE r.id = ?", (run_id,))
        if not rows:
            raise StoreError(
                f"no run {run_id} in {self.path}", hint="`protolab results list` shows the runs"
            )
        return _run_info(rows[0])

    def cells(self, run_id: int) -> list[CellInfo]:
        self._run_exists(run_id)
        rows = self._query(
            "SELECT c.*, (SELECT count(*) FROM samples s WHERE s.cell_id = c.id"
            " AND NOT s.warmup) AS n_samples FROM cells c WHERE c.run_id = ? ORDER BY c.idx",
            (run_id,),
        )
        return [_cell_info(row) for row in rows]

    def _run_exists(self, run_id: int) -> None:
        if not self._query("SELECT 1 FROM runs WHERE id = ?", (run_id,)):
            raise StoreError(
                f"no run {run_id} in {self.path}", hint="`protolab results list` shows the runs"
            )

    def _cell_exists(self, cell_id: int) -> None:
        if not self._query("SELECT 1 FROM cells WHERE id = ?", (cell_id,)):
            raise StoreError(f"no cell {cell_id} in {self.path}")

    def stored_samples(self, cell_id: int, include_warmup: bool = False) -> list[StoredSample]:
        self._cell_exists(cell_id)
        where = "" if include_warmup else " AND NOT warmup"
        rows = self._query(
            f"SELECT * FROM samples WHERE cell_id = ?{where} ORDER BY id", (cell_id,)
        )
        arrivals: dict[int, list[tuple[int, int]]] = {}
        for a in self._query(
            "SELECT a.sample_id, a.t_ns, a.bytes FROM arrivals a JOIN samples s"
            f" ON a.sample_id = s.id WHERE s.cell_id = ?{where} ORDER BY a.sample_id, a.seq",
            (cell_id,),
        ):
            arrivals.setdefault(a["sample_id"], []).append((a["t_ns"], a["bytes"]))
        messages: dict[int, list[MessageTiming]] = {}
        for m in self._query(
            f"SELECT m.* FROM messages m JOIN samples s ON m.sample_id = s.id"
            f" WHERE s.cell_id = ?{where} ORDER BY m.sample_id, m.idx",
            (cell_id,),
        ):
            messages.setdefault(m["sample_id"], []).append(
                MessageTiming(**{name: m[name] for name in MESSAGE_COLUMNS})
            )
        return [
            StoredSample(
                id=row["id"],
                cell_id=cell_id,
                repetition=row["repetition"],
                warmup=bool(row["warmup"]),
                record=_record(
                    row, tuple(arrivals.get(row["id"], ())), tuple(messages.get(row["id"], ()))
                ),
            )
            for row in rows
        ]

    def samples(self, cell_id: int, include_warmup: bool = False) -> list[RequestRecord]:
        """The records exactly as `add_samples` got them, in insertion order."""
        return [s.record for s in self.stored_samples(cell_id, include_warmup)]

    def metrics(self, cell_id: int) -> list[Metric]:
        self._cell_exists(cell_id)
        return [
            Metric(cell_id, row["name"], row["value"], row["unit"])
            for row in self._query(
                "SELECT * FROM metrics WHERE cell_id = ? ORDER BY name", (cell_id,)
            )
        ]

    # --- export and comparison ---------------------------------------------------------

    def export(
        self, run_id: int, format: ExportFormat = "csv", out: Path | TextIO | None = None
    ) -> str | None:
        """Write a run as CSV (one row per sample) or JSON (the whole run, nested).

        `out` is a path or an open text stream; with None the text is returned instead.
        """
        if format not in ("csv", "json"):
            raise StoreError(f"unknown export format {format!r}; choose csv or json")
        buffer = io.StringIO()
        if format == "csv":
            self._export_csv(run_id, buffer)
        else:
            json.dump(self._export_json(run_id), buffer, indent=1, sort_keys=False)
            buffer.write("\n")
        text = buffer.getvalue()
        if out is None:
            return text
        if isinstance(out, Path):
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
        else:
            out.write(text)
        return None

    def _export_csv(self, run_id: int, out: TextIO) -> None:
        columns = [
            "run_id", "cell_id", "cell_index", "cell_status", "params", "sample_id",
            "repetition", "warmup", *_CSV_RECORD_COLUMNS, "content_bytes", "arrivals",
            "messages", "transport", "connect_ms", "tls_ms", "ttfb_ms", "total_ms",
        ]
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for cell in self.cells(run_id):
            for sample in self.stored_samples(cell.id, include_warmup=True):
                record = sample.record
                row: dict[str, Any] = {
                    "run_id": run_id, "cell_id": cell.id, "cell_index": cell.index,
                    "cell_status": cell.status, "params": _dumps(cell.params),
                    "sample_id": sample.id, "repetition": sample.repetition,
                    "warmup": int(sample.warmup),
                    "content_bytes": None if record.content is None else len(record.content),
                    "arrivals": _dumps([list(a) for a in record.arrivals]),
                    "messages": _dumps([dataclasses.asdict(m) for m in record.messages]),
                    "transport": _dumps(record.transport),
                    **{name: getattr(record, name) for name in _CSV_RECORD_COLUMNS},
                    **phases(record),
                }
                writer.writerow(row)

    def _export_json(self, run_id: int) -> dict[str, Any]:
        info = self.run(run_id)
        cells = []
        for cell in self.cells(run_id):
            cells.append({
                "id": cell.id, "index": cell.index, "params": cell.params,
                "status": cell.status, "error": cell.error,
                "cpu": dataclasses.asdict(cell.cpu) if cell.cpu else None,
                "started_at": _iso_text(cell.started_at),
                "ended_at": _iso_text(cell.ended_at),
                "metrics": [
                    {"name": m.name, "value": m.value, "unit": m.unit}
                    for m in self.metrics(cell.id)
                ],
                "samples": [
                    {"id": s.id, "repetition": s.repetition, "warmup": s.warmup,
                     **s.record.to_json()}
                    for s in self.stored_samples(cell.id, include_warmup=True)
                ],
            })
        return {
            "format": "protolab-results", "schema": SCHEMA_VERSION,
            "run": {
                "id": info.id, "suite": info.suite, "status": info.status,
                "started_at": _iso_text(info.started_at), "ended_at": _iso_text(info.ended_at),
                "pid": info.pid, "manifest": info.manifest,
            },
            "cells": cells,
        }

    def compare(self, run_a: int, run_b: int, *, rng_seed: int = 0) -> list[CellComparison]:
        """Median TTFB and total time of cells with equal parameters (repetitions pooled).

        Only successful, non-warm-up samples count; ratios are B / A, so above 1 means
        run B was slower. Cells present in only one run are left out.
        """
        pooled_a = self._pooled(run_a)
        pooled_b = self._pooled(run_b)
        result = []
        for key, (params, records_a) in pooled_a.items():
            if key not in pooled_b:
                continue
            records_b = pooled_b[key][1]
            result.append(CellComparison(
                params=params,
                n_a=len(records_a),
                n_b=len(records_b),
                ttfb=_compare(records_a, records_b, "ttfb_ms", rng_seed),
                total=_compare(records_a, records_b, "total_ms", rng_seed),
            ))
        return result

    def _pooled(self, run_id: int) -> dict[str, tuple[dict[str, Any], list[RequestRecord]]]:
        pooled: dict[str, tuple[dict[str, Any], list[RequestRecord]]] = {}
        for cell in self.cells(run_id):
            params = {k: v for k, v in cell.params.items() if k != "repetition"}
            key = _dumps(params)
            _, records = pooled.setdefault(key, (params, []))
            records.extend(r for r in self.samples(cell.id) if r.ok)
        return pooled


# --- manifest ------------------------------------------------------------------------------


def manifest(
    settings: Mapping[str, Any] | None = None, seeds: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """What a run needs to be understood later: versions, machine, settings, seeds."""
    uname = platform.uname()
    return {
        "lab_version": _package_version("protolab"),
        "git": _git_revision(),
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "packages": {name: _package_version(name) for name in MANIFEST_PACKAGES},
        "kernel": {"system": uname.system, "release": uname.release, "version": uname.version,
                   "machine": uname.machine},
        "host": socket.gethostname(),
        "cpu": {"model": _cpu_model(), "count": os.cpu_count()},
        "settings": dict(settings or {}),
        "seeds": dict(seeds or {}),
    }


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git_revision() -> dict[str, Any]:
    """HEAD of the checkout protolab runs from, and whether it has local changes; where that
    cannot be known (no git, an unpacked archive) the reason instead of a revision."""
    repo = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
            timeout=10, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except FileNotFoundError:
        return {"revision": None, "dirty": None, "note": "git is not installed"}
    except (OSError, subprocess.SubprocessError):
        return {"revision": None, "dirty": None, "note": "not a git checkout"}
    return {"revision": head, "dirty": bool(dirty)}


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


# --- helpers -------------------------------------------------------------------------------


def _process_start(pid: int) -> int | None:
    """The process start time (clock ticks since boot) from /proc, if this system has it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19])  # field 22 overall


def _alive(pid: int, start: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    return start is None or _process_start(pid) in (start, None)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _rowid(cursor: sqlite3.Cursor) -> int:
    rowid = cursor.lastrowid
    if rowid is None:  # pragma: no cover - sqlite3 always sets it after an INSERT
        raise StoreError("insert returned no row id")
    return rowid


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds")


def _iso_text(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="milliseconds")


def _parse_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _parse_required(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _run_info(row: sqlite3.Row) -> RunInfo:
    return RunInfo(
        id=row["id"], suite=row["suite"], status=row["status"],
        started_at=_parse_required(row["started_at"]),
        ended_at=_parse_time(row["ended_at"]), pid=row["pid"],
        manifest=json.loads(row["manifest"]), cells=row["n_cells"], cells_ok=row["n_ok"],
        samples=row["n_samples"],
    )


def _cell_info(row: sqlite3.Row) -> CellInfo:
    cpu = None
    if row["ended_at"] is not None:
        cpu = CpuTimes(client=row["cpu_client"], server=row["cpu_server"],
                       forwarder=row["cpu_forwarder"], saturated=bool(row["saturated"]))
    return CellInfo(
        id=row["id"], run_id=row["run_id"], index=row["idx"], params=json.loads(row["params"]),
        status=row["status"], error=row["error"], cpu=cpu,
        started_at=_parse_required(row["started_at"]),
        ended_at=_parse_time(row["ended_at"]), samples=row["n_samples"],
    )


def _record(
    row: sqlite3.Row,
    arrivals: tuple[tuple[int, int], ...],
    messages: tuple[MessageTiming, ...],
) -> RequestRecord:
    values: dict[str, Any] = {name: row[name] for name in RECORD_COLUMNS}
    for name in _BOOL_COLUMNS:
        values[name] = bool(values[name])
    if values["body_verified"] is not None:
        values["body_verified"] = bool(values["body_verified"])
    return RequestRecord(
        **values, arrivals=arrivals, messages=messages, transport=json.loads(row["transport"])
    )


def _compare(
    a: list[RequestRecord], b: list[RequestRecord], phase: str, rng_seed: int
) -> MedianComparison:
    values_a = [v for v in (phases(r)[phase] for r in a) if v is not None]
    values_b = [v for v in (phases(r)[phase] for r in b) if v is not None]
    if not values_a or not values_b:
        return MedianComparison(
            a_ms=median(values_a) if values_a else None,
            b_ms=median(values_b) if values_b else None,
            ratio=None,
        )
    a_ms, b_ms = median(values_a), median(values_b)
    ratio = median_ratio(values_b, values_a, rng=rng_seed) if a_ms > 0 else None
    return MedianComparison(a_ms=a_ms, b_ms=b_ms, ratio=ratio)
