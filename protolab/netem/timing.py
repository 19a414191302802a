"""How the forwarder asks the OS for punctual wake-ups: `TimingSettings`, the lab's
`DEFAULT_TIMING`, and `apply_timing`, which the forwarder process calls at start.

The parent (`EmulatedLink`) chooses the settings and passes them as JSON; the forwarder
applies them and reports what was granted in its ready message. Every default was
measured on the lab machines before it was chosen (docs/netem.md#timing).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import sys
from dataclasses import asdict, dataclass
from typing import Any

# Bounded reads per fd per wake-up, so one busy direction cannot starve due deliveries.
READ_BATCH = 64
SPIN_NS = 250_000
GC_MODES = ("default", "freeze", "off")
_MCL_CURRENT, _MCL_FUTURE = 1, 2
_PR_SET_TIMERSLACK = 29


@dataclass(frozen=True)
class TimingSettings:
    """What the forwarder asks of the OS to leave packets on time (measured: docs/netem.md)."""

    realtime_priority: int = 0  # SCHED_FIFO priority 1..99; 0: normal scheduling
    cpu: int | None = None  # pin the forwarder to this CPU; None: wherever the kernel likes
    gc: str = "default"  # the cyclic collector: "default", "freeze" (after start-up), "off"
    mlock: bool = False  # mlockall(): no page faults on the hot path
    spin_ns: int = SPIN_NS  # wake this early before a deadline and poll up to it
    spin_share: float = 1.0  # ... but spin at most this share of the wait (1: always spin_ns)
    read_batch: int = READ_BATCH  # packets read per fd per wake-up
    # Hold /dev/cpu_dma_latency at this many us while the link is up (PM QoS: idle CPUs
    # then poll instead of halting, for the whole machine); None: leave idle states alone.
    cpu_latency_us: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.realtime_priority <= 99:
            raise ValueError(f"realtime_priority {self.realtime_priority} is not in 0..99")
        if self.gc not in GC_MODES:
            raise ValueError(f"gc {self.gc!r} is not one of {', '.join(GC_MODES)}")
        if not 0 <= self.spin_ns <= 10_000_000 or not 1 <= self.read_batch <= 4096:
            raise ValueError("spin_ns must be 0..10 ms and read_batch 1..4096")
        if not 0.0 <= self.spin_share <= 1.0:
            raise ValueError(f"spin_share {self.spin_share} is not in 0..1")
        if self.cpu_latency_us is not None and not 0 <= self.cpu_latency_us <= 1_000_000:
            raise ValueError(f"cpu_latency_us {self.cpu_latency_us} is not in 0..1000000")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TimingSettings:
        return cls(**data)


# How every link's forwarder asks for punctual wake-ups unless told otherwise; each
# setting was measured on the lab machines before it was chosen (docs/netem.md#timing):
# SCHED_FIFO took the forwarder's own lateness p99 under load from ~17 ms to ~0.2 ms and
# the zero-delay ceiling up ~30%; freezing the collector turns a possible 2-7 ms full
# collection into 1 us; spinning at most 1/8 of each wait took a busy link's forwarder
# from 0.64 to 0.28 of a core and the loaded probe's p99 from ~9 to ~1.5 ms. Pinning,
# mlockall, gc off, single reads did not help. Holding idle CPUs out of halt (PM QoS
# 0 us) took the probe's median error at 0-100 ms RTT from ~0.25 to ~0.06-0.11 ms.
DEFAULT_TIMING = TimingSettings(realtime_priority=10, gc="freeze", spin_ns=1_000_000,
                                spin_share=0.125, cpu_latency_us=0)
CPU_LATENCY_DEVICE = "/dev/cpu_dma_latency"
_held_fds: list[int] = []  # the PM QoS request lasts as long as its fd is open


def _libc() -> Any:
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def apply_timing(settings: TimingSettings) -> tuple[dict[str, Any], list[str]]:
    """Ask for each setting; returns what was granted and one line per refusal.

    Nothing here is fatal: a refused setting (SCHED_FIFO is EPERM in a user namespace,
    a CPU outside this machine) leaves the default and is reported, and the link works.
    """
    granted: dict[str, Any] = {}
    refused: list[str] = []
    # 1 ns timer slack: the default 50 us would be added to every select() wake-up.
    libc = _libc()
    slack_ok = libc.prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0) == 0
    granted["timer_slack_ns"] = 1 if slack_ok else 50_000
    granted["spin_us"] = settings.spin_ns // 1000
    granted["spin_share"] = settings.spin_share
    granted["read_batch"] = settings.read_batch
    granted["scheduler"] = "other"
    if settings.realtime_priority:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(settings.realtime_priority))
            granted["scheduler"] = f"fifo:{settings.realtime_priority}"
        except OSError as exc:
            refused.append(f"SCHED_FIFO {settings.realtime_priority} refused "
                           f"({exc.strerror}): normal scheduling")
    granted["cpu"] = None
    if settings.cpu is not None:
        try:
            os.sched_setaffinity(0, {settings.cpu})
            granted["cpu"] = settings.cpu
        except OSError as exc:
            refused.append(f"CPU affinity {settings.cpu} refused ({exc.strerror}): unpinned")
    granted["mlock"] = False
    if settings.mlock:
        if libc.mlockall(_MCL_CURRENT | _MCL_FUTURE) == 0:
            granted["mlock"] = True
        else:
            refused.append(f"mlockall refused ({os.strerror(ctypes.get_errno())}): "
                           "memory not locked")
    granted["cpu_latency_us"] = None
    if settings.cpu_latency_us is not None:
        try:
            fd = os.open(CPU_LATENCY_DEVICE, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, settings.cpu_latency_us.to_bytes(4, sys.byteorder, signed=True))
            except OSError:
                os.close(fd)
                raise
            _held_fds.append(fd)
            granted["cpu_latency_us"] = settings.cpu_latency_us
        except OSError as exc:
            refused.append(f"CPU wake-up latency limit ({CPU_LATENCY_DEVICE}) refused "
                           f"({exc.strerror}): idle CPUs may halt")
    granted["gc"] = settings.gc
    # Whether the limit can do anything: it restricts the idle states of a cpuidle
    # driver; with none (some VMs: the guest halts in its default idle loop) it cannot,
    # and every idle wake-up keeps its cost (docs/netem.md#timing).
    granted["cpuidle_driver"] = cpuidle_driver()
    return granted, refused


CPUIDLE_DRIVER = "/sys/devices/system/cpu/cpuidle/current_driver"


def cpuidle_driver() -> str | None:
    """The machine's cpuidle driver ("haltpoll", "intel_idle", "none" …), None unknown."""
    try:
        with open(CPUIDLE_DRIVER) as f:
            return f.read().strip() or None
    except OSError:
        return None


def settle_collector(mode: str) -> None:
    """After start-up: "freeze" moves every object so far out of the collector's sight
    (a full collection then scans only what the loop made), "off" stops it altogether."""
    if mode == "default":
        return
    gc.collect()
    gc.freeze()
    if mode == "off":
        gc.disable()
