"""The submitting side: the bench runner's `Executor` over a Dask scheduler.

Every cell repetition of the plan becomes one task needing `lab_slot=1`, submitted in
the plan's order (repetitions in turn, variants rotated: the local runner's order) and
no faster than the cluster has free lab slots, so each worker holds only the repetition
it runs and the order of the plan is the order they start. Results come back as JSON
(`wire`) and are yielded as they finish; the runner's caller alone writes the store.

Captures: with a `capture_dir`, each task brings its repetition's capture back
(`captures`: bytes, at most `capture_limit` per task, else the reason it stayed behind,
recorded with the repetition) and it is written under `capture_dir` exactly where a
local run writes it, before the result is handed on: the HOL analysis after the run
reads it as it reads a local run's.

Faults:

- A worker lost while running a repetition (killed, crashed, cut off): Dask's own
  re-run is disabled (tasks are submitted with `retries=0`, and for as long as a
  protolab run is connected the scheduler's `allowed-failures` is 0: `_guard`), so the
  repetition ends failed with the reason, "worker tcp://… was lost while running it",
  and the run goes on with the others. With `retries=N` it is submitted again up to N
  times; each lost attempt is recorded.
  A repetition whose worker was lost before it started (no start event came) never
  ran: it is simply submitted again (at most `MAX_REQUEUES` times).
- Closing the generator (Ctrl-C, SIGTERM) cancels every outstanding task. A worker
  cannot stop a repetition mid-way; it finishes it, tears its link down and drops it.
- No worker with a lab slot for `worker_wait_s`: a `LabError`, and the run fails with
  what finished kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any

from distributed import Client, Future, wait
from distributed.scheduler import KilledWorker

from protolab.bench.runner import (
    CellCapture,
    CellFailure,
    ClientResult,
    LinkGroup,
    RanOn,
    RepResult,
    RepTask,
)
from protolab.distributed import captures
from protolab.distributed.task import START_TOPIC, run_task
from protolab.distributed.wire import result_from_json
from protolab.errors import ConfigError, LabError

RESOURCE = "lab_slot"
MAX_REQUEUES = 3  # a repetition whose worker vanished before it started, submitted again
_ADDRESS = re.compile(r"^(tcp|tls)://(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")


def check_address(address: str) -> str:
    """A scheduler address as Dask takes it: tcp://HOST:PORT or tls://HOST:PORT."""
    match = _ADDRESS.match(address)
    if not match or not 0 < int(match.group(3)) < 65536:
        raise ConfigError(f"--scheduler {address!r} is not tcp://HOST:PORT or tls://HOST:PORT",
                          hint="the address `dask scheduler` prints as 'Scheduler at:'")
    return address


def quiet_dask_logs() -> None:
    """Dask logs reconnect attempts and closing comms at INFO/WARNING on the submitting
    side; the bench's own lines say what matters."""
    for name in ("distributed", "distributed.client", "distributed.comm", "distributed.core",
                 "distributed.batched", "tornado"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


GUARD = "protolab-no-silent-reruns"  # the name of `_guard`'s plugin on the scheduler


def _guard() -> Callable[..., int]:
    """What runs on the scheduler to turn its silent re-runs off while protolab runs are
    connected, and back on after.

    Dask has no per-task setting for it: a task whose worker dies is re-run elsewhere
    until `Scheduler.allowed_failures` (global, `distributed.scheduler.allowed-failures`,
    default 3) is exceeded. So the first protolab run that connects saves the value and
    sets 0; a scheduler plugin keeps the set of protolab clients connected, and when the
    last one leaves — it says so on exit, or the scheduler notices its connection close
    (a killed bench: `SchedulerPlugin.remove_client`) — the saved value is put back.

    Built inside a function so that cloudpickle sends it by value: the scheduler needs
    `distributed`, not protolab.
    """

    def hold(dask_scheduler: Any, client: str, take: bool) -> int:
        from distributed.diagnostics.plugin import SchedulerPlugin

        class Guard(SchedulerPlugin):
            def __init__(self, previous: int) -> None:
                self.previous = previous
                self.clients: set[str] = set()

            def remove_client(self, scheduler: Any, client: str) -> None:
                if client in self.clients:
                    self.clients.discard(client)
                    if not self.clients:
                        scheduler.allowed_failures = self.previous
                        scheduler.remove_plugin(name=GUARD)

        guard = dask_scheduler.plugins.get(GUARD)
        if take:
            if guard is None:
                guard = Guard(int(dask_scheduler.allowed_failures))
                dask_scheduler.add_plugin(guard, name=GUARD)
            guard.clients.add(client)
            dask_scheduler.allowed_failures = 0
        elif guard is not None:
            guard.remove_client(dask_scheduler, client)
        return int(dask_scheduler.allowed_failures)

    return hold


class DaskExecutor:
    """Cell repetitions on the workers of the Dask scheduler at `address`."""

    def __init__(self, client: Client, address: str, *, retries: int = 0,
                 worker_wait_s: float = 60.0,
                 capture_limit: int = captures.LIMIT_BYTES) -> None:
        if retries < 0:
            raise ConfigError("--retries must be 0 or more")
        self.client = client
        self.address = address
        self.retries = retries
        self.worker_wait_s = worker_wait_s
        self.capture_limit = capture_limit
        self.description = f"dask {address}"
        self._started: dict[str, dict[str, Any]] = {}  # task key -> its start event
        self._lock = threading.Lock()

    @classmethod
    @contextlib.contextmanager
    def connect(cls, address: str, *, retries: int = 0, timeout_s: float = 5.0,
                worker_wait_s: float = 60.0,
                capture_limit: int = captures.LIMIT_BYTES,
                ) -> Generator[DaskExecutor, None, None]:
        """A client of the scheduler at `address`, reached within `timeout_s` or a
        one-line `LabError`; closed on exit, the scheduler's silent re-runs back as they
        were if no other protolab run still holds them off. Everything the options get
        wrong is said before it connects."""
        import dask

        check_address(address)
        if retries < 0:
            raise ConfigError("--retries must be 0 or more")
        if capture_limit < 0:
            raise ConfigError("the capture limit must be 0 bytes or more")
        quiet_dask_logs()
        seconds = f"{timeout_s:g}s"
        with dask.config.set({"distributed.comm.timeouts.connect": seconds}):
            try:
                client = Client(address, timeout=seconds, set_as_default=True,
                                direct_to_workers=False)
            except (OSError, TimeoutError) as exc:
                raise LabError(f"cannot reach the Dask scheduler at {address} within "
                               f"{timeout_s:g} s ({type(exc).__name__})",
                               hint="is `dask scheduler` running there, and this address "
                               "the one it printed?") from None
        held = False
        try:
            try:
                client.run_on_scheduler(_guard(), client=client.id, take=True)
                held = True
            except Exception as exc:  # noqa: BLE001 - any refusal is the same advice
                raise LabError(
                    f"the scheduler at {address} would not turn off its silent re-runs "
                    f"({type(exc).__name__}: {exc})",
                    hint="start it with DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=0 "
                    "and distributed.scheduler.pickle on (docs/distributed.md)") from None
            executor = cls(client, address, retries=retries, worker_wait_s=worker_wait_s,
                           capture_limit=capture_limit)
            client.subscribe_topic(START_TOPIC, executor._on_start)
            yield executor
        finally:
            if held:  # else the scheduler restores it when it sees this client go
                with contextlib.suppress(Exception):
                    client.run_on_scheduler(_guard(), client=client.id, take=False)
            with contextlib.suppress(Exception):
                client.close(timeout=5)

    def _on_start(self, event: tuple[float, Any]) -> None:
        """A worker began a task (called on the client's event loop thread)."""
        _, message = event
        if isinstance(message, dict) and isinstance(message.get("key"), str):
            with self._lock:
                self._started[message["key"]] = message

    def _start_of(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self._started.pop(key, None)

    def slots(self) -> int:
        """Lab slots the scheduler knows now (one per connected `protolab worker`)."""
        workers = self.client.scheduler_info()["workers"]
        return int(sum(w.get("resources", {}).get(RESOURCE, 0) for w in workers.values()))

    def run(self, groups: Sequence[LinkGroup], work_dir: Path,
            capture_dir: Path | None) -> Generator[RepResult, None, None]:
        limit = None if capture_dir is None else self.capture_limit
        queue: deque[tuple[RepTask, int]] = deque(
            (task, 0) for group in groups for task in group.tasks)
        order = {(t.cell.index, t.rep): i for i, (t, _) in enumerate(queue)}
        in_flight: dict[Future[Any], tuple[RepTask, int, str]] = {}
        run_token = uuid.uuid4().hex[:12]
        no_slots_since: float | None = None
        try:
            while queue or in_flight:
                free = self.slots() - len(in_flight)
                while queue and free > 0:
                    task, requeues = queue.popleft()
                    key = (f"protolab-{run_token}-c{task.cell.index}-r{task.rep}"
                           f"-a{task.attempt}-q{requeues}")
                    future = self.client.submit(
                        run_task, key, task.to_json(), limit, key=key, pure=False,
                        retries=0,
                        resources={RESOURCE: 1},
                        priority=-order[(task.cell.index, task.rep)])
                    in_flight[future] = (task, requeues, key)
                    free -= 1
                if not in_flight:  # nothing runs and nothing can be submitted: no workers
                    no_slots_since = no_slots_since or time.monotonic()
                    if time.monotonic() - no_slots_since > self.worker_wait_s:
                        raise LabError(
                            f"no protolab worker is connected to {self.address} (waited "
                            f"{self.worker_wait_s:g} s)",
                            hint="start one per lab machine: protolab worker --scheduler "
                            f"{self.address}")
                    time.sleep(0.5)  # bounded by worker_wait_s; polls the scheduler
                    continue
                no_slots_since = None
                try:
                    done, _ = wait(list(in_flight), timeout=2.0, return_when="FIRST_COMPLETED")
                except TimeoutError:
                    continue  # re-count the slots: workers may have come or gone
                for future in done:
                    task, requeues, key = in_flight.pop(future)
                    yield from self._finished(future, task, requeues, key, queue,
                                              capture_dir)
        finally:
            if in_flight:
                with contextlib.suppress(Exception):
                    self.client.cancel(list(in_flight), force=True)

    def _finished(self, future: Future[Any], task: RepTask, requeues: int, key: str,
                  queue: deque[tuple[RepTask, int]],
                  capture_dir: Path | None) -> Generator[RepResult, None, None]:
        start = self._start_of(key)
        if future.status == "finished":
            data = future.result()
            future.release()
            if isinstance(data, dict) and "error" in data:
                yield _failed(task, str(data["error"]), data)
                return
            result = result_from_json(data, task)
            if capture_dir is not None:  # the folders a local run makes, before analysis
                folder = CellCapture.under(capture_dir, task.cell, task.rep).directory
                note = captures.write(folder, data.get("captures"), self.capture_limit)
                result = dataclasses.replace(result, note=note)
            yield result
            return
        if future.status == "cancelled":
            raise LabError(f"the Dask scheduler at {self.address} cancelled the run's tasks "
                           "(was it stopped, or the connection to it lost?)")
        error = future.exception()
        future.release()
        if not isinstance(error, KilledWorker):
            yield _failed(task, f"the worker could not run it: {type(error).__name__}: "
                          f"{error}", start)
            return
        worker = getattr(getattr(error, "last_worker", None), "address", "?")
        if start is None:  # it never began: not a re-run, just another worker's turn
            if requeues < MAX_REQUEUES:
                queue.appendleft((task, requeues + 1))
                return
            yield _failed(task, f"{MAX_REQUEUES + 1} workers were lost before one started "
                          f"it (last {worker})", None, lost=True)
            return
        message = f"worker {worker} was lost while running it"
        if task.attempt < self.retries:
            retry = RepTask(task.cell, task.rep, task.warm, task.workload, task.timeout_s,
                            task.attempt + 1)
            yield _failed(task, f"{message}; retried", start, lost=True, superseded=True)
            queue.appendleft((retry, 0))
            return
        yield _failed(task, message + (f" (attempt {task.attempt + 1} of "
                                       f"{self.retries + 1})" if self.retries else ""),
                      start, lost=True)


def _failed(task: RepTask, message: str, start: dict[str, Any] | None, *,
            lost: bool = False, superseded: bool = False) -> RepResult:
    """A repetition that produced no records: where it ran, as far as is known."""
    start = start or {}
    started = start.get("started")
    host = start.get("host")
    return RepResult(
        task, ClientResult((), 0.0, CellFailure("failed", message)),
        RanOn(str(start.get("worker", "?")), host if isinstance(host, dict) else {},
              float(started) if isinstance(started, int | float) else time.time(),
              time.time()),
        lost=lost, superseded=superseded)
