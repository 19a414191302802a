"""Every IANA-registered code point the lab meets is shown by its name, never as hex:
TLS groups, signature schemes, cipher suites and extensions, QUIC transport parameters,
HTTP/2 and HTTP/3 SETTINGS."""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Any

import pytest

from protolab.trace import codepoints as cp
from protolab.trace.app import AppDecoder
from protolab.trace.decode import LinkTiming, decode_capture
from protolab.trace.keylog import parse_keylog
from protolab.trace.steps import HandshakeStep

DATA = Path(__file__).parent / "data"
LINK = LinkTiming(100_000_000, 50_000_000, 50_000_000)
HEX = re.compile(r"^0x[0-9a-f]+$")
# Fields whose values (or, for dicts, keys) are code points.
CODE_POINT_FIELDS = ("cipher", "cipher_suites", "groups", "group", "key_shares", "versions",
                     "version", "signature_algorithms", "signature_algorithm", "extensions",
                     "other_extensions", "psk_modes", "quic_transport_parameters", "settings",
                     "error")


def _steps(name: str) -> list[HandshakeStep]:
    stem = name.rsplit(".", 1)[0]
    decoded = decode_capture((DATA / name).read_bytes(),
                             parse_keylog((DATA / f"{stem}.keylog").read_text()), LINK)
    return [s for t in decoded.traces for s in t.steps]


def _field(steps: list[HandshakeStep], step: str, key: str) -> Any:
    return next(s.fields[key] for s in steps if s.name == step and key in s.fields)


def _hex_code_points(steps: list[HandshakeStep]) -> list[tuple[str, str, str]]:
    found = []
    for step in steps:
        for key in CODE_POINT_FIELDS:
            value = step.fields.get(key)
            items = (list(value) if isinstance(value, dict)
                     else value if isinstance(value, list) else [value])
            found += [(step.name, key, str(v)) for v in items
                      if isinstance(v, str) and HEX.match(v.split(" ")[0])]
    return found


@pytest.mark.parametrize("name", ["h2-tls13.pcap", "h1-tls12.pcap", "h3-0rtt.pcap"])
def test_no_code_point_in_the_lab_captures_is_left_as_hex(name: str) -> None:
    assert _hex_code_points(_steps(name)) == []


def test_tls13_client_hello_names_ffdhe_groups_suites_and_signature_schemes() -> None:
    steps = _steps("h2-tls13.pcap")
    groups = _field(steps, "ClientHello", "groups")
    assert ["ffdhe2048", "ffdhe3072", "ffdhe4096", "ffdhe6144", "ffdhe8192"] == [
        g for g in groups if g.startswith("ffdhe")]
    suites = _field(steps, "ClientHello", "cipher_suites")
    for name in ("ECDHE-ECDSA-AES256-SHA384", "ECDHE-RSA-AES128-SHA256",
                 "DHE-RSA-AES256-GCM-SHA384", "DHE-RSA-AES128-SHA256"):
        assert name in suites
    schemes = _field(steps, "ClientHello", "signature_algorithms")
    assert {"ecdsa_secp256r1_sha256", "rsa_pss_rsae_sha256", "ed25519", "ecdsa_sha224",
            "dsa_sha256"} <= set(schemes)
    assert _field(steps, "CertificateVerify", "signature_algorithm") == "ecdsa_secp256r1_sha256"


def test_tls12_names_its_extensions_and_the_server_key_exchange_signature() -> None:
    steps = _steps("h1-tls12.pcap")
    assert _field(steps, "ServerKeyExchange", "signature_algorithm") == "ecdsa_secp256r1_sha256"
    assert {"renegotiation_info", "ec_point_formats", "extended_master_secret"} <= set(
        _field(steps, "ServerHello", "other_extensions"))


def test_quic_transport_parameters_and_h3_settings_are_named() -> None:
    steps = _steps("h3-0rtt.pcap")
    client = _field(steps, "ClientHello", "quic_transport_parameters")
    assert client["initial_max_data"] == 16_777_216
    assert client["initial_max_streams_bidi"] == 128
    assert client["version_information"] == {"chosen": "QUIC v1",
                                              "available": ["QUIC v1", "QUIC v2"]}
    server = _field(steps, "EncryptedExtensions", "quic_transport_parameters")
    assert {"original_destination_connection_id", "stateless_reset_token"} <= set(server)
    assert _field(steps, "EncryptedExtensions", "extensions") == ["quic_transport_parameters"]
    settings = _field(steps, "HTTP/3 SETTINGS", "settings")
    assert settings["QPACK_MAX_TABLE_CAPACITY"] == 4096
    assert "GREASE (0x21)" in settings  # aioquic's reserved setting, RFC 9114 §7.2.4.1


def test_h2_settings_including_grpcs_and_error_codes_are_named() -> None:
    def frame(ftype: int, payload: bytes, stream: int = 0) -> bytes:
        return len(payload).to_bytes(3, "big") + bytes([ftype, 0]) + \
            stream.to_bytes(4, "big") + payload

    settings = b"".join(k.to_bytes(2, "big") + v.to_bytes(4, "big")
                        for k, v in ((0x9, 1), (0xFE03, 1), (0x8, 1), (0x10, 0)))
    decoder = AppDecoder("h2")
    messages = decoder.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, settings)
                            + frame(3, (8).to_bytes(4, "big"), 1)
                            + frame(7, (1).to_bytes(4, "big") + (0xB).to_bytes(4, "big")))
    fields = {name: f for name, f, _ in messages}
    assert fields["HTTP/2 SETTINGS"]["settings"] == {
        "NO_RFC7540_PRIORITIES": 1, "GRPC_ALLOW_TRUE_BINARY_METADATA": 1,
        "ENABLE_CONNECT_PROTOCOL": 1, "TLS_RENEG_PERMITTED": 0}
    assert fields["HTTP/2 RST_STREAM"]["error"] == "CANCEL"
    assert fields["HTTP/2 GOAWAY"]["error"] == "ENHANCE_YOUR_CALM"


def test_every_suite_of_this_openssls_default_list_has_a_name() -> None:
    offered = ssl.create_default_context().get_ciphers()
    assert offered
    unnamed = [c["name"] for c in offered if c["id"] & 0xFFFF not in cp.CIPHERS]
    assert unnamed == []
    for c in offered:
        if c["protocol"] != "TLSv1.3":
            assert cp.cipher_name(c["id"] & 0xFFFF) == c["name"]


@pytest.mark.parametrize(
    ("value", "name"),
    [(0x0100, "ffdhe2048"), (0x0101, "ffdhe3072"), (0x0102, "ffdhe4096"),
     (0x0103, "ffdhe6144"), (0x0104, "ffdhe8192"), (0x11EC, "X25519MLKEM768"),
     (0x1D, "x25519"), (0x3A3A, "GREASE"), (0x0A1A, "0x0a1a")],
)
def test_group_names(value: int, name: str) -> None:
    assert cp.group_name(value) == name


def test_other_registries() -> None:
    assert cp.cipher_name(0xC02B) == "ECDHE-ECDSA-AES128-GCM-SHA256"
    assert cp.cipher_name(0xC023) == "ECDHE-ECDSA-AES128-SHA256"
    assert cp.cipher_name(0x1301) == "TLS_AES_128_GCM_SHA256"
    assert cp.cipher_name(0x5600) == "TLS_FALLBACK_SCSV"
    assert cp.signature_name(0x0804) == "rsa_pss_rsae_sha256"
    assert cp.signature_name(0x0807) == "ed25519"
    assert cp.extension_name(57) == "quic_transport_parameters"
    assert cp.alert_name(120) == "no_application_protocol"
    assert cp.transport_parameter_name(0x20) == "max_datagram_frame_size"
    assert cp.transport_parameter_name(31 * 5 + 27) == "GREASE (0xb6)"
    assert cp.quic_error_name(0x0A) == "PROTOCOL_VIOLATION"
    assert cp.quic_error_name(0x128) == "CRYPTO_ERROR(handshake_failure)"
    assert cp.quic_version_name(0xFF00001D) == "QUIC draft-29"
    assert cp.quic_version_name(0x6B3343CF) == "QUIC v2"
    assert cp.h3_setting_name(0x33) == "H3_DATAGRAM"
    assert cp.h3_frame_name(0x1F * 3 + 0x21) == "GREASE (0x7e)"
    assert cp.h3_stream_name(0x02) == "QPACK encoder"
    assert cp.h3_error_name(0x10C) == "H3_REQUEST_CANCELLED"
    assert cp.h2_setting_name(0xABCD) == "0xabcd"
