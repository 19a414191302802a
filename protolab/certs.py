"""A local CA and leaf certificates, made with `cryptography`, kept in the lab's state directory.

The default leaf is a small ECDSA P-256 certificate signed directly by the CA, so a
handshake's size is not an accident of the certificate (DESIGN.md, fair comparisons).
RSA-2048 and longer chains (intermediates between CA and leaf) are options for the
experiments that need them, e.g. QUIC's anti-amplification limit.

Files are reused across runs and regenerated when expired, unreadable, or when a
requested name is not among the leaf's subject alternative names. Private keys are
written mode 0600. Nothing here touches the system trust store: clients are handed
the CA file explicitly.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from protolab.errors import CertificateError, ConfigError

KeyType = Literal["ecdsa-p256", "rsa-2048"]
KEY_TYPES: tuple[KeyType, ...] = ("ecdsa-p256", "rsa-2048")
DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")
_LIFETIME = dt.timedelta(days=90)
_RENEW_BEFORE = dt.timedelta(days=1)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def state_dir() -> Path:
    """The lab's state directory: $PROTOLAB_STATE_DIR, else $XDG_STATE_HOME/protolab."""
    env = os.environ.get("PROTOLAB_STATE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "protolab"


def default_cert_dir() -> Path:
    return state_dir() / "certs"


@dataclass(frozen=True)
class CertBundle:
    """Paths of a usable certificate set."""

    ca_file: Path  # the CA certificate clients trust
    chain_file: Path  # leaf then intermediates, PEM
    key_file: Path  # the leaf's private key, PEM, mode 0600
    key_type: KeyType
    names: tuple[str, ...]  # the leaf's subject alternative names


def ensure_certs(
    cert_dir: Path | None = None,
    *,
    key_type: KeyType = "ecdsa-p256",
    intermediates: int = 0,
    extra_names: Iterable[str] = (),
    now: dt.datetime | None = None,
) -> CertBundle:
    """Return a valid bundle in `cert_dir`, creating or renewing files as needed."""
    if key_type not in KEY_TYPES:
        raise ConfigError(f"unknown key type {key_type!r}; choose one of {', '.join(KEY_TYPES)}")
    if not 0 <= intermediates <= 4:
        raise ConfigError(f"intermediates must be 0..4, got {intermediates}")
    directory = cert_dir or default_cert_dir()
    now = now or dt.datetime.now(dt.UTC)
    names = tuple(dict.fromkeys([*DEFAULT_NAMES, *extra_names]))
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        ca_cert, ca_key = _ensure_ca(directory, now)
        return _ensure_leaf(directory, ca_cert, ca_key, key_type, intermediates, names, now)
    except OSError as exc:
        raise CertificateError(
            f"cannot write certificates in {directory}: {exc.strerror}",
            hint="choose a writable directory with --cert-dir or set PROTOLAB_STATE_DIR",
        ) from exc


def _ensure_ca(directory: Path, now: dt.datetime) -> tuple[x509.Certificate, PrivateKey]:
    cert_path, key_path = directory / "ca.pem", directory / "ca.key"
    loaded = _load(cert_path, key_path, now)
    if loaded is not None:
        return loaded
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "protolab local CA")])
    cert = (
        _builder(name, name, key.public_key(), now, lifetime=_LIFETIME * 4)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    # A new CA invalidates every leaf it did not sign.
    for stale in directory.glob("leaf-*"):
        stale.unlink()
    return cert, key


def _ensure_leaf(
    directory: Path,
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    key_type: KeyType,
    intermediates: int,
    names: tuple[str, ...],
    now: dt.datetime,
) -> CertBundle:
    stem = f"leaf-{key_type}-i{intermediates}"
    chain_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    loaded = _load(chain_path, key_path, now)
    if loaded is not None:
        have = _san_names(loaded[0])
        if set(names) <= set(have):
            return CertBundle(directory / "ca.pem", chain_path, key_path, key_type, have)
        names = tuple(dict.fromkeys([*have, *names]))

    issuer_cert, issuer_key = ca_cert, ca_key
    chain: list[x509.Certificate] = []
    for depth in range(intermediates):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, f"protolab intermediate {depth + 1}")]
        )
        cert = (
            _builder(subject, issuer_cert.subject, key.public_key(), now)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_ca_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(_authority_key_id(issuer_key), critical=False)
            .sign(issuer_key, hashes.SHA256())
        )
        chain.insert(0, cert)
        issuer_cert, issuer_key = cert, key

    leaf_key: PrivateKey = (
        ec.generate_private_key(ec.SECP256R1())
        if key_type == "ecdsa-p256"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    leaf = (
        _builder(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "protolab server")]),
            issuer_cert.subject,
            leaf_key.public_key(),
            now,
        )
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_authority_key_id(issuer_key), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    _write_key(key_path, leaf_key)
    chain_path.write_bytes(
        b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [leaf, *chain])
    )
    return CertBundle(directory / "ca.pem", chain_path, key_path, key_type, names)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    now: dt.datetime,
    lifetime: dt.timedelta = _LIFETIME,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + lifetime)
    )


def _authority_key_id(issuer_key: PrivateKey) -> x509.AuthorityKeyIdentifier:
    # Strict verifiers (OpenSSL's X509_STRICT, Python 3.13's default) require it.
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False,
    )


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _san_names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(
        [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
        + list(san.get_values_for_type(x509.DNSName))
    )


def _load(
    cert_path: Path, key_path: Path, now: dt.datetime
) -> tuple[x509.Certificate, PrivateKey] | None:
    """The first certificate and key from the files, or None if missing, unreadable or expiring."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        return None
    if cert.not_valid_after_utc - _RENEW_BEFORE < now or cert.not_valid_before_utc > now:
        return None
    if cert.public_key() != key.public_key():
        return None
    return cert, key


def _write_key(path: Path, key: PrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Create with 0600 from the start: never a moment where the key is world-readable.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


TlsVersion = Literal["1.2", "1.3"]
_SSL_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
# TLS 1.2 suites a server offers: ECDHE key exchange with an AEAD cipher only. OpenSSL's
# default list also has CBC suites (AES256-SHA384, AES128-SHA256 ...), open to padding
# oracles such as Lucky Thirteen (RFC 7457 §2.8; RFC 9325 §4.2 recommends AEAD only).
# TLS 1.3 suites are all AEAD and set apart (OpenSSL's TLS 1.3 defaults stay).
SERVER_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def server_tls_context(
    bundle: CertBundle, alpn: Iterable[str], tls_version: TlsVersion = "1.3"
) -> ssl.SSLContext:
    """A server context pinned to one TLS version, so a comparison never mixes versions."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _pin_version(ctx, tls_version)
    ctx.set_ciphers(SERVER_TLS12_CIPHERS)
    ctx.load_cert_chain(bundle.chain_file, bundle.key_file)
    ctx.set_alpn_protocols(list(alpn))
    # HTTP/2 (RFC 9113 §9.2) forbids TLS compression and renegotiation.
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    return ctx


class ResumingContext(ssl.SSLContext):
    """A client context that offers `session` (when set) on every new connection.

    asyncio builds each connection's SSLObject with `wrap_bio()` and has no way to pass
    a session, so the context supplies it: TLS session resumption (RFC 8446 §2.2) over
    asyncio streams without reimplementing the TLS transport.
    """

    session: ssl.SSLSession | None = None

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        return super().wrap_bio(
            incoming, outgoing, server_side, server_hostname, session or self.session
        )


def client_tls_context(
    ca_file: Path | None,
    alpn: Iterable[str],
    tls_version: TlsVersion | None = None,
    keylog_file: Path | None = None,
) -> ResumingContext:
    """A verifying client context trusting `ca_file` only (or the system store when None)."""
    ctx = ResumingContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca_file is not None:
        ctx.load_verify_locations(cafile=str(ca_file))
    else:
        ctx.load_default_certs()
    if tls_version is not None:
        _pin_version(ctx, tls_version)
    ctx.set_alpn_protocols(list(alpn))
    if keylog_file is not None:
        private_file(keylog_file)
        ctx.keylog_filename = str(keylog_file)
    return ctx


def private_file(path: Path) -> None:
    """Make `path` (a TLS key log: it decrypts every connection in it) exist, readable
    by its owner only, before a library appends to it (OpenSSL creates it 0644)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _pin_version(ctx: ssl.SSLContext, version: TlsVersion) -> None:
    if version not in _SSL_VERSIONS:
        raise ConfigError(f"TLS version must be 1.2 or 1.3, got {version!r}")
    ctx.minimum_version = ctx.maximum_version = _SSL_VERSIONS[version]
