"""A hostile peer: QUIC Initial packets are protected with keys anyone can derive from the
client's first destination connection ID (RFC 9001 §5.2), so a peer can send any
handshake bytes with a valid AEAD tag. These tests rewrite the plaintext of a real
capture's Initial packets and protect them again, so the damage reaches the TLS and QUIC
decoders instead of dying at the tag check as random byte flips do."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

from aioquic.quic.crypto import CryptoPair
from aioquic.quic.packet import QuicPacketType
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protolab.trace.decode import Decoded, LinkTiming, decode_capture
from protolab.trace.errors import DECODER_BUG
from protolab.trace.keylog import parse_keylog
from protolab.trace.quic import parse_frames, split_datagram
from protolab.trace.tlskeys import tls12_keys

DATA = Path(__file__).parent / "data"
CAPTURE = (DATA / "h3-0rtt.pcap").read_bytes()
KEYLOG = parse_keylog((DATA / "h3-0rtt.keylog").read_text())
LINK = LinkTiming(100_000_000, 50_000_000, 50_000_000)
# ServerHello: type(1) length(3) legacy_version(2) random(32) session_id_len(1, 0 in QUIC)
SUITE_AT = 39

Edit = Callable[[bool, bytes], bytes]  # (from client, CRYPTO data) -> same-length data


def _udp_payloads(raw: bytes) -> list[tuple[int, bytes, frozenset[int], int]]:
    """(file offset, UDP payload, port pair, source port) of each datagram of a
    little-endian pcap of raw IPv4 packets (what protolab's link writes)."""
    out, pos = [], 24
    while pos + 16 <= len(raw):
        incl = struct.unpack_from("<I", raw, pos + 8)[0]
        packet = raw[pos + 16:pos + 16 + incl]
        start, pos = pos + 16, pos + 16 + incl
        if packet[0] >> 4 != 4 or packet[9] != 17:
            continue
        ihl = (packet[0] & 0x0F) * 4
        sport, dport = struct.unpack_from("!HH", packet, ihl)
        out.append((start + ihl + 8, packet[ihl + 8:], frozenset({sport, dport}), sport))
    return out


def rewrite_initials(raw: bytes, edit: Edit) -> bytes:
    """The capture with `edit` applied to the CRYPTO data of every Initial packet, each
    packet protected again with the Initial keys (same length, so nothing else moves)."""
    out = bytearray(raw)
    clients: dict[frozenset[int], tuple[int, bytes]] = {}
    for at, payload, ports, sport in _udp_payloads(raw):
        if not payload or not payload[0] & 0x80:
            continue
        offset = 0
        for header, packet, pn_offset in split_datagram(payload, 0):
            start, offset = at + offset, offset + len(packet)
            if header.packet_type != QuicPacketType.INITIAL:
                continue
            client_port, dcid = clients.setdefault(ports, (sport, header.destination_cid))
            from_client = sport == client_port
            opener, sealer = CryptoPair(), CryptoPair()
            opener.setup_initial(dcid, is_client=not from_client, version=1)
            sealer.setup_initial(dcid, is_client=from_client, version=1)
            plain_header, plain, number = opener.decrypt_packet(packet, pn_offset, 0)
            changed = bytearray(plain)
            for frame in parse_frames(plain):
                if frame.name == "CRYPTO" and frame.data:
                    i = plain.index(frame.data)
                    new = edit(from_client, frame.data)
                    assert len(new) == len(frame.data)
                    changed[i:i + len(new)] = new
            sealed = sealer.encrypt_packet(plain_header, bytes(changed), number)
            assert len(sealed) == len(packet)
            out[start:start + len(sealed)] = sealed
    return bytes(out)


def _bugs(decoded: Decoded) -> list[str]:
    notes = decoded.problems + [p for t in decoded.traces for p in t.problems]
    return [p for p in notes if DECODER_BUG in p]


def test_rewriting_without_changes_gives_the_capture_back() -> None:
    assert rewrite_initials(CAPTURE, lambda from_client, data: data) == CAPTURE


def _server_suite(suite: int) -> Edit:
    def edit(from_client: bool, data: bytes) -> bytes:
        if from_client or data[0] != 2:  # the server's ServerHello only
            return data
        return data[:SUITE_AT] + suite.to_bytes(2, "big") + data[SUITE_AT + 2:]
    return edit


def test_a_server_that_picks_a_tls12_suite_over_quic_is_explained() -> None:
    # 0xc02b is ECDHE-ECDSA-AES128-GCM-SHA256: no QUIC packet protection exists for it.
    decoded = decode_capture(rewrite_initials(CAPTURE, _server_suite(0xC02B)), KEYLOG, LINK)
    assert not _bugs(decoded)
    main = decoded.main
    assert main is not None
    assert main.negotiated["cipher"] == "ECDHE-ECDSA-AES128-GCM-SHA256"
    assert main.negotiated["decrypted"] is False
    assert any("which QUIC does not allow" in p for p in main.problems)
    assert "Handshake (encrypted)" in [s.name for s in main.steps]


def test_a_server_that_picks_a_signalling_value_is_explained() -> None:
    # 0x00ff is aioquic's CipherSuite.EMPTY_RENEGOTIATION_INFO_SCSV: an enum member with
    # no keys behind it.
    decoded = decode_capture(rewrite_initials(CAPTURE, _server_suite(0x00FF)), KEYLOG, LINK)
    assert not _bugs(decoded)
    assert decoded.main is not None
    assert decoded.main.negotiated["cipher"] == "EMPTY_RENEGOTIATION_SCSV"


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.booleans(), st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)),
                               min_size=1, max_size=6))
def test_fuzz_handshakes_a_hostile_peer_protects_properly(
    client_side: bool, changes: list[tuple[int, int]],
) -> None:
    def edit(from_client: bool, data: bytes) -> bytes:
        if from_client != client_side:
            return data
        out = bytearray(data)
        for pos, value in changes:
            out[pos % len(out)] = value
        return bytes(out)

    decoded = decode_capture(rewrite_initials(CAPTURE, edit), KEYLOG, LINK)
    assert not _bugs(decoded)


def test_tls12_chacha_record_shorter_than_its_tag_is_not_decrypted() -> None:
    client, _ = tls12_keys(0xCCA8, bytes(48), bytes(32), bytes(32)) or (None, None)
    assert client is not None
    assert client.open12(23, 0x0303, b"short") is None
