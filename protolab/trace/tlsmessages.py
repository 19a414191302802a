"""TLS handshake messages -> name, key fields and what each achieves.

TLS 1.3 messages and both hellos are parsed with aioquic's own `pull_*` functions (the
parser of the QUIC stack the lab uses); TLS 1.2's ServerKeyExchange, ClientKeyExchange,
its Certificate and NewSessionTicket layouts have no aioquic parser and are read here by
hand with aioquic's `Buffer`. Certificates are read with `cryptography.x509`. A message
that does not parse becomes a step with an `error` field, never an exception: the
capture is input from anyone, and these parsers are not ours, so each family of
exceptions they raise on damage is mapped here (`DECODER_ERRORS`, `X509_ERRORS`), and a
damaged certificate spoils only its own entry of the chain.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
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
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from protolab.trace.codepoints import (
    CIPHERS,
    GROUPS,
    PSK_MODES,
    QUIC_INTEGER_PARAMETERS,
    VERSIONS,
    cipher_name,
    extension_name,
    group_name,
    quic_version_name,
    signature_name,
    transport_parameter_name,
    version_name,
)

__all__ = ["CIPHERS", "GROUPS", "HANDSHAKE_NAMES", "VERSIONS", "HandshakeMessage",
           "cipher_name", "decode_message", "describe_certificate", "group_name",
           "split_messages", "version_name"]

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
HRR_RANDOM = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")
EXT_SESSION_TICKET, EXT_EMS, EXT_RENEGOTIATION = 35, 23, 0xFF01
EXT_QUIC_TRANSPORT_PARAMETERS = 0x39
TP_VERSION_INFORMATION = 0x11

# What aioquic's parsers and the hand-written layouts raise on damaged bytes: aioquic's
# Alert and BufferReadError, ValueError from enum and length checks, TypeError,
# IndexError and KeyError from short or odd structures, and OverflowError from numbers
# too large for a C type.
DECODER_ERRORS: tuple[type[Exception], ...] = (
    Alert, BufferReadError, ValueError, TypeError, IndexError, KeyError, OverflowError,
)
# What `cryptography` raises on a damaged certificate; it parses lazily, so the fields
# read after loading raise too: ValueError (most ASN.1 damage), UnsupportedAlgorithm (an
# unknown key type or curve), InvalidVersion (an X.509 version other than v1 or v3).
X509_ERRORS: tuple[type[Exception], ...] = (
    ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion,
)


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
    except DECODER_ERRORS as exc:
        fields = {"error": f"undecodable {name}: {type(exc).__name__} {exc}".strip()}
    if name == "ServerHello" and fields.get("hello_retry_request"):
        name = "HelloRetryRequest"
    return HandshakeMessage(msg_type, name, len(raw), fields, raw)


def _alpn_list(exts: list[tuple[int, bytes]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for ext_type, data in exts:
        if ext_type == EXT_SESSION_TICKET:
            out["session_ticket_ext"] = True
        if ext_type == EXT_EMS:
            out["extended_master_secret"] = True
        if ext_type == EXT_QUIC_TRANSPORT_PARAMETERS:
            out["quic_transport_parameters"] = transport_parameters(data)
    if exts:
        out["other_extensions"] = [extension_name(e) for e, _ in exts]
    return out


def transport_parameters(data: bytes) -> dict[str, Any]:
    """QUIC transport parameters (RFC 9000 §18): name -> integer, flag, or bytes (hex)."""
    buf = Buffer(data=data)
    out: dict[str, Any] = {}
    try:
        while not buf.eof():
            param = buf.pull_uint_var()
            value = buf.pull_bytes(buf.pull_uint_var())
            name = transport_parameter_name(param)
            if param in QUIC_INTEGER_PARAMETERS:
                number = Buffer(data=value)
                out[name] = number.pull_uint_var()
            elif param == TP_VERSION_INFORMATION and value and len(value) % 4 == 0:
                # RFC 9368 §3: the chosen version, then the versions the sender supports.
                versions = [quic_version_name(int.from_bytes(value[i:i + 4], "big"))
                            for i in range(0, len(value), 4)]
                out[name] = {"chosen": versions[0], "available": versions[1:]}
            elif not value:
                out[name] = True
            else:
                out[name] = value.hex() if len(value) <= 32 else f"({len(value)} B)"
    except BufferReadError:
        out["error"] = f"truncated after {len(out)} parameter(s)"
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
        "signature_algorithms": [signature_name(a) for a in hello.signature_algorithms or []],
        "early_data": hello.early_data,
    }
    if hello.psk_key_exchange_modes:
        fields["psk_modes"] = [PSK_MODES.get(m, str(m)) for m in hello.psk_key_exchange_modes]
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
    fields: dict[str, Any] = {"alpn": ee.alpn_protocol, "early_data_accepted": ee.early_data,
                              "extensions": [extension_name(e) for e, _ in ee.other_extensions]}
    for ext_type, data in ee.other_extensions:
        if ext_type == EXT_QUIC_TRANSPORT_PARAMETERS:
            fields["quic_transport_parameters"] = transport_parameters(data)
    return fields


def describe_certificate(der: bytes) -> dict[str, Any]:
    """Subject, issuer, key type and size of one DER certificate; damage is an `error`
    entry (and what could still be read), never an exception."""
    out: dict[str, Any] = {}
    with warnings.catch_warnings(record=True) as caught:
        # cryptography warns (CryptographyDeprecationWarning) about certificates it will
        # refuse in a later release, e.g. a serial number that is not positive.
        warnings.simplefilter("always")
        try:
            cert = x509.load_der_x509_certificate(der)
        except X509_ERRORS as exc:
            return {"bytes": len(der), "error": f"not a certificate: {_why(exc)}"}
        readers: tuple[tuple[str, Callable[[], str]], ...] = (
            ("subject", lambda: cert.subject.rfc4514_string()),
            ("issuer", lambda: cert.issuer.rfc4514_string()),
            ("key", lambda: _key_type(cert)),
        )
        for key, read in readers:
            try:
                out[key] = read()
            except X509_ERRORS as exc:
                out.setdefault("error", f"undecodable {key}: {_why(exc)}")
    out["bytes"] = len(der)
    notes = sorted({str(w.message) for w in caught})
    if notes:
        out["warnings"] = notes
    return out


def _why(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__


def _key_type(cert: x509.Certificate) -> str:
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA {key.curve.name}"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA {key.key_size}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    return type(key).__name__


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
    return {"signature_algorithm": signature_name(cv.algorithm),
            "signature_bytes": len(cv.signature)}


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
            "signature_algorithm": signature_name(algorithm), "signature_bytes": len(signature)}


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
