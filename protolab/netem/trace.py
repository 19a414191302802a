"""Packet-delivery traces in the mahimahi format: a link's capacity as it varied in time.

A trace file (as mahimahi's `mm-link` reads it, and as the published cellular traces
recorded with Saturator, Winstein et al., NSDI 2013, are written) has one line per
*delivery opportunity*: an integer timestamp in milliseconds since the start, at which
1500 bytes may leave the bottleneck queue. A timestamp repeated means several
opportunities in that millisecond; timestamps never decrease; the trace repeats when it
ends, its period being the last timestamp (so it must be > 0). A file holding just `1`
is a 12 Mbit/s link.

Opportunities are byte budgets, as mm-link spends them (src/frontend/link_queue.cc): an
opportunity carries up to 1500 bytes of IP packet (mm-link's 1504 include the 4-byte
TUN header), shared by as many queued packets as fit, and a packet that does not fit
continues on the next one; bytes of an opportunity nobody is queued for are lost.

Loading is the edge: `load_trace` refuses a missing, empty, oversized, non-numeric,
negative or decreasing file with one line naming the file and the line. `DeliveryTrace`
is frozen data (it travels inside a `LinkProfile`, to the forwarder and to other
processes, delta-encoded); `TraceSchedule` is the model's cursor over it.
"""

from __future__ import annotations

import math
import os
from bisect import bisect_left
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protolab.errors import ConfigError

OPPORTUNITY_BYTES = 1500
# The largest published traces (mahimahi's traces/) have ~505,000 lines in 3.4 MB and
# last ~18 minutes; these bounds leave room for ten times that and no more, so a wrong
# file (a pcap, a video) is refused before it is read into memory.
MAX_TRACE_BYTES = 64 << 20
MAX_TRACE_LINES = 5_000_000
MAX_TRACE_MS = 24 * 3600 * 1000  # one day
_MAX_DIGITS = 10
_MS = 1_000_000
BUNDLED_DIR = Path(__file__).parent / "traces"


@dataclass(frozen=True)
class CapacityStats:
    """A trace's capacity in Mbit/s (IP bytes) over windows of `window_ms` in one period."""

    window_ms: int
    mean: float
    p10: float
    p50: float
    p90: float
    low: float  # the emptiest window
    high: float  # the fullest window

    def to_json(self) -> dict[str, float | int]:
        return {"window_ms": self.window_ms, "mean_mbps": self.mean, "p10_mbps": self.p10,
                "p50_mbps": self.p50, "p90_mbps": self.p90, "min_mbps": self.low,
                "max_mbps": self.high}

    def describe(self) -> str:
        return (f"mean {self.mean:.3g} Mbit/s (p10 {self.p10:.3g}, p50 {self.p50:.3g}, "
                f"p90 {self.p90:.3g} per {self.window_ms} ms)")


@dataclass(frozen=True)
class DeliveryTrace:
    """The delivery opportunities of one period (milliseconds, non-decreasing, last > 0)."""

    name: str  # where it came from, for people (the file's name)
    ms: tuple[int, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise ConfigError(f"trace name must be a string, got {self.name!r}")
        if not isinstance(self.ms, tuple) or not self.ms:
            raise ConfigError(f"trace {self.name}: has no delivery opportunities")
        if len(self.ms) > MAX_TRACE_LINES:
            raise ConfigError(f"trace {self.name}: {len(self.ms)} opportunities, "
                              f"allowed at most {MAX_TRACE_LINES}")
        previous = 0
        for i, value in enumerate(self.ms):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"trace {self.name}: entry {i + 1} is not an integer")
            if value < previous or value > MAX_TRACE_MS:
                raise ConfigError(f"trace {self.name}: entry {i + 1} ({value} ms) is "
                                  f"{'before the one above it' if value < previous else ''}"
                                  f"{'beyond one day' if value > MAX_TRACE_MS else ''}")
            previous = value
        if self.ms[-1] == 0:
            raise ConfigError(f"trace {self.name}: lasts 0 ms (its last timestamp is its "
                              "period and must be > 0)", hint="e.g. a file holding 1")

    @property
    def period_ms(self) -> int:
        return self.ms[-1]

    @property
    def mean_bps(self) -> float:
        """Capacity averaged over one period, in bit/s of IP packets."""
        return len(self.ms) * OPPORTUNITY_BYTES * 8 / (self.period_ms / 1000)

    def opportunities_between(self, start_ms: float, end_ms: float) -> int:
        """Opportunities at times t with start_ms <= t < end_ms, the trace repeating."""
        if end_ms <= start_ms:
            return 0
        return self._before(end_ms) - self._before(start_ms)

    def _before(self, t_ms: float) -> int:
        """Opportunities at times < t_ms (t_ms >= 0)."""
        period = self.period_ms
        cycles, rest = divmod(t_ms, period)
        return int(cycles) * len(self.ms) + bisect_left(self.ms, rest)

    def capacity_bps_between(self, start_ms: float, end_ms: float) -> float:
        """What the trace could carry in [start_ms, end_ms), in bit/s."""
        count = self.opportunities_between(start_ms, end_ms)
        return count * OPPORTUNITY_BYTES * 8 / ((end_ms - start_ms) / 1000)

    def windows_mbps(self, window_ms: int = 100) -> list[float]:
        """Capacity of each whole window of one period (at least one window)."""
        count = max(1, self.period_ms // window_ms)
        width = min(window_ms, self.period_ms)
        return [self.capacity_bps_between(i * width, (i + 1) * width) / 1e6
                for i in range(count)]

    def capacity(self, window_ms: int = 100) -> CapacityStats:
        windows = sorted(self.windows_mbps(window_ms))
        return CapacityStats(
            window_ms=min(window_ms, self.period_ms), mean=self.mean_bps / 1e6,
            p10=_quantile(windows, 0.10), p50=_quantile(windows, 0.50),
            p90=_quantile(windows, 0.90), low=windows[0], high=windows[-1])

    def to_json(self) -> dict[str, Any]:
        """Delta-encoded in one string ("0,1,1,0,2"): the published traces' gaps are mostly
        0 and 1 ms, so this is about two bytes an opportunity."""
        deltas = [self.ms[0]] + [b - a for a, b in zip(self.ms, self.ms[1:], strict=False)]
        return {"name": self.name, "deltas_ms": ",".join(map(str, deltas))}

    @classmethod
    def from_json(cls, data: Any, where: str = "trace") -> DeliveryTrace:
        if not isinstance(data, dict) or set(data) != {"name", "deltas_ms"}:
            raise ConfigError(f"{where} must be an object with the keys name, deltas_ms")
        text = data["deltas_ms"]
        if not isinstance(text, str) or len(text) > MAX_TRACE_BYTES:
            raise ConfigError(f"{where}.deltas_ms must be a string of comma-separated "
                              "milliseconds")
        words = text.split(",")
        if len(words) > MAX_TRACE_LINES:
            raise ConfigError(f"{where}.deltas_ms has more than {MAX_TRACE_LINES} entries")
        total = 0
        ms = []
        for i, word in enumerate(words):
            if not (word.isdigit() and word.isascii() and len(word) <= _MAX_DIGITS):
                raise ConfigError(f"{where}.deltas_ms[{i}] must be a non-negative integer, "
                                  f"got {_shown(word)}")
            total += int(word)
            ms.append(total)
        name = data["name"]
        if not isinstance(name, str):
            raise ConfigError(f"{where}.name must be a string")
        try:
            return cls(name, tuple(ms))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc.args[0]}") from None


def _quantile(ordered: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    position = q * (len(ordered) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def resolve(option: str, raw: str) -> Path:
    """The file `raw` names: a path, else the name of a trace bundled with the lab."""
    text = raw.strip()
    if not text:
        raise ConfigError(f"{option} needs a file name")
    path = Path(text).expanduser()
    if path.exists() or os.sep in text:
        return path
    bundled = BUNDLED_DIR / text
    return bundled if bundled.is_file() else path


def bundled() -> list[str]:
    return sorted(p.name for p in BUNDLED_DIR.glob("*") if p.suffix in (".up", ".down"))


def load_trace(option: str, raw: str) -> DeliveryTrace:
    """Read a mahimahi trace file; every problem is one ConfigError naming file and line."""
    path = resolve(option, raw)
    label = f"{option} {path}"
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise ConfigError(f"{label}: not a regular file")
        if size > MAX_TRACE_BYTES:
            raise ConfigError(f"{label}: {size} bytes, larger than the {MAX_TRACE_BYTES >> 20} "
                              "MiB a trace may have", hint="is this a mahimahi trace?")
        with path.open("rb") as f:
            data = f.read(MAX_TRACE_BYTES + 1)
    except FileNotFoundError:
        names = ", ".join(bundled()) or "none"
        raise ConfigError(f"{label}: no such file", hint=f"bundled traces: {names}") from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read it: {exc.strerror or exc}") from None
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{label} line {line}: not text (a byte that is not ASCII)",
                          hint="a mahimahi trace has one integer millisecond per line") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    if not lines:
        raise ConfigError(f"{label}: is empty", hint="a mahimahi trace has one integer "
                          "millisecond per line, e.g. a file holding 1 is 12 Mbit/s")
    if len(lines) > MAX_TRACE_LINES:
        raise ConfigError(f"{label}: more than {MAX_TRACE_LINES} lines")
    ms: list[int] = []
    previous = 0
    for number, text_line in enumerate(lines, start=1):
        word = text_line.strip()
        if not word:
            raise ConfigError(f"{label} line {number}: is empty (mm-link refuses empty lines)")
        if not word.isdigit() or not word.isascii():
            what = "negative" if word.startswith("-") and word[1:].isdigit() else "not an integer"
            raise ConfigError(f"{label} line {number}: {_shown(word)} is {what}",
                              hint="each line is a whole number of milliseconds since the start")
        if len(word) > _MAX_DIGITS or int(word) > MAX_TRACE_MS:
            raise ConfigError(f"{label} line {number}: {_shown(word)} ms is beyond one day "
                              f"({MAX_TRACE_MS} ms)")
        value = int(word)
        if value < previous:
            raise ConfigError(f"{label} line {number}: {value} ms is before line "
                              f"{number - 1}'s {previous} ms (timestamps never decrease)")
        ms.append(value)
        previous = value
    if previous == 0:
        raise ConfigError(f"{label}: lasts 0 ms (its last timestamp, {previous}, is its period "
                          "and must be > 0)", hint="e.g. a file holding 1 is 12 Mbit/s")
    return DeliveryTrace(path.name, tuple(ms))


def _shown(word: str) -> str:
    return repr(word if len(word) <= 20 else word[:17] + "...")


class TraceSchedule:
    """The model's cursor over a trace that started at `start_ns` (the link's birth).

    Opportunity k (0, 1, 2 ... for ever) is at start + (k // n) * period + ms[k % n].
    `send(size, now)` spends opportunities in FIFO order and says when the packet's last
    byte leaves; `first_at_or_after` finds where an idle queue's next packet starts.
    """

    __slots__ = ("_k", "_left", "_n", "_ns", "_period_ns", "_start_ns")

    def __init__(self, trace: DeliveryTrace, start_ns: int) -> None:
        self._ns = [t * _MS for t in trace.ms]
        self._n = len(self._ns)
        self._period_ns = trace.period_ms * _MS
        self._start_ns = start_ns
        self._k = -1  # the opportunity the last packet finished on (-1: none yet)
        self._left = 0  # its unspent bytes

    def time_ns(self, k: int) -> int:
        cycle, i = divmod(k, self._n)
        return self._start_ns + cycle * self._period_ns + self._ns[i]

    def first_at_or_after(self, t_ns: int) -> int:
        rel = t_ns - self._start_ns
        if rel <= 0:
            return 0
        cycle, rest = divmod(rel, self._period_ns)
        if rest == 0:
            return cycle * self._n - 1  # the previous cycle's last is exactly now
        i = bisect_left(self._ns, rest)
        return cycle * self._n + i  # i == n is the next cycle's first: the same k

    def plan(self, size: int, now_ns: int) -> tuple[int, int, int, int]:
        """Where a packet arriving now would go: (start k, finish k, bytes left on the
        finishing opportunity, start time). Changes nothing: `commit` does."""
        k, left = self._k, self._left
        # The last packet's opportunity can still take bytes only if it is not past:
        # bytes of an opportunity nobody was queued for are lost (mm-link's rule).
        if not (left > 0 and k >= 0 and self.time_ns(k) >= now_ns):
            k = max(k + 1, self.first_at_or_after(now_ns))
            left = OPPORTUNITY_BYTES
        start = k
        remaining = size
        while remaining > left:
            remaining -= left
            k += 1
            left = OPPORTUNITY_BYTES
        return start, k, left - remaining, self.time_ns(start)

    def commit(self, finish_k: int, left: int) -> int:
        self._k, self._left = finish_k, left
        return self.time_ns(finish_k)
