"""Bad input: truncated or corrupt captures, key logs that do not match, captures without a
handshake — a clear message and whatever could be decoded, never a traceback; and the
decoders fuzzed with random and mutated input (hypothesis).

The small captures in data/ were made by `protolab trace` over a 100 ms RTT link (50 ms
each way); their key logs hold throwaway session secrets.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from protolab.cli import app
from protolab.trace.app import AppDecoder
from protolab.trace.decode import Decoded, LinkTiming, decode_capture
from protolab.trace.errors import DECODER_BUG, TraceInputError
from protolab.trace.keylog import KeyLog, parse_keylog
from protolab.trace.packets import parse_frame
from protolab.trace.pcapfile import read_capture
from protolab.trace.quic import parse_frames
from protolab.trace.tcpstream import tcp_connections
from protolab.trace.tls import decode_tls
from protolab.trace.tlsmessages import decode_message, transport_parameters

DATA = Path(__file__).parent / "data"
LINK = LinkTiming(100_000_000, 50_000_000, 50_000_000)
runner = CliRunner()


def load(name: str) -> tuple[bytes, KeyLog]:
    stem = name.rsplit(".", 1)[0]
    return (DATA / name).read_bytes(), parse_keylog((DATA / f"{stem}.keylog").read_text())


@pytest.mark.parametrize("name", ["h2-tls13.pcap", "h2-tls13.pcapng"])
def test_brought_pcap_and_pcapng_decode_alike(name: str) -> None:
    data, keylog = load(name)
    main = decode_capture(data, keylog, LINK).main
    assert main is not None
    assert main.negotiated["version"] == "TLS 1.3"
    assert main.round_trips is not None
    assert main.round_trips.request_rtts == pytest.approx(2, abs=0.15)
    assert main.round_trips.first_byte_rtts == pytest.approx(3, abs=0.15)


def test_tls12_from_a_brought_capture() -> None:
    data, keylog = load("h1-tls12.pcap")
    main = decode_capture(data, keylog, LINK).main
    assert main is not None
    assert main.round_trips is not None
    assert main.round_trips.request_rtts == pytest.approx(3, abs=0.15)
    assert "HTTP request: GET /bytes/100 HTTP/1.1" in [s.name for s in main.steps]


def test_truncated_capture_keeps_the_handshake_before_the_cut() -> None:
    data, keylog = load("h2-tls13.pcap")
    decoded = decode_capture(data[: len(data) // 2 + 7], keylog, LINK)
    assert any("truncated" in p for p in decoded.problems)
    main = decoded.main
    assert main is not None
    assert "ClientHello" in [s.name for s in main.steps]


def test_key_log_of_another_capture_leaves_the_handshake_encrypted() -> None:
    data, _ = load("h2-tls13.pcap")
    _, other = load("h3-0rtt.pcap")
    main = decode_capture(data, other, LINK).main
    assert main is not None
    names = [s.name for s in main.steps]
    assert "ServerHello" in names
    assert "Certificate" not in names
    assert "Encrypted handshake" in names
    assert any("no TLS 1.3 secrets" in p for p in main.problems)
    assert main.round_trips is not None
    assert main.round_trips.request_rtts == pytest.approx(2, abs=0.15)  # still countable


def test_capture_without_a_handshake(tmp_path: Path) -> None:
    data, keylog = load("h2-tls13.pcap")
    header, records = data[:24], data[24:]
    cap = read_capture(data)
    # Keep only the tail: data and FINs of a connection whose start was not captured.
    tail = header
    pos = 24
    for i, frame in enumerate(cap.frames):
        size = 16 + len(frame.data)
        if i >= 20:
            tail += data[pos:pos + size]
        pos += size
    assert records
    decoded = decode_capture(tail, keylog, LINK)
    assert decoded.main is None or "ClientHello" not in [s.name for s in decoded.main.steps]
    empty = header
    decoded = decode_capture(empty, keylog, LINK)
    assert decoded.main is None
    assert "no TCP or QUIC connection with a handshake" in decoded.problems[-1]
    path = tmp_path / "empty.pcap"
    path.write_bytes(empty)
    result = runner.invoke(app, ["trace", "--pcap", str(path)])
    assert result.exit_code == 1
    assert "no TCP or QUIC connection with a handshake" in result.output


def test_unreadable_key_log_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["trace", "--pcap", str(DATA / "h2-tls13.pcap"),
                                 "--keylog", str(tmp_path / "missing.txt")])
    assert isinstance(result.exception, TraceInputError)
    assert "cannot read the key log" in str(result.exception)


FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=2000))
def test_fuzz_capture_reader(data: bytes) -> None:
    try:
        read_capture(data)
    except TraceInputError:
        pass


@FUZZ
@given(st.data())
def test_fuzz_mutated_captures_never_crash(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(["h2-tls13.pcap", "h2-tls13.pcapng", "h3-0rtt.pcap",
                                      "h1-tls12.pcap"]))
    raw, keylog = load(name)
    mutated = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 20))):
        pos = data.draw(st.integers(0, len(mutated) - 1))
        mutated[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(24, len(mutated)))
    try:
        decoded = decode_capture(bytes(mutated[:cut]), keylog, LINK)
    except TraceInputError as exc:
        assert DECODER_BUG not in str(exc)  # noqa: PT017 - a mapped error, not a bug
        return
    assert not _bugs(decoded)


@FUZZ
@given(st.integers(0, 30), st.binary(max_size=600))
def test_fuzz_handshake_messages(msg_type: int, body: bytes) -> None:
    raw = bytes([msg_type]) + len(body).to_bytes(3, "big") + body
    for tls12 in (False, True):
        msg = decode_message(raw, tls12=tls12)
        assert msg.size == len(raw)


@FUZZ
@given(st.binary(max_size=600))
def test_fuzz_quic_frames(payload: bytes) -> None:
    frames = parse_frames(payload)
    assert all(f.name for f in frames)


@FUZZ
@given(st.sampled_from([None, "h2", "http/1.1"]), st.lists(st.binary(max_size=200), max_size=5))
def test_fuzz_http_decoders(alpn: str | None, chunks: list[bytes]) -> None:
    decoder = AppDecoder(alpn)
    for chunk in chunks:
        decoder.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + chunk if alpn == "h2" else chunk)


@FUZZ
@given(st.text(max_size=500))
def test_fuzz_keylog(text: str) -> None:
    parse_keylog(text)


def _bugs(decoded: Decoded) -> list[str]:
    """Problems that only the decoders' safety net writes: each one is a tracer bug."""
    notes = decoded.problems + [p for t in decoded.traces for p in t.problems]
    return [p for p in notes if DECODER_BUG in p]


# -- certificates: `cryptography` raises more than ValueError, and parses lazily ------------

def _tls12_certificate() -> tuple[bytes, int, bytes]:
    """(the TLS 1.2 capture, where its server certificate's DER starts, the DER): the
    certificate crosses in the clear in TLS 1.2, so its bytes can be damaged in place."""
    raw, keylog = load("h1-tls12.pcap")
    cap = read_capture(raw)
    segments = [s for i, f in enumerate(cap.frames) if (s := parse_frame(i, f)) is not None]
    for conn in tcp_connections(segments):
        for record in decode_tls(conn, keylog).records:
            for msg in record.messages:
                if msg.name == "Certificate":
                    der = msg.raw[10:]  # type, length, chain length, first entry's length
                    at = raw.find(der)
                    assert at > 0, "the certificate is not in one frame of the capture"
                    return raw, at, der
    raise AssertionError("no Certificate in the TLS 1.2 capture")


CAPTURE12, DER_AT, DER = _tls12_certificate()


def _certificate_entry(data: bytes) -> dict[str, object]:
    decoded = decode_capture(data, load("h1-tls12.pcap")[1], LINK)
    assert not _bugs(decoded)
    main = decoded.main
    assert main is not None
    step = next(s for s in main.steps if s.name == "Certificate")
    chain = step.fields["chain"]
    assert len(chain) == 1
    entry: dict[str, object] = chain[0]
    assert entry["bytes"] == len(DER)
    return entry


def _damaged(old: bytes, new: bytes, occurrence: int = 0) -> bytes:
    """The TLS 1.2 capture with `old` (inside the certificate) replaced by `new`."""
    assert len(old) == len(new)
    pos = -1
    for _ in range(occurrence + 1):
        pos = DER.index(old, pos + 1)
    der = DER[:pos] + new + DER[pos + len(old):]
    return CAPTURE12[:DER_AT] + der + CAPTURE12[DER_AT + len(der):]


EC_PUBLIC_KEY = bytes.fromhex("06072a8648ce3d0201")  # id-ecPublicKey
PRIME256V1 = bytes.fromhex("06082a8648ce3d030107")
VERSION3 = bytes.fromhex("a003020102")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (EC_PUBLIC_KEY, EC_PUBLIC_KEY[:-1] + b"\x09", "undecodable key: UnsupportedAlgorithm"),
        (PRIME256V1, PRIME256V1[:-1] + b"\x63", "undecodable key: UnsupportedAlgorithm"),
        (VERSION3, VERSION3[:-1] + b"\x07", "not a certificate: InvalidVersion"),
        (DER[:4], b"\x31" + DER[1:4], "not a certificate: ValueError"),
        (DER[:4], DER[:3] + bytes([DER[3] + 1]), "not a certificate: ValueError"),
    ],
    ids=["unknown-key-type", "unknown-curve", "bad-version", "not-a-sequence", "too-long"],
)
def test_a_damaged_certificate_is_a_note_on_its_step(old: bytes, new: bytes,
                                                      expected: str) -> None:
    entry = _certificate_entry(_damaged(old, new))
    assert str(entry.get("error", "")).startswith(expected)


def test_a_certificate_cryptography_warns_about_keeps_the_warning_as_a_note() -> None:
    # The serial number (after the version) made negative: cryptography accepts it with a
    # CryptographyDeprecationWarning, which must neither escape nor vanish.
    serial = DER.index(VERSION3) + len(VERSION3)
    assert DER[serial] == 0x02
    entry = _certificate_entry(_damaged(DER[serial + 2:serial + 3], b"\xff"))
    assert "error" not in entry
    assert entry["key"] == "ECDSA secp256r1"
    assert any("serial number" in w for w in entry["warnings"])  # type: ignore[attr-defined]


def test_damaged_certificate_through_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "bad-cert.pcap"
    path.write_bytes(_damaged(EC_PUBLIC_KEY, EC_PUBLIC_KEY[:-1] + b"\x09"))
    keylog = tmp_path / "bad-cert.keylog"
    keylog.write_text((DATA / "h1-tls12.keylog").read_text())
    result = runner.invoke(app, ["trace", "--pcap", str(path), "--keylog", str(keylog),
                                 "--json"])
    assert result.exception is None, result.exception
    assert result.exit_code == 0
    assert "undecodable key: UnsupportedAlgorithm" in result.output


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(DER) - 1), st.integers(0, 255)), min_size=1,
                max_size=8))
def test_fuzz_certificates_inside_a_capture(changes: list[tuple[int, int]]) -> None:
    der = bytearray(DER)
    for pos, value in changes:
        der[pos] = value
    data = CAPTURE12[:DER_AT] + bytes(der) + CAPTURE12[DER_AT + len(der):]
    entry = _certificate_entry(data)
    assert "error" in entry or {"subject", "issuer", "key"} <= set(entry)


def _certificate13(der: bytes) -> bytes:
    entry = len(der).to_bytes(3, "big") + der + b"\x00\x00"  # no entry extensions
    body = b"\x00" + len(entry).to_bytes(3, "big") + entry  # empty request context
    return b"\x0b" + len(body).to_bytes(3, "big") + body


def _certificate12(der: bytes) -> bytes:
    entry = len(der).to_bytes(3, "big") + der
    body = len(entry).to_bytes(3, "big") + entry
    return b"\x0b" + len(body).to_bytes(3, "big") + body


DER_BYTES = st.one_of(
    st.binary(max_size=600),
    st.lists(st.tuples(st.integers(0, len(DER) - 1), st.integers(0, 255)), max_size=6).map(
        lambda changes: bytes(_apply(DER, changes))),
    st.integers(1, len(DER)).map(lambda cut: DER[:cut]),
)


def _apply(data: bytes, changes: list[tuple[int, int]]) -> bytearray:
    out = bytearray(data)
    for pos, value in changes:
        out[pos] = value
    return out


@FUZZ
@given(DER_BYTES)
def test_fuzz_certificate_messages_around_any_der(der: bytes) -> None:
    for raw, tls12 in ((_certificate13(der), False), (_certificate12(der), True)):
        msg = decode_message(raw, tls12=tls12)
        assert msg.name == "Certificate"
        assert "error" not in msg.fields, msg.fields  # the message parses; the DER may not
        (entry,) = msg.fields["chain"]
        assert entry["bytes"] == len(der)
        assert "error" in entry or {"subject", "issuer", "key"} <= set(entry)


def _real_messages() -> list[tuple[bytes, bool]]:
    """Every handshake message of the TLS captures, decrypted: mutated, they reach the
    decoders' deep paths, which random bytes almost never do."""
    out = []
    for name in ("h2-tls13.pcap", "h1-tls12.pcap"):
        raw, keylog = load(name)
        cap = read_capture(raw)
        segments = [s for i, f in enumerate(cap.frames) if (s := parse_frame(i, f))]
        for conn in tcp_connections(segments):
            session = decode_tls(conn, keylog)
            out += [(m.raw, session.version == "TLS 1.2")
                    for r in session.records for m in r.messages]
    return out


REAL_MESSAGES = _real_messages()


@FUZZ
@given(st.sampled_from(REAL_MESSAGES), st.lists(
    st.tuples(st.integers(4, 10_000), st.sampled_from([0x00, 0xFF, 0x01, 0x80, 0x7F])),
    min_size=1, max_size=6))
def test_fuzz_mutated_real_handshake_messages(message: tuple[bytes, bool],
                                              changes: list[tuple[int, int]]) -> None:
    raw, tls12 = message
    mutated = _apply(raw, [(4 + pos % max(1, len(raw) - 4), v) for pos, v in changes
                           if len(raw) > 4])
    msg = decode_message(bytes(mutated), tls12=tls12)
    assert msg.size == len(raw)


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_quic_transport_parameters(data: bytes) -> None:
    params = transport_parameters(data)
    assert all(isinstance(k, str) for k in params)
