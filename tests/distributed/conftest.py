"""A real `dask scheduler` on loopback and `protolab worker` processes, for the
distributed tests. Every process is started in a session of its own (its group is
signalled at teardown) and with a parent-death signal (protolab/netem/deathsig.py), so
none outlives a killed test run; readiness is a line each prints, never a sleep."""

from __future__ import annotations

import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from protolab.netem.deathsig import wrap
from protolab.netem.privileges import missing
from tests.helpers import TIMEOUT

REPO = Path(__file__).resolve().parents[2]


def _dask_cli() -> list[str] | None:
    dask = Path(sys.executable).with_name("dask")
    if dask.exists():
        return [str(dask)]
    found = shutil.which("dask")
    return [found] if found else None


def start(argv: list[str], **kwargs: Any) -> subprocess.Popen[str]:
    """`argv` in a session of its own that dies with this process."""
    return subprocess.Popen(wrap(argv, os.getpid()), start_new_session=True, text=True,
                            cwd=REPO, **kwargs)


def read_until(proc: subprocess.Popen[str], stream: Any, pattern: str,
               timeout: float) -> re.Match[str]:
    """Lines of `stream` until one matches `pattern` (bounded by `timeout`)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(deadline - time.monotonic()):
                break
            line = stream.readline()
            if not line:
                break
            seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match
    stop(proc)
    pytest.fail(f"no line matching {pattern!r} within {timeout:g} s: {''.join(seen)[-2000:]}")


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> None:
    """Signal the process's group, then kill what lingers; close its pipes."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            proc.wait(TIMEOUT)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


@dataclass
class Worker:
    proc: subprocess.Popen[str]
    address: str
    name: str


class Cluster:
    """A scheduler and the workers a test asked for."""

    def __init__(self, scheduler: subprocess.Popen[str], address: str) -> None:
        self.scheduler = scheduler
        self.address = address
        self.workers: list[Worker] = []

    def add_worker(self, name: str) -> Worker:
        proc = start([sys.executable, "-m", "protolab", "worker", "--scheduler", self.address,
                      "--name", name], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        match = read_until(proc, proc.stdout, r"protolab worker (tcp://\S+): ready",
                           TIMEOUT * 2)
        worker = Worker(proc, match.group(1), name)
        self.workers.append(worker)
        return worker

    def close_workers(self) -> None:
        for worker in self.workers:
            stop(worker.proc)
        self.workers.clear()


@pytest.fixture(scope="module")
def scheduler() -> Iterator[tuple[subprocess.Popen[str], str]]:
    cli = _dask_cli()
    if cli is None:
        pytest.skip("the `dask` command (PyPI distributed) is not installed")
    proc = start([*cli, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                  "--dashboard-address", "127.0.0.1:0"],
                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    match = read_until(proc, proc.stderr, r"Scheduler at:\s+(tcp://127\.0\.0\.1:\d+)",
                       TIMEOUT * 2)
    assert proc.stderr is not None
    # Its log goes on; a pipe nobody reads would block it once full.
    drain = subprocess.Popen(["cat"], stdin=proc.stderr, stdout=subprocess.DEVNULL)
    try:
        yield proc, match.group(1)
    finally:
        stop(proc)
        drain.wait(TIMEOUT)


@pytest.fixture
def cluster(scheduler: tuple[subprocess.Popen[str], str]) -> Iterator[Cluster]:
    lacking = missing()
    if lacking:
        pytest.skip(f"a lab worker cannot run here: {'; '.join(lacking)}")
    c = Cluster(*scheduler)
    try:
        yield c
    finally:
        c.close_workers()
