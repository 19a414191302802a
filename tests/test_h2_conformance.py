"""HTTP/2 server conformance, h2spec style: raw frames over a socket, one test per RFC 9113
rule, each expecting the error code the RFC names.

h2spec itself (a Go program) has no Debian 12 package and nothing on PyPI or npm, so it
is not part of the suite; run out of tree against `protolab serve` it passes all 146
cases over TLS and on an h2c-only port. These tests send the frames it would send. A
connection error is one GOAWAY with the RFC's code and then EOF; a stream error is
RST_STREAM and the connection goes on.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

import hpack
import pytest
from h2.errors import ErrorCodes

from servers.common import H2Settings
from servers.h2frames import PREFACE, FrameHeaderCheck
from servers.run import RunningServers
from tests.conftest import ServerFactory
from tests.helpers import TIMEOUT
from tests.test_bad_input import raw_exchange, server_lines, still_serves

DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1


def frame(kind: int, flags: int, stream: int, payload: bytes = b"", *,
          length: int | None = None) -> bytes:
    """A frame as bytes; `length` may lie about the payload (the payload is not sent)."""
    size = len(payload) if length is None else length
    return struct.pack(">I", size)[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def request_headers(stream: int, *, end_stream: bool = True, path: str = "/bytes/10") -> bytes:
    block = hpack.Encoder().encode([(":method", "GET"), (":scheme", "http"), (":path", path),
                                    (":authority", "lab")])
    return frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), stream, block)


@dataclass
class Frame:
    kind: int
    flags: int
    stream: int
    payload: bytes

    @property
    def error_code(self) -> int:
        """GOAWAY: last stream id, then the code; RST_STREAM: the code."""
        at = 4 if self.kind == GOAWAY else 0
        return int.from_bytes(self.payload[at:at + 4], "big")


@dataclass
class RawH2:
    """A client that speaks HTTP/2 frames and nothing else (h2c, prior knowledge)."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    frames: list[Frame] = field(default_factory=list)
    eof: bool = False
    _buffer: bytes = b""

    async def send(self, *frames: bytes) -> None:
        self.writer.write(b"".join(frames))
        await self.writer.drain()

    async def next_frame(self) -> Frame | None:
        """The server's next frame, or None at EOF."""
        while len(self._buffer) < 9 or len(self._buffer) < 9 + int.from_bytes(
                self._buffer[:3], "big"):
            try:
                data = await asyncio.wait_for(self.reader.read(65_536), TIMEOUT)
            except ConnectionResetError:
                data = b""
            if not data:
                self.eof = True
                return None
            self._buffer += data
        size = int.from_bytes(self._buffer[:3], "big")
        got = Frame(self._buffer[3], self._buffer[4],
                    int.from_bytes(self._buffer[5:9], "big") & 0x7FFF_FFFF,
                    self._buffer[9:9 + size])
        self._buffer = self._buffer[9 + size:]
        self.frames.append(got)
        return got

    async def until(self, kind: int, stream: int | None = None) -> Frame | None:
        while (got := await self.next_frame()) is not None:
            if got.kind == kind and (stream is None or got.stream == stream):
                return got
        return None

    async def goaways_then_eof(self) -> list[Frame]:
        """Every GOAWAY until the server closes the connection."""
        while await self.next_frame() is not None:
            pass
        return [f for f in self.frames if f.kind == GOAWAY]


@asynccontextmanager
async def raw_h2(running: RunningServers, *, ack_settings: bool = False,
                 settings: bytes = b"") -> AsyncIterator[RawH2]:
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port("h2"))
    client = RawH2(reader, writer)
    try:
        await client.send(PREFACE, frame(SETTINGS, 0, 0, settings))
        if ack_settings:  # from then on the server holds us to its own SETTINGS
            assert await client.until(SETTINGS) is not None
            await client.send(frame(SETTINGS, ACK, 0))
        yield client
    finally:
        writer.close()


def h2c(lab_server: ServerFactory, **h2: int) -> AbstractAsyncContextManager[RunningServers]:
    return lab_server(certs=None, protocols=("h1", "h2"), h2=H2Settings(**h2))


async def connection_error(client: RawH2) -> ErrorCodes:
    """The one GOAWAY's error code (a second GOAWAY would contradict the first)."""
    goaways = await client.goaways_then_eof()
    assert len(goaways) == 1, [ErrorCodes(g.error_code).name for g in goaways]
    assert client.eof
    return ErrorCodes(goaways[0].error_code)


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", [DATA, HEADERS, 0xFA])
async def test_rfc9113_4_2_a_frame_over_max_frame_size_is_refused_from_its_header(
    lab_server: ServerFactory, caplog: pytest.LogCaptureFixture, kind: int
) -> None:
    caplog.set_level(logging.INFO, "protolab.server")
    async with h2c(lab_server) as running:
        async with raw_h2(running) as client:
            # Only the 9-byte header of a 16 MiB frame: the answer comes before any payload
            # is sent, so the server cannot have buffered it.
            await client.send(request_headers(1, end_stream=False),
                              frame(kind, 0, 1, length=16_777_215))
            assert await connection_error(client) is ErrorCodes.FRAME_SIZE_ERROR
        await still_serves(running)
    lines = server_lines(caplog, "FRAME_SIZE_ERROR")
    assert len(lines) == 1
    assert "16777215 bytes" in lines[0]


@pytest.mark.asyncio
async def test_rfc9113_4_2_a_frame_within_a_larger_advertised_limit_is_accepted(
    lab_server: ServerFactory,
) -> None:
    async with h2c(lab_server, max_frame_size=1 << 16) as running:
        async with raw_h2(running, ack_settings=True) as client:
            await client.send(request_headers(1, end_stream=False),
                              frame(DATA, END_STREAM, 1, b"x" * 40_000))
            answer = await client.until(HEADERS, stream=1)
    assert answer is not None  # answered, not refused


@pytest.mark.asyncio
async def test_rfc9113_3_4_a_second_connection_preface_is_protocol_error(
    lab_server: ServerFactory,
) -> None:
    async with h2c(lab_server) as running:
        async with raw_h2(running) as client:
            await client.send(PREFACE)
            assert await connection_error(client) is ErrorCodes.PROTOCOL_ERROR
        await still_serves(running)


@pytest.mark.asyncio
async def test_rfc9113_3_4_an_invalid_preface_on_an_h2c_only_port_closes_the_connection(
    lab_server: ServerFactory,
) -> None:
    # h2spec http2/3.5/2's bytes. RFC 9113 §3.4 lets the GOAWAY be omitted: a peer that
    # does not open with the preface is not speaking HTTP/2.
    async with lab_server(certs=None, protocols=("h2",)) as running:
        answer = await raw_exchange(running.port("h2"), b"INVALID CONNECTION PREFACE\r\n\r\n")
        await still_serves(running)
    assert answer == b""


@pytest.mark.asyncio
async def test_an_invalid_preface_on_a_shared_cleartext_port_is_read_as_http_1_1(
    lab_server: ServerFactory,
) -> None:
    # The same bytes where h1 shares the port: not the preface, so an HTTP/1.1 request
    # (RFC 9113 §3.3 tells h2c by its preface) and a 400. h2spec's http2/3.5/2 assumes an
    # h2c-only port and fails here: it reads "HTTP/1.1 400" as a frame header.
    async with h2c(lab_server) as running:
        answer = await raw_exchange(running.port("h2"), b"INVALID CONNECTION PREFACE\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")


@pytest.mark.asyncio
async def test_rfc9113_6_5_settings_on_a_stream_is_protocol_error(
    lab_server: ServerFactory,
) -> None:
    async with h2c(lab_server) as running:
        async with raw_h2(running) as client:
            await client.send(frame(SETTINGS, 0, 1))
            assert await connection_error(client) is ErrorCodes.PROTOCOL_ERROR


@pytest.mark.asyncio
async def test_rfc9113_4_1_garbage_after_the_preface_is_refused_at_once(
    lab_server: ServerFactory,
) -> None:
    # Read as a frame header, 0xff bytes announce a frame of 16 MiB: refused from its size.
    async with h2c(lab_server) as running:
        async with raw_h2(running) as client:
            await client.send(b"\xff" * 50)
            assert await connection_error(client) is ErrorCodes.FRAME_SIZE_ERROR


@pytest.mark.asyncio
async def test_rfc9113_6_7_a_ping_of_the_wrong_length_is_frame_size_error(
    lab_server: ServerFactory,
) -> None:
    async with h2c(lab_server) as running:
        async with raw_h2(running) as client:
            await client.send(frame(PING, 0, 0, b"1234567"))
            assert await connection_error(client) is ErrorCodes.FRAME_SIZE_ERROR


@pytest.mark.asyncio
async def test_rfc9113_6_9_data_beyond_the_flow_control_window_is_flow_control_error(
    lab_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "protolab.server")
    # Windows of 65,535 bytes and frames up to 64 KiB: one DATA frame overruns both.
    async with h2c(lab_server, window=65_535, connection_window=65_535,
                   max_frame_size=1 << 17) as running:
        async with raw_h2(running, ack_settings=True) as client:
            await client.send(request_headers(1, end_stream=False),
                              frame(DATA, 0, 1, b"x" * 65_536))
            assert await connection_error(client) is ErrorCodes.FLOW_CONTROL_ERROR
        await still_serves(running)
    assert len(server_lines(caplog, "FLOW_CONTROL_ERROR")) == 1


@pytest.mark.asyncio
async def test_rfc9113_6_9_1_connection_window_over_2_31_minus_1_is_flow_control_error(
    lab_server: ServerFactory,
) -> None:
    increment = struct.pack(">I", 2**31 - 1)
    async with h2c(lab_server) as running:
        async with raw_h2(running) as client:
            await client.send(frame(WINDOW_UPDATE, 0, 0, increment))
            assert await connection_error(client) is ErrorCodes.FLOW_CONTROL_ERROR


@pytest.mark.asyncio
async def test_rfc9113_6_9_1_stream_window_over_2_31_minus_1_resets_only_that_stream(
    lab_server: ServerFactory,
) -> None:
    increment = struct.pack(">I", 2**31 - 1)
    async with h2c(lab_server) as running:
        async with raw_h2(running) as client:
            await client.send(request_headers(1, end_stream=False),
                              frame(WINDOW_UPDATE, 0, 1, increment))
            reset = await client.until(RST_STREAM, stream=1)
            assert reset is not None
            assert ErrorCodes(reset.error_code) is ErrorCodes.FLOW_CONTROL_ERROR
            # A stream error: the connection goes on and answers the next request.
            await client.send(request_headers(3))
            assert await client.until(HEADERS, stream=3) is not None


@pytest.mark.asyncio
async def test_rfc9113_5_1_headers_on_a_stream_closed_by_end_stream_is_stream_closed(
    lab_server: ServerFactory,
) -> None:
    async with h2c(lab_server) as running:
        async with raw_h2(running) as client:
            await client.send(request_headers(1))
            while (got := await client.next_frame()) is not None:  # the whole response
                if got.stream == 1 and got.flags & END_STREAM:
                    break
            await client.send(request_headers(1))
            assert await connection_error(client) is ErrorCodes.STREAM_CLOSED


@pytest.mark.asyncio
async def test_rfc9113_5_1_headers_on_a_half_closed_stream_resets_it_with_stream_closed(
    lab_server: ServerFactory,
) -> None:
    async with h2c(lab_server) as running:
        async with raw_h2(running) as client:
            # The second HEADERS arrives while the first request is still being answered.
            await client.send(request_headers(1, path="/delay/200/bytes/10"),
                              request_headers(1))
            reset = await client.until(RST_STREAM, stream=1)
    assert reset is not None
    assert ErrorCodes(reset.error_code) is ErrorCodes.STREAM_CLOSED


def test_frame_headers_split_across_reads_are_followed() -> None:
    check = FrameHeaderCheck(16_384)
    wire = (PREFACE + frame(SETTINGS, 0, 0) + frame(DATA, 0, 1, b"x" * 100)
            + frame(DATA, 0, 1, length=20_000))
    refusals = [check.feed(wire[i:i + 1]) for i in range(len(wire))]
    found = [(i, r) for i, r in enumerate(refusals) if r is not None]
    assert len(found) == 1  # at the oversized header's last byte, not before
    at, refusal = found[0]
    assert at == len(wire) - 1
    assert refusal.code is ErrorCodes.FRAME_SIZE_ERROR
    assert refusal.offset == -8  # its header began 8 bytes before this read


def test_a_refusal_says_where_the_refused_frame_starts() -> None:
    check = FrameHeaderCheck(16_384)
    good = PREFACE + frame(SETTINGS, 0, 0)
    refusal = check.feed(good + frame(HEADERS, END_HEADERS, 1, length=1 << 20))
    assert refusal is not None
    assert refusal.offset == len(good)
    assert "HEADERS frame of 1048576 bytes" in refusal.reason
