"""What a Dask worker runs for one cell repetition: `run_task`, on the worker's one thread.

The task arrives as JSON (`RepTask.to_json`), runs exactly as a local repetition whose
link cannot be shared does (`runner.run_alone`: its own link, namespaces with fresh
random names claimed under the machine's link lock, its own server processes, all torn
down after), and leaves as JSON (`wire.result_to_json`). Before it starts it says so
(a Dask event on `START_TOPIC`): the submitting side then knows a lost worker was lost
*while running* it, not before. It never raises: whatever goes wrong is the repetition's
typed failure, recorded like any other.

With captures asked for (`capture_limit`), the repetition's link pcap, TLS key log and
QUIC qlog are written in a private folder of this worker (removed after), and come back
with the result as bytes (`captures.collect`: nothing above the limit, with the reason);
the submitting process writes them where a local run keeps them.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from protolab.bench.runner import (
    CellCapture,
    CellFailure,
    ClientResult,
    RanOn,
    RepResult,
    RepTask,
    host_now,
    run_alone,
)
from protolab.distributed import captures
from protolab.distributed.wire import result_to_json

START_TOPIC = "protolab-task-start"
_work_dir: Path | None = None
_lock = threading.Lock()


def set_work_dir(path: Path) -> None:
    """Where this worker process keeps its certificates (`protolab worker` sets it to a
    folder it removes when it ends)."""
    global _work_dir
    with _lock:
        _work_dir = path


def _work() -> Path:
    global _work_dir
    with _lock:
        if _work_dir is None:  # a worker not started by `protolab worker`
            _work_dir = Path(tempfile.mkdtemp(prefix="protolab-worker-"))
            atexit.register(shutil.rmtree, _work_dir, True)
        return _work_dir


def run_task(key: str, task_json: dict[str, Any],
             capture_limit: int | None = None) -> dict[str, Any]:
    """One repetition on this worker; `key` names it in the start event. With
    `capture_limit` (bytes), its capture comes back too, if it is no larger."""
    from distributed import get_worker

    worker = get_worker()
    host = host_now()
    started = time.time()
    worker.log_event(START_TOPIC, {"key": key, "worker": worker.address, "host": host,
                                   "started": started})
    try:
        task = RepTask.from_json(task_json)
    except Exception as exc:  # noqa: BLE001 - answered as a failure, never raised
        return {"error": f"the worker could not read the task: {exc}", "worker": worker.address,
                "host": host, "started": started, "ended": time.time()}
    # mkdtemp: mode 0700, so the key log is this worker's alone until it is shipped.
    private = None if capture_limit is None else Path(
        tempfile.mkdtemp(prefix="capture-", dir=_work()))
    try:
        capture = None if private is None else CellCapture.under(private, task.cell, task.rep)
        try:
            result = run_alone(task, _work() / "certs", worker=worker.address,
                               capture=capture)
        except Exception as exc:  # noqa: BLE001 - the link or a server did not come up
            failure = CellFailure("failed",
                                  f"on {worker.address}: {type(exc).__name__}: {exc}")
            result = RepResult(task, ClientResult((), 0.0, failure),
                               RanOn(worker.address, host, started, time.time()))
        out = result_to_json(result)
        if capture is not None and capture_limit is not None:
            out["captures"] = captures.collect(capture.directory, capture_limit)
        return out
    finally:
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)
