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
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from protolab.certs import CertBundle, server_tls_context
from protolab.events import StreamSpec, encode_event, parse_spec
from protolab.timing import now_ns
from servers.common import ServerConfig, log, peer_name


def _route(path: str) -> tuple[str, StreamSpec | None] | str:
    """("echo", None) or ("push", spec) for a request path, or why it is refused."""
    split = urlsplit(path)
    if split.path in ("/", "/echo"):
        return "echo", None
    if split.path == "/push":
        spec = parse_spec(parse_qs(split.query))
        return spec if isinstance(spec, str) else ("push", spec)
    return f"no WebSocket endpoint at {split.path} (try /echo or /push?count=M&size=S)"


def _process_request(connection: ServerConnection, request: Request) -> Response | None:
    """Refuse unknown paths and bad push parameters before upgrading (400/404)."""
    # Nagle would hold the first small event until the client's delayed ACK of the 101
    # and TLS tickets: +40 ms measured on the first push message over wss.
    sock = connection.transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    route = _route(request.path)
    if isinstance(route, str):
        status = HTTPStatus.NOT_FOUND if route.startswith("no WebSocket") else (
            HTTPStatus.BAD_REQUEST)
        log.info("ws %s: rejected %s with %d", peer_name(connection.remote_address),
                 request.path, status)
        return connection.respond(status, route + "\n")
    return None


async def _handle(connection: ServerConnection, config: ServerConfig) -> None:
    route = _route(connection.request.path if connection.request else "/")
    assert not isinstance(route, str)  # refused in _process_request
    try:
        if route[0] == "push":
            assert route[1] is not None
            await _push(connection, route[1])
        else:
            await _echo(connection, config.idle_timeout)
    except ConnectionClosed as exc:
        if exc.rcvd is not None and exc.rcvd.code not in (1000, 1001):
            log.info("ws %s: peer closed with %d %s", peer_name(connection.remote_address),
                     exc.rcvd.code, exc.rcvd.reason)
        elif exc.sent is not None and exc.sent.code not in (1000, 1001):
            log.info("ws %s: closed with %d %s", peer_name(connection.remote_address),
                     exc.sent.code, exc.sent.reason)


async def _echo(connection: ServerConnection, idle_timeout: float) -> None:
    while True:
        try:
            message = await asyncio.wait_for(connection.recv(), idle_timeout)
        except TimeoutError:
            log.info("ws %s: idle for %.0f s, closing", peer_name(connection.remote_address),
                     idle_timeout)
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


async def start_ws_server(
    config: ServerConfig, certs: CertBundle | None, sock: socket.socket
) -> Server:
    """Serve WebSocket on `sock` (a listening socket with the lab's congestion control)."""
    settings = config.ws
    tls: ssl.SSLContext | None = None
    if certs is not None:
        tls = server_tls_context(certs, ["http/1.1"], config.tls_version)

    async def handler(connection: ServerConnection) -> None:
        await _handle(connection, config)

    return await serve(
        handler,
        sock=sock,
        ssl=tls,
        compression="deflate" if settings.compression else None,
        process_request=_process_request,
        max_size=settings.max_message,
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_interval,
        open_timeout=config.idle_timeout,
        close_timeout=5,
        server_header="protolab",
        logger=log,
    )
