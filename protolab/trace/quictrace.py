"""QUIC connections out of UDP datagrams -> steps: each packet (with its frames), the TLS
messages its CRYPTO frames carry, and the first HTTP/3 frames of its streams."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pylsqpack
from aioquic.buffer import Buffer, BufferReadError  # type: ignore[attr-defined]

from protolab.trace.codepoints import H3_FRAMES, h3_frame_name, h3_setting_name, h3_stream_name
from protolab.trace.errors import bug_note, unexpected
from protolab.trace.keylog import KeyLog
from protolab.trace.packets import Segment
from protolab.trace.quic import (
    SUITES,
    QuicFrame,
    QuicKeys,
    QuicPacket,
    packet_name,
    parse_frames,
    split_datagram,
)
from protolab.trace.steps import C2S, S2C, Clock, HandshakeStep, Trace
from protolab.trace.tlsmessages import decode_message, split_messages

CRYPTO_LEVEL = {"Initial": "Initial", "Handshake": "Handshake", "1-RTT": "1-RTT",
                "0-RTT": "1-RTT"}
PACKET_NOTES = {
    ("Initial", True): "client's first flight, protected with keys anyone can derive "
                       "from the connection ID (RFC 9001 §5.2)",
    ("Initial", False): "server's Initial: ServerHello, keys for the Handshake space",
    ("Handshake", False): "server's encrypted handshake",
    ("Handshake", True): "client's Finished: handshake done on the client",
    ("0-RTT", True): "early data: sent with the resumed session's keys before any reply",
    ("1-RTT", True): "application data, 1-RTT keys",
    ("1-RTT", False): "application data, 1-RTT keys",
}


@dataclass
class _Stream:
    data: dict[int, bytes] = field(default_factory=dict)
    delivered: bytes = b""
    parsed: int = 0
    uni_type: int | None = None


@dataclass
class _Conn:
    client: tuple[str, int]
    server: tuple[str, int]
    keys: QuicKeys
    client_cid: bytes
    trace: Trace
    clock: Clock
    server_cid: bytes | None = None
    crypto: dict[tuple[str, bool], dict[int, bytes]] = field(default_factory=dict)
    crypto_done: dict[tuple[str, bool], int] = field(default_factory=dict)
    crypto_pending: dict[tuple[str, bool], bytes] = field(default_factory=dict)
    streams: dict[tuple[int, bool], _Stream] = field(default_factory=dict)
    # QPACK (RFC 9204): one decoder per sending side, fed that side's encoder stream and
    # sized by the *receiving* side's SETTINGS (table capacity, blocked streams).
    qpack: dict[bool, pylsqpack.Decoder] = field(default_factory=dict)
    h3_settings: dict[bool, dict[str, int]] = field(default_factory=dict)
    client_random: bytes | None = None
    suite: int | None = None
    negotiated: dict[str, Any] = field(default_factory=dict)


def trace_quic_connections(segments: list[Segment], keylog: KeyLog, up_delay_ns: int,
                           down_delay_ns: int, problems: list[str]) -> list[Trace]:
    conns: dict[frozenset[tuple[str, int]], _Conn] = {}
    traces: list[Trace] = []
    for seg in segments:
        if seg.transport != "udp" or not seg.payload:
            continue
        key = frozenset({(seg.src, seg.sport), (seg.dst, seg.dport)})
        conn = conns.get(key)
        try:
            if conn is None:
                conn = _start(seg, keylog, up_delay_ns, down_delay_ns)
                if conn is None:
                    continue
                conns[key] = conn
                traces.append(conn.trace)
            _datagram(conn, seg, keylog)
        except BaseException as exc:
            if not unexpected(exc):
                raise
            note = bug_note(f"frame {seg.index + 1} (QUIC)", exc)
            (conn.trace.problems if conn is not None else problems).append(note)
    for conn in conns.values():
        conn.trace.negotiated = {"version": "TLS 1.3", "transport": "QUIC v1",
                                 **conn.negotiated}
    return traces


def _start(seg: Segment, keylog: KeyLog, up: int, down: int) -> _Conn | None:
    """A new connection begins with a client Initial (long header, type 0)."""
    first = seg.payload[0]
    if not first & 0x80 or (first & 0x30) >> 4 != 0:
        return None
    try:
        packets = split_datagram(seg.payload, 0)
    except (ValueError, BufferReadError):
        return None
    header = packets[0][0]
    if header.version != 1:
        return None
    trace = Trace(kind=None, transport="quic", client=f"{seg.src}:{seg.sport}",
                  server=f"{seg.dst}:{seg.dport}", first_ts_ns=seg.ts_ns)
    conn = _Conn((seg.src, seg.sport), (seg.dst, seg.dport),
                 QuicKeys(header.destination_cid, header.version), header.source_cid, trace,
                 Clock(seg.ts_ns, up, down))
    conn.negotiated["original_dcid"] = header.destination_cid.hex()
    return conn


def _datagram(conn: _Conn, seg: Segment, keylog: KeyLog) -> None:
    trace = conn.trace
    from_client = (seg.src, seg.sport) == conn.client
    clock = conn.clock
    short_len = len(conn.server_cid or b"") if from_client else len(conn.client_cid)
    try:
        packets = split_datagram(seg.payload, short_len)
    except (ValueError, BufferReadError) as exc:
        trace.problems.append(f"frame {seg.index + 1}: undecodable QUIC datagram ({exc})")
        return
    sent, received = clock.sent_received(seg.ts_ns, from_client)
    trailing = len(seg.payload) - sum(len(raw) for _, raw, _ in packets)
    for header, raw, pn_offset in packets:
        name = packet_name(header)
        if not from_client and header.source_cid and conn.server_cid is None:
            conn.server_cid = header.source_cid
        packet = QuicPacket(name, len(raw), header.destination_cid, header.source_cid)
        opened = conn.keys.decrypt(name, from_client, raw, pn_offset)
        if opened is not None:
            packet.packet_number, payload = opened
            packet.frames = parse_frames(payload)
        step = _packet_step(packet, from_client, seg, sent, received, trailing)
        trailing = 0
        trace.steps.append(step)
        for frame in packet.frames or []:
            if frame.name == "CRYPTO":
                _crypto(conn, name, from_client, frame, seg, sent, received, keylog)
            elif frame.name == "STREAM":
                _stream(conn, frame, from_client, step, seg, sent, received)


def _summary(frames: list[QuicFrame]) -> list[str]:
    out = []
    for f in frames:
        if f.name == "PADDING":
            out.append(f"PADDING({f.fields['bytes']} B)")
        elif f.name in ("STREAM", "CRYPTO"):
            sid = f"{f.fields['stream']}, " if f.name == "STREAM" else ""
            out.append(f"{f.name}({sid}{f.fields['length']} B)")
        else:
            out.append(f.name)
    return out


def _packet_step(packet: QuicPacket, from_client: bool, seg: Segment, sent: int,
                 received: int, trailing: int) -> HandshakeStep:
    fields: dict[str, Any] = {"packet_number": packet.packet_number, "dcid": packet.dcid.hex(),
                              "scid": packet.scid.hex(), "datagram_bytes": len(seg.payload)}
    note = PACKET_NOTES.get((packet.name, from_client), "")
    if packet.frames is None:
        fields["encrypted"] = True
        note = "cannot be decrypted without the key log (or its keys came later)"
    else:
        fields["frames"] = _summary(packet.frames)
        names = {f.name for f in packet.frames}
        padding = trailing + sum(
            f.fields.get("bytes", 0) for f in packet.frames if f.name == "PADDING")
        if trailing:
            fields["frames"].append(f"datagram padding({trailing} B)")
        if padding and len(seg.payload) >= 1200 and from_client and packet.name == "Initial":
            note += (f"; padded by {padding} B to {len(seg.payload)} B: the server may send "
                     "only 3x what it received until the client's address is validated "
                     "(anti-amplification, RFC 9000 §8.1, §14.1)")
        elif padding and len(seg.payload) >= 1200:
            note += (f"; padded by {padding} B: datagrams with ack-eliciting Initial packets "
                     "are at least 1200 B (RFC 9000 §14.1)")
        if names <= {"ACK", "PADDING"}:
            note = "acknowledgement only"
        if "HANDSHAKE_DONE" in names:
            note = "HANDSHAKE_DONE: the server confirms the handshake (RFC 9001 §4.1.2)"
        if "CONNECTION_CLOSE" in names:
            note = "connection closed"
    name = packet.name if packet.frames is not None else f"{packet.name} (encrypted)"
    return HandshakeStep(sent, received, C2S if from_client else S2C, "quic", name,
                         seg.index + 1, seg.ip_len, packet.size, note, fields)


def _crypto(conn: _Conn, pname: str, from_client: bool, frame: QuicFrame, seg: Segment,
            sent: int, received: int, keylog: KeyLog) -> None:
    level = (CRYPTO_LEVEL.get(pname, pname), from_client)
    chunks = conn.crypto.setdefault(level, {})
    chunks[int(frame.fields["offset"])] = frame.data
    done = conn.crypto_done.get(level, 0)
    buf = conn.crypto_pending.get(level, b"")
    while True:
        ready = [o for o in chunks if o <= done]
        if not ready:
            break
        for o in ready:
            data = chunks.pop(o)
            if o + len(data) > done:
                buf += data[done - o:]
                done = o + len(data)
    messages, conn.crypto_pending[level] = split_messages(buf)
    conn.crypto_done[level] = done
    for raw in messages:
        msg = decode_message(raw)
        conn.trace.steps.append(HandshakeStep(
            sent, received, C2S if from_client else S2C, "tls", msg.name, seg.index + 1,
            seg.ip_len, msg.size, msg.purpose, {**msg.fields, "in": f"{pname} CRYPTO"}))
        _learn(conn, msg.name, msg.fields, keylog)


def _learn(conn: _Conn, name: str, f: dict[str, Any], keylog: KeyLog) -> None:
    n = conn.negotiated
    if name == "ClientHello" and "random" in f:
        conn.client_random = bytes.fromhex(f["random"])
        n["sni"] = f.get("sni")
        n["offered_early_data"] = bool(f.get("early_data"))
        early = keylog.get(conn.client_random, "CLIENT_EARLY_TRAFFIC_SECRET")
        if early is not None:
            conn.keys.install("0-RTT", True, early, None)
    elif name == "ServerHello" and "cipher_suite" in f:
        conn.suite = f["cipher_suite"]
        n.update(cipher=f["cipher"], group=f.get("group"), resumed=bool(f.get("psk_accepted")))
        if conn.suite not in SUITES:
            n["decrypted"] = False
            conn.trace.problems.append(
                f"the server picked {f['cipher']}, which QUIC does not allow (only TLS 1.3 "
                "suites, RFC 9001 §5.3): Handshake and 1-RTT packets stay encrypted")
            return
        if conn.client_random is None:
            return
        found = False
        for (pname, from_client), label in (
            (("Handshake", True), "CLIENT_HANDSHAKE_TRAFFIC_SECRET"),
            (("Handshake", False), "SERVER_HANDSHAKE_TRAFFIC_SECRET"),
            (("1-RTT", True), "CLIENT_TRAFFIC_SECRET_0"),
            (("1-RTT", False), "SERVER_TRAFFIC_SECRET_0"),
        ):
            secret = keylog.get(conn.client_random, label)
            if secret is not None:
                conn.keys.install(pname, from_client, secret, conn.suite)
                found = True
        n["decrypted"] = found
        if not found:
            conn.trace.problems.append("no QUIC secrets for this connection in the key log: "
                                       "Handshake and 1-RTT packets stay encrypted")
    elif name == "EncryptedExtensions":
        n["alpn"] = f.get("alpn")
        n["early_data"] = bool(f.get("early_data_accepted"))


def _stream(conn: _Conn, frame: QuicFrame, from_client: bool, pstep: HandshakeStep,
            seg: Segment, sent: int, received: int) -> None:
    trace = conn.trace
    sid = int(frame.fields["stream"])
    bidi = sid % 4 == 0  # client-initiated bidirectional: a request (RFC 9114 §6.1)
    stream = conn.streams.setdefault((sid, from_client), _Stream())
    steps = []
    if int(frame.fields["offset"]) == len(stream.delivered):
        # (out of order or repeated data is skipped: the first frames are what is shown)
        stream.delivered += frame.data
        for name, fields in _h3_frames(conn, stream, sid, from_client):
            steps.append(HandshakeStep(
                sent, received, C2S if from_client else S2C, "http", name, seg.index + 1,
                seg.ip_len, int(fields.get("length", 0)), _headline(fields),
                {**fields, "stream": sid}))
    if bidi and (trace.request_step if from_client else trace.response_step) is None:
        first = steps[0] if steps else pstep
        if steps:
            role = "the request" if from_client else "the first response bytes"
            steps[0] = first = replace(
                first, note=f"{role}: {first.note}" if first.note else role)
        if from_client:
            trace.request_step = first
        else:
            trace.response_step = first
    trace.steps += steps


def _headline(fields: dict[str, Any]) -> str:
    """'GET /bytes/100' or 'status 200' from a decoded HEADERS frame; '' otherwise."""
    headers = fields.get("headers")
    if not isinstance(headers, list):
        return ""
    pseudo = dict(h.split(": ", 1) for h in headers if h.startswith(":") and ": " in h)
    if ":status" in pseudo:
        return f"status {pseudo[':status']}"
    return f"{pseudo.get(':method', '?')} {pseudo.get(':path', '?')}"


def _qpack(conn: _Conn, sender_is_client: bool) -> pylsqpack.Decoder:
    """The decoder for field sections `sender_is_client`'s side encodes (pylsqpack: the
    QPACK implementation aioquic itself uses)."""
    decoder = conn.qpack.get(sender_is_client)
    if decoder is None:
        peer = conn.h3_settings.get(not sender_is_client, {})
        decoder = pylsqpack.Decoder(peer.get("QPACK_MAX_TABLE_CAPACITY", 0),
                                    peer.get("QPACK_BLOCKED_STREAMS", 0))
        conn.qpack[sender_is_client] = decoder
    return decoder


def _field_section(conn: _Conn, sid: int, from_client: bool, payload: bytes) -> list[str] | str:
    try:
        _, headers = _qpack(conn, from_client).feed_header(sid, payload)
    except pylsqpack.StreamBlocked:
        return "(waits for QPACK encoder instructions not captured)"
    except (pylsqpack.DecompressionFailed, ValueError) as exc:
        return f"(QPACK decoding failed: {exc})"
    return [f"{n.decode('latin-1')}: {v.decode('latin-1')}" for n, v in headers]


def _h3_frames(
    conn: _Conn, stream: _Stream, sid: int, from_client: bool
) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    base = stream.parsed
    buf = Buffer(data=stream.delivered[base:])
    try:
        if sid % 4 in (2, 3) and stream.uni_type is None:
            stream.uni_type = buf.pull_uint_var()
            stream.parsed = base + buf.tell()
            kind = h3_stream_name(stream.uni_type)
            out.append((f"HTTP/3 {kind} stream", {"length": 0}))
        if stream.uni_type == 0x02:  # QPACK encoder: dynamic table inserts for its side
            data = stream.delivered[stream.parsed:]
            stream.parsed += len(data)
            if data:
                try:
                    _qpack(conn, from_client).feed_encoder(data)
                except pylsqpack.EncoderStreamError:
                    out.append(("QPACK encoder stream error", {"length": len(data)}))
            return out
        if stream.uni_type not in (None, 0):
            return out  # the QPACK decoder and push streams: not followed
        while not buf.eof():
            ftype = buf.pull_uint_var()
            length = buf.pull_uint_var()
            payload = buf.pull_bytes(length)
            stream.parsed = base + buf.tell()
            fields: dict[str, Any] = {"length": length}
            if ftype == 0x04:
                settings = Buffer(data=payload)
                values = {}
                while not settings.eof():
                    k, val = settings.pull_uint_var(), settings.pull_uint_var()
                    values[h3_setting_name(k)] = val
                fields["settings"] = values
                conn.h3_settings[from_client] = values
                # Sections the other side encoded before these SETTINGS could only use the
                # static table; from now on its decoder needs this side's capacity.
                conn.qpack.pop(not from_client, None)
            elif ftype == 0x01:
                fields["headers"] = _field_section(conn, sid, from_client, payload)
            name = h3_frame_name(ftype)
            out.append((f"HTTP/3 {name if ftype in H3_FRAMES else f'frame {name}'}", fields))
    except BufferReadError:
        pass  # an incomplete frame: the rest arrives in a later packet
    return out
