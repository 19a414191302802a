"""Runs that died: how a store recognises them and ends them `interrupted`.

A run is `running` from `begin_run` until `finish_run`; one whose process was killed
stays so in the file. It is dead when it was started on this host by a process that is
gone (its pid, and that pid's start time, so a reused pid does not keep it alive). A
writer's open ends such runs (`interrupt_stale_runs`), and a read-only store shows them
as interrupted without writing (`run_is_dead`). Either way a cell that did not finish
ends where it was last seen making progress.
"""

from __future__ import annotations

import socket
import sqlite3

from protolab.core.procfs import may_be_alive


def run_is_dead(run: sqlite3.Row) -> bool:
    """A run recorded as running whose process, on this host, is gone."""
    return (run["status"] == "running" and run["host"] == socket.gethostname()
            and not may_be_alive(run["pid"], run["pid_start"]))


def last_activity(cells: str, run_id: str) -> str:
    """SQL: the last moment the cells of run `run_id` were seen making progress: each one's
    end, else its last stored samples, else its start (ISO text in UTC sorts as time)."""
    return (f"(SELECT max(coalesce(ended_at, last_sample_at, started_at)) FROM {cells}"
            f" WHERE run_id = {run_id})")


def interrupt_cells(db: sqlite3.Connection, run_id: int) -> None:
    """Cells of an ending run that are still running did not finish; each ends where its
    last samples were stored (with none, where it started: its duration is then 0)."""
    db.execute(
        "UPDATE cells SET status = 'interrupted', ended_at = coalesce(last_sample_at,"
        " started_at) WHERE run_id = ? AND status = 'running'",
        (run_id,),
    )


def interrupt_stale_runs(db: sqlite3.Connection) -> list[int]:
    """In the transaction `db`: mark `interrupted` every running run of this host whose
    process is gone, and its cells that did not finish; returns the runs' ids."""
    rows = db.execute(
        "SELECT id, pid, pid_start FROM runs WHERE status = 'running' AND host = ?",
        (socket.gethostname(),),
    ).fetchall()
    stale = [run_id for run_id, pid, start in rows if not may_be_alive(pid, start)]
    for run_id in stale:
        interrupt_cells(db, run_id)
        # When it died is not known: the last moment it was seen making progress.
        db.execute(
            "UPDATE runs SET status = 'interrupted', ended_at = coalesce("
            f"{last_activity('cells', '?')}, started_at) WHERE id = ?",
            (run_id, run_id),
        )
    return stale
