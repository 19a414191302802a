"""WebSocket: the lab's client against the lab's server over ws:// and wss://, and bad input."""

from __future__ import annotations

import asyncio
import base64
import os

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from protolab.core.record import Request, RequestRecord
from protolab.registry import make_client
from servers.common import WsSettings
from servers.run import RunningServers
from tests.conftest import ServerFactory
from tests.helpers import TIMEOUT, target_for

TLS = pytest.mark.parametrize("tls", [True, False], ids=["wss", "ws"])


async def ws_request(running: RunningServers, *requests: Request, **options: object) -> list[
        RequestRecord]:
    client = make_client("ws", target_for(running, "ws"), **options)
    try:
        return [await client.request(r) for r in requests]
    finally:
        await client.close()


@pytest.mark.asyncio
@TLS
async def test_echo_round_trips_on_one_connection(lab_server: ServerFactory, tls: bool) -> None:
    async with lab_server(protocols=("ws",), **({} if tls else {"certs": None})) as running:
        body = os.urandom(3000)
        first, second = await ws_request(
            running,
            Request("POST", "/echo?count=5", body),
            Request("POST", "/echo?count=3", body),
        )
    assert first.ok, first.error_detail
    assert second.ok, second.error_detail
    assert first.status == 101
    assert first.tls_version == ("TLSv1.3" if tls else None)
    # Phases in order: TCP, TLS, upgrade, then the messages; the second request reuses it.
    assert first.new_connection
    assert not second.new_connection
    assert first.connection_id == second.connection_id
    stamps = [first.conn_start_ns, first.connected_ns, first.upgraded_ns,
              first.request_sent_ns, first.done_ns]
    assert all(s is not None for s in stamps)
    assert stamps == sorted(stamps)  # type: ignore[type-var]
    assert [m.seq for m in first.messages] == [1, 2, 3, 4, 5]
    assert all(m.size == 3000 for m in first.messages)
    assert all(m.sent_ns is not None and m.sent_ns < m.received_ns for m in first.messages)
    # Bytes on the wire: 3000 + 4 header bytes per server frame; client frames add a
    # 4-byte mask; the first request also carries the upgrade exchange.
    assert second.bytes_in == 3 * (3000 + 4)
    assert second.bytes_out == 3 * (3000 + 8)
    assert first.bytes_in > 5 * (3000 + 4) + 100


@pytest.mark.asyncio
@TLS
async def test_push_carries_sequence_and_server_stamps(
    lab_server: ServerFactory, tls: bool
) -> None:
    async with lab_server(protocols=("ws",), **({} if tls else {"certs": None})) as running:
        (record,) = await ws_request(
            running, Request(path="/push?count=20&size=100&interval_ms=5", keep_body=True))
    assert record.ok, record.error_detail
    assert [m.seq for m in record.messages] == list(range(1, 21))
    for m in record.messages:
        assert m.born_ns is not None
        assert m.sent_ns is not None
        assert m.born_ns <= m.sent_ns < m.received_ns  # one host, one monotonic clock
        assert m.received_ns - m.sent_ns < TIMEOUT * 1e9
    born = [m.born_ns or 0 for m in record.messages]
    assert born[-1] - born[0] == 19 * 5_000_000  # the schedule is exact; sending is not
    assert record.content is not None
    assert record.content.count(b"\n") == 20


@pytest.mark.asyncio
async def test_push_as_fast_as_possible(lab_server: ServerFactory) -> None:
    async with lab_server(protocols=("ws",)) as running:
        (record,) = await ws_request(
            running, Request(path="/push?count=2000&size=16&interval_ms=0"))
    assert record.ok, record.error_detail
    assert [m.seq for m in record.messages] == list(range(1, 2001))


@pytest.mark.asyncio
async def test_permessage_deflate_shrinks_compressible_messages(
    lab_server: ServerFactory,
) -> None:
    body = b"protolab " * 2000
    async with lab_server(protocols=("ws",), ws=WsSettings(compression=True)) as running:
        (plain,) = await ws_request(running, Request("POST", "/echo?count=2", body))
        (deflated,) = await ws_request(
            running, Request("POST", "/echo?count=2", body), compression=True)
    assert plain.ok, plain.error_detail
    assert deflated.ok, deflated.error_detail
    assert plain.bytes_in > 2 * len(body)
    assert deflated.bytes_in < len(body) / 10
    assert [m.size for m in deflated.messages] == [len(body)] * 2  # inflated again


async def still_echoes(running: RunningServers) -> None:
    (record,) = await ws_request(running, Request("POST", "/echo", b"still here"))
    assert record.ok, record.error_detail


@pytest.mark.asyncio
async def test_message_over_the_limit_closes_1009(lab_server: ServerFactory) -> None:
    async with lab_server(protocols=("ws",), ws=WsSettings(max_message=1024)) as running:
        (record,) = await ws_request(running, Request("POST", "/echo", b"x" * 1025))
        await still_echoes(running)
    assert record.error == "message_too_big"
    assert "1009" in (record.error_detail or "")


async def raw_ws(port: int, frames: bytes) -> bytes:
    """Upgrade by hand, send raw `frames`, return everything the server sent after the 101."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 101 ")
    writer.write(frames)
    received = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), TIMEOUT):
            received += chunk
    finally:
        writer.close()
    return received


def close_code(frame: bytes) -> int:
    assert frame[0] == 0x88, f"not a close frame: {frame[:4]!r}"  # FIN + opcode 8
    return int.from_bytes(frame[2:4], "big")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("frames", "why"),
    [
        (b"\x82\x05hello", "unmasked client frame (RFC 6455 §5.1)"),
        (b"\x83\x80abcd", "reserved opcode 3"),
        (b"\xc2\x80abcd", "RSV1 set without an extension"),
        (b"\x09\x80abcd", "fragmented ping (control frames must not be)"),
    ],
    ids=["unmasked", "opcode", "rsv1", "fragmented-control"],
)
async def test_invalid_frames_close_1002(
    lab_server: ServerFactory, frames: bytes, why: str
) -> None:
    async with lab_server(protocols=("ws",), certs=None) as running:
        answer = await raw_ws(running.port("ws"), frames)
        await still_echoes(running)
    assert close_code(answer) == 1002, why


@pytest.mark.asyncio
async def test_non_upgrade_request_gets_426(lab_server: ServerFactory) -> None:
    async with lab_server(protocols=("ws",), certs=None) as running:
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port("ws"))
        writer.write(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(65536), TIMEOUT)
        writer.close()
        await still_echoes(running)
    assert answer.startswith(b"HTTP/1.1 426 ")
    assert b"upgrade: websocket" in answer.lower()


@pytest.mark.asyncio
async def test_unknown_path_and_bad_push_are_refused_before_upgrade(
    lab_server: ServerFactory,
) -> None:
    async with lab_server(protocols=("ws",)) as running:
        missing, bad = await ws_request(
            running, Request(path="/push?count=x"), Request("POST", "/echo", b"ok"))
        (unknown,) = await ws_request(running, Request(path="/push?size=9999999999"))
    assert missing.error == "upgrade_rejected"
    assert missing.status == 400
    assert bad.ok
    assert unknown.status == 400


@pytest.mark.asyncio
async def test_idle_connection_closed_1001(lab_server: ServerFactory) -> None:
    async with lab_server(protocols=("ws",), certs=None, idle_timeout=0.2) as running:
        async with connect(f"ws://127.0.0.1:{running.port('ws')}/echo") as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1001
