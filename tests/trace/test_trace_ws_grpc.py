"""The WebSocket upgrade (RFC 6455 §4) over TLS 1.3 and gRPC's first call over cleartext
HTTP/2, decoded from captures over a 200 ms RTT link."""

from __future__ import annotations

import pytest

from tests.trace.conftest import Traced

pytestmark = [pytest.mark.netem, pytest.mark.slow]


def test_websocket_upgrade_then_echo(traced: Traced) -> None:
    files, decoded = traced("ws")
    assert not files.errors
    trace = decoded.main
    assert trace is not None
    names = [s.name for s in trace.steps if s.layer == "http"]
    assert names[:4] == ["HTTP request: GET /echo HTTP/1.1",
                         "HTTP response: HTTP/1.1 101 Switching Protocols",
                         "WebSocket binary", "WebSocket binary"]
    upgrade = next(s for s in trace.steps if s.name.startswith("HTTP request"))
    assert upgrade.fields["upgrade"] == "websocket"
    first_client_frame = next(s for s in trace.steps if s.name == "WebSocket binary")
    assert first_client_frame.fields["masked"] is True  # client frames are masked (§5.3)
    rt = trace.round_trips
    assert rt is not None
    assert rt.request_rtts == pytest.approx(2, abs=0.25)  # TLS 1.3: upgrade after 2 RTT
    assert rt.first_byte_rtts == pytest.approx(3, abs=0.25)


def test_grpc_first_call_headers_and_message(traced: Traced) -> None:
    files, decoded = traced("grpc")
    assert not files.errors
    trace = decoded.main
    assert trace is not None
    request = trace.request_step
    assert request is not None
    assert request.name == "HTTP/2 HEADERS"
    assert request.fields["headers"][":path"] == "/protolab.Lab/Unary"
    assert request.fields["headers"]["content-type"] == "application/grpc"
    message = next(s for s in trace.steps if s.from_client and "gRPC message" in s.name)
    assert message.fields["grpc_compressed"] is False
    reply = next(s for s in trace.steps if not s.from_client and "gRPC message" in s.name)
    assert reply.fields["grpc_message_bytes"] > 100
    rt = trace.round_trips
    assert rt is not None
    # grpcio holds its first call until the server's SETTINGS arrive: one RTT more than
    # cleartext HTTP needs, and the summary says why.
    assert rt.request_rtts == pytest.approx(2, abs=0.25)
    assert (rt.predicted_request, rt.predicted_first_byte) == (1, 2)
    assert "waited for the server's HTTP/2 SETTINGS" in rt.explanation
