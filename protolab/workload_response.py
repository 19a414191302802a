"""What a server answers: a `WorkloadResponse`, its headers and its body.

A body is literal bytes or a length of the deterministic /bytes/N content (`content_at`,
checked by `verify_content`), sent in chunks; a push endpoint's answer is a `PushPlan`
the server resolves over time, and a streamed one a `ChunkStream`. protolab.workload
decides which response a request gets (`plan`); protolab.workload_range cuts the part a
Range header selects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from protolab.events import StreamSpec

# Content of /bytes/N: byte i is i mod 251. A prime period means a chunk delivered at
# the wrong offset (a reordering or duplication bug) fails verification.
_PERIOD = 251
_PATTERN = bytes(i % _PERIOD for i in range(_PERIOD * 264))
_MAX_SLICE = len(_PATTERN) - _PERIOD  # longest slice available at any phase
CHUNK = 16_384


@dataclass(frozen=True)
class Body:
    """A response body: either literal bytes or `length` bytes of the pattern."""

    length: int
    literal: bytes | None = None
    offset: int = 0  # pattern bodies: where in /bytes/N content they start (a 206's part)

    def chunks(self, size: int = CHUNK) -> Iterator[bytes | memoryview]:
        if self.literal is not None:
            view = memoryview(self.literal)
            for start in range(0, len(view), size):
                yield view[start : start + size]
            return
        offset = 0
        while offset < self.length:
            n = min(size, self.length - offset, _MAX_SLICE)
            yield content_at(self.offset + offset, n)
            offset += n


PushKind = Literal["poll", "long-poll", "sse"]


@dataclass(frozen=True)
class PushPlan:
    """A push endpoint's answer depends on time and on the stream's origin: the server's
    `respond()` turns this into the response (protolab.push)."""

    kind: PushKind
    spec: StreamSpec
    after: int  # the client has every event up to this sequence number
    wait_ms: int = 30_000  # long-poll: answer with no events after this long


# A streamed body: each call gives a fresh async iterator of chunks, produced over time.
ChunkStream = Callable[[], AsyncIterator[bytes]]


@dataclass(frozen=True)
class WorkloadResponse:
    status: int
    content_type: str
    body: Body
    delay_ms: int = 0
    extra_headers: tuple[tuple[str, str], ...] = field(default=())
    push: PushPlan | None = None  # resolved by the server's respond(), never sent as is
    stream: ChunkStream | None = None  # body sent as produced (no length known: SSE)
    # A fixed body a Range can select from (GET of /bytes, /page, /records, /health):
    # says `accept-ranges: bytes`, and select_range() may answer a part of it.
    accept_ranges: bool = False

    def headers(self, alt_svc: str | None = None) -> list[tuple[str, str]]:
        """The same header set on every protocol (names lower-case, as HTTP/2 and 3 require)."""
        out = [("content-type", self.content_type)]
        if self.stream is None:  # a streamed body is delimited by chunked coding or END_STREAM
            out.append(("content-length", str(self.body.length)))
        out += [
            ("cache-control", "no-store"),
            ("server", "protolab"),
        ]
        if self.accept_ranges:
            out.append(("accept-ranges", "bytes"))
        out.extend(self.extra_headers)
        if alt_svc:
            out.append(("alt-svc", alt_svc))
        return out


def content_at(offset: int, length: int) -> memoryview:
    """`length` bytes of /bytes/N content starting at `offset` (length <= _MAX_SLICE)."""
    start = offset % _PERIOD
    return memoryview(_PATTERN)[start : start + length]


def verify_content(offset: int, data: bytes | memoryview) -> bool:
    """True when `data` is exactly the /bytes/N content at `offset`."""
    view = memoryview(data)
    pos = 0
    while pos < len(view):
        n = min(len(view) - pos, _MAX_SLICE)
        if view[pos : pos + n] != content_at(offset + pos, n):
            return False
        pos += n
    return True

