"""The results store: exact round trips, crash consistency, clear errors, export, compare."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from protolab.core.record import RECORD_FIELDS, MessageTiming, RequestRecord
from protolab.errors import LabError, StoreError
from protolab.store import (
    SCHEMA_VERSION,
    CpuTimes,
    ResultsStore,
    compare_runs,
    export_run,
    manifest,
)
from protolab.store.schema import (
    JSON_FIELDS,
    MESSAGE_COLUMNS,
    OWN_TABLES,
    RECORD_COLUMNS,
    sample_row,
)

MS = 1_000_000


def record(
    i: int = 0, *, ttfb_ms: float = 30.0, total_ms: float = 40.0, protocol: str = "h2", **kw: object
) -> RequestRecord:
    start = 10_000 * MS + i * 100 * MS
    fields: dict[str, object] = {
        "protocol": protocol, "method": "GET", "path": "/bytes/1000", "start_ns": start,
        "connection_id": 1, "new_connection": i == 0,
        "conn_start_ns": start if i == 0 else None,
        "connected_ns": start + 10 * MS if i == 0 else None,
        "handshake_ns": start + 20 * MS if i == 0 else None,
        "request_sent_ns": start + 21 * MS,
        "first_byte_ns": start + int(ttfb_ms * MS), "done_ns": start + int(total_ms * MS),
        "status": 200, "stream_id": 1 + 2 * i, "bytes_out": 50, "bytes_in": 1100,
        "body_bytes": 1000, "body_verified": True, "alpn": "h2", "tls_version": "TLSv1.3",
        "cipher": "TLS_AES_128_GCM_SHA256",
    }
    fields.update(kw)
    return RequestRecord(**fields)  # type: ignore[arg-type]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        self.now += 1.5
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ResultsStore]:
    with ResultsStore(tmp_path / "results" / "lab.db", clock=FakeClock()) as s:
        yield s


V2_SCHEMA = (Path(__file__).parent / "store_schema_v2.sql").read_text()


def columns(path: Path, table: str) -> list[tuple[str, str, int]]:
    db = sqlite3.connect(path)
    try:
        return [(name, kind, notnull) for _, name, kind, notnull, _, _ in
                db.execute(f"PRAGMA table_info({table})")]
    finally:
        db.close()


def test_every_request_record_field_is_stored(tmp_path: Path) -> None:
    # Every field has exactly one home: a column, a table of its own, or JSON.
    assert sorted([*RECORD_COLUMNS, *OWN_TABLES, *JSON_FIELDS]) == sorted(RECORD_FIELDS)
    assert set(OWN_TABLES) | set(JSON_FIELDS) == {"arrivals", "messages", "transport"}
    assert MESSAGE_COLUMNS == tuple(f.name for f in dataclasses.fields(MessageTiming))
    # The derived tables are the ones schema 2 created, column for column, so its stores
    # (and the ones migrated from 1) open as they are. A new record field changes this:
    # it needs a migration step and an ADDED_COLUMNS entry (schema.py), then a line here.
    old = tmp_path / "v2.db"
    sqlite3.connect(old).executescript(V2_SCHEMA)
    ResultsStore(tmp_path / "new.db").close()
    for table in ("samples", "messages", "arrivals", "runs", "metrics"):
        assert columns(tmp_path / "new.db", table) == columns(old, table), table
    assert columns(tmp_path / "new.db", "cells") == [
        *columns(old, "cells"), ("last_sample_at", "TEXT", 0), ("saturated_parts", "TEXT", 0)]


def test_samples_round_trip_exactly(store: ResultsStore) -> None:
    run = store.begin_run("handshake", {"seeds": {"link": 1}})
    cell = store.add_cell(run, 0, {"protocol": "h2", "rtt_ms": 50, "repetition": 0})
    records = [
        record(0, arrivals=((10_030 * MS, 700), (10_035 * MS, 300)),
               transport={"retransmits": 2, "rtt_us": 50_123}),
        record(1, body_verified=None, resumed=True, early_data=True, alpn=None,
               tls_version=None, cipher=None, stream_id=None),
        record(2, status=None, first_byte_ns=None, done_ns=None, body_verified=False,
               error="timeout", error_detail="no response in 5 s", bytes_in=0),
        record(3, start_ns=2**62, new_connection=True),  # large monotonic values survive
        record(4, protocol="ws", upgraded_ns=10_450 * MS, content=b"\x00{\"a\": 1}",
               messages=(MessageTiming(1, 10, 10_460 * MS, 10_470 * MS),
                         MessageTiming(2, 0, None, 10_480 * MS, born_ns=10_475 * MS))),
        record(5, content=b""),
    ]
    ids = store.add_samples(cell, records, repetition=0, warmup=False)
    assert len(ids) == 6
    assert store.samples(cell) == records


def test_warmup_samples_are_kept_but_not_measured(store: ResultsStore) -> None:
    run = store.begin_run("demo", {})
    cell = store.add_cell(run, 0, {"protocol": "h1"})
    store.add_samples(cell, [record(0)], repetition=0, warmup=True)
    store.add_samples(cell, [record(1), record(2)], repetition=0, warmup=False)
    assert [r.start_ns for r in store.samples(cell)] == [record(1).start_ns, record(2).start_ns]
    assert len(store.samples(cell, include_warmup=True)) == 3
    stored = store.stored_samples(cell, include_warmup=True)
    assert [s.warmup for s in stored] == [True, False, False]
    assert store.cells(run)[0].samples == 2
    assert store.run(run).samples == 2


def test_run_lifecycle_and_listing(store: ResultsStore) -> None:
    info = manifest(settings={"repeat": 3}, seeds={"link": 7})
    run = store.begin_run("transport-hol", info)
    first = store.add_cell(run, 0, {"protocol": "h2", "loss": 0.01})
    second = store.add_cell(run, 1, {"protocol": "h3", "loss": 0.01})
    store.add_samples(first, [record(0)], repetition=0, warmup=False)
    store.finish_cell(first, "ok", cpu=CpuTimes(client=0.5, server=0.25, forwarder=0.1))
    store.finish_cell(second, "timeout", error="cell timed out after 60 s",
                      cpu=CpuTimes(client=1.0, saturated=True))
    store.add_metric(first, "goodput", 8.5, "Mbit/s")
    store.add_metric(first, "goodput", 9.0, "Mbit/s")  # replaces
    assert store.run(run).status == "running"
    store.finish_run(run, "complete")

    (listed,) = store.runs()
    assert listed == store.run(run)
    assert (listed.suite, listed.status, listed.cells, listed.cells_ok) == (
        "transport-hol", "complete", 2, 1)
    assert listed.pid == os.getpid()
    assert listed.manifest["settings"] == {"repeat": 3}
    assert listed.duration_s is not None
    assert listed.duration_s > 0
    cells = store.cells(run)
    assert [c.status for c in cells] == ["ok", "timeout"]
    assert cells[0].cpu == CpuTimes(client=0.5, server=0.25, forwarder=0.1, saturated=False)
    assert cells[1].cpu is not None
    assert cells[1].cpu.saturated
    assert cells[1].error == "cell timed out after 60 s"
    assert [(m.name, m.value, m.unit) for m in store.metrics(first)] == [
        ("goodput", 9.0, "Mbit/s")]


def test_unknown_ids_and_bad_statuses_are_clear_errors(store: ResultsStore) -> None:
    with pytest.raises(StoreError, match="no run 42 in .*lab.db") as err:
        store.run(42)
    assert isinstance(err.value, LabError)
    assert "results list" in str(err.value)
    with pytest.raises(StoreError, match="no run 42"):
        store.add_cell(42, 0, {})
    with pytest.raises(StoreError, match="no cell 9"):
        store.samples(9)
    run = store.begin_run("demo", {})
    cell = store.add_cell(run, 0, {})
    with pytest.raises(StoreError, match="already has a cell 0"):
        store.add_cell(run, 0, {})
    with pytest.raises(StoreError, match="cell status"):
        store.finish_cell(cell, "great")  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="finishes as"):
        store.finish_run(run, "running")


def test_database_is_wal_with_schema_version(store: ResultsStore, tmp_path: Path) -> None:
    db = sqlite3.connect(store.path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        db.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "lab.db"
    ResultsStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(
        StoreError,
        match=f"schema {SCHEMA_VERSION + 1}; this protolab reads up to {SCHEMA_VERSION}",
    ):
        ResultsStore(path)


def test_a_version_1_store_is_migrated_and_keeps_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with ResultsStore(path) as store:
        run = store.begin_run("old", {})
        old_cell = store.add_cell(run, 1, {"label": "old"})
        store.add_samples(old_cell, [record(0)], 0, False)
    db = sqlite3.connect(path)  # make it look like a store written before intended_ns
    db.executescript(
        "ALTER TABLE samples DROP COLUMN intended_ns; PRAGMA user_version = 1;"
    )
    db.close()
    with ResultsStore(path, create=False) as reader:  # read as it is: no intended_ns yet
        assert reader.samples(old_cell) == [record(0)]
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 1
    with ResultsStore(path) as store:
        assert store.run(run).suite == "old"
        assert store.samples(old_cell) == [record(0)]
        cell = store.add_cell(run, 0, {"label": "x"})
        store.add_samples(cell, [RequestRecord(protocol="h2", method="GET", path="/",
                                               start_ns=1, connection_id=1,
                                               new_connection=True, intended_ns=0)], 0, False)
        assert store.samples(cell)[0].intended_ns == 0
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def make_v2_store(path: Path) -> None:
    """A store as protolab wrote it at schema 2: a complete run with a sample, metric and
    arrivals, and a run whose process is gone (a reused pid) with a cell still running."""
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(f"PRAGMA journal_mode = WAL; {V2_SCHEMA} PRAGMA user_version = 2;")
    db.execute("INSERT INTO runs VALUES (1, 'old', 'complete', '2026-01-01T00:00:00.000+00:00',"
               " '2026-01-01T00:01:00.000+00:00', ?, ?, NULL, '{}')",
               (socket.gethostname(), os.getpid()))
    db.execute("INSERT INTO runs VALUES (2, 'dead', 'running', '2026-01-02T00:00:00.000+00:00',"
               " NULL, ?, ?, -1, '{}')", (socket.gethostname(), os.getpid()))
    db.execute("INSERT INTO cells VALUES (1, 1, 0, '{\"protocol\": \"h2\"}', 'ok', NULL,"
               " 0.5, 0.25, NULL, 0, '2026-01-01T00:00:01.000+00:00',"
               " '2026-01-01T00:00:59.000+00:00')")
    db.execute("INSERT INTO cells VALUES (2, 2, 0, '{}', 'running', NULL, NULL, NULL, NULL,"
               " NULL, '2026-01-02T00:00:01.000+00:00', NULL)")
    names = (*RECORD_COLUMNS, *JSON_FIELDS)
    db.execute(f"INSERT INTO samples (cell_id, repetition, warmup, {', '.join(names)})"
               f" VALUES (1, 0, 0, {', '.join('?' * len(names))})",
               sample_row(record(0, arrivals=((10_030 * MS, 1000),))))
    db.execute("INSERT INTO arrivals VALUES (1, 0, ?, 1000)", (10_030 * MS,))
    db.execute("INSERT INTO metrics VALUES (1, 'goodput', 9.5, 'Mbit/s')")
    db.close()


def test_a_version_2_store_reads_as_it_is_and_migrates_keeping_everything(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v2.db"
    make_v2_store(path)
    before = path.read_bytes()
    with ResultsStore(path, create=False) as reader:  # read-only: no migration
        old_runs = reader.runs()
        old_cells = [reader.cells(r.id) for r in old_runs]
        old_samples = reader.samples(1)
    assert path.read_bytes() == before
    assert [(r.suite, r.status) for r in old_runs] == [("old", "complete"), ("dead", "interrupted")]
    assert old_cells[1][0].status == "interrupted"  # shown so; recorded by the next writer
    assert old_samples == [record(0, arrivals=((10_030 * MS, 1000),))]

    with ResultsStore(path) as store:  # the writer migrates to the current schema
        assert store.runs() == old_runs
        assert [store.cells(r.id) for r in old_runs] == old_cells
        assert store.samples(1) == old_samples  # rebuilding cells cascaded nothing
        assert [m.value for m in store.metrics(1)] == [9.5]
        store.finish_cell(1, "interrupted")  # the rebuilt CHECK allows the new status
    ResultsStore(tmp_path / "fresh.db").close()
    for table in ("runs", "cells", "samples", "arrivals", "messages", "metrics"):
        assert columns(path, table) == columns(tmp_path / "fresh.db", table), table
    db = sqlite3.connect(path, isolation_level=None)  # autocommit: the pragma takes effect
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("SELECT status FROM runs WHERE id = 2").fetchone() == ("interrupted",)
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            db.execute("UPDATE cells SET status = 'great' WHERE id = 1")
        db.execute("PRAGMA foreign_keys = ON")
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):  # still enforced
            db.execute("INSERT INTO samples (cell_id, repetition, warmup, protocol, method,"
                       " path, start_ns, connection_id, new_connection, bytes_out, bytes_in,"
                       " body_bytes, resumed, early_data, transport) VALUES"
                       " (99, 0, 0, 'h2', 'GET', '/', 0, 0, 0, 0, 0, 0, 0, 0, '{}')")
    finally:
        db.close()


@pytest.mark.parametrize("kind", ["zero-byte", "sqlite without tables"])
def test_read_only_open_of_an_empty_file_writes_nothing(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "empty.db"
    if kind == "zero-byte":
        path.write_bytes(b"")
    else:
        db = sqlite3.connect(path)
        db.execute("PRAGMA user_version = 0")
        db.execute("VACUUM")  # writes the file's header page: a valid, empty database
        db.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="is empty: it holds no protolab results"):
        ResultsStore(path, create=False)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]  # no -wal, no -shm


def test_finish_run_interrupts_the_cells_still_running(store: ResultsStore) -> None:
    run = store.begin_run("stopped", {})
    done, busy, pending = (store.add_cell(run, i, {"i": i}) for i in range(3))
    store.add_samples(done, [record(0)], repetition=0, warmup=False)
    store.finish_cell(done, "ok")  # per cell, as soon as its samples are stored
    store.add_samples(busy, [record(1)], repetition=0, warmup=False)
    store.finish_run(run, "interrupted")
    cells = store.cells(run)
    assert [c.status for c in cells] == ["ok", "interrupted", "interrupted"]
    assert cells[0].cpu == CpuTimes()
    assert cells[1].cpu is None  # it never reported CPU times
    assert cells[1].ended_at is not None
    assert cells[1].ended_at > cells[1].started_at  # where its last samples were stored
    assert cells[2].ended_at == cells[2].started_at
    info = store.run(run)
    assert (info.status, info.cells_ok) == ("interrupted", 1)
    assert info.duration_s is not None
    assert info.duration_s > 0


def test_every_read_of_a_damaged_store_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "lab.db"
    with ResultsStore(path) as store:
        run = fill(store, "a", 1.0)
    damage(path)
    with ResultsStore(path, create=False) as reader:
        reads: list[Callable[[], object]] = [
            reader.runs, lambda: reader.run(run), lambda: reader.cells(run),
            lambda: reader.samples(1), lambda: reader.metrics(1),
            lambda: export_run(reader, run, "csv"), lambda: compare_runs(reader, run, run),
        ]
        for read in reads:
            with pytest.raises(StoreError, match=f"cannot read {path}.*malformed"):
                read()


def damage(path: Path) -> None:
    """Overwrite every page but the schema's with noise, the 100-byte file header and the
    schema left intact, as a disk or a copy gone wrong does."""
    db = sqlite3.connect(path)
    schema_pages = {n for (n,) in db.execute(
        "SELECT pageno FROM dbstat WHERE name = 'sqlite_schema'")}
    db.close()
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    assert len(data) >= 4 * page, "the store is too small to damage its inner pages"
    noise = random.Random(7)
    for number in range(1, len(data) // page + 1):
        if number not in schema_pages:
            data[(number - 1) * page:number * page] = noise.randbytes(page)
    path.write_bytes(bytes(data))


def test_non_sqlite_and_foreign_databases_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is a text file, not a database\n" * 200)
    for create in (True, False):
        with pytest.raises(StoreError, match="not a usable results database"):
            ResultsStore(junk, create=create)
    foreign = tmp_path / "foreign.db"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="not a protolab results store"):
        ResultsStore(foreign)
    with pytest.raises(StoreError, match="no results database"):
        ResultsStore(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()


KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    from protolab.store import ResultsStore
    from tests.bench.test_store import FakeClock, record
    store = ResultsStore(sys.argv[1], clock=FakeClock())
    run = store.begin_run("killed", {})
    done = store.add_cell(run, 0, {"protocol": "h2"})
    half = store.add_cell(run, 1, {"protocol": "h3"})
    never = store.add_cell(run, 2, {"protocol": "h1"})
    store.add_samples(done, [record(0), record(1)], repetition=0, warmup=False)
    store.finish_cell(done, "ok")
    store.add_samples(half, [record(2)], repetition=0, warmup=False)
    with store._db.tx() as db:  # killed in the middle of a write transaction
        db.execute("INSERT INTO metrics VALUES (?, 'x', 1.0, 'ms')", (half,))
        os.kill(os.getpid(), signal.SIGKILL)
""")


def test_killed_run_leaves_consistent_db_marked_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "lab.db"
    child = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(path)], cwd=Path(__file__).parents[2],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    with ResultsStore(path, create=False) as reader:  # shows it so, without writing it
        (shown,) = reader.runs()
        assert shown.status == "interrupted"
        shown_cells = reader.cells(shown.id)
    assert sqlite3.connect(path).execute("SELECT status FROM runs").fetchone() == ("running",)
    with ResultsStore(path) as store:
        (run,) = store.runs()
        assert run.status == "interrupted"
        assert run == shown
        # It ended when its last samples were stored (FakeClock: 1.5 s a step), not at 0 s.
        assert run.duration_s == pytest.approx(6 * 1.5)
        cells = store.cells(run.id)
        assert cells == shown_cells
        # The cell that finished stays finished; the two that did not are interrupted, the
        # one that stored samples ending where it stored them.
        assert [c.status for c in cells] == ["ok", "interrupted", "interrupted"]
        assert all(c.ended_at is not None for c in cells)
        assert cells[1].ended_at is not None
        assert cells[1].ended_at - cells[1].started_at == timedelta(seconds=4 * 1.5)
        assert cells[2].ended_at == cells[2].started_at
        assert [len(store.samples(c.id)) for c in cells] == [2, 1, 0]
        assert store.metrics(cells[1].id) == []  # the uncommitted write is gone
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()


def test_live_runs_stay_running_and_reused_pids_do_not_count(tmp_path: Path) -> None:
    path = tmp_path / "lab.db"
    with ResultsStore(path) as store:
        live = store.begin_run("live", {})
        reused = store.begin_run("reused", {})
        no_start = store.begin_run("live, start unknown", {})
        gone = store.begin_run("gone, start unknown", {})
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    db = sqlite3.connect(path)
    db.execute("UPDATE runs SET pid_start = pid_start + 1 WHERE id = ?", (reused,))
    # Written where /proc had no start time: a running pid is given the benefit of the doubt.
    db.execute("UPDATE runs SET pid_start = NULL WHERE id IN (?, ?)", (no_start, gone))
    db.execute("UPDATE runs SET pid = ? WHERE id = ?", (int(ended.stdout), gone))
    db.commit()
    db.close()
    with ResultsStore(path) as store:
        assert [store.run(r).status for r in (live, reused, no_start, gone)] == [
            "running", "interrupted", "running", "interrupted"]
        assert store.mark_stale_runs() == []


def fill(store: ResultsStore, suite: str, scale: float) -> int:
    run = store.begin_run(suite, {})
    index = 0
    for protocol in ("h2", "h3"):
        for repetition in range(2):
            cell = store.add_cell(run, index, {"protocol": protocol, "rtt_ms": 50,
                                               "repetition": repetition})
            index += 1
            base = 100.0 if protocol == "h2" else 50.0
            records = [record(i, ttfb_ms=base * scale + i, total_ms=2 * base * scale + i)
                       for i in range(5)]
            store.add_samples(cell, [record(9, ttfb_ms=999)], repetition=repetition,
                              warmup=True)
            store.add_samples(cell, records, repetition=repetition, warmup=False)
            store.add_samples(cell, [record(7, error="timeout", first_byte_ns=None,
                                            done_ns=None, status=None)],
                              repetition=repetition, warmup=False)
            store.finish_cell(cell, "ok")
    store.finish_run(run, "complete")
    return run


def test_compare_matches_cells_and_pools_repetitions(store: ResultsStore) -> None:
    run_a = fill(store, "a", 1.0)
    run_b = fill(store, "b", 2.0)
    comparison = compare_runs(store, run_a, run_b)
    assert [c.params for c in comparison] == [
        {"protocol": "h2", "rtt_ms": 50}, {"protocol": "h3", "rtt_ms": 50}]
    h2 = comparison[0]
    assert (h2.n_a, h2.n_b) == (10, 10)  # warm-up and failed samples left out
    assert h2.ttfb.a_ms == pytest.approx(102.0)
    assert h2.ttfb.b_ms == pytest.approx(202.0)
    assert h2.ttfb.ratio is not None
    assert h2.ttfb.ratio.value == pytest.approx(202 / 102)
    assert h2.ttfb.ratio.ci_low <= h2.ttfb.ratio.value <= h2.ttfb.ratio.ci_high
    assert h2.total.a_ms == pytest.approx(202.0)
    assert comparison[1].ttfb.b_ms == pytest.approx(102.0)


def test_export_csv_has_one_row_per_sample(store: ResultsStore, tmp_path: Path) -> None:
    run = fill(store, "a", 1.0)
    out = tmp_path / "export" / "run.csv"
    export_run(store, run, "csv", out)
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 4 * 7
    assert {"params", "repetition", "warmup", "ttfb_ms", "total_ms", "messages",
            *RECORD_COLUMNS} - {"content"} <= set(rows[0])
    measured = [r for r in rows if r["warmup"] == "0" and r["error"] == ""]
    assert float(measured[0]["ttfb_ms"]) == pytest.approx(100.0)
    assert json.loads(measured[0]["params"])["protocol"] == "h2"


def test_export_json_round_trips_records(store: ResultsStore) -> None:
    run = fill(store, "a", 1.0)
    stream = io.StringIO()
    export_run(store, run, "json", stream)
    data = json.loads(stream.getvalue())
    assert data["run"]["suite"] == "a"
    assert data["schema"] == SCHEMA_VERSION
    assert len(data["cells"]) == 4
    first = data["cells"][0]
    samples = first["samples"]
    assert len(samples) == 7
    fields = {f.name for f in dataclasses.fields(RequestRecord)}
    exported = [{k: v for k, v in s.items() if k in fields} for s in samples if not s["warmup"]]
    stored = [json.loads(json.dumps(r.to_json())) for r in store.samples(first["id"])]
    assert exported == stored
    with pytest.raises(StoreError, match="unknown export format"):
        export_run(store, run, "xml")  # type: ignore[arg-type]


def test_manifest_records_versions_machine_and_git(monkeypatch: pytest.MonkeyPatch) -> None:
    info = manifest(settings={"cc": "cubic"}, seeds={"link": 3})
    assert info["lab_version"] == "0.1.0"
    assert info["packages"]["aioquic"] is not None
    assert info["packages"]["h2"] is not None
    assert "grpcio" in info["packages"]
    assert info["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert info["kernel"]["system"] == "Linux"
    assert info["cpu"]["count"] >= 1
    assert (info["settings"], info["seeds"]) == ({"cc": "cubic"}, {"link": 3})
    json.dumps(info)  # storable as it is
    monkeypatch.setenv("PATH", "/nonexistent")
    assert manifest()["git"] == {"revision": None, "dirty": None, "note": "git is not installed"}


def test_manifest_records_the_git_revision_of_a_checkout() -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed: the manifest then says so (tested above)")
    repo = Path(__file__).resolve().parents[2]
    inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=repo,
                            capture_output=True, text=True, check=False)
    info = manifest()["git"]
    if inside.returncode != 0:
        assert info["note"] == "not a git checkout"
        pytest.skip("this copy of protolab is not a git checkout")
    assert len(info["revision"]) == 40
    assert isinstance(info["dirty"], bool)
