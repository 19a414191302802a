"""The lab's one clock.

Every timestamp a client records comes from `now_ns()`: a monotonic clock in
nanoseconds, shared by all protocols in a process, so phases of different
protocols can be compared directly. Protocol code reads this clock when an event
happens; it never computes durations or statistics itself.
"""

from __future__ import annotations

import time


def now_ns() -> int:
    """Monotonic time in nanoseconds (CLOCK_MONOTONIC; same-host comparable across processes)."""
    return time.monotonic_ns()


def ns_to_ms(ns: int) -> float:
    return ns / 1_000_000
