"""What the head-of-line analysis finds: the link's drops, every byte range of every
stream with when it crossed the link and when the application got it, and per stream
the HOL delay split by whose loss caused it.

Times are CLOCK_MONOTONIC nanoseconds (`protolab.timing.now_ns`, the clock of the
client's records); the link's capture is brought onto it with the offset its header
records (protolab/netem/pcap.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Cause = Literal["none", "own", "others", "late", "unattributed"]
CAUSES: tuple[Cause, ...] = ("none", "own", "others", "late", "unattributed")
# none: not held; own / others: held by a drop that carried this stream's data / only other
# streams' data; late: held by data that was not dropped but crossed the link late
# (reordering); unattributed: the application got it late with no hole to blame
# (processing, flow control, a stalled client: `HolResult.stalls`) - measured, not
# explained by the capture.


@dataclass(frozen=True)
class Drop:
    """One packet the link dropped, and whose data it carried."""

    id: int  # its order among the capture's drops, from 0
    at_ns: int  # when it reached the link (monotonic)
    direction: str  # up / down
    reason: str  # loss, burst, queue, droplist (pcap.DROP_REASONS)
    packet: int  # its number among its direction's packets (1-based)
    size: int  # IP packet bytes
    streams: tuple[int, ...] = ()  # streams whose data (or whose TLS records) it carried
    refilled_ns: int | None = None  # when its data finally crossed (retransmitted)


@dataclass(frozen=True)
class Piece:
    """A byte range of one stream's response body and its way to the application."""

    stream_id: int
    offset: int  # in the response body
    length: int
    link_ns: int  # when it had crossed the link (all of its TLS record, for HTTP/2)
    readable_ns: int  # when the transport could hand it over (in-order data complete)
    app_ns: int | None  # when the application had it (from the record's arrivals)
    cause: Cause
    drops: tuple[int, ...] = ()  # the drops that held it (Drop.id)

    @property
    def hol_ns(self) -> int | None:
        """Measured HOL delay: application time - link time."""
        return None if self.app_ns is None else self.app_ns - self.link_ns


@dataclass(frozen=True)
class StreamHol:
    """One stream's HOL delay, split by cause: each is the time during which some of its
    bytes had crossed the link but not yet reached the application (a union of the
    pieces' [link, app] intervals), so overlapping stalls are not counted twice."""

    stream_id: int
    bytes: int
    pieces: int
    own_ns: int  # held by drops that carried this stream's data
    others_ns: int  # held by drops that carried only other streams' data
    late_ns: int
    unattributed_ns: int
    own_max_ns: int  # the longest single piece delay of each class
    others_max_ns: int
    lost_data: bool  # a drop carried this stream's data
    # Some of its bytes crossed the link while another stream's dropped data was
    # missing: another stream's loss could have stalled it (on HTTP/2 it does).
    exposed: bool = False
    # Some of its bytes crossed while its own dropped data was missing: they could wait
    # for it (a drop of the last bytes it had in flight only makes them late).
    exposed_own: bool = False
    drops: tuple[int, ...] = ()  # every drop that held some of its bytes

    @property
    def stalled(self) -> bool:
        return bool(self.own_ns or self.others_ns)


@dataclass(frozen=True)
class ReceiverStall:
    """A span in which the application took nothing from any stream although ranges of
    several streams were readable: the receiving process stood still (a garbage
    collection, the CPU), whatever the protocol did."""

    start_ns: int  # the first of those ranges was readable
    end_ns: int  # the application took data again
    pieces: int  # ranges that waited through it
    streams: tuple[int, ...]  # their streams

    @property
    def ns(self) -> int:
        return self.end_ns - self.start_ns


@dataclass
class HolResult:
    """The analysis of one cell repetition's capture."""

    transport: str  # "tcp" (HTTP/2 over TLS) or "quic"
    drops: list[Drop] = field(default_factory=list)
    pieces: list[Piece] = field(default_factory=list)
    streams: list[StreamHol] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    floor_ns: int = 0  # median delay of pieces nothing held: the receive path's own cost
    stalls: list[ReceiverStall] = field(default_factory=list)  # the client stood still


def others_ms(streams: Sequence[StreamHol]) -> list[float]:
    """HOL from another stream's loss (ms), per stream another stream's loss could have
    stalled: some of its bytes crossed while another stream's dropped data was missing."""
    return [s.others_ns / 1e6 for s in streams if s.exposed]


def own_ms(streams: Sequence[StreamHol]) -> list[float]:
    """HOL from its own loss (ms), per stream whose data a drop carried and that had
    later bytes cross while that data was missing."""
    return [s.own_ns / 1e6 for s in streams if s.lost_data and s.exposed_own]
