"""The CPU stall probe: a gap in a spinner's clock reads is time its CPU was gone.

A user reading the link's fidelity needs to know what the machine itself loses; the
probe must see a stall that is certainly there and tell one CPU's from the machine's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from protolab.netem.stalls import CpuStalls, StallReport, measure_stalls

MS = 1_000_000

# Pinned to CPU 0 at a higher real-time priority than the probe's spinner: each burst
# takes the CPU from it for 20 ms, ten times over about a second.
PREEMPTOR = """
import os, time
os.sched_setaffinity(0, {0})
os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(2))
for _ in range(10):
    end = time.monotonic() + 0.020
    while time.monotonic() < end:
        pass
    time.sleep(0.08)
"""


def test_gaps_on_every_cpu_at_once_are_told_from_one_cpus() -> None:
    report = StallReport(50, (
        CpuStalls(0, True, 1.0, ((10 * MS, MS), (500 * MS, 2 * MS))),
        CpuStalls(1, True, 1.0, ((10 * MS + 100_000, MS),)),
    ))
    assert report.count() == 3
    assert report.count(over_us=1500) == 1
    assert report.together() == 1  # the first gap overlaps CPU 1's; the second does not
    assert report.longest_us() == 2000.0
    assert report.per_second() == 1.5
    assert report.lost_share() == pytest.approx(0.002)


@pytest.mark.skipif(os.geteuid() != 0, reason="SCHED_FIFO for the preemptor needs root")
def test_a_cpu_taken_by_a_higher_priority_task_shows_as_gaps() -> None:
    result: list[StallReport] = []
    probe = threading.Thread(target=lambda: result.append(
        measure_stalls(seconds=2.0, threshold_us=50, cpus=[0])))
    probe.start()
    preemptor = subprocess.run([sys.executable, "-c", PREEMPTOR], timeout=30, check=True)
    probe.join(60)
    assert preemptor.returncode == 0
    (report,) = result
    (cpu,) = report.cpus
    assert cpu.realtime
    assert cpu.spun_s > 1.0
    assert report.count(over_us=10_000) >= 1  # a 20 ms burst inside a spinning chunk


def test_nonsense_durations_are_refused() -> None:
    with pytest.raises(ValueError, match="seconds"):
        measure_stalls(seconds=0)
    with pytest.raises(ValueError, match="threshold_us"):
        measure_stalls(seconds=1, threshold_us=0)
