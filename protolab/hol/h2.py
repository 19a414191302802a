"""HTTP/2 over TLS over TCP: the server's TCP sequence ranges -> TLS records -> HTTP/2 DATA
frames -> streams, with the tracer's decoders (`tcpstream`, `tls`).

The unit that reaches the application is the DATA frame, and it can be read only once
every TLS record it spans crossed the link whole (tag included) and every earlier byte
did (TCP delivers in order). So a frame's link time is when the last byte of its last
record first crossed, and a frame is held when some earlier byte crossed later still:
the dropped transmissions of that byte held it, and whose streams' records they carried
decides own vs another stream's loss (RFC 9293 §3.10.7.4: data beyond a hole waits).
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass

from protolab.hol.intervals import FirstArrivals
from protolab.hol.model import Drop
from protolab.hol.transfer import RawPiece, Transfer, held
from protolab.trace.keylog import KeyLog
from protolab.trace.packets import TCP_SYN, Segment
from protolab.trace.tcpstream import TcpConnection, tcp_connections
from protolab.trace.tls import APPDATA, TlsRecord, decode_tls, looks_like_tls

H2_DATA = 0x0
H2_PADDED = 0x08


@dataclass(frozen=True)
class DataFrame:
    """One HTTP/2 DATA frame's body bytes and the TLS records (indices) it spans."""

    stream_id: int
    offset: int  # in the stream's body
    length: int
    first_record: int
    last_record: int
    start: int  # the frame (header included) in the records' plaintext, concatenated
    end: int


@dataclass(frozen=True)
class DroppedPacket:
    """A dropped packet as the analysis needs it: its segment and the link's words."""

    segment: Segment
    at_ns: int  # monotonic
    direction: str
    reason: str
    packet: int


def data_frames(records: list[TlsRecord]) -> list[DataFrame]:
    """The DATA frames of the decrypted records, in order. HTTP/2 hands a DATA frame to the
    application whole (the h2 stack emits it once parsed), so a frame is the unit that
    reaches it; the pad length byte and padding are not body (RFC 9113 §6.1)."""
    plain = b"".join(r.app_data or b"" for r in records)
    starts = [0]
    for r in records:
        starts.append(starts[-1] + len(r.app_data or b""))
    out: list[DataFrame] = []
    body: dict[int, int] = {}
    pos = 0
    while pos + 9 <= len(plain):
        length = int.from_bytes(plain[pos:pos + 3], "big")
        ftype, flags = plain[pos + 3], plain[pos + 4]
        stream = struct.unpack_from("!I", plain, pos + 5)[0] & 0x7FFFFFFF
        end = pos + 9 + length
        if end > len(plain):
            break
        if ftype == H2_DATA and stream:
            size = length
            if flags & H2_PADDED and length:
                size -= 1 + plain[pos + 9]
            offset = body.get(stream, 0)
            body[stream] = offset + size
            out.append(DataFrame(stream, offset, size, bisect.bisect_right(starts, pos) - 1,
                                 bisect.bisect_right(starts, end - 1) - 1, pos, end))
        pos = end
    return out


def _server_base(conn: TcpConnection) -> int | None:
    for seg in conn.segments:
        if seg.flags & TCP_SYN and not conn.from_client(seg):
            return (seg.seq + 1) % (1 << 32)
    return None


def _offset(seg: Segment, base: int) -> int | None:
    offset = (seg.seq - base) % (1 << 32)
    return None if offset >= 1 << 31 else offset


def analyse_tcp(delivered: list[Segment], dropped: list[DroppedPacket], keylog: KeyLog,
                offset_ns: int) -> Transfer:
    """The HTTP/2 connection that carried the most server bytes."""
    out = Transfer("tcp")
    conns = [c for c in tcp_connections(delivered) if looks_like_tls(c.up)]
    if not conns:
        out.problems.append("no TLS connection over TCP in the capture")
        return out
    conn = max(conns, key=lambda c: len(c.down.data))
    base = _server_base(conn)
    if base is None:
        out.problems.append("the server's SYN-ACK is not in the capture")
        return out
    session = decode_tls(conn, keylog)
    out.problems += session.problems
    records = [r for r in session.records if not r.from_client and r.inner_type == APPDATA
               and r.app_data is not None]
    if not records:
        out.problems.append("no decrypted server application data (key log missing?)")
        return out
    arrivals = FirstArrivals()
    for seg in conn.segments:
        if conn.from_client(seg) or not seg.payload:
            continue
        offset = _offset(seg, base)
        if offset is not None:
            arrivals.add(offset, offset + len(seg.payload), seg.ts_ns - offset_ns, seg.index)
    arrivals.freeze()
    frames = data_frames(records)
    record_streams: list[set[int]] = [set() for _ in records]
    for frame in frames:
        for i in range(frame.first_record, frame.last_record + 1):
            record_streams[i].add(frame.stream_id)
    record_starts = [r.offset for r in records]
    plain_starts = [0]
    for r in records:
        plain_starts.append(plain_starts[-1] + len(r.app_data or b""))
    frame_starts = [f.start for f in frames]

    def streams_in(start: int, end: int) -> tuple[int, ...]:
        """Streams whose DATA frames (header and payload) the TCP bytes [start, end)
        carried; a drop of only a record's header or tag blocks the record's streams."""
        i = max(bisect.bisect_right(record_starts, start) - 1, 0)
        found: set[int] = set()
        framing: set[int] = set()
        while i < len(records) and records[i].offset < end:
            record = records[i]
            a = max(start, record.offset + 5) - record.offset - 5 + plain_starts[i]
            b = min(end, record.offset + record.size) - record.offset - 5 + plain_starts[i]
            b = min(b, plain_starts[i + 1])
            if record.offset + record.size > start:
                framing |= record_streams[i]
            j = max(bisect.bisect_right(frame_starts, a) - 1, 0)
            while a < b and j < len(frames) and frames[j].start < b:
                if frames[j].end > a:
                    found.add(frames[j].stream_id)
                j += 1
            i += 1
        return tuple(sorted(found or framing))

    ends = {(conn.client, conn.server), (conn.server, conn.client)}
    down_ranges: list[tuple[int, int, int]] = []  # (start, end, drop id) server->client
    for d in dropped:
        seg = d.segment
        if seg.transport != "tcp" or ((seg.src, seg.sport), (seg.dst, seg.dport)) not in ends:
            continue
        drop_id = len(out.drops)
        streams: tuple[int, ...] = ()
        refilled = None
        if (seg.src, seg.sport) == conn.server and seg.payload:
            offset = _offset(seg, base)
            if offset is not None:
                end = offset + len(seg.payload)
                streams = streams_in(offset, end)
                refilled = arrivals.latest_in(offset, end)
                down_ranges.append((offset, end, drop_id))
        out.drops.append(Drop(drop_id, d.at_ns, d.direction, d.reason, d.packet, seg.ip_len,
                              streams, refilled))
    for frame in frames:
        first, last = records[frame.first_record], records[frame.last_record]
        link = arrivals.latest_in(first.offset, last.offset + last.size)
        if link is None:
            out.problems.append(f"a DATA frame of stream {frame.stream_id} never fully "
                                "crossed the link")
            continue
        readable, (h0, h1) = held(arrivals, first.offset, link)
        drops = tuple(i for s, e, i in down_ranges if s < h1 and e > h0)
        out.pieces.append(RawPiece(frame.stream_id, frame.offset, frame.length, link,
                                   readable, drops))
    return out
