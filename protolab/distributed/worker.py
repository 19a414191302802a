"""A lab machine's worker: what it must have, then a Dask worker with one lab slot.

`preflight()` names everything that stops this machine from running a cell before
anything connects: the emulated link's needs (root's CAP_NET_ADMIN and CAP_SYS_ADMIN,
`/dev/net/tun`, iproute2's `ip`, a writable /run; protolab/netem/privileges.py) and
the lab's own server and client code. The unprivileged path `protolab bench` can take
(a user namespace with a network namespace of its own) would cut a worker off from its
scheduler, so a worker needs root.

`serve()` runs a Dask worker in this process — no nanny, one thread, resources
`lab_slot=1` — so the machine runs one cell repetition at a time and a lost worker is
this process. It listens on loopback unless told otherwise, prints one ready line with
its address, and stops on SIGINT or SIGTERM: it leaves the scheduler at once (a
repetition it was running ends failed on the submitting side), lets that repetition
finish tearing down its link and servers, and exits.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path

from protolab.core.procfs import process_state
from protolab.errors import LabError
from protolab.netem import privileges

RESOURCE = "lab_slot"


def preflight() -> list[str]:
    """What stops this machine from running lab cells (empty: nothing)."""
    problems = privileges.missing()
    for module, what in (("servers.process", "the lab's servers"),
                         ("clients.base", "the lab's clients")):
        if importlib.util.find_spec(module) is None:
            problems.append(f"{what} ({module}) are not importable: install protolab "
                            "from its checkout (pip install -e .)")
    if os.geteuid() != 0 and not problems:
        problems.append("not root: a worker cannot take the unprivileged path (its network "
                        "namespace would cut it off from the scheduler)")
    return problems


def require() -> None:
    problems = preflight()
    if problems:
        raise LabError(f"this machine cannot run lab cells: {'; '.join(problems)}",
                       hint="run `protolab worker` as root on a lab machine; "
                       "docs/distributed.md")


_FOLDER = "protolab-worker-"  # + the worker's pid + "-…": its certificates and captures
_FOLDER_RE = re.compile(rf"^{_FOLDER}(\d+)-")


def remove_dead_workers_folders(root: Path | None = None) -> list[Path]:
    """Remove the work folders of workers on this machine that died without removing
    their own (SIGKILL, a crash): certificates and, mid-task, a capture with its key log.
    A folder whose pid is alive is left alone, whoever it belongs to now."""
    removed = []
    for folder in sorted((root or Path(tempfile.gettempdir())).glob(f"{_FOLDER}*")):
        match = _FOLDER_RE.match(folder.name)
        if not match or not folder.is_dir() or folder.is_symlink():
            continue
        if process_state(int(match.group(1))) in (None, "Z"):  # gone, or a zombie
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def serve(scheduler: str, *, name: str | None, host: str, port: int, timeout_s: float,
          on_ready: Callable[[str], None]) -> None:
    """Run the worker until SIGINT/SIGTERM or the scheduler goes away for `timeout_s`."""
    from protolab.distributed.executor import check_address, quiet_dask_logs
    from protolab.distributed.task import set_work_dir

    check_address(scheduler)
    quiet_dask_logs()
    remove_dead_workers_folders()
    with tempfile.TemporaryDirectory(prefix=f"{_FOLDER}{os.getpid()}-") as work:
        set_work_dir(Path(work))
        asyncio.run(_serve(scheduler, name, host, port, timeout_s, on_ready))


async def _serve(scheduler: str, name: str | None, host: str, port: int, timeout_s: float,
                 on_ready: Callable[[str], None]) -> None:
    import dask
    from distributed import Worker

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    seconds = f"{timeout_s:g}s"
    # Dask's statistical profiler walks every thread's stack every 10 ms, the lab's client
    # thread included: in a one-drop HOL run here the analysis saw the client stand still
    # for 5-10 ms twenty times in two cells with it, none to a few without. A lab worker
    # measures; it is not profiled.
    with dask.config.set({"distributed.comm.timeouts.connect": seconds,
                          "distributed.worker.profile.enabled": False}):
        worker = Worker(scheduler, nthreads=1, resources={RESOURCE: 1}, name=name,
                        host=host, port=port, death_timeout=timeout_s, dashboard=False)
        try:
            await worker
        except (OSError, TimeoutError) as exc:
            await worker.close(reason="could not register")
            raise LabError(f"cannot reach the Dask scheduler at {scheduler} within "
                           f"{timeout_s:g} s ({type(exc).__name__})",
                           hint="is `dask scheduler` running there, and this address the one "
                           "it printed?") from None
    on_ready(worker.address)
    finished = asyncio.ensure_future(worker.finished())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait([finished, stopping], return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not finished.done():
        # executor_wait: a repetition still running tears its link down before we exit.
        await worker.close(reason="protolab worker stopped", executor_wait=True)
        await finished
    elif not stop.is_set():
        raise LabError(f"the Dask scheduler at {scheduler} closed this worker or went away "
                       f"(gone for over {timeout_s:g} s)")
