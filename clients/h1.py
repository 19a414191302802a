"""HTTP/1.1 client: a pool of K connections (browsers use 6), optional pipelining.

h11 models one request/response cycle at a time, so pipelining is done with two
roles: each request is serialised by a throw-away h11 connection and written at
once, while one parsing h11 connection per socket is told about each request only
when its response is next in line (responses come back in request order, RFC 9112
§9.3.2). That keeps h11's strict parsing without its one-at-a-time sending.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field
from typing import ClassVar

import h11

from clients.base import timed_exchange
from clients.migration import Move, check_migrate_after
from clients.tcp import TcpConnection, open_tcp, tls_context_for
from protolab.compression import BodyDecoder, check_accept_encoding, with_accept_encoding
from protolab.core.record import Request, RequestRecord, Target, Timeline
from protolab.errors import ConfigError
from protolab.tcpsock import DEFAULT_CC
from protolab.timing import now_ns

_READ = 65_536


@dataclass(frozen=True)
class H1Options:
    connections: int = 6  # pool size K
    pipeline: int = 1  # requests in flight per connection (1 = no pipelining)
    keepalive: bool = True  # False: one connection per request, "Connection: close"
    cc: str = DEFAULT_CC
    timeout: float = 60.0  # per request, seconds
    resume: bool = False  # offer the last connection's TLS session on new connections
    # Accept-Encoding to send ("": the request's own, if any); coded bodies are decoded
    # as they arrive (protolab/compression.py): body_bytes stays what crossed the wire.
    accept_encoding: str = ""
    # Leave the local address once a response's body passes this many bytes (0: never):
    # every connection dies with it; reconnect and send the request again
    # (clients/migration.py).
    migrate_after_bytes: int = 0
    # After a move, ask only for the rest of the body (Range: bytes=K-) when the response
    # allows it; False: fetch it again whole.
    migrate_resume: bool = True

    def __post_init__(self) -> None:
        check_migrate_after(self.migrate_after_bytes, "h1")
        if (why := check_accept_encoding(self.accept_encoding)) is not None:
            raise ConfigError(why)
        if self.connections < 1 or self.pipeline < 1:
            raise ConfigError("HTTP/1.1 needs at least 1 connection and pipeline depth 1")
        if not self.keepalive and self.pipeline > 1:
            raise ConfigError("pipelining needs keep-alive connections")


@dataclass
class _Exchange:
    request: h11.Request
    timeline: Timeline
    done: asyncio.Future[None]
    decoder: BodyDecoder | None = None  # the response is content-coded
    move: Move = field(default_factory=lambda: Move(0))  # the request's move, if it moves
    moved: bool = False  # the client moved away from this connection: send it again


@dataclass
class _Connection:
    tcp: TcpConnection
    number: int
    parser: h11.Connection = field(default_factory=lambda: h11.Connection(h11.CLIENT))
    inflight: deque[_Exchange] = field(default_factory=deque)
    usable: bool = True
    fed: int = 0  # response bytes fed to the parser
    consumed: int = 0  # of which belonged to completed responses
    reader_task: asyncio.Task[None] | None = None

    def prime(self) -> None:
        """Tell the parser which request the next response answers (its bytes are discarded).

        Only the method and Connection header shape how a response is parsed, so the
        parser sees the request without its body.
        """
        request = self.inflight[0].request
        keep = [(n, v) for n, v in request.headers if n in (b"host", b"connection")]
        self.parser.send(h11.Request(method=request.method, target=request.target, headers=keep))
        self.parser.send(h11.EndOfMessage())

    def fail_all(self, kind: str, detail: str) -> None:
        self.usable = False
        while self.inflight:
            exchange = self.inflight.popleft()
            exchange.timeline.fail(kind, detail)
            if not exchange.done.done():
                exchange.done.set_result(None)


class H1Client:
    name: ClassVar[str] = "h1"

    def __init__(self, target: Target, options: H1Options | None = None) -> None:
        self.target, self.options = target, options or H1Options()
        self._tls = tls_context_for(target, ["http/1.1"])
        self._conns: list[_Connection] = []
        self._opening = 0
        self._numbers = 0
        self._changed = asyncio.Condition()
        self._readers: set[asyncio.Task[None]] = set()  # each connection's, until it ends

    async def request(self, request: Request) -> RequestRecord:
        return await timed_exchange(
            self.name, request, self._exchange, self.options.timeout, self._drop_waiting
        )

    async def close(self) -> None:
        conns = list(self._conns)
        for conn in conns:
            self._retire(conn, "closed", "client closed")
        self._conns.clear()
        await asyncio.gather(*(conn.tcp.wait_closed() for conn in conns))
        # And the connections already out of the pool, still closing (a server that
        # lingers answers the close one round trip later): a transport open when the loop
        # ends leaks.
        await asyncio.gather(*self._readers, return_exceptions=True)

    async def _exchange(self, request: Request, tl: Timeline) -> None:
        move = Move(self.options.migrate_after_bytes, resume=self.options.migrate_resume)
        try:
            while await self._attempt(request, tl, move):
                move.retry(tl)  # the client moved: the request again on a new connection
        finally:
            move.finish(tl)

    async def _attempt(self, request: Request, tl: Timeline, move: Move) -> bool:
        """One try on one connection; True when the client moved away before the
        response was complete."""
        conn = await self._acquire(tl)
        headers = [("host", self.target.authority), ("user-agent", "protolab"),
                   *with_accept_encoding(request.headers, self.options.accept_encoding),
                   *move.request_headers()]
        if request.body or request.method in ("POST", "PUT"):
            headers.append(("content-length", str(len(request.body))))
        if not self.options.keepalive:
            headers.append(("connection", "close"))
        h11_request = h11.Request(method=request.method, target=request.path, headers=headers)
        serialiser = h11.Connection(h11.CLIENT)
        wire = (serialiser.send(h11_request) or b"") + (
            serialiser.send(h11.Data(data=request.body)) or b"" if request.body else b""
        ) + (serialiser.send(h11.EndOfMessage()) or b"")
        exchange = _Exchange(h11_request, tl, asyncio.get_running_loop().create_future(),
                             move=move)
        conn.inflight.append(exchange)
        if len(conn.inflight) == 1:
            conn.prime()
        tl.connection_id = conn.number
        tl.bytes_out += len(wire)
        try:
            conn.tcp.writer.write(wire)
            await conn.tcp.writer.drain()
        except OSError as exc:  # ConnectionError and ssl.SSLError are OSErrors
            failure = conn.tcp.lost(exc, "writing request: ")
            self._retire(conn, failure.kind, str(failure))
            raise failure from exc
        tl.request_sent_ns = now_ns()
        try:
            await exchange.done
        finally:
            async with self._changed:
                self._changed.notify_all()
        return exchange.moved

    async def _acquire(self, tl: Timeline) -> _Connection:
        """An idle connection, else a new one (up to K), else a pipelining slot, else wait."""
        async with self._changed:
            while True:
                live = [c for c in self._conns if c.usable]
                if self.options.keepalive:
                    idle = [c for c in live if not c.inflight]
                    if idle:
                        idle[0].tcp.stamp(tl, new=False)
                        return idle[0]
                if len(live) + self._opening < self.options.connections:
                    break
                open_slots = [c for c in live if len(c.inflight) < self.options.pipeline]
                if open_slots and self.options.keepalive:
                    chosen = min(open_slots, key=lambda c: len(c.inflight))
                    chosen.tcp.stamp(tl, new=False)
                    return chosen
                await self._changed.wait()
            self._opening += 1
        try:
            tcp = await open_tcp(self.target, self._tls, self.options.cc, self.options.timeout)
        finally:
            async with self._changed:
                self._opening -= 1
                self._changed.notify_all()
        self._numbers += 1
        conn = _Connection(tcp, self._numbers)
        tcp.stamp(tl, new=True)
        conn.reader_task = asyncio.create_task(self._read_loop(conn))
        self._readers.add(conn.reader_task)
        conn.reader_task.add_done_callback(self._readers.discard)
        self._conns.append(conn)
        return conn

    async def _read_loop(self, conn: _Connection) -> None:
        try:
            while conn.usable:
                data = await conn.tcp.reader.read(_READ)
                conn.fed += len(data)
                conn.parser.receive_data(data)
                self._process(conn)
                if not data:
                    conn.fail_all("connection_closed", "server closed the connection")
        except h11.RemoteProtocolError as exc:
            conn.fail_all("protocol_error", f"bad response: {exc}")
        except OSError as exc:
            failure = conn.tcp.lost(exc)
            conn.fail_all(failure.kind, str(failure))
        finally:
            await self._forget(conn)

    def _process(self, conn: _Connection) -> None:
        while conn.inflight:
            event = conn.parser.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            current = conn.inflight[0]
            tl = current.timeline
            if isinstance(event, h11.Response):
                tl.first_byte()
                current.move.answered()
                current.move.head(tl, event.status_code, list(event.headers))
                current.decoder = BodyDecoder.for_response(event.headers,
                                                           keep=tl.request.keep_body)
            elif isinstance(event, h11.Data):
                tl.body(event.data)
                if current.decoder is not None:
                    current.decoder.feed(event.data)
                if current.move.due(tl):
                    self._move_away()
                    return
            elif isinstance(event, h11.EndOfMessage):
                if current.decoder is not None:
                    current.decoder.apply(tl)  # decoded counters into tl.transport
                tl.done_ns = now_ns()
                unread = len(conn.parser.trailing_data[0])
                tl.bytes_in += conn.fed - unread - conn.consumed
                conn.consumed = conn.fed - unread
                tl.transport = {**tl.transport, **conn.tcp.counters()}
                if self.options.resume:
                    conn.tcp.keep_session(self._tls)
                exchange = conn.inflight.popleft()
                exchange.done.set_result(None)
                if h11.MUST_CLOSE in (conn.parser.our_state, conn.parser.their_state):
                    conn.usable = False
                    conn.fail_all("connection_closed", "server closed after an earlier response")
                    return
                conn.parser.start_next_cycle()
                if conn.inflight:
                    conn.prime()
            elif isinstance(event, h11.ConnectionClosed):
                conn.fail_all("connection_closed", "server closed the connection")
                return

    def _move_away(self) -> None:
        """The client left its address: every connection's 4-tuple is gone. Each socket is
        closed at once (nothing more arrives on it, as the OS would have it once the
        address is gone; the server sees a reset) and its requests go again elsewhere."""
        for conn in self._conns:
            if conn.inflight:  # the bytes of the response cut short crossed the wire too
                conn.inflight[0].timeline.bytes_in += conn.fed - conn.consumed
            while conn.inflight:
                exchange = conn.inflight.popleft()
                exchange.move.leave(exchange.timeline, refetch=True)
                exchange.moved = True
                if not exchange.done.done():
                    exchange.done.set_result(None)
            conn.usable = False
            conn.tcp.writer.transport.abort()

    def _retire(self, conn: _Connection, kind: str, detail: str) -> None:
        conn.fail_all(kind, detail)
        if conn.reader_task is not None:
            conn.reader_task.cancel()
        conn.tcp.writer.close()

    async def _forget(self, conn: _Connection) -> None:
        conn.usable = False
        conn.tcp.writer.close()
        async with self._changed:
            with contextlib.suppress(ValueError):
                self._conns.remove(conn)
            self._changed.notify_all()
        # Out of the pool, so close() will not wait for it: wait here, or a transport
        # still open when the loop ends leaks (a ResourceWarning after a conn-per-request run).
        await conn.tcp.wait_closed()

    def _drop_waiting(self, tl: Timeline) -> None:
        """After a timeout the connection's response order is unknown: retire it."""
        for conn in list(self._conns):
            if any(e.timeline is tl for e in conn.inflight):
                self._retire(conn, "timeout", "an earlier request on this connection timed out")
