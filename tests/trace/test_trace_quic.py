"""QUIC handshakes decoded from real captures over a 200 ms RTT link (RFC 9000/9001): packets
decrypted with aioquic's packet protection and the key log, the TLS messages inside CRYPTO
frames, and round trips: the request after 1 RTT (1-RTT) or 0 RTT (0-RTT)."""

from __future__ import annotations

import pytest

from tests.trace.conftest import Traced

pytestmark = [pytest.mark.netem, pytest.mark.slow]

FULL = ["ClientHello", "ServerHello", "EncryptedExtensions", "Certificate",
        "CertificateVerify", "Finished", "Finished"]
RESUMED = ["ClientHello", "ServerHello", "EncryptedExtensions", "Finished", "Finished"]


@pytest.mark.parametrize(("kind", "tls", "request_rtts", "first_byte_rtts"),
                         [("h3", FULL, 1, 2), ("h3-0rtt", RESUMED, 0, 1)])
def test_quic_handshake_sequence_and_round_trips(
    traced: Traced, kind: str, tls: list[str], request_rtts: int, first_byte_rtts: int
) -> None:
    files, decoded = traced(kind)
    assert not files.errors
    # qvis opens the client's qlog, kept beside the pcap and key log.
    assert files.qlog_dir is not None
    qlogs = list(files.qlog_dir.glob("*.qlog"))
    assert qlogs
    assert all(q.stat().st_size > 0 for q in qlogs)
    trace = decoded.main
    assert trace is not None
    assert trace.transport == "quic"
    assert [s.name for s in trace.steps if s.layer == "tls"][: len(tls)] == tls
    n = trace.negotiated
    assert (n["alpn"], n["decrypted"]) == ("h3", True)
    assert n["early_data"] is (kind == "h3-0rtt")
    assert n["resumed"] is (kind == "h3-0rtt")
    assert not [s for s in trace.steps if s.name.endswith("(encrypted)")]
    headers = [s.fields["headers"] for s in trace.steps if s.name == "HTTP/3 HEADERS"]
    assert ":method: GET" in headers[0]  # the request, QPACK-decoded
    assert ":status: 200" in headers[1]  # the response
    rt = trace.round_trips
    assert rt is not None
    assert rt.request_rtts == pytest.approx(request_rtts, abs=0.25)  # see test_trace_tcp
    if kind == "h3-0rtt" and rt.first_byte_rtts > first_byte_rtts + 0.25:
        # Seen about once in five loaded runs: the early request accepted, its answer sent
        # only after the handshake completed (one RTT later). The tracer must say so
        # rather than call it what the design predicts.
        assert rt.first_byte_rtts == pytest.approx(first_byte_rtts + 1, abs=0.25)
        assert rt.explanation != "as the protocol's design predicts"
    else:
        assert rt.first_byte_rtts == pytest.approx(first_byte_rtts, abs=0.25)
    assert (rt.predicted_request, rt.predicted_first_byte) == (request_rtts, first_byte_rtts)


def test_client_initial_is_padded_for_anti_amplification(traced: Traced) -> None:
    _, decoded = traced("h3")
    assert decoded.main is not None
    initial = decoded.main.steps[0]
    assert (initial.layer, initial.name, initial.from_client) == ("quic", "Initial", True)
    assert initial.fields["datagram_bytes"] >= 1200
    assert "RFC 9000 §8.1" in initial.note


def test_zero_rtt_request_leaves_in_a_0rtt_packet(traced: Traced) -> None:
    _, decoded = traced("h3-0rtt")
    main = decoded.main
    assert main is not None
    assert len(decoded.traces) == 2  # the first connection earned the ticket
    packets = [s for s in main.steps if s.layer == "quic"]
    request = main.request_step
    assert request is not None
    carrier = next(p for p in packets if p.packet == request.packet)
    assert carrier.name == "0-RTT"
    assert request.name == "HTTP/3 HEADERS"


def test_quic_without_key_log_keeps_initials_readable(traced: Traced) -> None:
    from protolab.trace.decode import LinkTiming, decode_capture
    from protolab.trace.keylog import KeyLog

    files, _ = traced("h3")
    decoded = decode_capture(files.pcap.read_bytes(), KeyLog(), LinkTiming(files.rtt_ns))
    main = decoded.main
    assert main is not None
    names = [s.name for s in main.steps]
    assert "ClientHello" in names  # Initial keys come from the connection ID alone
    assert "ServerHello" in names
    assert "Handshake (encrypted)" in names
    assert main.problems
