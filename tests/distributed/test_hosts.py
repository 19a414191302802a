"""Where each cell repetition ran: stored per attempt (schema 6), migrated into older
stores, carried losslessly from a worker, and held equal by `results compare`."""

from __future__ import annotations

import dataclasses
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from protolab.core.record import MessageTiming
from protolab.errors import StoreError
from protolab.store import SCHEMA_VERSION, ResultsStore, TaskRun, host_warning, manifest
from protolab.store.manifest import host_description
from tests.bench.test_store import record
from tests.helpers import TIMEOUT


def host(**changes: Any) -> dict[str, Any]:
    return {**host_description(), **changes}


def two_runs(path: Path, host_a: dict[str, Any] | None, host_b: dict[str, Any] | None,
             ) -> tuple[int, int]:
    """Two runs of the same cell; each repetition recorded on the given host (None: a run
    stored before schema 6, with no tasks)."""
    with ResultsStore(path) as store:
        runs = []
        for described in (host_a, host_b):
            run = store.begin_run("same", manifest())
            cell = store.add_cell(run, 0, {"protocol": "h2", "rtt_ms": 50})
            ran = None if described is None else TaskRun(0, 0, "tcp://10.0.0.1:4000",
                                                          described, 1.0, 2.0, "ok")
            store.add_samples(cell, [record(i) for i in range(5)], 0, False, ran)
            store.finish_cell(cell, "ok")
            store.finish_run(run, "complete")
            runs.append(run)
        return runs[0], runs[1]


def test_each_attempt_is_stored_with_its_host_in_the_samples_transaction(
        tmp_path: Path) -> None:
    me = host_description()
    with ResultsStore(tmp_path / "lab.db") as store:
        run = store.begin_run("s", {})
        cell = store.add_cell(run, 0, {})
        lost = TaskRun(0, 0, "tcp://127.0.0.1:1", me, 10.0, 11.5, "lost",
                       "worker tcp://127.0.0.1:1 was lost while running it")
        store.add_task(cell, lost)
        again = TaskRun(0, 1, "tcp://127.0.0.1:2", me, 12.0, 13.0, "ok")
        store.add_samples(cell, [record(0)], 0, False, again)
        never_said = TaskRun(1, 0, "?", None, None, None, "lost", "lost before it started")
        store.add_task(cell, never_said)
        assert store.cell_tasks(cell) == [lost, again, never_said]
        with pytest.raises(StoreError, match="already has attempt 1 of repetition 0"):
            store.add_samples(cell, [record(1)], 0, False, again)
        assert len(store.samples(cell)) == 1  # the failed transaction stored no sample
        with pytest.raises(StoreError, match="task status"):
            store.add_task(cell, dataclasses.replace(again, attempt=2, status="great"))
    db = sqlite3.connect(tmp_path / "lab.db")
    assert db.execute("SELECT count(*) FROM hosts").fetchone() == (1,)  # one row per machine
    db.close()


def test_a_schema_5_store_reads_as_it_is_and_migrates(tmp_path: Path) -> None:
    path = tmp_path / "v5.db"
    with ResultsStore(path) as store:
        run = store.begin_run("old", {})
        cell = store.add_cell(run, 0, {"label": "old"})
        store.add_samples(cell, [record(0)], 0, False)
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript("DROP TABLE cell_tasks; DROP TABLE hosts; PRAGMA user_version = 5;")
    db.close()
    with ResultsStore(path, create=False) as reader:  # read-only: as it is
        assert reader.cell_tasks(cell) == []
        assert reader.samples(cell) == [record(0)]
    with ResultsStore(path) as store:
        store.add_task(cell, TaskRun(1, 0, "local", host_description(), 1.0, 2.0, "ok"))
        assert [t.worker for t in store.cell_tasks(cell)] == ["local"]
        assert store.samples(cell) == [record(0)]
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    db.close()


def test_compare_warns_when_the_machines_differ_in_what_changes_a_measurement(
        tmp_path: Path) -> None:
    db = tmp_path / "lab.db"
    same = two_runs(db, host(), host(hostname="another-name"))
    with ResultsStore(db, create=False) as store:
        assert host_warning(store, *same) is None  # another name alone is no difference
    other_cpu = two_runs(db, host(), host(cpu={"model": "Other CPU", "count": 64}))
    with ResultsStore(db, create=False) as store:
        warning = host_warning(store, *other_cpu)
    assert warning is not None
    assert warning.startswith("warning: the compared cells ran on different hardware or "
                              "versions (CPU differ")
    older = dict(host()["packages"], aioquic="0.0.1")
    other_packages = two_runs(db, host(), host(packages=older))
    with ResultsStore(db, create=False) as store:
        assert "packages (aioquic)" in (host_warning(store, *other_packages) or "")
    # A run stored before schema 6 counts as run on the machine of its manifest: this one.
    old_and_new = two_runs(db, None, host())
    with ResultsStore(db, create=False) as store:
        assert host_warning(store, *old_and_new) is None
    result = subprocess.run(
        [sys.executable, "-m", "protolab", "results", "compare", str(other_cpu[0]),
         str(other_cpu[1]), "--db", str(db)], capture_output=True, text=True,
        timeout=TIMEOUT, check=False, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "warning:" in line]
    assert len(lines) == 1  # one line
    assert "CPU differ" in lines[0]
    quiet = subprocess.run(
        [sys.executable, "-m", "protolab", "results", "compare", str(same[0]), str(same[1]),
         "--db", str(db)], capture_output=True, text=True, timeout=TIMEOUT, check=False,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert quiet.returncode == 0, quiet.stderr
    assert "warning" not in quiet.stdout


def test_a_workers_result_crosses_as_json_without_losing_anything() -> None:
    pytest.importorskip("distributed", reason="the Dask seam needs distributed (PyPI)")
    import json

    from protolab.bench.runner import (
        CellFailure,
        ClientResult,
        RanOn,
        RepResult,
        RepTask,
    )
    from protolab.bench.suite import expand, parse_suite
    from protolab.distributed.wire import result_from_json, result_to_json

    suite = parse_suite({"variant": [{"protocol": "ws"}], "warmup": 0, "repetitions": 1})
    task = RepTask(expand(suite)[0], 0, False, suite.workload, suite.timeout_s)
    assert RepTask.from_json(json.loads(json.dumps(task.to_json()))) == task
    rich = dataclasses.replace(
        record(0), content=bytes(range(256)), arrivals=((1, 2), (3, 4)),
        messages=(MessageTiming(1, 10, 5, 6, born_ns=4),), transport={"rtt_us": 40})
    result = RepResult(task, ClientResult((rich, record(1)), 0.25,
                                          CellFailure("timeout", "timeout: over 1 s")),
                       RanOn("tcp://127.0.0.1:5", host_description(), 1.5, 2.5),
                       wall_s=1.0, server_cpu_s=0.5, forwarder_cpu_s=0.1,
                       link={"up_packets": 9}, namespace_cc={"client": "cubic"},
                       namespace_cc_asked="cubic")
    assert result_from_json(json.loads(json.dumps(result_to_json(result))), task) == result
