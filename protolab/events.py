"""The push event stream shared by WebSocket push, short polling, long polling and SSE.

A stream is defined by (name, count M, size S, interval I): event k (1..M) is *born*
at `origin + (k-1)*I` (all at once when I = 0), where origin is when the server first
heard of the stream. Every transport sends the same JSON text per event:

    {"seq":k,"born_ns":B,"sent_ns":T,"data":"abc..."}   (data: S ASCII bytes)

`born_ns` and `sent_ns` are the server's `now_ns()` (CLOCK_MONOTONIC): on one host a
client subtracts them from its own arrival time for the event's one-way delay, from
birth (what push latency means) and from the moment it left the server.

Which events exist at a given time is pure (`born_by`), so the HTTP endpoints are
stateless but for each stream's origin, kept in an `EventHub` with bounded size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_EVENTS = 100_000  # M
MAX_EVENT_SIZE = 1 << 20  # S
MAX_INTERVAL_MS = 60_000  # I
MAX_WAIT_MS = 60_000  # long-poll hold
_DATA = (b"abcdefghijklmnopqrstuvwxyz0123456789" * 30_000)[:MAX_EVENT_SIZE].decode()


@dataclass(frozen=True)
class StreamSpec:
    """What the stream looks like; the same spec under the same name is the same stream."""

    name: str = "default"
    count: int = 10  # M
    size: int = 64  # S: bytes of data per event
    interval_ms: int = 100  # I; 0 = as fast as possible

    def born_ns(self, origin_ns: int, seq: int) -> int:
        return origin_ns + (seq - 1) * self.interval_ms * 1_000_000

    def born_by(self, origin_ns: int, now: int) -> int:
        """The highest sequence number born at `now` (0 = none yet)."""
        if now < origin_ns:
            return 0
        if self.interval_ms == 0:
            return self.count
        return min(self.count, (now - origin_ns) // (self.interval_ms * 1_000_000) + 1)


def encode_event(seq: int, born_ns: int, sent_ns: int, size: int) -> str:
    return (f'{{"seq":{seq},"born_ns":{born_ns},"sent_ns":{sent_ns},'
            f'"data":"{_DATA[(seq * 7) % 36 : (seq * 7) % 36 + size]}"}}')


@dataclass(frozen=True)
class Event:
    seq: int
    born_ns: int
    sent_ns: int
    size: int  # bytes of data


def decode_event(text: str | bytes) -> Event:
    data: dict[str, Any] = json.loads(text)
    return Event(int(data["seq"]), int(data["born_ns"]), int(data["sent_ns"]), len(data["data"]))


def parse_spec(query: dict[str, list[str]]) -> StreamSpec | str:
    """A stream spec from query parameters, or the reason it is not acceptable."""
    values: dict[str, int] = {}
    for key, default, upper in (("count", 10, MAX_EVENTS), ("size", 64, MAX_EVENT_SIZE),
                                ("interval_ms", 100, MAX_INTERVAL_MS)):
        raw = query.get(key, [str(default)])[0]
        if not raw.isdigit() or len(raw) > 12:
            return f"{key} must be a non-negative integer, got {raw!r}"
        if int(raw) > upper:
            return f"{key}={raw} is over the limit of {upper}"
        values[key] = int(raw)
    name = query.get("stream", ["default"])[0]
    if not 0 < len(name) <= 64 or not name.replace("-", "").replace("_", "").isalnum():
        return "stream must be 1-64 letters, digits, '-' or '_'"
    return StreamSpec(name, values["count"], values["size"], values["interval_ms"])


class EventHub:
    """Origins of the streams a server has heard of (oldest forgotten beyond `capacity`).

    A stream's origin is the first time any request named it, so several clients (or
    a client's successive polls) see one stream, and a new name starts a fresh one.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._origins: dict[StreamSpec, int] = {}
        self._capacity = capacity

    def origin(self, spec: StreamSpec, now: int) -> int:
        found = self._origins.get(spec)
        if found is None:
            if len(self._origins) >= self._capacity:
                del self._origins[next(iter(self._origins))]
            found = self._origins[spec] = now
        return found
