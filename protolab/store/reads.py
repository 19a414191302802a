"""Reading the results store: runs with their counts, cells, samples and what was derived.

`samples()` gives the records back exactly as `add_samples` got them. A store opened
read-only may be of an older schema: what it lacks reads as absent (`Database.absent`,
no table: no rows). A run whose process died while it was `running` reads as
`interrupted` (`recovery.run_is_dead`), without anything written.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from protolab.core.record import MessageTiming, RequestRecord
from protolab.hol.model import CAUSES, Drop, Piece, StreamHol
from protolab.store.access import StoreAccess
from protolab.store.model import (
    CellInfo,
    Metric,
    RunInfo,
    StoredSample,
    TaskRun,
    cell_info,
    run_info,
)
from protolab.store.recovery import last_activity, run_is_dead
from protolab.store.schema import message_from_row, record_from_row


class ResultsReader(StoreAccess):
    """The reads of a `ResultsStore`."""

    def runs(self) -> list[RunInfo]:
        rows = self._run_rows("", ())
        with self._db.decoding():
            return [run_info(row, run_is_dead(row)) for row in rows]

    def run(self, run_id: int) -> RunInfo:
        rows = self._run_rows("WHERE r.id = ?", (run_id,))
        if not rows:
            raise self._no_run(run_id)
        with self._db.decoding():
            return run_info(rows[0], run_is_dead(rows[0]))

    def cells(self, run_id: int) -> list[CellInfo]:
        dead = run_is_dead(self._run_row(run_id))
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

    def _run_rows(self, where: str, args: Sequence[Any]) -> list[sqlite3.Row]:
        cells = f"(SELECT *{self._db.absent['cells']} FROM cells)"
        return self._db.query(
            "SELECT r.*,"
            " (SELECT count(*) FROM cells c WHERE c.run_id = r.id) AS n_cells,"
            " (SELECT count(*) FROM cells c WHERE c.run_id = r.id AND c.status = 'ok') AS n_ok,"
            " (SELECT count(*) FROM samples s JOIN cells c ON s.cell_id = c.id"
            "  WHERE c.run_id = r.id AND NOT s.warmup) AS n_samples,"
            f" {last_activity(cells, 'r.id')} AS last_activity"
            f" FROM runs r {where} ORDER BY r.id",
            args,
        )


def _epoch(text: str | None) -> float | None:
    return None if text is None else datetime.fromisoformat(text).timestamp()
