"""HOL results in the store: exact round trips per repetition, replaced not doubled,
deleted with their cell, and a schema 4 store migrated to 5 keeping what it held."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from protolab.hol.model import Drop, HolResult, Piece, StreamHol
from protolab.store import SCHEMA_VERSION, ResultsStore

MS = 1_000_000


def hol_result(shift: int = 0) -> HolResult:
    drop = Drop(0, 10 * MS + shift, "down", "droplist", 40, 1500, (1, 3), 110 * MS)
    pieces = [Piece(1, 0, 4096, 20 * MS, 110 * MS, 111 * MS, "own", (0,)),
              Piece(5, 0, 4096, 30 * MS, 110 * MS, None, "others", (0,)),
              Piece(5, 4096, 4096, 120 * MS, 120 * MS, int(120.4 * MS), "none", ())]
    streams = [StreamHol(1, 4096, 1, 91 * MS, 0, 0, 0, 91 * MS, 0, True, False, True, (0,)),
               StreamHol(5, 8192, 2, 0, 80 * MS, 0, 0, 0, 80 * MS, False, True, False, (0,))]
    return HolResult("tcp", [drop], pieces, streams)


def test_hol_rows_round_trip_per_repetition(tmp_path: Path) -> None:
    with ResultsStore(tmp_path / "lab.db") as store:
        run = store.begin_run("hol", {})
        cell = store.add_cell(run, 0, {"label": "h2"})
        first, second = hol_result(), hol_result(shift=1)
        store.add_hol(cell, 0, first)
        store.add_hol(cell, 1, second)
        store.add_hol(cell, 1, second)  # again: replaces, does not double
        assert store.hol_drops(cell) == [(0, first.drops[0]), (1, second.drops[0])]
        assert store.hol_pieces(cell) == [(0, p) for p in first.pieces] + [
            (1, p) for p in second.pieces]
        assert store.hol_streams(cell) == [(0, s) for s in first.streams] + [
            (1, s) for s in second.streams]


def test_a_schema_4_store_gains_the_hol_tables(tmp_path: Path) -> None:
    path = tmp_path / "v4.db"
    with ResultsStore(path) as store:
        run = store.begin_run("old", {})
        cell = store.add_cell(run, 0, {"label": "old"})
        store.add_metric(cell, "goodput", 9.5, "Mbit/s")
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript("DROP TABLE hol_drops; DROP TABLE hol_pieces; DROP TABLE hol_streams;"
                     " PRAGMA user_version = 4;")
    db.close()
    with ResultsStore(path, create=False) as reader:  # read-only: as it is, no HOL tables
        assert reader.hol_streams(cell) == []
    with ResultsStore(path) as store:
        assert [m.value for m in store.metrics(cell)] == [9.5]
        store.add_hol(cell, 0, hol_result())
        assert len(store.hol_pieces(cell)) == 3
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 5
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("DELETE FROM cells")  # the HOL rows go with their cell
    db.commit()
    assert db.execute("SELECT count(*) FROM hol_pieces").fetchone() == (0,)
    db.close()
