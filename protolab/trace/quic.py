"""QUIC packets of one connection: headers parsed and protection removed with aioquic's
own code (`pull_quic_header`, `CryptoPair` — header protection and AEAD, RFC 9001 §5),
keys from the Initial salt (Initial) and from the key log (Handshake, 0-RTT, 1-RTT), and
frames walked by hand (aioquic parses frames inside its connection object only; its
`pull_ack_frame` is used for ACK).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aioquic.buffer import Buffer, BufferReadError  # type: ignore[attr-defined]
from aioquic.quic.crypto import CryptoError, CryptoPair  # type: ignore[attr-defined]
from aioquic.quic.packet import QuicPacketType, pull_ack_frame, pull_quic_header
from aioquic.tls import CipherSuite

from protolab.trace.codepoints import h3_error_name, quic_error_name

PACKET_NAMES = {
    QuicPacketType.INITIAL: "Initial", QuicPacketType.HANDSHAKE: "Handshake",
    QuicPacketType.ZERO_RTT: "0-RTT", QuicPacketType.ONE_RTT: "1-RTT",
    QuicPacketType.RETRY: "Retry", QuicPacketType.VERSION_NEGOTIATION: "VersionNegotiation",
}
# Packet number spaces (RFC 9000 §12.3): 0-RTT and 1-RTT share the application space.
SPACES = {"Initial": "initial", "Handshake": "handshake", "0-RTT": "app", "1-RTT": "app"}
SECRETS = {  # (packet name, from client) -> key log label
    ("Handshake", True): "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    ("Handshake", False): "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    ("0-RTT", True): "CLIENT_EARLY_TRAFFIC_SECRET",
    ("1-RTT", True): "CLIENT_TRAFFIC_SECRET_0",
    ("1-RTT", False): "SERVER_TRAFFIC_SECRET_0",
}
SUITES = (CipherSuite.AES_128_GCM_SHA256, CipherSuite.AES_256_GCM_SHA384,
          CipherSuite.CHACHA20_POLY1305_SHA256)
FRAME_NAMES = {
    0x00: "PADDING", 0x01: "PING", 0x02: "ACK", 0x03: "ACK", 0x04: "RESET_STREAM",
    0x05: "STOP_SENDING", 0x06: "CRYPTO", 0x07: "NEW_TOKEN", 0x10: "MAX_DATA",
    0x11: "MAX_STREAM_DATA", 0x12: "MAX_STREAMS", 0x13: "MAX_STREAMS", 0x14: "DATA_BLOCKED",
    0x15: "STREAM_DATA_BLOCKED", 0x16: "STREAMS_BLOCKED", 0x17: "STREAMS_BLOCKED",
    0x18: "NEW_CONNECTION_ID", 0x19: "RETIRE_CONNECTION_ID", 0x1A: "PATH_CHALLENGE",
    0x1B: "PATH_RESPONSE", 0x1C: "CONNECTION_CLOSE", 0x1D: "CONNECTION_CLOSE",
    0x1E: "HANDSHAKE_DONE", 0x30: "DATAGRAM", 0x31: "DATAGRAM",
}


@dataclass(frozen=True)
class QuicFrame:
    name: str
    fields: dict[str, Any] = field(default_factory=dict)
    data: bytes = b""  # CRYPTO and STREAM payload


@dataclass
class QuicPacket:
    """One (possibly coalesced) QUIC packet, decrypted when the keys were at hand."""

    name: str  # Initial, Handshake, 0-RTT, 1-RTT, Retry, ...
    size: int
    dcid: bytes
    scid: bytes
    packet_number: int | None = None
    frames: list[QuicFrame] | None = None  # None: could not be decrypted
    error: str | None = None


class QuicKeys:
    """Receive-side packet protection for both directions of one connection."""

    def __init__(self, original_dcid: bytes, version: int) -> None:
        self.version = version
        # Candidates per (packet name, from client); more than one while the cipher suite
        # is unknown (0-RTT leaves before the ServerHello names it): the AEAD tag decides.
        self.pairs: dict[tuple[str, bool], list[CryptoPair]] = {}
        for from_client in (True, False):
            pair = CryptoPair()
            # The receiver of client packets is the server, and vice versa.
            pair.setup_initial(original_dcid, is_client=not from_client, version=version)
            self.pairs[("Initial", from_client)] = [pair]
        self.largest: dict[tuple[str, bool], int] = {}

    def install(self, name: str, from_client: bool, secret: bytes, suite: int | None) -> None:
        if suite is not None and suite not in SUITES:
            return  # not a QUIC (TLS 1.3) suite, as a hostile ServerHello may claim: no keys
        pairs = []
        for candidate in SUITES if suite is None else (CipherSuite(suite),):
            pair = CryptoPair()
            pair.recv.setup(cipher_suite=candidate, secret=secret, version=self.version)
            pairs.append(pair)
        self.pairs[(name, from_client)] = pairs

    def has(self, name: str, from_client: bool) -> bool:
        return (name, from_client) in self.pairs

    def decrypt(self, name: str, from_client: bool, packet: bytes,
                pn_offset: int) -> tuple[int, bytes] | None:
        pairs = self.pairs.get((name, from_client), [])
        space = (SPACES.get(name, name), from_client)
        expected = self.largest.get(space, -1) + 1
        for pair in pairs:
            try:
                _, payload, pn = pair.decrypt_packet(packet, pn_offset, expected)
            except (CryptoError, ValueError):
                continue
            self.pairs[(name, from_client)] = [pair]
            self.largest[space] = max(pn, self.largest.get(space, -1))
            return pn, payload
        return None


def split_datagram(datagram: bytes, short_dcid_len: int) -> list[tuple[Any, bytes, int]]:
    """(header, packet bytes, packet-number offset) of each coalesced packet (RFC 9000 §12.2).

    Raises ValueError / BufferReadError on damage; the caller keeps what came before."""
    out = []
    pos = 0
    while pos < len(datagram):
        if pos and not datagram[pos] & 0x40:
            break  # fixed bit clear after a packet: padding that follows the packets
        buf = Buffer(data=datagram[pos:])
        header = pull_quic_header(buf, host_cid_length=short_dcid_len)
        end = header.packet_length
        out.append((header, datagram[pos:pos + end], buf.tell()))
        if header.packet_type == QuicPacketType.ONE_RTT or end <= 0:
            break
        pos += end
    return out


def packet_name(header: Any) -> str:
    return PACKET_NAMES.get(header.packet_type, str(header.packet_type))


def parse_frames(payload: bytes) -> list[QuicFrame]:
    """The frames of a decrypted payload; a damaged tail becomes an `error` pseudo-frame."""
    buf = Buffer(data=payload)
    frames: list[QuicFrame] = []
    try:
        while not buf.eof():
            start = buf.tell()
            ftype = buf.pull_uint_var()
            if ftype == 0x00:
                while not buf.eof() and payload[buf.tell()] == 0:
                    buf.seek(buf.tell() + 1)
                frames.append(QuicFrame("PADDING", {"bytes": buf.tell() - start}))
                continue
            frames.append(_frame(buf, ftype))
    except (BufferReadError, ValueError) as exc:
        frames.append(QuicFrame("error", {"error": f"undecodable frame: {exc}"}))
    return frames


def _frame(buf: Buffer, ftype: int) -> QuicFrame:
    v = buf.pull_uint_var
    if 0x08 <= ftype <= 0x0F:  # STREAM with OFF/LEN/FIN bits
        stream = v()
        offset = v() if ftype & 0x04 else 0
        length = v() if ftype & 0x02 else buf.capacity - buf.tell()
        data = buf.pull_bytes(length)
        return QuicFrame("STREAM", {"stream": stream, "offset": offset, "length": length,
                                    "fin": bool(ftype & 0x01)}, data)
    name = FRAME_NAMES.get(ftype)
    if name is None:
        raise ValueError(f"unknown frame type 0x{ftype:x}")
    fields: dict[str, Any] = {}
    data = b""
    if ftype in (0x02, 0x03):
        ranges, delay = pull_ack_frame(buf)
        fields = {"acked": [[r.start, r.stop - 1] for r in ranges], "delay": delay}
        if ftype == 0x03:
            fields["ecn"] = [v(), v(), v()]
    elif ftype == 0x06:
        fields["offset"] = v()
        fields["length"] = v()
        data = buf.pull_bytes(fields["length"])
    elif ftype == 0x07:
        fields["token_bytes"] = len(buf.pull_bytes(v()))
    elif ftype == 0x04:
        fields = {"stream": v(), "error": h3_error_name(v()), "final_size": v()}
    elif ftype == 0x05:
        fields = {"stream": v(), "error": h3_error_name(v())}
    elif ftype in (0x11, 0x15):
        fields = {"stream": v(), "value": v()}
    elif ftype in (0x10, 0x12, 0x13, 0x14, 0x16, 0x17, 0x19):
        fields = {"value": v()}
    elif ftype == 0x18:
        fields = {"sequence": v(), "retire_prior_to": v()}
        fields["cid"] = buf.pull_bytes(buf.pull_uint8()).hex()
        buf.pull_bytes(16)  # stateless reset token
    elif ftype in (0x1A, 0x1B):
        buf.pull_bytes(8)
    elif ftype == 0x1C:
        fields = {"error": quic_error_name(v()), "frame_type": v()}
        fields["reason"] = buf.pull_bytes(v()).decode("utf-8", "replace")
    elif ftype == 0x1D:  # an application's code: HTTP/3's, as h3 is what the lab speaks
        fields = {"error": h3_error_name(v())}
        fields["reason"] = buf.pull_bytes(v()).decode("utf-8", "replace")
    elif ftype == 0x30:
        buf.pull_bytes(buf.capacity - buf.tell())
    elif ftype == 0x31:
        buf.pull_bytes(v())
    return QuicFrame(name, fields, data)
