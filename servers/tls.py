"""TLS on an accepted connection, set up by the lab's code so a failure is one log line.

asyncio's `create_server(ssl=...)` does the handshake itself and, outside debug mode,
says nothing when it fails: a client speaking plain HTTP to a TLS port, a port scanner,
an old TLS version or no common cipher all vanished without a word. Here the listener
accepts plain TCP, holds the client's bytes in the kernel (`pause_reading()` before
asyncio reads anything, so no ClientHello can slip past), and upgrades with
`loop.start_tls`; a handshake that fails or does not finish within the idle timeout is
logged once, with the peer and the reason, and the connection is closed.

The TLS shutdown is kept short: RFC 8446 §6.1 does not require the closer to wait for
the peer's close_notify, and asyncio's default (30 s) kept every idle TLS connection the
server had closed in the kernel and in memory for half a minute more.
"""

from __future__ import annotations

import asyncio
import ssl

from servers.common import log, printable

TLS_SHUTDOWN_S = 2.0  # at most this long to flush the last bytes and trade close_notify

# OpenSSL's reason codes for what peers get wrong most, said as a user would fix them.
_REASONS = {
    "HTTP_REQUEST": "plain HTTP sent to a TLS port (use https://)",
    "WRONG_VERSION_NUMBER": "not TLS, or a TLS version this server does not speak",
    "UNSUPPORTED_PROTOCOL": "the client offered no TLS version this server speaks",
    "VERSION_TOO_LOW": "the client offered no TLS version this server speaks",
    "NO_SHARED_CIPHER": "no cipher suite in common (this server offers AEAD suites only)",
    "NO_CIPHERS_AVAILABLE": "no cipher suite in common (this server offers AEAD suites only)",
    "NO_APPLICATION_PROTOCOL": "no ALPN protocol in common",
    "TLSV1_ALERT_UNKNOWN_CA": "the client does not trust the lab's CA (give it the CA file)",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "the client rejected the lab's certificate",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the client rejected the lab's certificate",
    "UNEXPECTED_EOF_WHILE_READING": "the client closed the connection mid-handshake",
    "UNEXPECTED_MESSAGE": "the client's first bytes are not a TLS ClientHello",
    "UNEXPECTED_RECORD": "the client's first bytes are not a TLS ClientHello",
    "RECORD_LAYER_FAILURE": "the client's bytes are not TLS records",
}


class HeldBytes(asyncio.Protocol):
    """Stands in for a protocol that cannot take data before `connection_made` (the
    `websockets` connection): asyncio delivers the first decrypted bytes as the handshake
    completes, before `accept_tls` returns. `hand_over` passes on what it held."""

    def __init__(self) -> None:
        self._data: list[bytes] = []
        self._eof = False
        self._lost: tuple[Exception | None] | None = None

    def data_received(self, data: bytes) -> None:
        self._data.append(data)

    def eof_received(self) -> bool | None:
        self._eof = True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = (exc,)

    def hand_over(self, transport: asyncio.Transport, protocol: asyncio.Protocol) -> None:
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        for data in self._data:
            protocol.data_received(data)
        if self._eof:
            protocol.eof_received()
        if self._lost is not None:
            protocol.connection_lost(self._lost[0])


def tls_failure(exc: BaseException) -> str:
    """Why a TLS handshake failed, in a few words a user can act on."""
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or type(exc).__name__
        said = _REASONS.get(reason)
        return f"{reason}: {said}" if said else printable(str(reason))
    if isinstance(exc, ConnectionError | EOFError):
        return "the client closed the connection mid-handshake"
    return printable(f"{type(exc).__name__}: {exc}")


async def accept_tls(
    transport: asyncio.Transport,
    protocol: asyncio.BaseProtocol,
    context: ssl.SSLContext,
    *,
    within: float,
    tag: str,
    peer: str,
) -> asyncio.Transport | None:
    """The TLS transport over `transport` (paused since it was accepted), or None once the
    failure is logged and the connection closed. `protocol` gets the decrypted bytes; the
    handshake must finish `within` seconds (the idle timeout)."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(within):
            # asyncio's own handshake timeout only backs ours up (it would say less).
            tls = await loop.start_tls(transport, protocol, context, server_side=True,
                                       ssl_handshake_timeout=within + 5,
                                       ssl_shutdown_timeout=TLS_SHUTDOWN_S)
    except TimeoutError:
        log.info("%s %s: no TLS handshake within %.0f s, closing", tag, peer, within)
    except (OSError, EOFError) as exc:  # ssl.SSLError is an OSError
        log.info("%s %s: TLS handshake failed: %s", tag, peer, tls_failure(exc))
    else:
        if tls is not None:
            return tls
        log.info("%s %s: TLS handshake failed: the connection closed under it", tag, peer)
    transport.close()  # not abort(): the alert saying why goes out first
    return None
