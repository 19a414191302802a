"""The TCP listener shared by HTTP/1.1 and HTTP/2: one port, protocol chosen per connection.

Over TLS the protocol is what ALPN negotiated (RFC 7301); in cleartext a connection
that opens with the HTTP/2 connection preface is h2c with prior knowledge (RFC 9113
§3.3), anything else is HTTP/1.1 — as real servers do.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

from protolab.certs import CertBundle, server_tls_context
from protolab.tcpsock import set_congestion_control
from servers.common import ServerConfig, log, peer_name
from servers.h1 import serve_h1
from servers.h2 import H2ServerConnection

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
UNSENT_LIMIT = 16_384  # bytes of not-yet-sent data allowed in the kernel and in asyncio
ALPN = {"h2": "h2", "h1": "http/1.1"}


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


async def start_tcp_server(
    config: ServerConfig, certs: CertBundle | None, sock: socket.socket, alt_svc: str | None
) -> asyncio.Server:
    tls: ssl.SSLContext | None = None
    if certs is not None:
        alpn = [ALPN[p] for p in ("h2", "h1") if p in config.protocols]
        tls = server_tls_context(certs, alpn, config.tls_version)

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Keep little unsent data in the kernel and in asyncio's buffer: the server's
        # scheduler, not a send buffer hundreds of KB deep, must decide what goes next, or
        # a response that starts later waits behind everything already queued (the
        # HOL experiments measured requests 3..10 of a page held back ~2.5 RTT).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, UNSENT_LIMIT)
        # Not high=0: asyncio's SSL transport then pauses the writer with nothing buffered
        # and never resumes it (size >= high holds at 0).
        writer.transport.set_write_buffer_limits(high=4096, low=1024)
        peer = peer_name(writer.get_extra_info("peername"))
        try:
            proto, initial = await _choose_protocol(reader, writer, config)
            if proto == "h2":
                await H2ServerConnection(reader, writer, config, alt_svc).run(initial)
            elif proto == "h1":
                await serve_h1(reader, writer, config, initial, alt_svc)
        except TimeoutError:
            log.info("tcp %s: said nothing for %.0f s, closing", peer, config.idle_timeout)
        except (ConnectionError, OSError, ssl.SSLError):
            pass
        finally:
            writer.close()

    # TLS must be set up by the server itself: upgrading inside the handler races with a
    # ClientHello that arrives before the upgrade. asyncio drops a client whose handshake
    # does not finish within the idle timeout (it logs that only in debug mode).
    return await asyncio.start_server(
        on_connection,
        sock=sock,
        ssl=tls,
        ssl_handshake_timeout=config.idle_timeout if tls else None,
    )


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
