"""How long this machine's CPUs go missing: a spinning probe on each CPU.

The link can only be as punctual as the CPU it runs on. On a VM the host may not run a
vCPU for a while (its own housekeeping, other guests); the guest sees nothing happen
meanwhile, timers and wake-ups included, and a packet due then leaves late. This probe
shows it directly: one process per CPU, pinned and (as root) `SCHED_FIFO`, reads the
monotonic clock in a tight loop and records every gap longer than a threshold. A gap
seen on every CPU at once is the whole machine stopped. Bounded: it spins in chunks of
0.4 s with a 0.1 s rest (under the kernel's real-time throttling of 0.95 s/s), for at
most `seconds` per CPU. Measured with it: docs/netem.md#timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

# Runs in a process of its own (one per CPU): pinned, real-time where permitted, and a
# loop that allocates nothing the collector tracks, so a gap is the CPU's, not Python's.
_SPINNER = """
import json, os, sys, time
cpu, seconds, threshold = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
os.sched_setaffinity(0, {cpu})
try:
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    fifo = True
except OSError:
    fifo = False
clock = time.monotonic_ns
gaps, spun = [], 0
end = clock() + int(seconds * 1e9)
while clock() < end:
    prev = start = clock()
    stop = min(end, start + 400_000_000)
    now = prev
    while now < stop:
        now = clock()
        if now - prev > threshold:
            gaps.append((prev, now - prev))
        prev = now
    spun += now - start
    time.sleep(0.1)
print(json.dumps({"cpu": cpu, "fifo": fifo, "spun_ns": spun, "gaps": gaps}))
"""


@dataclass(frozen=True)
class CpuStalls:
    cpu: int
    realtime: bool  # the spinner ran SCHED_FIFO (root); else it competed as any process
    spun_s: float  # how long it watched the clock
    gaps: tuple[tuple[int, int], ...]  # (monotonic ns at the gap's start, its length ns)


@dataclass(frozen=True)
class StallReport:
    """What the spinners saw; every gap is longer than `threshold_us`."""

    threshold_us: int
    cpus: tuple[CpuStalls, ...]

    def count(self, over_us: float = 0.0) -> int:
        return sum(1 for c in self.cpus for _, gap in c.gaps if gap > over_us * 1000)

    def per_second(self, over_us: float = 0.0) -> float:
        spun = sum(c.spun_s for c in self.cpus)
        return self.count(over_us) / spun if spun else 0.0

    def longest_us(self) -> float:
        return max((gap / 1000 for c in self.cpus for _, gap in c.gaps), default=0.0)

    def lost_share(self) -> float:
        """The share of the watched time the CPUs were gone (in gaps over the threshold)."""
        spun = sum(c.spun_s for c in self.cpus)
        return sum(gap for c in self.cpus for _, gap in c.gaps) / 1e9 / spun if spun else 0.0

    def together(self, over_us: float = 0.0) -> int:
        """Gaps on the first CPU that overlap a gap on every other one: the machine
        stopped as a whole (a host pausing the VM), not one CPU busy elsewhere."""
        if len(self.cpus) < 2:
            return 0
        first, *others = ([g for g in c.gaps if g[1] > over_us * 1000] for c in self.cpus)
        return sum(1 for start, gap in first
                   if all(any(s < start + gap and start < s + g for s, g in other)
                          for other in others))


def measure_stalls(seconds: float = 2.0, threshold_us: int = 50,
                   cpus: list[int] | None = None) -> StallReport:
    """Spin on each CPU (all this process may use, by default) at once for `seconds`."""
    if not 0 < seconds <= 60 or not 1 <= threshold_us <= 1_000_000:
        raise ValueError("seconds must be in (0, 60] and threshold_us in 1..1000000")
    chosen = sorted(cpus if cpus is not None else os.sched_getaffinity(0))
    procs = [subprocess.Popen([sys.executable, "-c", _SPINNER, str(cpu), str(seconds),
                               str(threshold_us * 1000)], stdout=subprocess.PIPE, text=True)
             for cpu in chosen]
    results = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=seconds * 2 + 30)
            if proc.returncode != 0:
                raise RuntimeError(f"the stall probe exited with status {proc.returncode}")
            results.append(json.loads(out))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return StallReport(threshold_us, tuple(
        CpuStalls(r["cpu"], r["fifo"], r["spun_ns"] / 1e9, tuple(map(tuple, r["gaps"])))
        for r in results))
