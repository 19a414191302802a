"""Local CA and leaf certificates: reuse, renewal, names, key types and file modes."""

from __future__ import annotations

import datetime as dt
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from protolab.certs import ensure_certs, server_tls_context
from protolab.errors import ConfigError


def leaf(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def test_default_is_small_ecdsa_leaf_with_loopback_names(tmp_path: Path) -> None:
    bundle = ensure_certs(tmp_path)
    cert = leaf(bundle.chain_file)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert {"localhost", "127.0.0.1", "::1"} <= set(bundle.names)
    assert len(x509.load_pem_x509_certificates(bundle.chain_file.read_bytes())) == 1
    for key in (bundle.key_file, tmp_path / "ca.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_reused_across_runs_and_extended_for_new_names(tmp_path: Path) -> None:
    first = leaf(ensure_certs(tmp_path).chain_file).serial_number
    assert leaf(ensure_certs(tmp_path).chain_file).serial_number == first
    wider = ensure_certs(tmp_path, extra_names=["10.99.0.2"])
    assert "10.99.0.2" in wider.names
    assert "localhost" in wider.names
    assert leaf(wider.chain_file).serial_number != first


def test_regenerated_when_expired_or_unreadable(tmp_path: Path) -> None:
    ensure_certs(tmp_path)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    renewed = ensure_certs(tmp_path, now=later)
    assert leaf(renewed.chain_file).not_valid_after_utc > later
    serial = leaf(renewed.chain_file).serial_number
    renewed.key_file.write_text("garbage")
    fixed = ensure_certs(tmp_path, now=later)
    assert leaf(fixed.chain_file).serial_number != serial


def test_rsa_and_longer_chain_verify_against_the_ca(tmp_path: Path) -> None:
    bundle = ensure_certs(tmp_path, key_type="rsa-2048", intermediates=2)
    chain = x509.load_pem_x509_certificates(bundle.chain_file.read_bytes())
    assert len(chain) == 3
    assert isinstance(chain[0].public_key(), rsa.RSAPublicKey)
    store = x509.verification.Store(x509.load_pem_x509_certificates(bundle.ca_file.read_bytes()))
    verifier = (
        x509.verification.PolicyBuilder().store(store)
        .build_server_verifier(x509.DNSName("localhost"))
    )
    verifier.verify(chain[0], chain[1:])  # raises if the chain does not lead to the CA
    server_tls_context(bundle, ["h2"], "1.2")  # the key matches the leaf


def test_bad_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key type"):
        ensure_certs(tmp_path, key_type="dsa")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="intermediates"):
        ensure_certs(tmp_path, intermediates=9)
    with pytest.raises(ConfigError, match="TLS version"):
        server_tls_context(ensure_certs(tmp_path), ["h2"], "1.1")  # type: ignore[arg-type]


def test_never_touches_the_system_store(tmp_path: Path) -> None:
    before = ssl.get_default_verify_paths()
    ensure_certs(tmp_path)
    assert ssl.get_default_verify_paths() == before
    assert all(p.parent == tmp_path for p in tmp_path.iterdir())
