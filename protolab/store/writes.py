"""Writing the results store: runs, cells, raw samples, attempts, metrics, verdicts, HOL.

Raw first: every `RequestRecord` a client produced is stored as it is, with its
data-arrival events and messages (`schema.sample_row`), so any summary can be recomputed
later. Each write is one transaction (in WAL mode, see `db.py`), so a run killed at any
point leaves a consistent file; its cells show how far it got (`last_sample_at`).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from protolab.core.procfs import process_start
from protolab.core.record import RequestRecord
from protolab.errors import StoreError
from protolab.hol.model import HolResult
from protolab.store.access import StoreAccess
from protolab.store.model import CpuTimes, TaskRun, iso
from protolab.store.recovery import interrupt_cells
from protolab.store.schema import (
    CELL_STATUSES,
    JSON_FIELDS,
    MESSAGE_COLUMNS,
    RECORD_COLUMNS,
    RUN_STATUSES,
    TASK_STATUSES,
    CellStatus,
    RunStatus,
    dumps,
    message_row,
    sample_row,
)


class ResultsWriter(StoreAccess):
    """The writes of a `ResultsStore`, each one transaction."""

    def begin_run(self, suite: str, manifest: Mapping[str, Any]) -> int:
        with self._db.tx() as db:
            cursor = db.execute(
                "INSERT INTO runs (suite, status, started_at, host, pid, pid_start, manifest)"
                " VALUES (?, 'running', ?, ?, ?, ?, ?)",
                (suite, self._now(), socket.gethostname(), os.getpid(),
                 process_start(os.getpid()), dumps(manifest)),
            )
            return _rowid(cursor)

    def add_cell(self, run_id: int, index: int, params: Mapping[str, Any]) -> int:
        self._run_row(run_id)
        with self._db.tx() as db:
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
        self, cell_id: int, records: Iterable[RequestRecord], repetition: int, warmup: bool,
        ran: TaskRun | None = None,
    ) -> list[int]:
        """Store one request record per row (and its arrivals); returns the sample ids.
        With `ran`, where the repetition ran is stored in the same transaction."""
        self._cell_exists(cell_id)
        if ran is not None:
            _check_task(ran, repetition)
        columns = (*RECORD_COLUMNS, *JSON_FIELDS)
        insert = (
            f"INSERT INTO samples (cell_id, repetition, warmup, {', '.join(columns)})"
            f" VALUES ({', '.join('?' * (len(columns) + 3))})"
        )
        insert_message = (
            f"INSERT INTO messages (sample_id, idx, {', '.join(MESSAGE_COLUMNS)})"
            f" VALUES (?, ?, {', '.join('?' * len(MESSAGE_COLUMNS))})"
        )
        ids: list[int] = []
        with self._db.tx() as db:
            for record in records:
                cursor = db.execute(insert, (cell_id, repetition, int(warmup),
                                             *sample_row(record)))
                sample_id = _rowid(cursor)
                db.executemany(
                    "INSERT INTO arrivals (sample_id, seq, t_ns, bytes) VALUES (?, ?, ?, ?)",
                    [(sample_id, seq, t, n) for seq, (t, n) in enumerate(record.arrivals)],
                )
                db.executemany(insert_message, [(sample_id, idx, *message_row(m))
                                                for idx, m in enumerate(record.messages)])
                ids.append(sample_id)
            # The wall-clock trace of progress: where the cell ends if its run dies.
            db.execute("UPDATE cells SET last_sample_at = ? WHERE id = ?", (self._now(), cell_id))
            if ran is not None:
                _insert_task(db, cell_id, ran)
        return ids

    def add_task(self, cell_id: int, ran: TaskRun) -> None:
        """Where one attempt at a repetition ran, alone: an attempt with no samples (a
        worker lost and the repetition retried)."""
        self._cell_exists(cell_id)
        _check_task(ran, ran.repetition)
        with self._db.tx() as db:
            _insert_task(db, cell_id, ran)

    def finish_cell(
        self,
        cell_id: int,
        status: CellStatus,
        error: str | None = None,
        cpu: CpuTimes | None = None,
    ) -> None:
        """End one cell. Call it as soon as the cell's last samples are stored: a run that
        stops later then keeps the cell finished, with its CPU times."""
        if status not in CELL_STATUSES:
            raise StoreError(f"cell status must be one of {', '.join(CELL_STATUSES)}")
        self._cell_exists(cell_id)
        cpu = cpu or CpuTimes()
        with self._db.tx() as db:
            db.execute(
                "UPDATE cells SET status = ?, error = ?, cpu_client = ?, cpu_server = ?,"
                " cpu_forwarder = ?, saturated = ?, saturated_parts = ?, ended_at = ?"
                " WHERE id = ?",
                (status, error, cpu.client, cpu.server, cpu.forwarder, int(cpu.cpu_bound),
                 dumps(list(cpu.saturated_parts)), self._now(), cell_id),
            )

    def add_metric(self, cell_id: int, name: str, value: float, unit: str) -> None:
        """A derived number for a cell (goodput, p99, ...); the same name again replaces it."""
        self._cell_exists(cell_id)
        with self._db.tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO metrics (cell_id, name, value, unit) VALUES (?, ?, ?, ?)",
                (cell_id, name, float(value), unit),
            )

    def add_verdicts(self, run_id: int, verdicts: Sequence[Mapping[str, Any]]) -> None:
        """A run's verdicts (claim, claim_json, conditions, verdict, value, ci_low, ci_high,
        unit, n_a, n_b, note), replacing any stored before; one transaction."""
        self._run_row(run_id)
        keys = ("claim", "claim_json", "conditions", "verdict", "value", "ci_low", "ci_high",
                "unit", "n_a", "n_b", "note")
        with self._db.tx() as db:
            db.execute("DELETE FROM verdicts WHERE run_id = ?", (run_id,))
            for idx, verdict in enumerate(verdicts):
                row = {**verdict, "claim_json": dumps(verdict["claim_json"]),
                       "conditions": dumps(verdict["conditions"])}
                db.execute(
                    f"INSERT INTO verdicts (run_id, idx, {', '.join(keys)}) "
                    f"VALUES (?, ?, {', '.join('?' for _ in keys)})",
                    (run_id, idx, *(row[k] for k in keys)),
                )

    def add_hol(self, cell_id: int, repetition: int, result: HolResult) -> None:
        """One repetition's HOL analysis (drops, pieces, streams), replacing any stored
        before for it; one transaction."""
        self._cell_exists(cell_id)
        key = (cell_id, repetition)
        with self._db.tx() as db:
            for table in ("hol_drops", "hol_pieces", "hol_streams"):
                db.execute(f"DELETE FROM {table} WHERE cell_id = ? AND repetition = ?", key)
            db.executemany(
                "INSERT INTO hol_drops VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(*key, d.id, d.at_ns, d.direction, d.reason, d.packet, d.size,
                  dumps(list(d.streams)), d.refilled_ns) for d in result.drops])
            db.executemany(
                "INSERT INTO hol_pieces VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(*key, i, p.stream_id, p.offset, p.length, p.link_ns, p.readable_ns,
                  p.app_ns, p.cause, dumps(list(p.drops)))
                 for i, p in enumerate(result.pieces)])
            db.executemany(
                "INSERT INTO hol_streams VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(*key, h.stream_id, h.bytes, h.pieces, h.own_ns, h.others_ns, h.late_ns,
                  h.unattributed_ns, h.own_max_ns, h.others_max_ns, int(h.lost_data),
                  int(h.exposed), int(h.exposed_own), dumps(list(h.drops)))
                 for h in result.streams])

    def finish_run(self, run_id: int, status: RunStatus) -> None:
        """End a run; its cells still running did not finish and end `interrupted`."""
        if status not in RUN_STATUSES or status == "running":
            raise StoreError("a run finishes as complete, interrupted or failed")
        self._run_row(run_id)
        with self._db.tx() as db:
            interrupt_cells(db, run_id)
            db.execute(
                "UPDATE runs SET status = ?, ended_at = ? WHERE id = ?",
                (status, self._now(), run_id),
            )


def _check_task(ran: TaskRun, repetition: int) -> None:
    if ran.status not in TASK_STATUSES:
        raise StoreError(f"task status must be one of {', '.join(TASK_STATUSES)}")
    if ran.repetition != repetition:
        raise StoreError(f"task of repetition {ran.repetition} stored with repetition "
                         f"{repetition}")


def _insert_task(db: sqlite3.Connection, cell_id: int, ran: TaskRun) -> None:
    host_id = None
    if ran.host is not None:
        description = dumps(ran.host)
        db.execute("INSERT OR IGNORE INTO hosts (hostname, description) VALUES (?, ?)",
                   (str(ran.host.get("hostname", "?")), description))
        host_id = db.execute("SELECT id FROM hosts WHERE description = ?",
                             (description,)).fetchone()[0]
    try:
        db.execute(
            "INSERT INTO cell_tasks (cell_id, repetition, attempt, worker, host_id, started_at,"
            " ended_at, status, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (cell_id, ran.repetition, ran.attempt, ran.worker, host_id,
             None if ran.started is None else iso(ran.started),
             None if ran.ended is None else iso(ran.ended), ran.status, ran.error))
    except sqlite3.IntegrityError as exc:
        raise StoreError(f"cell {cell_id} already has attempt {ran.attempt} of repetition "
                         f"{ran.repetition}") from exc


def _rowid(cursor: sqlite3.Cursor) -> int:
    rowid = cursor.lastrowid
    if rowid is None:  # pragma: no cover - sqlite3 always sets it after an INSERT
        raise StoreError("insert returned no row id")
    return rowid
