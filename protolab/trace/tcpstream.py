"""TCP connections out of segments: who is the client, the SYN handshake, retransmissions,
and each direction's bytes reassembled in order, remembering which segment completed what.

Hand-written: a few dozen lines of sequence arithmetic; the tracer needs to know *which
packet* completed each byte (that is when a TLS record became readable), which general
reassemblers do not expose.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from protolab.trace.packets import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, Segment

Endpoint = tuple[str, int]


@dataclass
class ByteStream:
    """One direction's payload in order; `ends[i]` bytes were available after `segments[i]`."""

    data: bytearray = field(default_factory=bytearray)
    ends: list[int] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    _base: int | None = None  # sequence number of byte 0
    _pending: dict[int, bytes] = field(default_factory=dict)  # offset -> out-of-order payload
    _highest: int = 0  # end of the furthest data seen
    syn_seen: bool = False

    def start(self, isn_plus_one: int) -> None:
        if self._base is None:
            self._base = isn_plus_one

    def add(self, seg: Segment) -> bool:
        """Take a segment's payload; True for a retransmission: nothing new, or data that
        fills a hole behind later data (its first copy was lost before the capture point;
        without reordering on the link nothing else leaves such a hole)."""
        if not seg.payload:
            return False
        if self._base is None:
            self._base = seg.seq
        offset = (seg.seq - self._base) % (1 << 32)
        if offset >= 1 << 31:  # before the start (wrapped): data from before the capture
            return True
        if offset + len(seg.payload) <= len(self.data):
            return True
        if offset in self._pending and len(self._pending[offset]) >= len(seg.payload):
            return True
        fills_hole = offset < self._highest and offset + len(seg.payload) <= self._highest
        self._highest = max(self._highest, offset + len(seg.payload))
        self._pending[offset] = seg.payload
        grew = False
        while True:
            ready = [o for o in self._pending if o <= len(self.data)]
            if not ready:
                break
            for o in ready:
                chunk = self._pending.pop(o)
                if o + len(chunk) > len(self.data):
                    self.data += chunk[len(self.data) - o:]
                    grew = True
        if grew:
            self.ends.append(len(self.data))
            self.segments.append(seg)
        return fills_hole

    def completed_by(self, offset: int) -> Segment | None:
        """The segment whose arrival made byte `offset` readable in order."""
        i = bisect.bisect_right(self.ends, offset)
        return self.segments[i] if i < len(self.segments) else None


@dataclass
class TcpConnection:
    client: Endpoint
    server: Endpoint
    segments: list[Segment] = field(default_factory=list)
    up: ByteStream = field(default_factory=ByteStream)  # client -> server
    down: ByteStream = field(default_factory=ByteStream)
    retransmissions: list[Segment] = field(default_factory=list)
    saw_syn: bool = False

    def from_client(self, seg: Segment) -> bool:
        return (seg.src, seg.sport) == self.client

    def add(self, seg: Segment) -> None:
        self.segments.append(seg)
        stream = self.up if self.from_client(seg) else self.down
        if seg.flags & TCP_SYN:
            if stream.syn_seen:
                self.retransmissions.append(seg)  # the first SYN (or SYN-ACK) was lost
            self.saw_syn = stream.syn_seen = True
            stream.start((seg.seq + 1) % (1 << 32))
            return
        if stream.add(seg):
            self.retransmissions.append(seg)


def handshake_name(seg: Segment) -> str | None:
    """SYN, SYN-ACK, FIN, RST, or None for other segments."""
    if seg.flags & TCP_SYN:
        return "SYN-ACK" if seg.flags & TCP_ACK else "SYN"
    if seg.flags & TCP_RST:
        return "RST"
    if seg.flags & TCP_FIN:
        return "FIN"
    return None


def tcp_connections(segments: list[Segment]) -> list[TcpConnection]:
    """TCP connections in order of their first segment."""
    conns: dict[frozenset[Endpoint], TcpConnection] = {}
    for seg in segments:
        if seg.transport != "tcp":
            continue
        key = frozenset({(seg.src, seg.sport), (seg.dst, seg.dport)})
        conn = conns.get(key)
        if conn is None or (seg.flags & TCP_SYN and not seg.flags & TCP_ACK and conn.up.data):
            # Without a SYN, guess: the higher (ephemeral) port is the client's.
            client_side = (seg.flags & (TCP_SYN | TCP_ACK)) == TCP_SYN or seg.sport > seg.dport
            src, dst = (seg.src, seg.sport), (seg.dst, seg.dport)
            conn = TcpConnection(client=src if client_side else dst,
                                 server=dst if client_side else src)
            conns[key] = conn
        conn.add(seg)
    return list(conns.values())
