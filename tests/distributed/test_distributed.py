"""Sweeps on Dask, on one machine: a real `dask scheduler` on loopback, two `protolab
worker` processes, `protolab bench --scheduler` as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from protolab.distributed.worker import remove_dead_workers_folders
from protolab.netem import state
from protolab.netem.privileges import missing
from protolab.store import ResultsStore
from tests.distributed.conftest import REPO, Cluster, Worker, read_until, stop
from tests.distributed.conftest import start as start_process
from tests.helpers import TIMEOUT

pytestmark = [pytest.mark.netem, pytest.mark.slow]

TINY = """name = "tiny"
repetitions = 2
warmup = 1
[link]
sweep = {{ delay = ["5ms", "10ms"] }}
[workload]
paths = ["/bytes/100"]
count = {count}
fresh_connection = true
[[variant]]
protocol = "h1"
tls = false
[[variant]]
protocol = "h2"
"""


def bench(tmp_path: Path, suite: str, *extra: str, db: str = "lab.db",
          **kwargs: Any) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "suite.toml"
    path.write_text(suite)
    return subprocess.run(
        [sys.executable, "-m", "protolab", "bench", str(path), "--json", "--db",
         str(tmp_path / db), "--out", str(tmp_path / "out"), *extra],
        capture_output=True, text=True, cwd=REPO, timeout=TIMEOUT * 6, check=False, **kwargs)


def stored(db: Path) -> dict[int, dict[str, Any]]:
    """Per cell index: status, error, samples (measured, warm-up) and its tasks."""
    with ResultsStore(db, create=False) as store:
        run = store.runs()[-1]
        out = {}
        for cell in store.cells(run.id):
            samples = store.stored_samples(cell.id, include_warmup=True)
            out[cell.index] = {
                "status": cell.status, "error": cell.error,
                "measured": sum(not s.warmup for s in samples),
                "warmup": sum(s.warmup for s in samples),
                "tasks": store.cell_tasks(cell.id), "run": run}
        return out


def test_two_workers_run_every_cell_once_as_a_local_run_would(
        cluster: Cluster, tmp_path: Path) -> None:
    workers = [cluster.add_worker("w1"), cluster.add_worker("w2")]
    suite = TINY.format(count=2).replace('"5ms", "10ms"', '"5ms"')  # 2 cells x 3 repetitions
    remote = bench(tmp_path, suite, "--scheduler", cluster.address)
    assert remote.returncode == 0, remote.stderr
    local = bench(tmp_path, suite, db="local.db")
    assert local.returncode == 0, local.stderr
    cells, local_cells = stored(tmp_path / "lab.db"), stored(tmp_path / "local.db")

    assert sorted(cells) == [0, 1]  # every cell once
    assert all(c["status"] == "ok" for c in cells.values()), cells
    assert {i: (c["measured"], c["warmup"]) for i, c in cells.items()} == {
        i: (c["measured"], c["warmup"]) for i, c in local_cells.items()} == {
        i: (4, 2) for i in range(2)}  # 2 requests x (2 measured + 1 warm-up) repetitions
    assert cells[0]["run"].manifest["settings"]["executor"] == f"dask {cluster.address}"

    tasks = [t for c in cells.values() for t in c["tasks"]]
    assert len(tasks) == 6  # a task per cell repetition, each run once
    assert {t.worker for t in tasks} == {w.address for w in workers}  # both took part
    assert all(t.status == "ok" and t.attempt == 0 for t in tasks)
    for t in tasks:  # the host that ran it, per repetition
        assert t.host is not None
        assert t.host["hostname"] == socket.gethostname()
        assert t.host["packages"]["aioquic"]
        assert t.host["cpu"]["count"] == os.cpu_count()
    local_tasks = [t for c in local_cells.values() for t in c["tasks"]]
    assert {t.worker for t in local_tasks} == {"local"}
    for worker in workers:  # one lab slot: a worker never ran two repetitions at once
        spans = sorted((t.started, t.ended) for t in tasks if t.worker == worker.address)
        assert spans
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            assert start is not None
            assert end is not None
            assert start >= end, spans


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            if f"\nPPid:\t{pid}\n" in status:
                out.append(int(entry.name))
    return out


def _runs_a_server(pid: int) -> list[int]:
    """The lab server processes `pid` started (a cell is mid-run there)."""
    servers = []
    for child in _children(pid):
        try:
            if b"servers.process" in Path(f"/proc/{child}/cmdline").read_bytes():
                servers.append(child)
        except OSError:
            continue
    return servers


@dataclass
class Killed:
    """A run during which one worker was SIGKILLed mid-repetition."""

    returncode: int
    out: str
    err: str
    db: Path
    victim: Worker
    survivor: Worker
    killed_at: float  # wall clock, as tasks' spans
    killed_ns: int  # monotonic, as records' timestamps (one clock per machine)
    servers: list[int]  # the lab servers the victim was running
    children: list[int]  # every process it had started when it was killed
    work: list[Path]  # its work folder


KILL_SUITE = (TINY.format(count=6).replace('"5ms", "10ms"', '"40ms"')  # ~1 s a repetition
              .replace("warmup = 1", "warmup = 0"))  # 2 cells x 2 repetitions


def _kill_a_worker_mid_cell(cluster: Cluster, tmp_path: Path, *extra: str) -> Killed:
    victim, survivor = cluster.add_worker("victim"), cluster.add_worker("survivor")
    path = tmp_path / "suite.toml"
    path.write_text(KILL_SUITE)
    db = tmp_path / "lab.db"
    proc = start_process(
        [sys.executable, "-m", "protolab", "bench", str(path), "--json", "--db", str(db),
         "--out", str(tmp_path / "out"), "--scheduler", cluster.address, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + TIMEOUT * 3
        servers: list[int] = []
        while time.monotonic() < deadline and not servers:  # until a cell runs on it
            servers = _runs_a_server(victim.proc.pid)
            time.sleep(0.02)
        assert servers, "no cell ever started on the victim"
        children = _children(victim.proc.pid)  # its servers and the link's forwarder
        work = list(Path(tempfile.gettempdir()).glob(f"protolab-worker-{victim.proc.pid}-*"))
        assert work  # its certificates (and a capture, mid-task) while it runs
        os.kill(victim.proc.pid, signal.SIGKILL)
        killed_at, killed_ns = time.time(), time.monotonic_ns()
        out, err = proc.communicate(timeout=TIMEOUT * 6)
    finally:
        stop(proc, signal.SIGKILL)
    return Killed(proc.returncode, out, err, db, victim, survivor, killed_at, killed_ns,
                  servers, children, work)


def _consistent_and_nothing_left(killed: Killed) -> None:
    """The database is whole, no cell is left running, and nothing of the victim is."""
    db_file = sqlite3.connect(killed.db)
    try:
        assert db_file.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db_file.execute("PRAGMA foreign_key_check").fetchall() == []
        assert db_file.execute(
            "SELECT count(*) FROM cells WHERE status = 'running' OR ended_at IS NULL"
        ).fetchone() == (0,)
    finally:
        db_file.close()
    assert set(killed.servers) <= set(killed.children)
    deadline = time.monotonic() + TIMEOUT
    alive = killed.children
    while time.monotonic() < deadline and alive:
        alive = [p for p in killed.children if Path(f"/proc/{p}").exists()]
        # Its servers die with it (PR_SET_PDEATHSIG), its forwarder when the control
        # socket closes.
        time.sleep(0.05)
    assert not alive, [Path(f"/proc/{p}/cmdline").read_bytes() for p in alive]
    # The namespaces it left go at the next link's start on this machine; if the run
    # started none after the kill, as `netem` would now.
    with state.locked():
        state.cleanup_leftovers()
    assert not [r for r in state.load_all() if r.owner_pid == killed.victim.proc.pid]
    # Its work folder (certificates; mid-task, a capture) goes at the next worker's start
    # on this machine (another one may have started meanwhile, and removed it already).
    remove_dead_workers_folders()
    assert not [folder for folder in killed.work if folder.exists()]


def test_a_killed_worker_fails_its_cell_and_the_other_worker_finishes(
        cluster: Cluster, tmp_path: Path) -> None:
    killed = _kill_a_worker_mid_cell(cluster, tmp_path)
    victim, survivor = killed.victim, killed.survivor
    assert killed.returncode == 0, killed.err  # the run went on and completed
    assert "Traceback" not in killed.err
    assert json.loads(killed.out)["status"] == "complete"
    cells = stored(killed.db)
    failed = {i: c for i, c in cells.items() if c["status"] != "ok"}
    assert len(failed) == 1, cells
    (index, cell), = failed.items()
    assert cell["status"] == "failed"
    assert cell["error"] == f"worker {victim.address} was lost while running it"
    lost = [t for t in cell["tasks"] if t.status == "lost"]
    assert len(lost) == 1
    assert lost[0].worker == victim.address  # recorded, not silently run again elsewhere
    assert lost[0].host is not None  # the worker said where it ran before it died
    assert len(cell["tasks"]) == 2  # one attempt per repetition, no re-run of the lost one
    for i, c in cells.items():
        for t in c["tasks"]:
            assert t.attempt == 0
            if t.started is not None and t.started > killed.killed_at:
                assert t.worker == survivor.address
        if i != index:  # every other cell: done, with all its samples
            assert (c["measured"], c["warmup"]) == (12, 0)
    assert any(t.worker == survivor.address and t.started and t.started > killed.killed_at
               for c in cells.values() for t in c["tasks"])  # the survivor took over
    _consistent_and_nothing_left(killed)


def test_with_retries_a_lost_repetition_is_recorded_and_run_again(
        cluster: Cluster, tmp_path: Path) -> None:
    killed = _kill_a_worker_mid_cell(cluster, tmp_path, "--retries", "1")
    victim, survivor = killed.victim, killed.survivor
    assert killed.returncode == 0, killed.err
    assert "Traceback" not in killed.err
    assert json.loads(killed.out)["status"] == "complete"
    local = bench(tmp_path, KILL_SUITE, db="local.db")
    assert local.returncode == 0, local.stderr
    cells, local_cells = stored(killed.db), stored(tmp_path / "local.db")
    # Every cell finished once, ok, with the samples a local run has: the retry's.
    assert {i: (c["status"], c["measured"], c["warmup"]) for i, c in cells.items()} == {
        i: ("ok", c["measured"], c["warmup"]) for i, c in local_cells.items()} == {
        i: ("ok", 12, 0) for i in range(2)}
    lost = [(i, t) for i, c in cells.items() for t in c["tasks"] if t.status == "lost"]
    assert len(lost) == 1, cells
    (index, attempt), = lost
    assert attempt.attempt == 0
    assert attempt.worker == victim.address  # where the lost attempt ran, and why
    assert attempt.host is not None
    assert attempt.host["hostname"] == socket.gethostname()
    assert attempt.error == f"worker {victim.address} was lost while running it; retried"
    tasks = cells[index]["tasks"]
    retry = [t for t in tasks if t.repetition == attempt.repetition and t.attempt == 1]
    assert len(retry) == 1, tasks
    assert retry[0].status == "ok"
    assert retry[0].worker == survivor.address
    assert retry[0].started is not None
    assert retry[0].started > killed.killed_at
    assert len(tasks) == 3  # two repetitions, one of them twice
    assert all(t.attempt == 0 and t.status == "ok"
               for i, c in cells.items() for t in c["tasks"]
               if (i, t.repetition) != (index, attempt.repetition))
    with ResultsStore(killed.db, create=False) as store:
        cell_id = next(c.id for c in store.cells(store.runs()[-1].id) if c.index == index)
        again = [s.record for s in store.stored_samples(cell_id)
                 if s.repetition == attempt.repetition]
    assert len(again) == 6  # the retry's records alone, none of the lost attempt's
    assert all(r.start_ns > killed.killed_ns for r in again)
    _consistent_and_nothing_left(killed)


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, never listening: refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


def test_an_unreachable_scheduler_is_one_line_and_a_quick_exit(tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    result = bench(tmp_path, TINY.format(count=1), "--scheduler", address)
    took = time.monotonic() - started
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: cannot reach the Dask scheduler at " + address)
    assert took < 5 + TIMEOUT  # a bounded connect (5 s), not Dask's default 30 s
    assert not (tmp_path / "lab.db").exists()  # nothing was recorded
    bad = bench(tmp_path, TINY.format(count=1), "--scheduler", "127.0.0.1:8786")
    assert bad.returncode != 0
    assert bad.stderr.strip().startswith("error: --scheduler '127.0.0.1:8786' is not")


def test_a_worker_without_a_scheduler_or_privileges_says_why(tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{_closed_port()}"
    if not missing():
        result = subprocess.run(
            [sys.executable, "-m", "protolab", "worker", "--scheduler", address,
             "--timeout", "2"], capture_output=True, text=True, cwd=REPO,
            timeout=TIMEOUT * 2, check=False)
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"error: cannot reach the Dask scheduler at {address}")
    if os.geteuid() != 0:
        pytest.skip("needs root to drop the capabilities a worker checks for")
    # Root without its capabilities: what a worker on a machine it cannot use sees.
    dropped = subprocess.run(
        ["setpriv", "--inh-caps=-all", "--bounding-set=-all", sys.executable, "-m",
         "protolab", "worker", "--scheduler", address], capture_output=True, text=True,
        cwd=REPO, timeout=TIMEOUT * 2, check=False)
    assert dropped.returncode != 0
    lines = dropped.stderr.strip().splitlines()
    assert len(lines) == 1, dropped.stderr
    assert lines[0].startswith("error: this machine cannot run lab cells: ")
    assert "CAP_NET_ADMIN" in lines[0]


def test_the_local_path_never_imports_dask(tmp_path: Path) -> None:
    lacking = missing()
    if lacking:
        pytest.skip(f"the emulated link cannot be built here: {'; '.join(lacking)}")
    path = tmp_path / "suite.toml"
    path.write_text(TINY.format(count=1).replace('"5ms", "10ms"', '"5ms"')
                    .replace("repetitions = 2", "repetitions = 1"))
    script = (
        "import json, sys\n"
        "from protolab.cli import app\n"
        f"argv = ['bench', {str(path)!r}, '--json', '--db', {str(tmp_path / 'l.db')!r},"
        f" '--out', {str(tmp_path / 'out')!r}]\n"
        "code = None\n"
        "try:\n    app(argv)\nexcept SystemExit as exc:\n    code = exc.code\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in"
        " ('dask', 'distributed', 'protolab'))\n"
        "print(json.dumps({'code': code, 'modules': loaded}), file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO, timeout=TIMEOUT * 3, check=False)
    report = json.loads(result.stderr.strip().splitlines()[-1])
    assert report["code"] in (0, None), result.stderr
    assert "protolab.bench.runner" in report["modules"]  # the bench ran here
    assert not [m for m in report["modules"]
                if m.split(".")[0] in ("dask", "distributed") or m.startswith(
                    "protolab.distributed")], report["modules"]


# The scheduler's `allowed_failures` and plugins, once `want` holds or `wait` s passed.
_QUERY = """\
import json, sys, time
from distributed import Client
client = Client(sys.argv[1], timeout="10s")
want, deadline = json.loads(sys.argv[2]), time.monotonic() + float(sys.argv[3])
def state(dask_scheduler):
    return [dask_scheduler.allowed_failures, sorted(dask_scheduler.plugins)]
while (now := client.run_on_scheduler(state))[0] != want and time.monotonic() < deadline:
    time.sleep(0.05)
print(json.dumps(now))
client.close()
"""
_HOLD = """\
import sys
from protolab.distributed.executor import DaskExecutor
with DaskExecutor.connect(sys.argv[1]):
    print("connected", flush=True)
    sys.stdin.read()
"""


GUARD = "protolab-no-silent-reruns"  # executor.GUARD (importing it would load Dask here)


def _scheduler_state(address: str, want: int | None = None) -> tuple[int, list[str]]:
    result = subprocess.run(
        [sys.executable, "-c", _QUERY, address, json.dumps(want),
         "0" if want is None else str(TIMEOUT)],
        capture_output=True, text=True, cwd=REPO, timeout=TIMEOUT * 3, check=True)
    failures, plugins = json.loads(result.stdout)
    return int(failures), list(plugins)


def test_silent_reruns_are_off_while_runs_are_connected_and_back_after(
        cluster: Cluster) -> None:
    before, plugins = _scheduler_state(cluster.address)
    assert before > 0  # Dask's default (3): a dead worker's task is run again elsewhere
    assert GUARD not in plugins
    holders = []
    try:
        for _ in range(2):  # two runs on one scheduler
            holder = start_process([sys.executable, "-c", _HOLD, cluster.address],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL)
            holders.append(holder)
        for holder in holders:
            read_until(holder, holder.stdout, "connected", TIMEOUT * 2)
        assert _scheduler_state(cluster.address) == (0, sorted([*plugins, GUARD]))
        first, second = holders
        assert first.stdin is not None
        first.stdin.close()  # the first run ends: the other still needs them off
        assert first.wait(TIMEOUT) == 0
        assert _scheduler_state(cluster.address)[0] == 0
        os.killpg(second.pid, signal.SIGKILL)  # the last one dies without a word
        second.wait(TIMEOUT)
        assert _scheduler_state(cluster.address, want=before) == (before, plugins)
    finally:
        for holder in holders:
            stop(holder)


def test_a_dead_workers_folder_is_removed_and_a_live_ones_kept(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True, timeout=TIMEOUT)
    dead = tmp_path / f"protolab-worker-{int(gone.stdout)}-abc"
    live = tmp_path / f"protolab-worker-{os.getpid()}-def"
    other = tmp_path / "protolab-worker-x"
    for folder in (dead, live, other):
        (folder / "certs").mkdir(parents=True)
    assert remove_dead_workers_folders(tmp_path) == [dead]
    assert not dead.exists()
    assert live.exists()
    assert other.exists()
