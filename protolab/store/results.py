"""The results store: runs, cells, raw samples and derived metrics, written and read.

Raw first: every `RequestRecord` a client produced is stored as it is (with its
data-arrival events and messages), so any summary can be recomputed later; `samples()`
gives the records back unchanged. Each write is one transaction (in WAL mode, see
`db.py`), so a run killed at any point leaves a consistent file whose run is still
`running`; the next writer's open marks such runs, and their cells that did not finish,
`interrupted` when their process is gone. A read-only store shows them so without writing.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from protolab.core.procfs import may_be_alive, process_start
from protolab.core.record import MessageTiming, RequestRecord
from protolab.errors import StoreError
from protolab.hol.model import CAUSES, Drop, HolResult, Piece, StreamHol
from protolab.store.db import Database
from protolab.store.model import (
    CellInfo,
    CpuTimes,
    Metric,
    RunInfo,
    StoredSample,
    TaskRun,
    cell_info,
    iso,
    run_info,
)
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
    message_from_row,
    message_row,
    record_from_row,
    sample_row,
)

DEFAULT_DB = Path("results/protolab.db")


class ResultsStore:
    """One results database. Synchronous; safe to call from one thread at a time."""

    def __init__(
        self,
        path: Path | str = DEFAULT_DB,
        *,
        create: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Open the database: with `create`, for writing (made if missing, migrated, stale
        runs marked); without, read-only and left exactly as it is."""
        self.path = Path(path)
        self._clock = clock
        self._db = Database(self.path, writable=create)
        if create:
            try:
                self.mark_stale_runs()
            except BaseException:
                self._db.close()
                raise

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _now(self) -> str:
        return iso(self._clock())

    # --- writing -----------------------------------------------------------------------

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

    def cell_tasks(self, cell_id: int) -> list[TaskRun]:
        """Every attempt at the cell's repetitions, with its worker and host, in order;
        none for a store older than schema 6 opened read-only."""
        self._cell_exists(cell_id)
        if not self._db.has_table("cell_tasks"):
            return []
        rows = self._db.query(
            "SELECT t.*, h.description FROM cell_tasks t LEFT JOIN hosts h"
            " ON t.host_id = h.id WHERE t.cell_id = ? ORDER BY t.repetition, t.attempt",
            (cell_id,))
        with self._db.decoding():
            return [TaskRun(r["repetition"], r["attempt"], r["worker"],
                            None if r["description"] is None else json.loads(r["description"]),
                            _epoch(r["started_at"]), _epoch(r["ended_at"]), r["status"],
                            r["error"]) for r in rows]

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

    def verdicts(self, run_id: int) -> list[dict[str, Any]]:
        """The run's verdicts in order; none for a store older than schema 4."""
        self._run_row(run_id)
        if not self._db.has_table("verdicts"):
            return []
        rows = self._db.query("SELECT * FROM verdicts WHERE run_id = ? ORDER BY idx",
                              (run_id,))
        with self._db.decoding():
            return [{**{k: row[k] for k in row.keys() if k not in ("run_id", "idx")},
                     "claim_json": json.loads(row["claim_json"]),
                     "conditions": json.loads(row["conditions"])} for row in rows]

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

    def _hol_rows(self, table: str, cell_id: int, order: str) -> list[sqlite3.Row]:
        self._cell_exists(cell_id)
        if not self._db.has_table(table):
            return []  # a store older than schema 5, opened read-only
        return self._db.query(
            f"SELECT * FROM {table} WHERE cell_id = ? ORDER BY repetition, {order}", (cell_id,))

    def hol_streams(self, cell_id: int) -> list[tuple[int, StreamHol]]:
        """(repetition, per-stream HOL) of a cell, in repetition and stream order."""
        rows = self._hol_rows("hol_streams", cell_id, "stream_id")
        with self._db.decoding():
            return [(r["repetition"], StreamHol(
                r["stream_id"], r["bytes"], r["pieces"], r["own_ns"], r["others_ns"],
                r["late_ns"], r["unattributed_ns"], r["own_max_ns"], r["others_max_ns"],
                bool(r["lost_data"]), bool(r["exposed"]), bool(r["exposed_own"]),
                tuple(json.loads(r["drops"]))))
                for r in rows]

    def hol_pieces(self, cell_id: int) -> list[tuple[int, Piece]]:
        """(repetition, byte range) of a cell: link, transport and application times."""
        rows = self._hol_rows("hol_pieces", cell_id, "idx")
        with self._db.decoding():
            out = []
            for r in rows:
                cause = next(c for c in CAUSES if c == r["cause"])
                out.append((r["repetition"], Piece(
                    r["stream_id"], r["body_offset"], r["length"], r["link_ns"],
                    r["readable_ns"], r["app_ns"], cause, tuple(json.loads(r["drops"])))))
            return out

    def hol_drops(self, cell_id: int) -> list[tuple[int, Drop]]:
        """(repetition, dropped packet) of a cell, with whose streams' data it carried."""
        rows = self._hol_rows("hol_drops", cell_id, "drop_id")
        with self._db.decoding():
            return [(r["repetition"], Drop(
                r["drop_id"], r["at_ns"], r["direction"], r["reason"], r["packet"], r["size"],
                tuple(json.loads(r["streams"])), r["refilled_ns"])) for r in rows]

    def finish_run(self, run_id: int, status: RunStatus) -> None:
        """End a run; its cells still running did not finish and end `interrupted`."""
        if status not in RUN_STATUSES or status == "running":
            raise StoreError("a run finishes as complete, interrupted or failed")
        self._run_row(run_id)
        with self._db.tx() as db:
            _interrupt_cells(db, run_id)
            db.execute(
                "UPDATE runs SET status = ?, ended_at = ? WHERE id = ?",
                (status, self._now(), run_id),
            )

    def mark_stale_runs(self) -> list[int]:
        """Mark `interrupted` every running run whose process is gone, and its cells that
        did not finish; returns the runs' ids."""
        with self._db.tx() as db:
            rows = db.execute(
                "SELECT id, pid, pid_start FROM runs WHERE status = 'running' AND host = ?",
                (socket.gethostname(),),
            ).fetchall()
            stale = [run_id for run_id, pid, start in rows if not may_be_alive(pid, start)]
            for run_id in stale:
                _interrupt_cells(db, run_id)
                # When it died is not known: the last moment it was seen making progress.
                db.execute(
                    "UPDATE runs SET status = 'interrupted', ended_at = coalesce("
                    f"{_last_activity('cells', '?')}, started_at) WHERE id = ?",
                    (run_id, run_id),
                )
        return stale

    # --- reading -----------------------------------------------------------------------

    def _run_rows(self, where: str, args: Sequence[Any]) -> list[sqlite3.Row]:
        cells = f"(SELECT *{self._db.absent['cells']} FROM cells)"
        return self._db.query(
            "SELECT r.*,"
            " (SELECT count(*) FROM cells c WHERE c.run_id = r.id) AS n_cells,"
            " (SELECT count(*) FROM cells c WHERE c.run_id = r.id AND c.status = 'ok') AS n_ok,"
            " (SELECT count(*) FROM samples s JOIN cells c ON s.cell_id = c.id"
            "  WHERE c.run_id = r.id AND NOT s.warmup) AS n_samples,"
            f" {_last_activity(cells, 'r.id')} AS last_activity"
            f" FROM runs r {where} ORDER BY r.id",
            args,
        )

    def runs(self) -> list[RunInfo]:
        rows = self._run_rows("", ())
        with self._db.decoding():
            return [run_info(row, _dead(row)) for row in rows]

    def run(self, run_id: int) -> RunInfo:
        rows = self._run_rows("WHERE r.id = ?", (run_id,))
        if not rows:
            raise self._no_run(run_id)
        with self._db.decoding():
            return run_info(rows[0], _dead(rows[0]))

    def cells(self, run_id: int) -> list[CellInfo]:
        dead = _dead(self._run_row(run_id))
        rows = self._db.query(
            f"SELECT c.*{self._db.absent['cells']}, (SELECT count(*) FROM samples s"
            " WHERE s.cell_id = c.id AND NOT s.warmup) AS n_samples"
            " FROM cells c WHERE c.run_id = ? ORDER BY c.idx",
            (run_id,),
        )
        with self._db.decoding():
            return [cell_info(row, dead) for row in rows]

    def stored_samples(self, cell_id: int, include_warmup: bool = False) -> list[StoredSample]:
        self._cell_exists(cell_id)
        where = "" if include_warmup else " AND NOT warmup"
        rows = self._db.query(
            f"SELECT *{self._db.absent['samples']} FROM samples WHERE cell_id = ?{where}"
            " ORDER BY id",
            (cell_id,),
        )
        arrivals: dict[int, list[tuple[int, int]]] = {}
        for a in self._db.query(
            "SELECT a.sample_id, a.t_ns, a.bytes FROM arrivals a JOIN samples s"
            f" ON a.sample_id = s.id WHERE s.cell_id = ?{where} ORDER BY a.sample_id, a.seq",
            (cell_id,),
        ):
            arrivals.setdefault(a["sample_id"], []).append((a["t_ns"], a["bytes"]))
        message_rows = self._db.query(
            f"SELECT m.* FROM messages m JOIN samples s ON m.sample_id = s.id"
            f" WHERE s.cell_id = ?{where} ORDER BY m.sample_id, m.idx",
            (cell_id,),
        )
        with self._db.decoding():
            messages: dict[int, list[MessageTiming]] = {}
            for m in message_rows:
                messages.setdefault(m["sample_id"], []).append(message_from_row(m))
            return [
                StoredSample(
                    id=row["id"], cell_id=cell_id, repetition=row["repetition"],
                    warmup=bool(row["warmup"]),
                    record=record_from_row(row, tuple(arrivals.get(row["id"], ())),
                                           tuple(messages.get(row["id"], ()))),
                )
                for row in rows
            ]

    def samples(self, cell_id: int, include_warmup: bool = False) -> list[RequestRecord]:
        """The records exactly as `add_samples` got them, in insertion order."""
        return [s.record for s in self.stored_samples(cell_id, include_warmup)]

    def metrics(self, cell_id: int) -> list[Metric]:
        self._cell_exists(cell_id)
        rows = self._db.query(
            "SELECT * FROM metrics WHERE cell_id = ? ORDER BY name", (cell_id,)
        )
        with self._db.decoding():
            return [Metric(cell_id, row["name"], row["value"], row["unit"]) for row in rows]

    def _run_row(self, run_id: int) -> sqlite3.Row:
        rows = self._db.query("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise self._no_run(run_id)
        return rows[0]

    def _no_run(self, run_id: int) -> StoreError:
        return StoreError(
            f"no run {run_id} in {self.path}", hint="`protolab results list` shows the runs"
        )

    def _cell_exists(self, cell_id: int) -> None:
        if not self._db.query("SELECT 1 FROM cells WHERE id = ?", (cell_id,)):
            raise StoreError(f"no cell {cell_id} in {self.path}")


def _dead(run: sqlite3.Row) -> bool:
    """A run recorded as running whose process, on this host, is gone."""
    return (run["status"] == "running" and run["host"] == socket.gethostname()
            and not may_be_alive(run["pid"], run["pid_start"]))


def _last_activity(cells: str, run_id: str) -> str:
    """SQL: the last moment the cells of run `run_id` were seen making progress: each one's
    end, else its last stored samples, else its start (ISO text in UTC sorts as time)."""
    return (f"(SELECT max(coalesce(ended_at, last_sample_at, started_at)) FROM {cells}"
            f" WHERE run_id = {run_id})")


def _interrupt_cells(db: sqlite3.Connection, run_id: int) -> None:
    """Cells of an ending run that are still running did not finish; each ends where its
    last samples were stored (with none, where it started: its duration is then 0)."""
    db.execute(
        "UPDATE cells SET status = 'interrupted', ended_at = coalesce(last_sample_at,"
        " started_at) WHERE run_id = ? AND status = 'running'",
        (run_id,),
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


def _epoch(text: str | None) -> float | None:
    return None if text is None else datetime.fromisoformat(text).timestamp()


def _rowid(cursor: sqlite3.Cursor) -> int:
    rowid = cursor.lastrowid
    if rowid is None:  # pragma: no cover - sqlite3 always sets it after an INSERT
        raise StoreError("insert returned no row id")
    return rowid
