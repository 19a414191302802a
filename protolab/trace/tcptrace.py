"""One TCP connection -> its handshake steps (TCP, TLS, first HTTP messages) and round trips."""

from __future__ import annotations

from typing import Any

from protolab.trace.app import AppDecoder
from protolab.trace.codepoints import alert_name
from protolab.trace.keylog import KeyLog
from protolab.trace.packets import TCP_ACK, TCP_SYN, Segment
from protolab.trace.steps import C2S, S2C, Clock, HandshakeStep, Trace
from protolab.trace.tcpstream import TcpConnection, handshake_name
from protolab.trace.tls import (
    ALERT,
    APPDATA,
    CCS,
    HANDSHAKE,
    TlsSession,
    decode_tls,
    looks_like_tls,
)

TCP_NOTES = {
    "SYN": "client opens the connection (its initial sequence number)",
    "SYN-ACK": "server accepts; one round trip before the client may send",
    "ACK": "TCP handshake done: the client may send data",
    "FIN": "a side is done sending",
    "RST": "connection reset",
}



class _Builder:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.steps: list[HandshakeStep] = []
        self.request: HandshakeStep | None = None
        self.response: HandshakeStep | None = None
        self.first_c2s_data: HandshakeStep | None = None
        self.first_s2c_data: HandshakeStep | None = None
        self.client_encrypted = False  # TLS 1.3 without keys: client's Finished went by

    def add(self, seg: Segment, from_client: bool, layer: str, name: str, size: int,
            note: str = "", fields: dict[str, Any] | None = None) -> HandshakeStep:
        sent, received = self.clock.sent_received(seg.ts_ns, from_client)
        step = HandshakeStep(sent, received, C2S if from_client else S2C, layer, name,
                             seg.index + 1, seg.ip_len, size, note, fields or {})
        self.steps.append(step)
        return step

    def app(self, step: HandshakeStep, is_message: bool) -> bool:
        """Note application data; True when `step` is the request or first response."""
        if step.from_client:
            self.first_c2s_data = self.first_c2s_data or step
            if is_message and self.request is None:
                self.request = step
                return True
        else:
            self.first_s2c_data = self.first_s2c_data or step
            if is_message and self.response is None:
                self.response = step
                return True
        return False


def trace_tcp(conn: TcpConnection, keylog: KeyLog, clock: Clock) -> Trace:
    trace = Trace(kind=None, transport="tcp", client=f"{conn.client[0]}:{conn.client[1]}",
                  server=f"{conn.server[0]}:{conn.server[1]}", first_ts_ns=clock.first_ts_ns)
    b = _Builder(clock)
    tls = looks_like_tls(conn.up)
    session = decode_tls(conn, keylog) if tls else None
    events: list[tuple[int, int, Any]] = []  # (frame, order, item) merged in capture order
    saw_synack, acked = False, False
    for seg in conn.segments:
        name = handshake_name(seg)
        from_client = conn.from_client(seg)
        if name == "SYN-ACK":
            saw_synack = True
        elif (name is None and from_client and saw_synack and not acked
              and seg.flags & TCP_ACK and not seg.flags & TCP_SYN):
            name, acked = "ACK", True
        if seg in conn.retransmissions:
            events.append((seg.index, 0, ("retx", seg)))
        elif name is not None:
            events.append((seg.index, 0, ("tcp", seg, name)))
    if session is not None:
        for i, record in enumerate(session.records):
            events.append((record.segment.index, 1 + i, ("tls", record)))
    else:
        for seg in conn.segments:
            if seg.payload and seg not in conn.retransmissions:
                events.append((seg.index, 1, ("clear", seg)))
    events.sort(key=lambda e: (e[0], e[1]))
    alpn = session.alpn if session else None
    apps = {True: AppDecoder(alpn), False: AppDecoder(alpn)}
    for _, _, item in events:
        if item[0] == "tcp":
            seg, name = item[1], item[2]
            b.add(seg, conn.from_client(seg), "tcp", name, len(seg.payload), TCP_NOTES[name],
                  {"flags": seg.flag_names(), "window": seg.window})
        elif item[0] == "retx":
            seg = item[1]
            what = handshake_name(seg) or "data"
            b.add(seg, conn.from_client(seg), "tcp", f"{what} (retransmitted)", len(seg.payload),
                  "data sent again: the link lost (or delayed) the first copy",
                  {"seq": seg.seq, "flags": seg.flag_names()})
        elif item[0] == "clear":
            seg = item[1]
            _app_steps(b, apps[conn.from_client(seg)], seg, conn.from_client(seg), seg.payload)
        else:
            _record_steps(b, apps, item[1], session is not None and session.version == "TLS 1.3")
    trace.steps = b.steps
    trace.request_step = b.request or b.first_c2s_data
    trace.response_step = b.response or b.first_s2c_data
    if session is not None:
        trace.negotiated = _negotiated(session)
        trace.problems += session.problems
    else:
        trace.negotiated = {"version": "cleartext"}
    trace.problems += [f"{len(conn.retransmissions)} retransmitted segment(s)"] \
        if conn.retransmissions else []
    return trace


def _negotiated(s: TlsSession) -> dict[str, Any]:
    return {"version": s.version, "cipher": s.cipher, "group": s.group, "alpn": s.alpn,
            "sni": s.sni, "resumed": s.resumed, "decrypted": s.keys_found}


def _record_steps(b: _Builder, apps: dict[bool, AppDecoder], record: Any, tls13: bool) -> None:
    seg, fc = record.segment, record.from_client
    rec = {"record_bytes": record.size, "encrypted": record.encrypted}
    if record.messages:
        for msg in record.messages:
            b.add(seg, fc, "tls", msg.name, msg.size, msg.purpose, {**msg.fields, **rec})
    elif record.content_type == CCS:
        b.add(seg, fc, "tls", "ChangeCipherSpec", record.size,
              "compatibility record (TLS 1.3 ignores it, RFC 8446 D.4)" if tls13 else
              "from here on this side encrypts", rec)
    elif record.alert is not None or (record.content_type == ALERT and not record.encrypted):
        level, desc = record.alert or (0, 0)
        b.add(seg, fc, "tls", f"Alert({alert_name(desc)})", record.size,
              "closing the TLS session" if desc == 0 else "TLS error", {**rec, "level": level})
    elif record.app_data is not None:
        _app_steps(b, apps[fc], seg, fc, record.app_data, rec)
    elif record.kind == "Encrypted":
        # Without keys: TLS 1.2 protects only Finished as a handshake record; in TLS 1.3
        # each side's handshake ends with its Finished, and what follows is application
        # data (or the server's tickets, which cannot be told apart).
        if record.content_type != APPDATA:
            handshake = record.content_type == HANDSHAKE
        elif tls13:
            handshake = not b.client_encrypted
            b.client_encrypted = b.client_encrypted or fc
        else:
            handshake = False
        name = {HANDSHAKE: "Finished (encrypted)", ALERT: "Alert (encrypted)"}.get(
            record.content_type,
            "Encrypted handshake" if handshake else "Encrypted application data")
        step = b.add(seg, fc, "tls", name, record.size, "cannot be read without the key log",
                     rec)
        if not handshake:
            b.app(step, False)


def _app_steps(b: _Builder, app: AppDecoder, seg: Segment, fc: bool, data: bytes,
               rec: dict[str, Any] | None = None) -> None:
    messages = app.feed(data)
    if not messages:
        step = b.add(seg, fc, "app", "Application data", len(data),
                     "application bytes", dict(rec or {}))
        b.app(step, False)
        return
    for name, fields, is_message in messages:
        first = is_message and (b.request if fc else b.response) is None
        note = ("the request" if fc else "the first response bytes") if first else ""
        step = b.add(seg, fc, "http", name, int(fields.get("length", len(data))), note,
                     {**fields, **(rec or {})})
        b.app(step, is_message)
