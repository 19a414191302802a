"""HTTP/2 client on h2: one connection, every request a stream, windows as configured.

httpcore leaves stream windows at 65,535 bytes — about 5 Mbit/s per stream at 100 ms
RTT — so the defaults here are sized well above the bandwidth-delay product of the
lab's links (DESIGN.md, fair comparisons); both are recorded options.

A server's GOAWAY (nginx sends one after `keepalive_requests`, 1000 by default) is a
graceful end, RFC 9113 §6.8: streams at or below its last stream id complete on the old
connection; streams above it were not processed and are sent again on a new connection,
which also takes every new request. A record whose request was sent again says so in
its transport counters: `retried_after_goaway` = how many times (absent: never).

This module holds the options, the connections the client keeps (the one taking new
streams, and those draining after a GOAWAY) and each request's tries; one connection's
state machine, streams and frame metering are in `clients.h2_connection`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import ClassVar

from clients.base import timed_exchange
from clients.h2_connection import FrameMeter, H2ClientConnection, H2Stream, client_h2_state
from clients.migration import Move, check_migrate_after
from clients.tcp import open_tcp, tls_context_for
from protolab.compression import check_accept_encoding, with_accept_encoding
from protolab.core.record import Request, RequestRecord, Target, Timeline
from protolab.errors import ConfigError, ProtocolFailure
from protolab.tcpsock import DEFAULT_CC
from protolab.timing import now_ns

__all__ = ["RETRIED", "FrameMeter", "H2Client", "H2Options"]

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


class H2Client:
    name: ClassVar[str] = "h2"

    def __init__(self, target: Target, options: H2Options | None = None) -> None:
        self.target, self.options = target, options or H2Options()
        self._tls = tls_context_for(target, ["h2"])
        self._conn: H2ClientConnection | None = None
        self._draining: set[H2ClientConnection] = set()  # GOAWAY'd, finishing their streams
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

    # --- the connections: one taking new streams, the rest draining ---------------------

    def _retire(self, conn: H2ClientConnection, kind: str, detail: str) -> None:
        """Our GOAWAY, what is left failed, the socket closed; no longer draining."""
        conn.retire(kind, detail)
        self._draining.discard(conn)

    async def _connection(self, tl: Timeline) -> H2ClientConnection:
        async with self._lock:
            if self._conn is not None and self._conn.open:
                self._conn.tcp.stamp(tl, new=False)
                return self._conn
            tcp = await open_tcp(self.target, self._tls, self.options.cc, self.options.timeout)
            if self.target.tls and tcp.alpn != "h2":
                tcp.writer.close()
                raise ProtocolFailure("alpn", f"server chose ALPN {tcp.alpn!r}, not h2")
            self._numbers += 1
            state = client_h2_state(self.options.window, self.options.max_frame_size)
            conn = H2ClientConnection(tcp, state, self._numbers, on_move_away=self._move_away,
                                      on_goaway=self._on_goaway,
                                      on_ended=self._draining.discard)
            reader = conn.start(self.options.connection_window)
            self._readers.add(reader)
            reader.add_done_callback(self._readers.discard)
            tcp.stamp(tl, new=True)
            self._conn = conn
            return conn

    def _move_away(self) -> None:
        """The client left its address: every connection's 4-tuple is gone, and each
        connection's requests go again elsewhere."""
        conns = [c for c in (self._conn, *self._draining) if c is not None]
        self._conn = None
        self._draining.clear()
        for conn in conns:
            conn.leave()

    def _on_goaway(self, conn: H2ClientConnection) -> None:
        """New requests go to a new connection; this one is retired once its streams
        at or below the GOAWAY's last stream id are done (or at once: none are left)."""
        if conn is self._conn:
            self._conn = None
            self._draining.add(conn)
        if not conn.streams:
            self._retire(conn, "closed", "drained after the server's GOAWAY")

    # --- a request's tries ----------------------------------------------------------------

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

    async def _stream_slot(self, tl: Timeline) -> H2ClientConnection:
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
    ) -> H2ClientConnection | None:
        """One try on one connection: None when done (ok or failed), else the connection
        whose GOAWAY says the request was not processed, or that the client left."""
        conn = await self._stream_slot(tl)
        tl.connection_id = conn.number
        sid = conn.h2.get_next_available_stream_id()
        tl.stream_id = sid
        stream = H2Stream(tl, asyncio.get_running_loop().create_future(), move=move)
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
                await conn.send_body(sid, request.body)
                await conn.drain()
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
