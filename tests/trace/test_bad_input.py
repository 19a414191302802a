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
from protolab.trace.decode import LinkTiming, decode_capture
from protolab.trace.errors import TraceInputError
from protolab.trace.keylog import KeyLog, parse_keylog
from protolab.trace.pcapfile import read_capture
from protolab.trace.quic import parse_frames
from protolab.trace.tlsmessages import decode_message

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
        decode_capture(bytes(mutated[:cut]), keylog, LINK)
    except TraceInputError:
        pass


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
