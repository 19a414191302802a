"""HTTP/2 client on h2: one connection, every request a stream, windows as configured.

httpcore leaves stream windows at 65,535 bytes — about 5 Mbit/s per stream at 100 ms
RTT — so the defaults here are sized well above the bandwidth-delay product of the
lab's links (DESIGN.md, fair comparisons); both are recorded options.

A server's GOAWAY (nginx sends one after `keepalive_requests`, 1000 by default) is a
graceful end, RFC 9113 §6.8: streams at or below its last stream id complete on the old
connection; streams above it were not processed and are sent again on a new connection,
which also takes every new request. A record whose request was sent again says so in
its transport counters: `retried_after_goaway` = how many times (absent: never).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import ClassVar

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import Frame, GoAwayFrame

from clients.base import NextTurn, timed_exchange
from clients.migration import Move, check_migrate_after
from clients.tcp import TcpConnection, open_tcp, tls_context_for
from protolab.compression import BodyDecoder, check_accept_encoding, with_accept_encoding
from protolab.core.record import Request, RequestRecord, Target, Timeline
from protolab.errors import ConfigError, ProtocolFailure
from protolab.tcpsock import DEFAULT_CC
from protolab.timing import now_ns

_READ = 65_536
_PREFACE_LEN = 24
# A GOAWAY that processed nothing on its connection (last stream id 0) is a refusal: after
# this many the server is failing, not draining. One that processed some requests made
# progress (parallel requests beyond nginx's keepalive_requests are passed over often),
# so only a far larger bound guards against a request never getting its turn.
_REFUSALS = 3
_MAX_RETRIES = 100
RETRIED = "retried_after_goaway"  # transport counter: times the request was sent again


@dataclass(frozen=True)
class H2Options:
    window: int = 4 << 20  # stream flow-control window (SETTINGS_INITIAL_WINDOW_SIZE)
    connection_window: int = 16 << 20
    max_frame_size: int = 16_384
    cc: str = DEFAULT_CC
    timeout: float = 60.0
    resume: bool = False  # offer the last connection's TLS session on a new connection
    # Leave the local address once a response's body passes this many bytes (0: never):
    # the connection dies with it; reconnect and send the request again (clients/migration.py).
    migrate_after_bytes: int = 0
    # After a move, ask only for the rest of the body (Range: bytes=K-) when the response
    # allows it; False: fetch it again whole.
    migrate_resume: bool = True
    # Accept-Encoding to send ("": the request's own, if any); coded bodies are decoded
    # as they arrive (protolab/compression.py): body_bytes stays what crossed the wire.
    accept_encoding: str = ""

    def __post_init__(self) -> None:
        if (why := check_accept_encoding(self.accept_encoding)) is not None:
            raise ConfigError(why)
        if not 65_535 <= self.window <= 2**31 - 1:
            raise ConfigError("HTTP/2 initial window must be 65535..2^31-1 bytes")
        if not 65_535 <= self.connection_window <= 2**31 - 1:
            raise ConfigError("HTTP/2 connection window must be 65535..2^31-1 bytes")
        check_migrate_after(self.migrate_after_bytes, "h2")


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


class _DrainingH2Connection(h2.connection.H2Connection):
    """h2 moves its connection to CLOSED on a received GOAWAY and then rejects every
    frame ("Invalid input RECV_HEADERS in state CLOSED", python-hyper/h2#1181), so the
    responses the server still owes are lost. Here a GOAWAY is reported and nothing
    else: the state and the bytes queued for the server stay, and the client opens no
    new stream on this connection."""

    def _receive_goaway_frame(
        self, frame: GoAwayFrame
    ) -> tuple[list[Frame], list[h2.events.Event]]:
        event = h2.events.ConnectionTerminated()
        try:
            event.error_code = h2.errors.ErrorCodes(frame.error_code)
        except ValueError:
            event.error_code = frame.error_code  # an extension's code
        event.last_stream_id = frame.last_stream_id
        event.additional_data = frame.additional_data or None
        return [], [event]


@dataclass
class _Stream:
    timeline: Timeline
    done: asyncio.Future[None]
    retry: bool = False  # above a GOAWAY's last stream id: not processed, send it again
    move: Move = field(default_factory=lambda: Move(0))  # the request's move, if it moves
    moved: bool = False  # the client moved away from this connection: send it again
    decoder: BodyDecoder | None = None  # the response is content-coded


@dataclass(eq=False)  # identity: kept in a set while it drains
class _Connection:
    tcp: TcpConnection
    h2: h2.connection.H2Connection
    number: int
    streams: dict[int, _Stream] = field(default_factory=dict)
    meter_in: FrameMeter = field(default_factory=FrameMeter)
    meter_out: FrameMeter = field(default_factory=lambda: FrameMeter(skip=_PREFACE_LEN))
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    alive: bool = True
    draining: bool = False  # a GOAWAY came: finish its streams, open no new one
    goaway_last: int | None = None  # the GOAWAY's last stream id
    reader_task: asyncio.Task[None] | None = None
    flush_soon: NextTurn = field(init=False)

    def __post_init__(self) -> None:
        self.flush_soon = NextTurn(self.flush)  # requests made together share one write

    def flush(self) -> None:
        if self.tcp.writer.is_closing():
            return
        data = self.h2.data_to_send()
        if data:
            self.meter_out.feed(data)
            self.tcp.writer.write(data)

    @property
    def open(self) -> bool:
        """New streams may start here."""
        return self.alive and not self.draining

    def fail_all(self, kind: str, detail: str) -> None:
        self.alive = False
        for stream in self.streams.values():
            if not stream.done.done():  # a finished response stays finished (nginx closes
                stream.timeline.fail(kind, detail)  # right after the last one it owed)
                stream.done.set_result(None)
        self.streams.clear()
        self.changed.set()


class H2Client:
    name: ClassVar[str] = "h2"

    def __init__(self, target: Target, options: H2Options | None = None) -> None:
        self.target, self.options = target, options or H2Options()
        self._tls = tls_context_for(target, ["h2"])
        self._conn: _Connection | None = None
        self._draining: set[_Connection] = set()  # GOAWAY'd, finishing their streams
        self._lock = asyncio.Lock()
        self._numbers = 0
        self._readers: set[asyncio.Task[None]] = set()  # each connection's, until it ends

    async def request(self, request: Request) -> RequestRecord:
        return await timed_exchange(self.name, request, self._exchange, self.options.timeout)

    async def close(self) -> None:
        conns = [c for c in (self._conn, *self._draining) if c is not None]
        self._conn = None
        self._draining.clear()
        for conn in conns:
            self._retire(conn, "closed", "client closed")
        await asyncio.gather(*(conn.tcp.wait_closed() for conn in conns))
        # And a drained connection still closing: a transport open when the loop ends leaks.
        await asyncio.gather(*self._readers, return_exceptions=True)

    def _retire(self, conn: _Connection, kind: str, detail: str) -> None:
        """Say goodbye (our GOAWAY), fail what is left, close the socket."""
        with contextlib.suppress(h2.exceptions.ProtocolError, ConnectionError, OSError):
            conn.h2.close_connection()
            conn.flush()
        conn.fail_all(kind, detail)
        if conn.reader_task is not None:
            conn.reader_task.cancel()
        conn.tcp.writer.close()
        self._draining.discard(conn)

    async def _connection(self, tl: Timeline) -> _Connection:
        async with self._lock:
            if self._conn is not None and self._conn.open:
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
            self._readers.add(conn.reader_task)
            conn.reader_task.add_done_callback(self._readers.discard)
            tcp.stamp(tl, new=True)
            self._conn = conn
            return conn

    def _new_h2(self) -> h2.connection.H2Connection:
        conn = _DrainingH2Connection(
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
        retried = refusals = 0
        move = Move(self.options.migrate_after_bytes, resume=self.options.migrate_resume)
        try:
            while (refused_by := await self._attempt(request, tl, retried, move)) is not None:
                if move.moved and not move.retrying:
                    move.retry(tl)  # the client moved: the request again on a new connection
                    continue
                retried += 1
                refusals += refused_by.goaway_last == 0
                if refusals > _REFUSALS or retried > _MAX_RETRIES:
                    raise ProtocolFailure("goaway", f"the server sent GOAWAY before processing "
                                          f"the request {retried} times ({refusals} "
                                          "processing nothing)")
                # The next try's connection is not this one's: its phases do not count
                # again (the total, from start_ns, still includes the lost try).
                tl.new_connection = False
                tl.conn_start_ns = tl.connected_ns = tl.handshake_ns = None
                tl.stream_id = tl.request_sent_ns = None
                tl.transport[RETRIED] = retried
        finally:
            move.finish(tl)

    async def _stream_slot(self, tl: Timeline) -> _Connection:
        """A connection open for a new stream, with room under the server's
        SETTINGS_MAX_CONCURRENT_STREAMS."""
        while True:
            conn = await self._connection(tl)
            settings = conn.h2.remote_settings
            while conn.open and conn.h2.open_outbound_streams >= settings.max_concurrent_streams:
                conn.changed.clear()
                await conn.changed.wait()
            if conn.open:
                return conn
            if not conn.alive:
                raise ProtocolFailure("connection_lost", "connection closed before the request")
            # A GOAWAY came while this request waited for a slot; it never left: next one.

    async def _attempt(
        self, request: Request, tl: Timeline, retried: int, move: Move
    ) -> _Connection | None:
        """One try on one connection: None when done (ok or failed), else the connection
        whose GOAWAY says the request was not processed, or that the client left."""
        conn = await self._stream_slot(tl)
        tl.connection_id = conn.number
        sid = conn.h2.get_next_available_stream_id()
        tl.stream_id = sid
        stream = _Stream(tl, asyncio.get_running_loop().create_future(), move=move)
        conn.streams[sid] = stream
        scheme = "https" if self.target.tls else "http"
        headers = [
            (b":method", request.method.encode()), (b":scheme", scheme.encode()),
            (b":authority", self.target.authority.encode()), (b":path", request.path.encode()),
            (b"user-agent", b"protolab"),
            *((n.encode(), v.encode())
              for n, v in with_accept_encoding(request.headers, self.options.accept_encoding)),
            *((n.encode(), v.encode()) for n, v in move.request_headers()),
        ]
        if request.body or request.method in ("POST", "PUT"):
            headers.append((b"content-length", str(len(request.body)).encode()))
        conn.h2.send_headers(sid, headers, end_stream=not request.body)
        try:
            await conn.flush_soon()
            if not stream.retry:
                await self._send_body(conn, sid, request.body)
                await conn.tcp.writer.drain()
                tl.request_sent_ns = now_ns()
            await stream.done
        finally:
            # Every try's bytes crossed the wire: a retried request counts them all.
            tl.bytes_out += conn.meter_out.per_stream.pop(sid, 0)
            tl.bytes_in += conn.meter_in.per_stream.pop(sid, 0)
            tl.transport = {**tl.transport, **conn.tcp.counters(),
                            **({RETRIED: retried} if retried else {})}
            if self.options.resume:
                conn.tcp.keep_session(self._tls)
            conn.streams.pop(sid, None)
            conn.changed.set()
            if conn.draining and not conn.streams:
                self._retire(conn, "closed", "drained after the server's GOAWAY")
        return conn if stream.retry or stream.moved else None

    async def _send_body(self, conn: _Connection, sid: int, body: bytes) -> None:
        view = memoryview(body)
        while view:
            if sid not in conn.streams:  # failed, or to be retried after a GOAWAY
                return
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
                    after = " after its GOAWAY" if conn.draining else ""
                    conn.fail_all("connection_closed", f"server closed the connection{after}")
                    return
                conn.meter_in.feed(data)
                for event in conn.h2.receive_data(data):
                    self._on_event(conn, event)
                conn.flush()
        except h2.exceptions.ProtocolError as exc:
            conn.fail_all("protocol_error", f"HTTP/2 protocol error: {exc}")
        except (ConnectionError, OSError) as exc:
            conn.fail_all("connection_lost", str(exc))
        finally:
            if conn.draining and not conn.alive:
                self._draining.discard(conn)
                conn.tcp.writer.close()
                await conn.tcp.wait_closed()

    def _on_event(self, conn: _Connection, event: h2.events.Event) -> None:
        sid = getattr(event, "stream_id", None)
        stream = conn.streams.get(sid) if sid else None
        if isinstance(event, h2.events.ResponseReceived) and stream:
            stream.timeline.first_byte()
            stream.move.answered()
            status = dict(event.headers or []).get(b":status", b"0")
            stream.move.head(stream.timeline, int(status), list(event.headers or []))
            stream.decoder = BodyDecoder.for_response(
                event.headers or [], keep=stream.timeline.request.keep_body)
        elif isinstance(event, h2.events.DataReceived) and sid is not None:
            conn.h2.acknowledge_received_data(event.flow_controlled_length or 0, sid)
            if stream:
                stream.timeline.body(event.data or b"")
                if stream.move.due(stream.timeline):
                    self._move_away()
                if stream.decoder is not None:
                    stream.decoder.feed(event.data or b"")
        elif isinstance(event, h2.events.StreamEnded) and stream:
            if stream.decoder is not None:
                stream.decoder.apply(stream.timeline)  # decoded counters into transport
            stream.timeline.done_ns = now_ns()
            stream.done.set_result(None)
            del conn.streams[event.stream_id]
        elif isinstance(event, h2.events.StreamReset) and stream:
            stream.timeline.fail("stream_reset", f"server reset stream {sid} ({event.error_code})")
            stream.done.set_result(None)
            del conn.streams[event.stream_id]
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._on_goaway(conn, event)
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            conn.changed.set()

    def _move_away(self) -> None:
        """The client left its address: every connection's 4-tuple is gone. Each socket is
        closed at once (nothing more arrives on it, as the OS would have it once the
        address is gone; the server sees a reset) and its requests go again elsewhere."""
        conns = [c for c in (self._conn, *self._draining) if c is not None]
        self._conn = None
        self._draining.clear()
        for conn in conns:
            conn.alive = False
            for stream in conn.streams.values():
                stream.move.leave(stream.timeline, refetch=True)
                stream.moved = True
                if not stream.done.done():
                    stream.done.set_result(None)
            conn.streams.clear()
            conn.changed.set()
            conn.tcp.writer.transport.abort()

    def _on_goaway(self, conn: _Connection, event: h2.events.ConnectionTerminated) -> None:
        """RFC 9113 §6.8: streams above last_stream_id were not processed — send them
        again elsewhere; those at or below may still complete here, unless the GOAWAY
        reports an error (the server closes the connection after it, §5.4.1)."""
        conn.draining = True
        conn.goaway_last = event.last_stream_id
        if conn is self._conn:
            self._conn = None
            self._draining.add(conn)
        last = event.last_stream_id if event.last_stream_id is not None else 2**31 - 1
        for sid in [sid for sid in conn.streams if sid > last]:
            stream = conn.streams.pop(sid)
            stream.retry = True
            if not stream.done.done():
                stream.done.set_result(None)
        code = event.error_code
        if code not in (None, h2.errors.ErrorCodes.NO_ERROR):
            conn.fail_all("goaway", f"server sent GOAWAY ({code!r}, last stream {last})")
        conn.changed.set()
        if not conn.streams:
            self._retire(conn, "closed", "drained after the server's GOAWAY")
