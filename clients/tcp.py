"""Opening a TCP (+TLS) connection with each phase timed on the one clock.

Shared by the HTTP/1.1 and HTTP/2 clients: connect and TLS are separate awaits so
the record can say how long each took, and every failure becomes a typed
`ProtocolFailure` whose `kind` the record keeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from protolab.certs import ResumingContext, client_tls_context
from protolab.core.record import Target, Timeline
from protolab.errors import ConfigError, ProtocolFailure
from protolab.tcpsock import set_congestion_control, tcp_info
from protolab.timing import now_ns
from protolab.tlsfiles import check_ca_file, keylog_failure, prepare_keylog


@dataclass
class TcpConnection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    sock: socket.socket
    conn_start_ns: int
    connected_ns: int
    handshake_ns: int | None
    alpn: str | None
    tls_version: str | None
    cipher: str | None
    resumed: bool  # the server accepted the offered TLS session
    keylog: Path | None = None  # the key log OpenSSL appends this connection's secrets to

    def lost(self, exc: OSError, doing: str = "") -> ProtocolFailure:
        """The typed failure of a read or write that raised `exc`. OpenSSL writes the key
        log from inside the handshake and reports a failed write only at the next TLS
        read or write, as a "[BIO]" error (no memory BIO of asyncio's raises one): that
        is `keylog_write`, naming the file, not a lost connection."""
        if self.keylog is not None and isinstance(exc, ssl.SSLError) and exc.library == "BIO":
            return keylog_failure(self.keylog)
        return ProtocolFailure("connection_lost", f"{doing}{exc}")

    def keep_session(self, ctx: ResumingContext | None) -> None:
        """Remember this connection's session for the next one (TLS 1.3 tickets arrive after
        the handshake, so call this once a response has come back)."""
        ssl_object = self.writer.get_extra_info("ssl_object")
        if ctx is not None and ssl_object is not None and ssl_object.session is not None:
            ctx.session = ssl_object.session

    def stamp(self, tl: Timeline, *, new: bool) -> None:
        """Copy what the record needs to know about this connection."""
        tl.new_connection = new
        tl.alpn, tl.tls_version, tl.cipher = self.alpn, self.tls_version, self.cipher
        tl.resumed = self.resumed
        if new:
            tl.conn_start_ns, tl.connected_ns = self.conn_start_ns, self.connected_ns
            tl.handshake_ns = self.handshake_ns

    def counters(self) -> dict[str, int]:
        return tcp_info(self.sock)

    async def wait_closed(self) -> None:
        """After `writer.close()`: let the transport release its socket before the loop ends
        (a socket still open when `asyncio.run` returns leaks, with a ResourceWarning)."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)


def tls_context_for(target: Target, alpn: list[str]) -> ResumingContext | None:
    """The client context for `target` (None for cleartext); bad files are ConfigErrors."""
    if not target.tls:
        return None
    if target.ca_file is not None:
        check_ca_file(target.ca_file)
    if target.keylog_file is not None:
        prepare_keylog(target.keylog_file)  # ssl opens it by name: make it 0600 first
    try:
        return client_tls_context(target.ca_file, alpn, target.tls_version, target.keylog_file)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"cannot set up TLS for {target.authority}: {exc}") from exc


async def open_tcp(
    target: Target, ctx: ssl.SSLContext | None, cc: str, limit_s: float
) -> TcpConnection:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ProtocolFailure("dns", f"cannot resolve {target.host}: {exc.strerror}") from exc
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        set_congestion_control(sock, cc)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start = now_ns()
        try:
            await asyncio.wait_for(loop.sock_connect(sock, address), limit_s)
        except TimeoutError as exc:
            raise ProtocolFailure("connect_timeout", f"no TCP answer in {limit_s} s") from exc
        except ConnectionRefusedError as exc:
            raise ProtocolFailure("connect_refused", f"{target.authority} refused") from exc
        except OSError as exc:
            raise ProtocolFailure("connect_failed", f"{target.authority}: {exc.strerror}") from exc
        connected = now_ns()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    sock=sock,
                    ssl=ctx,
                    server_hostname=(target.server_name or target.host) if ctx else None,
                    limit=1 << 20,
                ),
                limit_s,
            )
        except TimeoutError as exc:
            raise ProtocolFailure("tls_timeout", f"TLS handshake took over {limit_s} s") from exc
        except ssl.SSLCertVerificationError as exc:
            raise ProtocolFailure(
                "tls_verify", f"server certificate rejected: {exc.verify_message}",
                hint="pass the lab's CA with --cacert (printed by `protolab serve`)",
            ) from exc
        except (ssl.SSLError, ConnectionError, OSError) as exc:
            raise ProtocolFailure("tls_failed", f"TLS handshake failed: {exc}") from exc
    except BaseException:
        sock.close()
        raise
    handshake = now_ns() if ctx else None
    ssl_object = writer.get_extra_info("ssl_object")
    cipher = writer.get_extra_info("cipher")
    return TcpConnection(
        reader, writer, sock, start, connected, handshake,
        alpn=ssl_object.selected_alpn_protocol() if ssl_object else None,
        tls_version=ssl_object.version() if ssl_object else None,
        cipher=cipher[0] if cipher else None,
        resumed=bool(ssl_object and ssl_object.session_reused),
        keylog=target.keylog_file if ctx is not None else None,
    )
