"""WebSocket server (RFC 6455) on the `websockets` library: echo and timed push.

The upgrade request's path chooses what a connection does, as a real application's
router would:

  /  or /echo                       every message comes back, same type and bytes
  /push?count=M&size=S&interval_ms=I
                                    M events (protolab.events JSON, S data bytes each),
                                    one every I ms (0 = as fast as possible), each stamped
                                    with its sequence and the server's now_ns() when
                                    sent; then a normal close (1000)

Limits are deliberate: a message over `max_message` closes with 1009 (RFC 6455
§7.4.1), a connection silent for the idle timeout closes with 1001, keepalive pings
are off unless asked for (they would add bytes to every measurement), and
permessage-deflate (RFC 7692) is an explicit setting because it changes the bytes.

TLS is set up by servers/tls.py inside the connection (websockets is given cleartext),
so a failed handshake is one log line with its reason, as on the HTTP listener. The
library's own log lines go through `_LogLines`: its per-connection chatter ("connection
open", "connection closed") is dropped, and what is left names the peer and says why.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from protolab.certs import CertBundle, server_tls_context
from protolab.events import StreamSpec, encode_event, parse_spec
from protolab.timing import now_ns
from servers.common import ServerConfig, log, peer_name, printable
from servers.linger import Linger
from servers.tls import HeldBytes, accept_tls


def _route(path: str) -> tuple[str, StreamSpec | None] | str:
    """("echo", None) or ("push", spec) for a request path, or why it is refused."""
    split = urlsplit(path)
    if split.path in ("/", "/echo"):
        return "echo", None
    if split.path == "/push":
        spec = parse_spec(parse_qs(split.query))
        return spec if isinstance(spec, str) else ("push", spec)
    return f"no WebSocket endpoint at {split.path} (try /echo or /push?count=M&size=S)"


class _LabConnection(ServerConnection):
    """A WebSocket connection that remembers its peer for log lines (the library's
    `remote_address` is None once the transport is gone: "ws None: closed")."""

    peer = "unknown peer"
    refused = False  # answered before upgrading, by `_process_request`, which said why

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.peer = peer_name(transport.get_extra_info("peername"))
        # Nagle would hold the first small event until the client's delayed ACK of the 101
        # and TLS tickets: +40 ms measured on the first push message over wss.
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)

    _linger: Linger | None = None
    _last_read = 0.0

    def send_data(self) -> None:
        """As the library's, except where it would close a TLS transport it cannot
        half-close while the client may still be sending (after failing the connection:
        1009 for a message over the limit): linger there (servers/linger.py), so a reset
        does not take the close frame with it."""
        if self.transport.can_write_eof() or self.protocol.close_rcvd is not None:
            super().send_data()  # a half-close, or the client has said its last word
            return
        for data in self.protocol.data_to_send():
            if data:
                self.transport.write(data)
            elif self._linger is None:
                self._linger = Linger(self.loop, self.transport, self._last_read)

    def data_received(self, data: bytes) -> None:
        self._last_read = self.loop.time()
        super().data_received(data)
        if self._linger is not None:
            self._linger.received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger is not None:
            self._linger.cancel()
        super().connection_lost(exc)


class _Upgrades:
    """TLS handshakes under way, so a stopping server can drop them."""

    def __init__(self) -> None:
        self.tasks: dict[asyncio.Transport, asyncio.Task[None]] = {}

    def abort(self) -> None:
        for transport in list(self.tasks):
            transport.abort()


def _tls_connection(tls: ssl.SSLContext, timeout: float,
                    upgrades: _Upgrades) -> type[_LabConnection]:
    class TlsConnection(_LabConnection):
        """Does its TLS handshake itself (servers/tls.py) before it becomes a WebSocket
        connection, so a failed handshake is logged with its reason."""

        _secured = False

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            if self._secured:  # the TLS transport, handed over by `_upgrade`
                super().connection_made(transport)
                return
            assert isinstance(transport, asyncio.Transport)  # a TCP server's transports are
            transport.pause_reading()  # before asyncio reads: the ClientHello waits for TLS
            task = self.loop.create_task(self._upgrade(transport))
            upgrades.tasks[transport] = task
            task.add_done_callback(lambda _: upgrades.tasks.pop(transport, None))

        async def _upgrade(self, transport: asyncio.Transport) -> None:
            held = HeldBytes()
            peer = peer_name(transport.get_extra_info("peername"))
            upgraded = await accept_tls(transport, held, tls, within=timeout, tag="ws",
                                        peer=peer)
            if upgraded is not None:
                self._secured = True
                held.hand_over(upgraded, self)

    return TlsConnection


class _LogLines(logging.Filter):
    """The `websockets` library's log records, made the lab's: one line per event that
    matters, naming the peer and the reason; no tracebacks for a client's mistakes."""

    _CHATTER = frozenset({"connection open", "connection closed", "server listening on %s",
                          "server closing", "server closed"})

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg in self._CHATTER:
            return False
        connection: Any = getattr(record, "websocket", None)
        try:
            peer = connection.peer if connection is not None else None
            refused = bool(connection.refused) if connection is not None else False
            why = connection.protocol.handshake_exc if connection is not None else None
        except ReferenceError:  # a weak proxy to a connection already gone
            peer, refused, why = None, False, None
        if refused and str(record.msg).startswith(("connection rejected", "HTTP response")):
            return False  # `_process_request` logged it with its reason
        text = record.getMessage()
        if record.exc_info and record.levelno < logging.ERROR:
            why = record.exc_info[1]
            record.exc_info = record.exc_text = None
        if why is not None and not record.exc_info:
            while why is not None:  # the reason, and what caused it
                text += f": {why}"
                why = why.__cause__
        record.msg, record.args = f"ws {peer or 'server'}: {printable(text)}", ()
        return True


_library_log = logging.getLogger("protolab.server.websockets")
_library_log.addFilter(_LogLines())


def _process_request(connection: ServerConnection, request: Request) -> Response | None:
    """Refuse unknown paths and bad push parameters before upgrading (400/404)."""
    route = _route(request.path)
    if isinstance(route, str):
        status = HTTPStatus.NOT_FOUND if route.startswith("no WebSocket") else (
            HTTPStatus.BAD_REQUEST)
        peer = connection.peer if isinstance(connection, _LabConnection) else "unknown peer"
        log.info("ws %s: refused %s with %d: %s", peer, printable(request.path, 80),
                 status, route)
        if isinstance(connection, _LabConnection):
            connection.refused = True
        return connection.respond(status, route + "\n")
    return None


async def _handle(connection: ServerConnection, config: ServerConfig) -> None:
    peer = connection.peer if isinstance(connection, _LabConnection) else "unknown peer"
    route = _route(connection.request.path if connection.request else "/")
    assert not isinstance(route, str)  # refused in _process_request
    try:
        if route[0] == "push":
            assert route[1] is not None
            await _push(connection, route[1])
        else:
            await _echo(connection, config.idle_timeout, peer)
    except ConnectionClosed as exc:
        if exc.rcvd is not None and exc.rcvd.code not in (1000, 1001):
            log.info("ws %s: the client closed with %d %s", peer, exc.rcvd.code,
                     printable(exc.rcvd.reason, 80) or "(no reason)")
        elif exc.sent is not None and exc.sent.code not in (1000, 1001):
            log.info("ws %s: closed with %d %s", peer, exc.sent.code,
                     printable(exc.sent.reason, 80) or "(no reason)")


async def _echo(connection: ServerConnection, idle_timeout: float, peer: str) -> None:
    while True:
        try:
            message = await asyncio.wait_for(connection.recv(), idle_timeout)
        except TimeoutError:
            log.info("ws %s: idle for %.0f s, closing", peer, idle_timeout)
            await connection.close(1001, "idle timeout")
            return
        await connection.send(message)


async def _push(connection: ServerConnection, spec: StreamSpec) -> None:
    origin = now_ns()
    for seq in range(1, spec.count + 1):
        born = spec.born_ns(origin, seq)
        delay = born - now_ns()
        if delay > 0:
            await asyncio.sleep(delay / 1e9)
        await connection.send(encode_event(seq, born, now_ns(), spec.size))
    await connection.close(1000, "push complete")


class WsListener:
    """The WebSocket server and the TLS handshakes it has under way."""

    def __init__(self, server: Server, upgrades: _Upgrades) -> None:
        self.server, self._upgrades = server, upgrades

    def close(self) -> None:
        self.server.close(close_connections=True)
        self._upgrades.abort()


async def start_ws_server(
    config: ServerConfig, certs: CertBundle | None, sock: socket.socket
) -> WsListener:
    """Serve WebSocket on `sock` (a listening socket with the lab's congestion control)."""
    settings = config.ws
    upgrades = _Upgrades()
    connection_type: type[_LabConnection] = _LabConnection
    if certs is not None:
        tls = server_tls_context(certs, ["http/1.1"], config.tls_version)
        connection_type = _tls_connection(tls, config.idle_timeout, upgrades)

    async def handler(connection: ServerConnection) -> None:
        await _handle(connection, config)

    server = await serve(
        handler,
        sock=sock,
        create_connection=connection_type,
        compression="deflate" if settings.compression else None,
        process_request=_process_request,
        max_size=settings.max_message,
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_interval,
        open_timeout=config.idle_timeout,
        close_timeout=5,
        server_header="protolab",
        logger=_library_log,
    )
    return WsListener(server, upgrades)
