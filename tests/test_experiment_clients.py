"""The clients the bundled experiments add — httpx, grpcio's stub, HTTP push — against the
lab's own servers in this process (no emulated link)."""

from __future__ import annotations

import pytest

from protolab import registry
from protolab.core.record import Request, RequestRecord
from protolab.records import make_records, records_json
from protolab.registry import make_client
from servers.run import RunningServers
from tests.conftest import ServerFactory
from tests.helpers import target_for

ALL = ("h1", "h2", "h3", "grpc", "httpx", "httpx-h2", "grpc-stub", "http-poll",
       "http-long-poll", "http-sse", "ws")


async def fetch(running: RunningServers, protocol: str, path: str, count: int = 1,
                **options: object) -> list[RequestRecord]:
    client = make_client(protocol, target_for(running, protocol), **options)
    try:
        return [await client.request(Request(path=path)) for _ in range(count)]
    finally:
        await client.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", ["httpx", "httpx-h2"])
@pytest.mark.parametrize("tls", [True, False], ids=["tls", "clear"])
async def test_httpx_times_phases_from_its_trace_and_counts_bytes(
    lab_server: ServerFactory, protocol: str, tls: bool
) -> None:
    overrides = {} if tls else {"certs": None, "protocols": ("h1", "h2", protocol)}
    async with lab_server(protocols=ALL, **overrides) if tls else lab_server(
            **overrides) as running:
        first, second = await fetch(running, protocol, "/bytes/5000", count=2)
        (closed,) = await fetch(running, protocol, "/bytes/10", keepalive=False)
        lab = (await fetch(running, "h2" if protocol == "httpx-h2" else "h1", "/bytes/5000"))[0]
    for record in (first, second):
        assert record.ok, record.error_detail
        assert record.body_verified is True
        assert record.body_bytes == 5000
    assert first.new_connection
    assert not second.new_connection
    assert first.conn_start_ns is not None
    assert first.connected_ns is not None
    assert (first.handshake_ns is not None) == tls
    assert first.start_ns <= first.conn_start_ns <= first.connected_ns
    assert first.request_sent_ns is not None
    assert first.first_byte_ns is not None
    assert first.request_sent_ns <= first.first_byte_ns <= (first.done_ns or 0)
    assert second.conn_start_ns is None
    if tls:
        assert first.alpn == ("h2" if protocol == "httpx-h2" else "http/1.1")
        assert first.tls_version == "TLSv1.3"
    # Bytes at the HTTP framing level, as the lab's own client counts them (httpx sends a
    # few headers more or less; the response is the same).
    assert abs(second.bytes_in - lab.bytes_in) < 200
    assert 5000 < second.bytes_in < 5600
    assert closed.ok
    assert closed.new_connection


@pytest.mark.asyncio
async def test_httpx_decodes_gzip_and_parses_json_as_an_application_would(
    lab_server: ServerFactory,
) -> None:
    async with lab_server(protocols=ALL) as running:
        (plain,) = await fetch(running, "httpx", "/records?count=50")
        (gz,) = await fetch(running, "httpx", "/records?count=50&gzip=1")
    raw = records_json(make_records(50))
    assert plain.body_bytes == len(raw)
    assert gz.body_bytes == len(records_json(make_records(50), gzipped=True)) < len(raw)
    assert gz.transport["decoded_bytes"] == len(raw)
    assert "json_decode_us" in plain.transport


@pytest.mark.asyncio
async def test_grpc_stub_calls_records_in_the_rest_vocabulary(lab_server: ServerFactory) -> None:
    async with lab_server(protocols=ALL) as running:
        first, second = await fetch(running, "grpc-stub", "/records?count=100", count=2)
        (lab,) = await fetch(running, "grpc", "/Records?count=100")
        (gz,) = await fetch(running, "grpc-stub", "/Records?count=100&gzip=1")
        (unary,) = await fetch(running, "grpc-stub", "/Unary?size=300")
        (bad,) = await fetch(running, "grpc-stub", "/bytes/10")
    for record in (first, second, gz, unary):
        assert record.ok, record.error_detail
    assert first.transport["records"] == 100
    assert first.body_bytes == lab.body_bytes  # the same protobuf bytes as the lab's client
    assert first.bytes_in == lab.bytes_in
    assert first.new_connection
    assert not second.new_connection
    assert first.conn_start_ns is not None
    assert first.conn_start_ns <= (first.done_ns or 0)
    assert second.conn_start_ns is None
    assert unary.body_bytes >= 300
    assert bad.error == "bad_request"


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", ["http-poll", "http-long-poll", "http-sse", "ws"])
async def test_every_push_technique_delivers_every_event_with_its_stamps(
    lab_server: ServerFactory, protocol: str
) -> None:
    path = "/push?count=6&size=32&interval_ms=40&poll_ms=100"
    async with lab_server(protocols=ALL) as running:
        first, again = await fetch(running, protocol, path, count=2)
    for record in (first, again):
        assert record.ok, record.error_detail
        assert [m.seq for m in record.messages] == [1, 2, 3, 4, 5, 6]
        for m in record.messages:
            assert m.born_ns is not None
            assert m.sent_ns is not None
            assert m.born_ns <= m.sent_ns <= m.received_ns
        # Each repetition is a fresh stream: its events are born while it runs.
        assert record.messages[0].born_ns is not None
        assert record.messages[0].born_ns >= record.start_ns
        assert record.bytes_in > sum(m.size for m in record.messages)
    if protocol == "http-poll":
        # 6 events 40 ms apart = 200 ms, polled every 100 ms: 3 or 4 polls.
        assert 3 <= first.transport["requests"] <= 4
        delays = [(m.received_ns - (m.born_ns or 0)) / 1e6 for m in first.messages]
        assert max(delays) > 20  # an event waits for the next poll
    if protocol == "http-sse":
        assert first.transport["requests"] == 1


def test_the_new_protocols_are_in_the_registry() -> None:
    for name in ("httpx", "httpx-h2", "grpc-stub", "http-poll", "http-long-poll", "http-sse"):
        spec = registry.get(name)
        assert spec.validate(registry.KNOB_DEFAULTS) == []
    assert registry.scheme_protocols()["grpcs"] == "grpc"  # grpc:// still means the lab's
