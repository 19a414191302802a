"""TLS over a reassembled TCP connection: records in arrival order, handshake messages,
and decryption with the key log (TLS 1.3 handshake and application traffic, TLS 1.2
AEAD suites), so encrypted handshake messages and the first application bytes are seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protolab.trace.keylog import KeyLog
from protolab.trace.packets import Segment
from protolab.trace.tcpstream import ByteStream, TcpConnection
from protolab.trace.tlskeys import RecordKey, tls12_keys, tls13_key
from protolab.trace.tlsmessages import HandshakeMessage, decode_message, split_messages

CCS, ALERT, HANDSHAKE, APPDATA = 20, 21, 22, 23
RECORD_TYPES = {CCS: "ChangeCipherSpec", ALERT: "Alert", HANDSHAKE: "Handshake",
                APPDATA: "ApplicationData"}


@dataclass
class TlsRecord:
    """One record and what it held once decoded."""

    from_client: bool
    segment: Segment  # the segment whose arrival completed the record
    offset: int  # in its direction's byte stream
    size: int  # on the wire, with the 5-byte header
    content_type: int  # outer type
    inner_type: int | None = None  # decrypted TLS 1.3 type; None when not decrypted
    encrypted: bool = False
    messages: list[HandshakeMessage] = field(default_factory=list)
    app_data: bytes | None = None  # decrypted application data
    alert: tuple[int, int] | None = None  # (level, description) when readable

    @property
    def kind(self) -> str:
        kind = self.inner_type if self.inner_type is not None else self.content_type
        if self.encrypted and self.inner_type is None:
            return "Encrypted"
        return RECORD_TYPES.get(kind, f"Record({kind})")


@dataclass
class TlsSession:
    """What the whole connection negotiated, and which records were read."""

    records: list[TlsRecord] = field(default_factory=list)
    version: str | None = None
    cipher: str | None = None
    cipher_suite: int | None = None
    group: str | None = None
    alpn: str | None = None
    sni: str | None = None
    resumed: bool = False
    client_random: bytes | None = None
    problems: list[str] = field(default_factory=list)
    keys_found: bool = False


def looks_like_tls(stream: ByteStream) -> bool:
    data = stream.data
    return len(data) >= 6 and data[0] == HANDSHAKE and data[1] == 3 and data[5] == 1


def _records(stream: ByteStream, from_client: bool) -> list[TlsRecord]:
    out, pos, data = [], 0, stream.data
    while pos + 5 <= len(data):
        length = int.from_bytes(data[pos + 3:pos + 5], "big")
        if data[pos] not in RECORD_TYPES or data[pos + 1] != 3 or length > (1 << 14) + 256:
            break  # not TLS (any more): stop rather than guess
        if pos + 5 + length > len(data):
            break
        segment = stream.completed_by(pos + 5 + length - 1)
        if segment is None:
            break
        out.append(TlsRecord(from_client, segment, pos, 5 + length, data[pos]))
        pos += 5 + length
    return out


class _Direction:
    def __init__(self) -> None:
        self.key: RecordKey | None = None
        self.encrypting = False  # records from here on are protected
        self.pending = b""  # handshake bytes of an unfinished message
        self.next_secret: str | None = None  # TLS 1.3 secret after this side's Finished


def decode_tls(conn: TcpConnection, keylog: KeyLog) -> TlsSession:
    """Decode the TLS of one connection; never raises on damaged input."""
    session = TlsSession()
    records = _records(conn.up, True) + _records(conn.down, False)
    records.sort(key=lambda r: (r.segment.index, r.offset))
    sides = {True: _Direction(), False: _Direction()}
    tls13 = False
    for record in records:
        stream = conn.up if record.from_client else conn.down
        raw = bytes(stream.data[record.offset:record.offset + record.size])
        header, fragment = raw[:5], raw[5:]
        side = sides[record.from_client]
        session.records.append(record)
        if record.content_type == CCS:
            if not tls13:
                side.encrypting = True
                if session.client_random is not None and side.key is None:
                    _tls12_keys(session, sides, keylog)
            continue
        plain: bytes | None = fragment
        inner = record.content_type
        if side.encrypting or (tls13 and record.content_type == APPDATA):
            record.encrypted = True
            plain = None
            if side.key is not None:
                if tls13:
                    opened = side.key.open13(header, fragment)
                    if opened is not None:
                        body = opened.rstrip(b"\x00")
                        if body:
                            inner, plain = body[-1], body[:-1]
                else:
                    plain = side.key.open12(record.content_type, int.from_bytes(header[1:3],
                                                                                "big"), fragment)
            if plain is not None:
                record.inner_type = inner
        if plain is None:
            continue
        if inner == HANDSHAKE:
            side.pending += plain
            messages, side.pending = split_messages(side.pending)
            for raw_msg in messages:
                msg = decode_message(raw_msg, tls12=not tls13 and session.version is not None)
                record.messages.append(msg)
                tls13 = _learn(session, msg, tls13, record.from_client)
                if msg.name == "ServerHello" and tls13:
                    _tls13_handshake_keys(session, sides, keylog)
                if msg.name == "Finished" and tls13 and side.next_secret is not None:
                    side.key = _tls13(session, keylog, side.next_secret)
                    side.next_secret = None
        elif inner == APPDATA:
            record.app_data = plain
        elif inner == ALERT and len(plain) >= 2:
            record.alert = (plain[0], plain[1])
    session.problems = list(dict.fromkeys(session.problems))
    return session


def _learn(session: TlsSession, msg: HandshakeMessage, tls13: bool, from_client: bool) -> bool:
    f = msg.fields
    if msg.name == "ClientHello" and "random" in f:
        session.client_random = bytes.fromhex(f["random"])
        session.sni = f.get("sni")
    elif msg.name == "ServerHello" and "version" in f:
        session.version = f["version"]
        session.cipher, session.cipher_suite = f["cipher"], f["cipher_suite"]
        session.group = f.get("group")
        session.resumed = bool(f.get("psk_accepted"))
        session.alpn = session.alpn or f.get("alpn")
        return bool(f["version"] == "TLS 1.3")
    elif msg.name == "EncryptedExtensions":
        session.alpn = f.get("alpn") or session.alpn
    elif msg.name == "ServerKeyExchange":
        session.group = f.get("group") or session.group
    return tls13


def _tls13(session: TlsSession, keylog: KeyLog, label: str) -> RecordKey | None:
    if session.client_random is None or session.cipher_suite is None:
        return None
    secret = keylog.get(session.client_random, label)
    if secret is None:
        return None
    session.keys_found = True
    return tls13_key(session.cipher_suite, secret)


def _tls13_handshake_keys(session: TlsSession, sides: dict[bool, _Direction],
                          keylog: KeyLog) -> None:
    for from_client, who in ((True, "CLIENT"), (False, "SERVER")):
        side = sides[from_client]
        side.encrypting = True
        side.key = _tls13(session, keylog, f"{who}_HANDSHAKE_TRAFFIC_SECRET")
        side.next_secret = f"{who}_TRAFFIC_SECRET_0"
    if not session.keys_found:
        session.problems.append(
            "no TLS 1.3 secrets for this connection in the key log: the encrypted "
            "handshake is shown as sizes only")


def _tls12_keys(session: TlsSession, sides: dict[bool, _Direction], keylog: KeyLog) -> None:
    server_random = None
    for record in session.records:
        for msg in record.messages:
            if msg.name == "ServerHello" and "random" in msg.fields:
                server_random = bytes.fromhex(msg.fields["random"])
    if session.client_random is None or server_random is None or session.cipher_suite is None:
        return
    master = keylog.get(session.client_random, "CLIENT_RANDOM")
    if master is None:
        session.problems.append("no CLIENT_RANDOM for this connection in the key log: "
                                "TLS 1.2 Finished and application data stay encrypted")
        return
    keys = tls12_keys(session.cipher_suite, master, session.client_random, server_random)
    if keys is None:
        session.problems.append(f"cannot decrypt TLS 1.2 cipher {session.cipher}")
        return
    session.keys_found = True
    sides[True].key, sides[False].key = keys
