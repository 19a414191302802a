"""Bad input: each gets a clear error or is dropped with one log line, and the server
keeps serving other clients."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl

import pytest

from protolab.core.record import Request
from protolab.registry import make_client
from servers.run import RunningServers
from tests.conftest import ServerFactory
from tests.helpers import TIMEOUT, target_for


async def still_serves(running: RunningServers, protocol: str = "h2") -> None:
    client = make_client(protocol, target_for(running, protocol))
    try:
        record = await client.request(Request(path="/bytes/1000"))
    finally:
        await client.close()
    assert record.ok, record.error_detail


async def raw_exchange(
    port: int, payload: bytes, *, tls: ssl.SSLContext | None = None, alpn: str | None = None
) -> bytes:
    """Send `payload` on a fresh connection and read until the server closes it."""
    if tls is not None and alpn:
        tls.set_alpn_protocols([alpn])
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=tls, server_hostname="localhost" if tls else None
    )
    writer.write(payload)
    await writer.drain()
    received = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), TIMEOUT):
            received += chunk
    except ConnectionResetError:
        pass  # closed with our garbage unread: still a close, after what it said
    finally:
        writer.close()
    return received


def server_lines(caplog: pytest.LogCaptureFixture, words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "protolab.server" and words in r.getMessage()]


@pytest.mark.asyncio
async def test_malformed_request_line_gets_400(
    lab_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "protolab.server")
    async with lab_server(certs=None, protocols=("h1", "h2")) as running:
        answer = await raw_exchange(running.port("h1"), b"GARBAGE WITHOUT VERSION\r\n\r\n")
        await still_serves(running, "h1")
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"bad request" in answer
    assert len(server_lines(caplog, "bad request")) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", ["h1", "h2", "h3"])
async def test_oversized_headers_get_431(lab_server: ServerFactory, protocol: str) -> None:
    huge = (("x-filler", "a" * 20_000),)
    async with lab_server() as running:
        client = make_client(protocol, target_for(running, protocol))
        try:
            record = await client.request(Request(path="/bytes/10", headers=huge))
        finally:
            await client.close()
        await still_serves(running, protocol)
    assert record.status == 431


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", ["h1", "h2", "h3"])
async def test_oversized_body_gets_413(lab_server: ServerFactory, protocol: str) -> None:
    from protolab.workload import Limits

    async with lab_server(limits=Limits(max_body_bytes=1000)) as running:
        client = make_client(protocol, target_for(running, protocol))
        try:
            record = await client.request(Request(method="POST", path="/echo", body=b"x" * 5000))
            ok = await client.request(Request(method="POST", path="/echo", body=b"x" * 500))
        finally:
            await client.close()
        await still_serves(running, protocol)
    assert record.status == 413
    assert ok.status == 200


@pytest.mark.asyncio
async def test_garbage_http2_preface_is_refused(
    lab_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "protolab.server")
    async with lab_server() as running:
        assert running.certs is not None
        tls = ssl.create_default_context(cafile=str(running.certs.ca_file))
        answer = await raw_exchange(running.port("h1"), b"\x00" * 64, tls=tls, alpn="h2")
        await still_serves(running, "h2")
    # The server spoke HTTP/2 back (its SETTINGS, then GOAWAY) and closed.
    goaway = 0x7
    assert goaway in _frame_types(answer)
    assert len(server_lines(caplog, "connection error PROTOCOL_ERROR")) == 1


def _frame_types(data: bytes) -> list[int]:
    types, pos = [], 0
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos:pos + 3], "big")
        types.append(data[pos + 3])
        pos += 9 + length
    return types


@pytest.mark.asyncio
async def test_random_datagrams_at_the_http3_port(
    lab_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "protolab.server")
    async with lab_server() as running:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for size in (1, 7, 100, 1200, 1500):
                for _ in range(20):
                    sock.sendto(os.urandom(size), ("127.0.0.1", running.port("h3")))
        await still_serves(running, "h3")
        dropped = running.h3_stats.undecodable_datagrams
    assert dropped > 0
    # Logged, but rate-limited: far fewer lines than datagrams.
    assert 1 <= len(server_lines(caplog, "undecodable datagram")) <= 8


@pytest.mark.asyncio
@pytest.mark.parametrize("tls", [False, True])
async def test_silent_client_is_dropped(
    lab_server: ServerFactory, caplog: pytest.LogCaptureFixture, tls: bool
) -> None:
    caplog.set_level(logging.INFO, "protolab.server")
    overrides: dict[str, object] = {"idle_timeout": 0.5}
    if not tls:
        overrides.update(certs=None, protocols=("h1", "h2"))
    async with lab_server(**overrides) as running:
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port("h1"))
        serving = asyncio.create_task(still_serves(running, "h1"))
        # The silent connection is closed by the server (EOF), not left open forever.
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
        writer.close()
        await serving
    # One line either way: silent before HTTP, or before a TLS handshake (servers/tls.py).
    assert len(server_lines(caplog, "closing")) == 1
