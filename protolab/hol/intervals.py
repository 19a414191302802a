"""First arrivals of an ordered byte space (a TCP direction, a QUIC stream): which bytes
first crossed the link when, and the latest arrival before any offset, which is when an
in-order transport could hand that offset over."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Span:
    """Bytes [start, end) that first crossed the link at `at_ns` in transmission `tx`."""

    start: int
    end: int
    at_ns: int
    tx: int


@dataclass
class FirstArrivals:
    """Feed transmissions in delivery order; query after `freeze()`."""

    spans: list[Span] = field(default_factory=list)  # disjoint, sorted by start
    _starts: list[int] = field(default_factory=list)
    _best: list[int] = field(default_factory=list)  # index of the latest span in spans[:i+1]

    def add(self, start: int, end: int, at_ns: int, tx: int) -> list[Span]:
        """Bytes [start, end) crossed at `at_ns`; returns the parts that were new."""
        new: list[Span] = []
        i = bisect.bisect_right(self._starts, start) - 1
        i = max(i, 0)
        pos = start
        while pos < end:
            while i < len(self.spans) and self.spans[i].end <= pos:
                i += 1
            if i < len(self.spans) and self.spans[i].start <= pos:
                pos = self.spans[i].end
                continue
            stop = end if i >= len(self.spans) else min(end, self.spans[i].start)
            span = Span(pos, stop, at_ns, tx)
            self.spans.insert(i, span)
            self._starts.insert(i, pos)
            new.append(span)
            i += 1
            pos = stop
        return new

    def freeze(self) -> None:
        self._best = []
        for i, span in enumerate(self.spans):
            if not self._best or span.at_ns > self.spans[self._best[-1]].at_ns:
                self._best.append(i)
            else:
                self._best.append(self._best[-1])

    def latest_before(self, offset: int) -> Span | None:
        """The span that crossed last among those holding bytes before `offset`."""
        i = bisect.bisect_left(self._starts, offset)
        return self.spans[self._best[i - 1]] if i > 0 else None

    def latest_in(self, start: int, end: int) -> int | None:
        """When the last byte of [start, end) first crossed (None: some never did)."""
        i = max(bisect.bisect_right(self._starts, start) - 1, 0)
        latest, pos = None, start
        while i < len(self.spans) and self.spans[i].start < end:
            span = self.spans[i]
            if span.end > pos:
                if span.start > pos:
                    return None
                latest = span.at_ns if latest is None else max(latest, span.at_ns)
                pos = span.end
            i += 1
        return latest if pos >= end else None
