"""WebSocket client: websockets' sans-IO protocol over the lab's own timed TCP/TLS streams.

Driving `websockets.client.ClientProtocol` over `open_tcp` keeps the lab's clock in
charge of every phase (TCP connect, TLS, upgrade done, each message) and lets the
client count every byte of WebSocket framing it writes and reads (TLS records not
included, as for the HTTP clients).

A `Request` maps onto an exchange by its path, as on the server:

  /echo[?count=K]   (body = the message) K round trips on the client's persistent echo
                    connection; one `MessageTiming` per round trip (sent/received on
                    the client's clock: RTT). Any other path but /push is an echo
                    exchange too, upgraded at that path: the server says whether it
                    serves it (a refusal is "upgrade_rejected" with its HTTP status).
  /push?count=M&size=S&interval_ms=I
                    a fresh connection that receives M events until the server's close;
                    one `MessageTiming` per event with the server's born/sent stamps
                    (one-way delay on one host)
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHandshake, InvalidStatus, ProtocolError
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from clients.base import timed_exchange
from clients.tcp import TcpConnection, open_tcp, tls_context_for
from protolab.core.record import MessageTiming, Request, RequestRecord, Target, Timeline
from protolab.errors import ConfigError, ProtocolFailure
from protolab.events import decode_event
from protolab.tcpsock import DEFAULT_CC
from protolab.timing import now_ns

_READ = 65_536


@dataclass(frozen=True)
class WsOptions:
    compression: bool = False  # offer permessage-deflate
    max_message: int = 16 << 20  # largest message accepted from the server
    cc: str = DEFAULT_CC
    timeout: float = 60.0  # per request, seconds
    binary: bool = True  # echo messages as binary frames (False: text, body must be UTF-8)

    def __post_init__(self) -> None:
        if self.max_message < 125:
            raise ConfigError("WebSocket max message size must be at least 125 bytes")


@dataclass(eq=False)
class _Connection:
    tcp: TcpConnection
    protocol: ClientProtocol
    number: int
    messages: asyncio.Queue[tuple[int, Frame] | None] = field(default_factory=asyncio.Queue)
    bytes_in: int = 0  # WebSocket bytes read (handshake response and frames)
    bytes_out: int = 0
    reader_task: asyncio.Task[None] | None = None
    upgrade_response: Response | None = None
    path: str = "/echo"  # the path it was upgraded at
    failure: ProtocolFailure | None = None  # why the reader stopped, when a read failed

    def flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data and not self.tcp.writer.is_closing():  # b"" = half-close; TLS cannot
                self.tcp.writer.write(data)
                self.bytes_out += len(data)

    def close(self) -> None:
        if self.reader_task is not None:
            self.reader_task.cancel()
        self.tcp.writer.close()


class WsClient:
    name: ClassVar[str] = "ws"

    def __init__(self, target: Target, options: WsOptions | None = None) -> None:
        self.target, self.options = target, options or WsOptions()
        self._tls = tls_context_for(target, ["http/1.1"])
        self._echo: _Connection | None = None
        self._echo_lock = asyncio.Lock()
        self._others: set[_Connection] = set()
        self._numbers = 0

    async def request(self, request: Request) -> RequestRecord:
        return await timed_exchange(
            self.name, request, self._exchange, self.options.timeout, self._retire_echo
        )

    def _retire_echo(self, tl: Timeline) -> None:
        """After a timeout the echo connection's state is unknown: do not reuse it."""
        if self._echo is not None and self._echo.number == tl.connection_id:
            self._echo.close()
            self._echo = None

    async def close(self) -> None:
        for conn in [self._echo, *self._others]:
            if conn is not None:
                await self._close_conn(conn)
        self._echo = None
        self._others.clear()

    async def _exchange(self, request: Request, tl: Timeline) -> None:
        split = urlsplit(request.path)
        if split.path == "/push":
            await self._push(request, tl)
        else:
            raw = parse_qs(split.query).get("count", ["1"])[0]
            if not raw.isdigit() or not 1 <= int(raw) <= 1_000_000:
                raise ProtocolFailure("bad_request", f"echo count must be 1..1000000: {raw!r}")
            async with self._echo_lock:
                await self._echo_exchange(request, split.path or "/", int(raw), tl)

    async def _echo_exchange(
        self, request: Request, path: str, count: int, tl: Timeline
    ) -> None:
        conn = self._echo
        if conn is None or conn.protocol.state is not State.OPEN or conn.path != path:
            if conn is not None:
                self._echo = None
                await self._close_conn(conn)
            conn = self._echo = await self._connect(path, tl)
            out0 = in0 = 0  # a new connection's record counts its upgrade too
        else:
            self._stamp_reused(conn, tl)
            out0, in0 = conn.bytes_out, conn.bytes_in
        for seq in range(1, count + 1):
            sent = now_ns()
            if self.options.binary:
                conn.protocol.send_binary(request.body)
            else:
                conn.protocol.send_text(request.body)
            conn.flush()
            await conn.tcp.writer.drain()
            if tl.request_sent_ns is None:
                tl.request_sent_ns = now_ns()
            arrived, data = await self._next_message(conn)
            tl.first_byte_ns = tl.first_byte_ns or arrived
            if data != request.body:
                raise ProtocolFailure("echo_mismatch", f"echo {seq} differs from what was sent")
            tl.messages.append(MessageTiming(seq, len(data), sent, arrived))
            self._account(tl, arrived, data)
        tl.done_ns = now_ns()
        tl.bytes_out, tl.bytes_in = conn.bytes_out - out0, conn.bytes_in - in0
        tl.transport = conn.tcp.counters()

    async def _push(self, request: Request, tl: Timeline) -> None:
        conn = await self._connect(request.path, tl)
        self._others.add(conn)
        tl.request_sent_ns = tl.upgraded_ns  # the upgrade request was the request
        out0 = in0 = 0  # the upgrade is part of this exchange
        try:
            while True:
                try:
                    arrived, data = await self._next_message(conn)
                except ProtocolFailure as exc:
                    if exc.kind == "closed" and conn.protocol.close_code == 1000:
                        break  # the server's "push complete"
                    raise
                tl.first_byte_ns = tl.first_byte_ns or arrived
                try:
                    event = decode_event(data)
                except (ValueError, KeyError) as exc:
                    raise ProtocolFailure("bad_event", f"push message is not an event: {exc}") \
                        from exc
                tl.messages.append(MessageTiming(
                    event.seq, len(data), event.sent_ns, arrived, event.born_ns))
                self._account(tl, arrived, data)
        finally:
            tl.done_ns = now_ns()
            tl.bytes_out, tl.bytes_in = conn.bytes_out - out0, conn.bytes_in - in0
            tl.transport = conn.tcp.counters()
            self._others.discard(conn)
            await self._close_conn(conn)

    def _account(self, tl: Timeline, arrived: int, data: bytes) -> None:
        """Body bytes, arrivals and kept content per message (content: one message a line)."""
        tl.body_bytes += len(data)
        if tl.request.record_arrivals:
            tl.arrivals.append((arrived, len(data)))
        if tl.request.keep_body:
            tl.content = (tl.content or bytearray()) + data + b"\n"

    async def _connect(self, path: str, tl: Timeline) -> _Connection:
        scheme = "wss" if self.target.tls else "ws"
        uri = parse_uri(f"{scheme}://{self.target.authority}{path}")
        extensions = [ClientPerMessageDeflateFactory()] if self.options.compression else None
        protocol = ClientProtocol(uri, extensions=extensions, max_size=self.options.max_message)
        tcp = await open_tcp(self.target, self._tls, self.options.cc, self.options.timeout)
        self._numbers += 1
        conn = _Connection(tcp, protocol, self._numbers, path=urlsplit(path).path or "/")
        tcp.stamp(tl, new=True)
        tl.connection_id = conn.number
        handshake = protocol.connect()
        handshake.headers["User-Agent"] = "protolab"
        protocol.send_request(handshake)
        conn.flush()
        conn.reader_task = asyncio.create_task(self._read_loop(conn))
        # The reader puts the handshake response first (or None when it failed).
        first = await conn.messages.get()
        response = conn.upgrade_response
        if first is None or protocol.state is not State.OPEN or response is None:
            conn.close()
            if conn.failure is not None and response is None:
                raise conn.failure  # the socket failed before any answer (a key log, ...)
            status = response.status_code if response is not None else None
            tl.status = status
            exc = protocol.handshake_exc
            if isinstance(exc, InvalidStatus) or (status is not None and status != 101):
                answer = f"{status} {response.reason_phrase}" if response else f"{status}"
                said = _first_line(response.body if response is not None else None)
                detail = f"server answered {answer} to the upgrade of {urlsplit(path).path}"
                raise ProtocolFailure("upgrade_rejected", f"{detail}: {said}" if said else detail)
            raise ProtocolFailure("upgrade_failed", f"WebSocket upgrade failed: {exc}")
        tl.status = response.status_code
        tl.upgraded_ns = first[0]
        return conn

    def _stamp_reused(self, conn: _Connection, tl: Timeline) -> None:
        conn.tcp.stamp(tl, new=False)
        tl.connection_id = conn.number
        tl.status = conn.upgrade_response.status_code if conn.upgrade_response else None

    async def _read_loop(self, conn: _Connection) -> None:
        """Feed the protocol; queue the handshake and each complete message with its arrival."""
        fragments: list[bytes] = []
        handshake_seen = False
        try:
            while True:
                data = await conn.tcp.reader.read(_READ)
                arrived = now_ns()
                conn.bytes_in += len(data)
                if data:
                    conn.protocol.receive_data(data)
                else:
                    conn.protocol.receive_eof()
                for event in conn.protocol.events_received():
                    if isinstance(event, Response):
                        conn.upgrade_response = event
                        handshake_seen = True
                        conn.messages.put_nowait((arrived, Frame(Opcode.PONG, b"")))
                    elif isinstance(event, Frame) and event.opcode in (
                        Opcode.TEXT, Opcode.BINARY, Opcode.CONT
                    ):
                        fragments.append(bytes(event.data))
                        if event.fin:
                            message = b"".join(fragments)
                            fragments.clear()
                            conn.messages.put_nowait((arrived, Frame(Opcode.BINARY, message)))
                conn.flush()  # pongs and the close reply the protocol queued
                if not data or conn.protocol.state is State.CLOSED:
                    break
                if conn.protocol.handshake_exc is not None and not handshake_seen:
                    break
        except OSError as exc:
            conn.failure = conn.tcp.lost(exc)
        finally:
            conn.messages.put_nowait(None)

    async def _next_message(self, conn: _Connection) -> tuple[int, bytes]:
        item = await conn.messages.get()
        if item is None:
            conn.messages.put_nowait(None)  # later readers see the end too
            code, reason = conn.protocol.close_code, conn.protocol.close_reason
            exc = conn.protocol.close_exc
            if conn.failure is not None and conn.failure.kind != "connection_lost":
                raise conn.failure
            if isinstance(exc, ProtocolError | InvalidHandshake):
                raise ProtocolFailure("protocol_error", f"ws: {exc}")
            kind = "message_too_big" if code == 1009 else "closed"
            raise ProtocolFailure(kind, f"connection closed ({code} {reason or ''})".strip())
        return item[0], bytes(item[1].data)

    async def _close_conn(self, conn: _Connection) -> None:
        """A normal close (1000) when the connection is still open, then drop it."""
        if conn.protocol.state is State.OPEN:
            with contextlib.suppress(ConnectionError, OSError):
                conn.protocol.send_close(1000)
                conn.flush()
                await conn.tcp.writer.drain()
        conn.close()
        await conn.tcp.wait_closed()


def _first_line(body: bytes | bytearray | None, limit: int = 200) -> str:
    """The first line of a refusal's body, as text, for the record's detail."""
    if not body:
        return ""
    text = body.decode("utf-8", "replace").strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[:limit] + "..."
