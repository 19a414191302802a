"""Children that die with the process that started them (PR_SET_PDEATHSIG).

A server the lab starts inside a namespace must not outlive a bench process killed with
SIGKILL: it would hold ~250 MB until a later `netem down`. The kernel can send a child a
signal when its parent dies (prctl PR_SET_PDEATHSIG), but it has to be asked from inside
the child, between fork and exec. `preexec_fn` is unsafe in a process with threads, so
the child is started through a tiny wrapper instead: `python -I -S -c WRAPPER` sets the
signal, checks that its parent is still the one that started it (had the parent died
before the prctl, no signal would ever come), and execs the real command, which keeps
the setting: PDEATHSIG survives execve except for set-user-ID/set-group-ID or
file-capability binaries. `ip netns exec NS argv` (iproute2) does not fork; it execs
`argv` in the same process, so the setting reaches the command inside the namespace.

Two caveats:

- The signal fires when the *thread* that forked the child exits, not the process. A
  child started from a short-lived thread (e.g. a `link.call` thread) would be killed
  when that thread ends. `Spawner` therefore forks every long-running child from one
  thread of its own that lives as long as the link.
- Only the direct child is covered: a command that forks helpers of its own must give
  them the same treatment (`protolab serve` runs all protocols in one process).
"""

from __future__ import annotations

import queue
import shutil
import signal
import subprocess
import sys
import threading
from concurrent.futures import Future
from typing import Any

from protolab.errors import LabError

PR_SET_PDEATHSIG = 1
DEATH_SIGNAL = signal.SIGKILL  # certain: a server that traps SIGTERM must not survive

# argv[1]: the parent's pid; argv[2]: the signal; argv[3:]: the command.
WRAPPER = """\
import ctypes, os, sys
parent, sig, argv = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
if ctypes.CDLL(None, use_errno=True).prctl(1, sig, 0, 0, 0) != 0:
    sys.stderr.write("protolab: prctl(PR_SET_PDEATHSIG) failed: "
                     + os.strerror(ctypes.get_errno()) + "\\n")
    os._exit(126)
if os.getppid() != parent:
    os._exit(1)
try:
    os.execvp(argv[0], argv)
except OSError as exc:
    sys.stderr.write("protolab: cannot run " + argv[0] + ": " + str(exc.strerror) + "\\n")
    os._exit(127)
"""


def wrap(argv: list[str], parent_pid: int) -> list[str]:
    """`argv` started so that it gets DEATH_SIGNAL when `parent_pid`'s forking thread dies."""
    program = shutil.which(argv[0]) or argv[0]  # the caller's PATH, whatever env= says
    return [sys.executable, "-I", "-S", "-c", WRAPPER, str(parent_pid),
            str(int(DEATH_SIGNAL)), program, *argv[1:]]


class Spawner:
    """Starts processes from one long-lived thread, so their death signal waits for the
    process's death (or `close()`), not for the end of whichever thread asked."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[
            tuple[list[str], dict[str, Any], Future[subprocess.Popen[Any]]] | None
        ] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def popen(self, argv: list[str], parent_pid: int, **kwargs: Any) -> subprocess.Popen[Any]:
        future: Future[subprocess.Popen[Any]] = Future()
        with self._lock:
            if self._closed:
                raise LabError("the link is closed: it starts no more processes")
            self._jobs.put((wrap(argv, parent_pid), kwargs, future))
        return future.result()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            argv, kwargs, future = job
            try:
                future.set_result(subprocess.Popen(argv, **kwargs))
            except BaseException as exc:  # handed to the caller, who re-raises it
                future.set_exception(exc)

    def close(self) -> None:
        """Stop the thread; children still running get their death signal now."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._jobs.put(None)
        if self._thread is not threading.current_thread():
            self._thread.join()
