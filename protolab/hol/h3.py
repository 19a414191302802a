"""HTTP/3 over QUIC: the server's 1-RTT packets (delivered and dropped) decrypted with the
tracer's QUIC code (`trace.quic`: aioquic's header protection and AEAD, keys from the
key log) -> STREAM frames (stream, offset, length) -> HTTP/3 DATA frames -> body bytes.

Each packet decrypts on its own, so a byte range's link time is its packet's. QUIC
delivers each stream in order but streams independently (RFC 9000 §2.2): a range is held
when an earlier byte *of its own stream* crossed later; the dropped packets that carried
that byte held it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from aioquic.buffer import Buffer, BufferReadError  # type: ignore[attr-defined]

from protolab.hol.h2 import DroppedPacket
from protolab.hol.intervals import FirstArrivals, Span
from protolab.hol.model import Drop
from protolab.hol.transfer import RawPiece, Transfer, held
from protolab.trace.keylog import KeyLog
from protolab.trace.packets import Segment
from protolab.trace.quic import QuicKeys, packet_name, parse_frames, split_datagram

H3_DATA = 0x00
SERVER_SECRET = "SERVER_TRAFFIC_SECRET_0"


@dataclass
class _Stream:
    arrivals: FirstArrivals = field(default_factory=FirstArrivals)
    data: dict[int, bytes] = field(default_factory=dict)  # offset -> bytes (delivered)
    new: list[Span] = field(default_factory=list)
    dropped: list[tuple[int, int, int]] = field(default_factory=list)  # (start, end, drop)


def _is_request_stream(sid: int) -> bool:
    return sid % 4 == 0  # client-initiated bidirectional (RFC 9114 §6.1)


def body_map(data: dict[int, bytes]) -> list[tuple[int, int, int]]:
    """(stream start, stream end, body offset) of each HTTP/3 DATA payload (RFC 9114 §7.2.1),
    from the stream's bytes in order."""
    stream = bytearray()
    for offset in sorted(data):
        chunk = data[offset]
        if offset + len(chunk) > len(stream) >= offset:
            stream += chunk[len(stream) - offset:]
    out = []
    buf = Buffer(data=bytes(stream))
    body = 0
    try:
        while not buf.eof():
            ftype = buf.pull_uint_var()
            length = buf.pull_uint_var()
            start = buf.tell()
            if ftype == H3_DATA:
                out.append((start, start + length, body))
                body += length
            buf.seek(min(start + length, len(stream)))
    except BufferReadError:
        pass
    return out


def _server_key(segments: list[Segment], keylog: KeyLog, original_dcid: bytes,
                cid_len: int, server: tuple[str, int]) -> QuicKeys | None:
    """Keys for the server's 1-RTT packets: the key log's secret whose AEAD tag opens the
    first one (a capture's key log may hold earlier connections)."""
    first = None
    for seg in segments:
        if (seg.src, seg.sport) == server and seg.payload and not seg.payload[0] & 0x80:
            first = seg
            break
    if first is None:
        return None
    for secrets in keylog.secrets.values():
        secret = secrets.get(SERVER_SECRET)
        if secret is None:
            continue
        keys = QuicKeys(original_dcid, 1)
        keys.install("1-RTT", False, secret, None)
        try:
            header, raw, pn_offset = split_datagram(first.payload, cid_len)[-1]
        except (ValueError, BufferReadError):
            return None
        if keys.decrypt("1-RTT", False, raw, pn_offset) is not None:
            fresh = QuicKeys(original_dcid, 1)
            fresh.install("1-RTT", False, secret, None)
            return fresh
    return None


def _stream_frames(keys: QuicKeys, payload: bytes, cid_len: int,
                   ) -> list[tuple[int, int, bytes]]:
    out: list[tuple[int, int, bytes]] = []
    try:
        packets = split_datagram(payload, cid_len)
    except (ValueError, BufferReadError):
        return out
    for header, raw, pn_offset in packets:
        if packet_name(header) != "1-RTT":
            continue
        opened = keys.decrypt("1-RTT", False, raw, pn_offset)
        if opened is None:
            continue
        for frame in parse_frames(opened[1]):
            if frame.name == "STREAM" and _is_request_stream(int(frame.fields["stream"])):
                out.append((int(frame.fields["stream"]), int(frame.fields["offset"]),
                            frame.data))
    return out


def analyse_quic(delivered: list[Segment], dropped: list[DroppedPacket], keylog: KeyLog,
                 offset_ns: int) -> Transfer:
    """The QUIC connection of the capture's first client Initial."""
    out = Transfer("quic")
    start = next((s for s in delivered if s.transport == "udp" and s.payload
                  and s.payload[0] & 0xF0 == 0xC0), None)
    if start is None:
        out.problems.append("no QUIC client Initial in the capture")
        return out
    try:
        initial = split_datagram(start.payload, 0)[0][0]
    except (ValueError, BufferReadError):
        out.problems.append("the client's Initial does not parse")
        return out
    client, server = (start.src, start.sport), (start.dst, start.dport)
    cid_len = len(initial.source_cid)
    keys = _server_key(delivered, keylog, initial.destination_cid, cid_len, server)
    if keys is None:
        out.problems.append("no QUIC secret in the key log opens the server's 1-RTT packets")
        return out
    # Dropped packets reach the link earlier than delivered ones cross it: decrypt in
    # link order so packet numbers decode against their neighbours.
    ours = [(d.at_ns, 1, i, d.segment) for i, d in enumerate(dropped)
            if (d.segment.src, d.segment.sport) in (client, server)
            and (d.segment.dst, d.segment.dport) in (client, server)]
    ours += [(s.ts_ns - offset_ns, 0, i, s) for i, s in enumerate(delivered)
             if s.transport == "udp" and (s.src, s.sport) == server
             and (s.dst, s.dport) == client]
    ours.sort(key=lambda item: (item[0], item[1]))
    streams: dict[int, _Stream] = {}
    drop_frames: dict[int, list[tuple[int, int, int]]] = {}
    for at_ns, is_drop, i, seg in ours:
        from_server = (seg.src, seg.sport) == server
        frames = _stream_frames(keys, seg.payload, cid_len) if from_server else []
        if is_drop:
            d = dropped[i]
            drop_id = len(out.drops)
            drop_frames[drop_id] = [(sid, off, off + len(c)) for sid, off, c in frames]
            out.drops.append(Drop(drop_id, d.at_ns, d.direction, d.reason, d.packet,
                                  seg.ip_len, tuple(sorted({f[0] for f in frames}))))
            continue
        for sid, off, chunk in frames:
            stream = streams.setdefault(sid, _Stream())
            stream.data.setdefault(off, chunk)
            stream.new += stream.arrivals.add(off, off + len(chunk), at_ns, seg.index)
    for drop_id, ranges in drop_frames.items():
        refilled: int | None = None
        for sid, s0, e0 in ranges:
            streams.setdefault(sid, _Stream()).dropped.append((s0, e0, drop_id))
        for sid, s0, e0 in ranges:
            streams[sid].arrivals.freeze()
            t = streams[sid].arrivals.latest_in(s0, e0)
            if t is not None:
                refilled = t if refilled is None else max(refilled, t)
        drop = out.drops[drop_id]
        out.drops[drop_id] = Drop(drop.id, drop.at_ns, drop.direction, drop.reason,
                                  drop.packet, drop.size, drop.streams, refilled)
    for sid, stream in sorted(streams.items()):
        stream.arrivals.freeze()
        mapping = body_map(stream.data)
        starts = [m[0] for m in mapping]
        for span in stream.new:
            readable, (h0, h1) = held(stream.arrivals, span.start, span.at_ns)
            drops = tuple(i for s, e, i in stream.dropped if s < h1 and e > h0)
            i = max(bisect.bisect_right(starts, span.start) - 1, 0)
            while i < len(mapping) and mapping[i][0] < span.end:
                m0, m1, body = mapping[i]
                a, b = max(span.start, m0), min(span.end, m1)
                if a < b:
                    out.pieces.append(RawPiece(sid, body + a - m0, b - a, span.at_ns,
                                               readable, drops))
                i += 1
    return out
