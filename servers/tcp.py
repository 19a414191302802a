"""The TCP listener shared by HTTP/1.1 and HTTP/2: one port, protocol chosen per connection.

Over TLS the protocol is what ALPN negotiated (RFC 7301); in cleartext a connection
that opens with the HTTP/2 connection preface is h2c with prior knowledge (RFC 9113
§3.3), anything else is HTTP/1.1 — as real servers do. TLS is set up by servers/tls.py
on the accepted connection, so a failed handshake is logged with its reason; a
connection silent for the idle timeout is closed, whether before, during or after its
TLS handshake.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Coroutine
from typing import Any

from protolab.certs import CertBundle, server_tls_context
from protolab.tcpsock import set_congestion_control
from servers.common import ServerConfig, log, peer_name
from servers.h1 import serve_h1
from servers.h2 import H2ServerConnection
from servers.linger import StampedReader, close_lingering
from servers.tls import accept_tls, tls_failure

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
UNSENT_LIMIT = 16_384  # bytes of not-yet-sent data allowed in the kernel and in asyncio
ALPN = {"h2": "h2", "h1": "http/1.1"}
READ_SIZE = 65_536  # what the HTTP/1.1 and HTTP/2 readers ask for at a time
_Connections = dict[asyncio.Transport, "asyncio.Task[None]"]


def listening_socket(host: str, port: int, cc: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit TCP_CONGESTION from the listener.
        set_congestion_control(sock, cc)
        sock.bind((host, port))
        sock.listen(512)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class StreamListener:
    """A TCP listener and the connections it accepted, each served as a stream pair."""

    def __init__(self, server: asyncio.Server, connections: _Connections) -> None:
        self.server, self._connections = server, connections

    def close(self) -> None:
        """Stop listening and drop every connection at once (a stopping lab does not wait
        on idle clients)."""
        self.server.close()
        for transport in list(self._connections):
            transport.abort()


StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, str],
                         Coroutine[Any, Any, None]]


class _Accepted(asyncio.Protocol):
    """A connection just accepted: held unread until its handler (after TLS) takes it."""

    def __init__(self, serve: Callable[[asyncio.Transport], Coroutine[Any, Any, None]],
                 connections: _Connections) -> None:
        self._serve, self._connections = serve, connections

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a TCP server's transports are
        # Called before asyncio first reads: the ClientHello waits in the kernel for TLS.
        transport.pause_reading()
        task = asyncio.get_running_loop().create_task(self._serve(transport))
        self._connections[transport] = task  # held: a task nobody holds can be collected
        task.add_done_callback(lambda _: self._connections.pop(transport, None))


async def listen_streams(sock: socket.socket, tls: ssl.SSLContext | None, handle: StreamHandler,
                         *, idle_timeout: float, tag: str, tune: bool = False,
                         read_limit: int = 2 * READ_SIZE) -> StreamListener:
    """Serve `sock`'s connections with `handle(reader, writer, peer)`: after a TLS
    handshake of their own (servers/tls.py: a failure is one logged line) when `tls` is
    given; closed lingering (servers/linger.py) when `handle` returns. `tune`: no Nagle,
    and little unsent data queued (the HTTP listener's scheduling needs it)."""
    loop = asyncio.get_running_loop()
    connections: _Connections = {}

    async def serve(transport: asyncio.Transport) -> None:
        peer = peer_name(transport.get_extra_info("peername"))
        if tune:
            _tune(transport.get_extra_info("socket"))
        reader = asyncio.StreamReader(limit=read_limit)
        protocol = StampedReader(reader)
        if tls is not None:
            upgraded = await accept_tls(transport, protocol, tls, within=idle_timeout,
                                        tag=tag, peer=peer)
            if upgraded is None:
                return
            protocol.connection_made(upgraded)
            transport = upgraded
        else:
            transport.set_protocol(protocol)
            protocol.connection_made(transport)
            transport.resume_reading()
        if tune:
            # Not high=0: asyncio's SSL transport then pauses the writer with nothing
            # buffered and never resumes it (size >= high holds at 0).
            transport.set_write_buffer_limits(high=4096, low=1024)
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        try:
            await handle(reader, writer, peer)
        finally:
            await close_lingering(reader, writer, protocol.last_read)

    server = await loop.create_server(lambda: _Accepted(serve, connections), sock=sock)
    return StreamListener(server, connections)


async def start_tcp_server(
    config: ServerConfig, certs: CertBundle | None, sock: socket.socket, alt_svc: str | None
) -> StreamListener:
    tls: ssl.SSLContext | None = None
    if certs is not None:
        alpn = [ALPN[p] for p in ("h2", "h1") if p in config.protocols]
        tls = server_tls_context(certs, alpn, config.tls_version)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     peer: str) -> None:
        await _serve_http(reader, writer, config, alt_svc, peer)

    return await listen_streams(sock, tls, handle, idle_timeout=config.idle_timeout,
                                tag="tcp", tune=True)


def _tune(sock: socket.socket | None) -> None:
    if sock is None:
        return
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # Keep little unsent data in the kernel and in asyncio's buffer: the server's
    # scheduler, not a send buffer hundreds of KB deep, must decide what goes next, or
    # a response that starts later waits behind everything already queued (the
    # HOL experiments measured requests 3..10 of a page held back ~2.5 RTT).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, UNSENT_LIMIT)


async def _serve_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      config: ServerConfig, alt_svc: str | None, peer: str) -> None:
    try:
        proto, initial = await _choose_protocol(reader, writer, config)
        if proto == "h2":
            await H2ServerConnection(reader, writer, config, alt_svc).run(initial)
        elif proto == "h1":
            await serve_h1(reader, writer, config, initial, alt_svc)
    except TimeoutError:
        log.info("tcp %s: said nothing for %.0f s, closing", peer, config.idle_timeout)
    except ssl.SSLError as exc:
        log.info("tcp %s: TLS error, closing: %s", peer, tls_failure(exc))
    except (ConnectionError, OSError):
        pass  # the client went away


async def _choose_protocol(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: ServerConfig
) -> tuple[str | None, bytes]:
    ssl_object = writer.get_extra_info("ssl_object")
    if ssl_object is not None:
        chosen = ssl_object.selected_alpn_protocol()
        if chosen == "h2":
            return "h2", b""
        return ("h1" if "h1" in config.protocols else None), b""
    # Cleartext: read until the bytes either are the full preface or stop matching it.
    seen = b""
    while len(seen) < len(PREFACE) and PREFACE.startswith(seen):
        data = await asyncio.wait_for(reader.read(len(PREFACE) - len(seen)), config.idle_timeout)
        if not data:
            return None, b""
        seen += data
    if seen == PREFACE and "h2" in config.protocols:
        return "h2", seen
    if "h1" in config.protocols:
        return "h1", seen
    log.info(
        "tcp %s: not an HTTP/2 preface and HTTP/1.1 is off, closing",
        peer_name(writer.get_extra_info("peername")),
    )
    return None, b""
