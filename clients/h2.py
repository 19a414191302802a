"""HTTP/2 client on h2: one connection, every request a stream, windows as configured.

httpcore leaves stream windows at 65,535 bytes — about 5 Mbit/s per stream at 100 ms
RTT — so the defaults here are sized well above the bandwidth-delay product of the
lab's links (DESIGN.md, fair comparisons); both are recorded options.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import ClassVar

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from clients.base import NextTurn, timed_exchange
from clients.tcp import TcpConnection, open_tcp, tls_context_for
from protolab.core.record import Request, RequestRecord, Target, Timeline
from protolab.errors import ConfigError, ProtocolFailure
from protolab.tcpsock import DEFAULT_CC
from protolab.timing import now_ns

_READ = 65_536
_PREFACE_LEN = 24


@dataclass(frozen=True)
class H2Options:
    window: int = 4 << 20  # stream flow-control window (SETTINGS_INITIAL_WINDOW_SIZE)
    connection_window: int = 16 << 20
    max_frame_size: int = 16_384
    cc: str = DEFAULT_CC
    timeout: float = 60.0
    resume: bool = False  # offer the last connection's TLS session on a new connection

    def __post_init__(self) -> None:
        if not 65_535 <= self.window <= 2**31 - 1:
            raise ConfigError("HTTP/2 initial window must be 65535..2^31-1 bytes")
        if not 65_535 <= self.connection_window <= 2**31 - 1:
            raise ConfigError("HTTP/2 connection window must be 65535..2^31-1 bytes")


class FrameMeter:
    """Counts HTTP/2 frame bytes (9-byte header + payload) per stream in a byte stream."""

    def __init__(self, skip: int = 0) -> None:
        self.per_stream: defaultdict[int, int] = defaultdict(int)
        self._skip = skip  # the client connection preface is not a frame
        self._header = b""
        self._left = 0  # payload bytes still to come for the current frame
        self._stream = 0

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._skip:
                n = min(self._skip, len(view))
                self._skip -= n
                view = view[n:]
            elif self._left:
                n = min(self._left, len(view))
                self._left -= n
                self.per_stream[self._stream] += n
                view = view[n:]
            else:
                need = 9 - len(self._header)
                self._header += bytes(view[:need])
                view = view[need:]
                if len(self._header) == 9:
                    self._left = int.from_bytes(self._header[:3], "big")
                    self._stream = int.from_bytes(self._header[5:9], "big") & 0x7FFF_FFFF
                    self.per_stream[self._stream] += 9
                    self._header = b""


@dataclass
class _Stream:
    timeline: Timeline
    done: asyncio.Future[None]


@dataclass
class _Connection:
    tcp: TcpConnection
    h2: h2.connection.H2Connection
    number: int
    streams: dict[int, _Stream] = field(default_factory=dict)
    meter_in: FrameMeter = field(default_factory=FrameMeter)
    meter_out: FrameMeter = field(default_factory=lambda: FrameMeter(skip=_PREFACE_LEN))
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    alive: bool = True
    reader_task: asyncio.Task[None] | None = None
    flush_soon: NextTurn = field(init=False)

    def __post_init__(self) -> None:
        self.flush_soon = NextTurn(self.flush)  # requests made together share one write

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.meter_out.feed(data)
            self.tcp.writer.write(data)

    def fail_all(self, kind: str, detail: str) -> None:
        self.alive = False
        for stream in self.streams.values():
            stream.timeline.fail(kind, detail)
            if not stream.done.done():
                stream.done.set_result(None)
        self.streams.clear()
        self.changed.set()


class H2Client:
    name: ClassVar[str] = "h2"

    def __init__(self, target: Target, options: H2Options | None = None) -> None:
        self.target, self.options = target, options or H2Options()
        self._tls = tls_context_for(target, ["h2"])
        self._conn: _Connection | None = None
        self._lock = asyncio.Lock()
        self._numbers = 0

    async def request(self, request: Request) -> RequestRecord:
        return await timed_exchange(self.name, request, self._exchange, self.options.timeout)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(h2.exceptions.ProtocolError, ConnectionError, OSError):
            conn.h2.close_connection()
            conn.flush()
        conn.fail_all("closed", "client closed")
        if conn.reader_task is not None:
            conn.reader_task.cancel()
        conn.tcp.writer.close()
        await conn.tcp.wait_closed()

    async def _connection(self, tl: Timeline) -> _Connection:
        async with self._lock:
            if self._conn is not None and self._conn.alive:
                self._conn.tcp.stamp(tl, new=False)
                return self._conn
            tcp = await open_tcp(self.target, self._tls, self.options.cc, self.options.timeout)
            if self.target.tls and tcp.alpn != "h2":
                tcp.writer.close()
                raise ProtocolFailure("alpn", f"server chose ALPN {tcp.alpn!r}, not h2")
            self._numbers += 1
            conn = _Connection(tcp, self._new_h2(), self._numbers)
            conn.h2.initiate_connection()
            extra = self.options.connection_window - 65_535
            if extra > 0:
                conn.h2.increment_flow_control_window(extra)
            conn.flush()
            conn.reader_task = asyncio.create_task(self._read_loop(conn))
            tcp.stamp(tl, new=True)
            self._conn = conn
            return conn

    def _new_h2(self) -> h2.connection.H2Connection:
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        conn.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: self.options.window,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: self.options.max_frame_size,
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
            },
        )
        return conn

    async def _exchange(self, request: Request, tl: Timeline) -> None:
        conn = await self._connection(tl)
        tl.connection_id = conn.number
        # Wait for a stream slot under the server's SETTINGS_MAX_CONCURRENT_STREAMS.
        settings = conn.h2.remote_settings
        while conn.alive and conn.h2.open_outbound_streams >= settings.max_concurrent_streams:
            conn.changed.clear()
            await conn.changed.wait()
        if not conn.alive:
            raise ProtocolFailure("connection_lost", "connection closed before the request")
        sid = conn.h2.get_next_available_stream_id()
        tl.stream_id = sid
        stream = _Stream(tl, asyncio.get_running_loop().create_future())
        conn.streams[sid] = stream
        scheme = "https" if self.target.tls else "http"
        headers = [
            (b":method", request.method.encode()), (b":scheme", scheme.encode()),
            (b":authority", self.target.authority.encode()), (b":path", request.path.encode()),
            (b"user-agent", b"protolab"),
            *((n.encode(), v.encode()) for n, v in request.headers),
        ]
        if request.body or request.method in ("POST", "PUT"):
            headers.append((b"content-length", str(len(request.body)).encode()))
        conn.h2.send_headers(sid, headers, end_stream=not request.body)
        await conn.flush_soon()
        await self._send_body(conn, sid, request.body)
        await conn.tcp.writer.drain()
        tl.request_sent_ns = now_ns()
        try:
            await stream.done
        finally:
            tl.bytes_out = conn.meter_out.per_stream.pop(sid, 0)
            tl.bytes_in = conn.meter_in.per_stream.pop(sid, 0)
            tl.transport = conn.tcp.counters()
            if self.options.resume:
                conn.tcp.keep_session(self._tls)
            conn.streams.pop(sid, None)
            conn.changed.set()

    async def _send_body(self, conn: _Connection, sid: int, body: bytes) -> None:
        view = memoryview(body)
        while view:
            window = conn.h2.local_flow_control_window(sid)
            if window <= 0:
                conn.changed.clear()
                await conn.changed.wait()
                if not conn.alive:
                    raise ProtocolFailure("connection_lost", "connection closed mid-request")
                continue
            n = min(window, conn.h2.max_outbound_frame_size, len(view))
            conn.h2.send_data(sid, bytes(view[:n]), end_stream=n == len(view))
            view = view[n:]
            conn.flush()
            await conn.tcp.writer.drain()

    async def _read_loop(self, conn: _Connection) -> None:
        try:
            while conn.alive:
                data = await conn.tcp.reader.read(_READ)
                if not data:
                    conn.fail_all("connection_closed", "server closed the connection")
                    return
                conn.meter_in.feed(data)
                for event in conn.h2.receive_data(data):
                    self._on_event(conn, event)
                conn.flush()
        except h2.exceptions.ProtocolError as exc:
            conn.fail_all("protocol_error", f"HTTP/2 protocol error: {exc}")
        except (ConnectionError, OSError) as exc:
            conn.fail_all("connection_lost", str(exc))

    def _on_event(self, conn: _Connection, event: h2.events.Event) -> None:
        sid = getattr(event, "stream_id", None)
        stream = conn.streams.get(sid) if sid else None
        if isinstance(event, h2.events.ResponseReceived) and stream:
            stream.timeline.first_byte()
            status = dict(event.headers or []).get(b":status", b"0")
            stream.timeline.status = int(status)
        elif isinstance(event, h2.events.DataReceived) and sid is not None:
            conn.h2.acknowledge_received_data(event.flow_controlled_length or 0, sid)
            if stream:
                stream.timeline.body(event.data or b"")
        elif isinstance(event, h2.events.StreamEnded) and stream:
            stream.timeline.done_ns = now_ns()
            stream.done.set_result(None)
        elif isinstance(event, h2.events.StreamReset) and stream:
            stream.timeline.fail("stream_reset", f"server reset stream {sid} ({event.error_code})")
            stream.done.set_result(None)
        elif isinstance(event, h2.events.ConnectionTerminated):
            conn.fail_all("goaway", f"server sent GOAWAY ({event.error_code!r})")
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            conn.changed.set()
