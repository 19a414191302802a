"""Closing a connection the server ends while its client may still be sending.

Closing a TCP socket with unread bytes in its receive queue makes the kernel send a
reset instead of a FIN (RFC 1122 §4.2.2.13, RFC 2525 §2.17), and the reset can cost the
client the server's last words: a 413 or 431, an HTTP/2 GOAWAY, a WebSocket close
frame with 1009. Node's `ws` saw 1006 instead of 1009 over TLS this way, because the
`websockets` library closes a TLS transport it cannot half-close at once.

So a server that ends a connection first half-closes where it can (cleartext), then
reads and drops what still arrives, and closes when the client closes, when the client
has been quiet for QUIET_S, or when LIMIT_S has passed: nginx's lingering close, with
shorter times because the lab's links are its own.
"""

from __future__ import annotations

import asyncio
import ssl

QUIET_S = 1.0  # a sender this long silent has finished (or is not coming back)
LIMIT_S = 5.0  # never linger longer than this, however much a client keeps sending
_READ = 65_536


class StampedReader(asyncio.StreamReaderProtocol):
    """A stream protocol that remembers when its peer last sent something."""

    last_read = 0.0

    def data_received(self, data: bytes) -> None:
        self.last_read = asyncio.get_running_loop().time()
        super().data_received(data)


async def close_lingering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          last_read: float) -> None:
    """Close `writer`'s connection without a reset eating what was last written;
    `last_read` (loop time) is when the client last sent: one idle that long is done."""
    transport = writer.transport
    loop = asyncio.get_running_loop()
    wait = last_read + QUIET_S - loop.time()
    if (wait <= 0 or reader.at_eof() or reader.exception() is not None
            or transport.is_closing()):
        writer.close()
        return
    try:
        if writer.can_write_eof():
            writer.write_eof()  # the client sees the end at once; its data still drains
        async with asyncio.timeout(LIMIT_S):
            while await asyncio.wait_for(reader.read(_READ), wait):
                wait = QUIET_S
    except (TimeoutError, OSError, ssl.SSLError, RuntimeError):
        pass  # quiet, over the limit, or gone: close now
    finally:
        writer.close()


class Linger:
    """The same for a protocol driven by callbacks (the WebSocket server): made when the
    connection would close, told of every read; closes `transport` once quiet."""

    def __init__(self, loop: asyncio.AbstractEventLoop, transport: asyncio.BaseTransport,
                 last_read: float) -> None:
        self._loop, self._transport = loop, transport
        self._until = loop.time() + LIMIT_S
        self._timer: asyncio.TimerHandle | None = None
        self._arm(last_read)

    def received(self) -> None:
        self._arm(self._loop.time())

    def _arm(self, last_read: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        now = self._loop.time()
        wait = max(0.0, min(last_read + QUIET_S, self._until) - now)
        self._timer = self._loop.call_later(wait, self._transport.close)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
