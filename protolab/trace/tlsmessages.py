"""TLS handshake messages -> name, key fields and what each achieves.

TLS 1.3 messages and both hellos are parsed with aioquic's own `pull_*` functions (the
parser of the QUIC stack the lab uses); TLS 1.2's ServerKeyExchange, ClientKeyExchange,
its Certificate and NewSessionTicket layouts have no aioquic parser and are read here by
hand with aioquic's `Buffer`. Certificates are read with `cryptography.x509`. A message
that does not parse becomes a step with an `error` field, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aioquic.buffer import Buffer, BufferReadError  # type: ignore[attr-defined]
from aioquic.tls import (
    Alert,
    pull_certificate,
    pull_certificate_verify,
    pull_client_hello,
    pull_encrypted_extensions,
    pull_new_session_ticket,
    pull_server_hello,
)
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

HANDSHAKE_NAMES = {
    0: "HelloRequest", 1: "ClientHello", 2: "ServerHello", 4: "NewSessionTicket",
    5: "EndOfEarlyData", 8: "EncryptedExtensions", 11: "Certificate", 12: "ServerKeyExchange",
    13: "CertificateRequest", 14: "ServerHelloDone", 15: "CertificateVerify",
    16: "ClientKeyExchange", 20: "Finished", 24: "KeyUpdate",
}
# What each message achieves, in one line (RFC 8446 §4, RFC 5246 §7.4).
PURPOSE = {
    "ClientHello": "client offers versions, ciphers, key shares and ALPN",
    "ServerHello": "server picks version and cipher; with its key share both derive keys",
    "HelloRetryRequest": "server asks for another key share: one more round trip",
    "EncryptedExtensions": "server's choices that need not be in the clear (ALPN, ...)",
    "Certificate": "server presents its certificate chain",
    "CertificateVerify": "server proves it holds the certificate's private key",
    "Finished": "MAC over the whole handshake: nothing was tampered with",
    "NewSessionTicket": "a ticket the client can resume with later",
    "ServerKeyExchange": "server's signed ECDHE share (TLS 1.2)",
    "ServerHelloDone": "server's flight is complete; client's turn (TLS 1.2)",
    "ClientKeyExchange": "client's ECDHE share; both derive the master secret (TLS 1.2)",
    "EndOfEarlyData": "client's 0-RTT data ends",
    "CertificateRequest": "server asks for a client certificate",
}
VERSIONS = {0x0304: "TLS 1.3", 0x0303: "TLS 1.2", 0x0302: "TLS 1.1", 0x0301: "TLS 1.0"}
GROUPS = {0x17: "secp256r1", 0x18: "secp384r1", 0x19: "secp521r1", 0x1D: "x25519",
          0x1E: "x448", 0x100: "ffdhe2048", 0x11EC: "X25519MLKEM768"}
CIPHERS = {
    0x1301: "TLS_AES_128_GCM_SHA256", 0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0xC02B: "ECDHE-ECDSA-AES128-GCM-SHA256", 0xC02C: "ECDHE-ECDSA-AES256-GCM-SHA384",
    0xC02F: "ECDHE-RSA-AES128-GCM-SHA256", 0xC030: "ECDHE-RSA-AES256-GCM-SHA384",
    0xCCA8: "ECDHE-RSA-CHACHA20-POLY1305", 0xCCA9: "ECDHE-ECDSA-CHACHA20-POLY1305",
    0x009C: "AES128-GCM-SHA256", 0x009D: "AES256-GCM-SHA384", 0x00FF: "EMPTY_RENEGOTIATION_SCSV",
}
HRR_RANDOM = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")
EXT_SESSION_TICKET, EXT_EMS, EXT_RENEGOTIATION = 35, 23, 0xFF01


def cipher_name(suite: int) -> str:
    return CIPHERS.get(suite, f"0x{suite:04x}")


def group_name(group: int) -> str:
    return GROUPS.get(group, "GREASE" if group & 0x0F0F == 0x0A0A else f"0x{group:04x}")


def version_name(version: int) -> str:
    return VERSIONS.get(version, "GREASE" if version & 0x0F0F == 0x0A0A else f"0x{version:04x}")


@dataclass(frozen=True)
class HandshakeMessage:
    """One handshake message: its name, size on the wire (with its 4-byte header), fields."""

    msg_type: int
    name: str
    size: int
    fields: dict[str, Any] = field(default_factory=dict)
    raw: bytes = b""

    @property
    def purpose(self) -> str:
        return PURPOSE.get(self.name, "")


def split_messages(buf: bytes) -> tuple[list[bytes], bytes]:
    """Complete handshake messages at the start of `buf`, and the incomplete rest."""
    out, pos = [], 0
    while pos + 4 <= len(buf):
        length = int.from_bytes(buf[pos + 1:pos + 4], "big")
        if pos + 4 + length > len(buf):
            break
        out.append(buf[pos:pos + 4 + length])
        pos += 4 + length
    return out, buf[pos:]


def decode_message(raw: bytes, *, tls12: bool = False) -> HandshakeMessage:
    """Decode one complete handshake message; damage ends up in `fields["error"]`."""
    msg_type = raw[0] if raw else -1
    name = HANDSHAKE_NAMES.get(msg_type, f"Handshake({msg_type})")
    fields: dict[str, Any] = {}
    try:
        decoder = _DECODERS12.get(msg_type) if tls12 else None
        decoder = decoder or _DECODERS.get(msg_type)
        if decoder is not None:
            fields = decoder(raw)
    except (Alert, BufferReadError, ValueError, TypeError, IndexError) as exc:
        fields = {"error": f"undecodable {name}: {type(exc).__name__} {exc}".strip()}
    if name == "ServerHello" and fields.get("hello_retry_request"):
        name = "HelloRetryRequest"
    return HandshakeMessage(msg_type, name, len(raw), fields, raw)


def _alpn_list(exts: list[tuple[int, bytes]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for ext_type, _ in exts:
        if ext_type == EXT_SESSION_TICKET:
            out["session_ticket_ext"] = True
        if ext_type == EXT_EMS:
            out["extended_master_secret"] = True
    return out


def _client_hello(raw: bytes) -> dict[str, Any]:
    hello = pull_client_hello(Buffer(data=raw))
    fields: dict[str, Any] = {
        "random": hello.random.hex(),
        "sni": hello.server_name,
        "alpn": hello.alpn_protocols or [],
        "versions": [version_name(v) for v in hello.supported_versions or []],
        "cipher_suites": [cipher_name(c) for c in hello.cipher_suites],
        "groups": [group_name(g) for g in hello.supported_groups or []],
        "key_shares": [f"{group_name(g)} ({len(k)} B)" for g, k in hello.key_share or []],
        "early_data": hello.early_data,
    }
    if hello.pre_shared_key is not None:
        fields["psk_identities"] = len(hello.pre_shared_key.identities)
        fields["psk_ticket_bytes"] = [len(i[0]) for i in hello.pre_shared_key.identities]
    fields.update(_alpn_list(hello.other_extensions))
    return fields


def _server_hello(raw: bytes) -> dict[str, Any]:
    hello = pull_server_hello(Buffer(data=raw))
    version = hello.supported_version or 0x0303
    fields: dict[str, Any] = {
        "random": hello.random.hex(),
        "version": version_name(version),
        "cipher": cipher_name(hello.cipher_suite),
        "cipher_suite": hello.cipher_suite,
    }
    if hello.key_share is not None:
        fields["group"] = group_name(hello.key_share[0])
    if hello.pre_shared_key is not None:
        fields["psk_accepted"] = True
    if hello.random == HRR_RANDOM:
        fields["hello_retry_request"] = True
    for ext_type, data in hello.other_extensions:
        if ext_type == 16 and len(data) > 3:  # ALPN in a TLS 1.2 ServerHello
            fields["alpn"] = data[3:3 + data[2]].decode("ascii", "replace")
    fields.update(_alpn_list(hello.other_extensions))
    return fields


def _encrypted_extensions(raw: bytes) -> dict[str, Any]:
    ee = pull_encrypted_extensions(Buffer(data=raw))
    return {"alpn": ee.alpn_protocol, "early_data_accepted": ee.early_data,
            "extensions": [e for e, _ in ee.other_extensions]}


def describe_certificate(der: bytes) -> dict[str, Any]:
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        return {"bytes": len(der), "error": f"not a certificate: {exc}"}
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        key_type = f"ECDSA {key.curve.name}"
    elif isinstance(key, rsa.RSAPublicKey):
        key_type = f"RSA {key.key_size}"
    elif isinstance(key, ed25519.Ed25519PublicKey):
        key_type = "Ed25519"
    else:
        key_type = type(key).__name__
    return {"subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string(),
            "key": key_type, "bytes": len(der)}


def _certificate13(raw: bytes) -> dict[str, Any]:
    cert = pull_certificate(Buffer(data=raw))
    chain = [describe_certificate(der) for der, _ in cert.certificates]
    return {"chain": chain, "chain_bytes": sum(len(d) for d, _ in cert.certificates)}


def _uint24(buf: Buffer) -> int:
    return int.from_bytes(buf.pull_bytes(3), "big")


def _certificate12(raw: bytes) -> dict[str, Any]:
    buf = Buffer(data=raw[4:])
    end = _uint24(buf)
    ders = []
    while buf.tell() < 3 + end:
        ders.append(buf.pull_bytes(_uint24(buf)))
    return {"chain": [describe_certificate(d) for d in ders],
            "chain_bytes": sum(len(d) for d in ders)}


def _certificate_verify(raw: bytes) -> dict[str, Any]:
    cv = pull_certificate_verify(Buffer(data=raw))
    return {"signature_algorithm": f"0x{cv.algorithm:04x}", "signature_bytes": len(cv.signature)}


def _finished(raw: bytes) -> dict[str, Any]:
    return {"verify_data_bytes": len(raw) - 4}


def _ticket13(raw: bytes) -> dict[str, Any]:
    t = pull_new_session_ticket(Buffer(data=raw))
    return {"lifetime_s": t.ticket_lifetime, "ticket_bytes": len(t.ticket),
            "max_early_data": t.max_early_data_size}


def _ticket12(raw: bytes) -> dict[str, Any]:
    buf = Buffer(data=raw[4:])
    lifetime = buf.pull_uint32()
    return {"lifetime_s": lifetime, "ticket_bytes": buf.pull_uint16()}


def _server_key_exchange(raw: bytes) -> dict[str, Any]:
    buf = Buffer(data=raw[4:])
    if buf.pull_uint8() != 3:  # named_curve (RFC 8422 §5.4); anything else is not ECDHE
        return {"kind": "not ECDHE"}
    group = buf.pull_uint16()
    share = buf.pull_bytes(buf.pull_uint8())
    algorithm = buf.pull_uint16()
    signature = buf.pull_bytes(buf.pull_uint16())
    return {"group": group_name(group), "key_share_bytes": len(share),
            "signature_algorithm": f"0x{algorithm:04x}", "signature_bytes": len(signature)}


def _client_key_exchange(raw: bytes) -> dict[str, Any]:
    return {"key_share_bytes": max(0, len(raw) - 5)}


def _server_hello_done(raw: bytes) -> dict[str, Any]:
    return {}


_DECODERS = {
    1: _client_hello, 2: _server_hello, 4: _ticket13, 8: _encrypted_extensions,
    11: _certificate13, 15: _certificate_verify, 20: _finished,
}
_DECODERS12 = {
    4: _ticket12, 11: _certificate12, 12: _server_key_exchange, 16: _client_key_exchange,
    14: _server_hello_done,
}
