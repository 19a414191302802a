"""The one reader of /proc/PID: a process's start time, whether it is alive, its CPU time.

A PID alone is not an identity (PIDs are reused), so a process the lab records is its PID
plus the kernel's start time; `alive` compares both, `may_be_alive` also answers for a
record that lacks the start time.
"""

from __future__ import annotations

import os
from pathlib import Path

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/PID/stat (after the command name, which may hold spaces and
    parentheses: split after the last ')'), or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def process_start(pid: int) -> int | None:
    """The kernel's start time of `pid` in clock ticks since boot, or None if none runs."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields is not None else None  # field 22 overall


def process_state(pid: int) -> str | None:
    """The one-letter state (R, S, Z …) of `pid`, or None."""
    fields = _stat_fields(pid)
    return fields[0] if fields is not None else None


def alive(pid: int | None, start: int | None) -> bool:
    """`pid` runs and is the process that started at `start` (not a reuse of its PID)."""
    return pid is not None and start is not None and process_start(pid) == start


def may_be_alive(pid: int, start: int | None) -> bool:
    """`pid` runs, and is the process that started at `start` wherever both start times are
    known. For records that may lack a start time (written where /proc was missing, or by an
    older protolab): without one, a running PID is given the benefit of the doubt, since
    judging a live run dead would end it in the store while it still writes."""
    if pid <= 0:  # kill(0) and kill(-N) would ask about process groups
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    return start is None or process_start(pid) in (start, None)


def process_cpu_s(pid: int) -> float:
    """CPU seconds of every thread of `pid`: schedstat's nanoseconds where the kernel has
    them (a small cell uses less than /proc/PID/stat's 10 ms tick), else utime + stime."""
    total_ns = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as handle:
                total_ns += int(handle.read().split()[0])
        return total_ns / 1e9
    except (OSError, ValueError, IndexError):
        pass
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime + stime
