"""Webhook delivery: the server as an HTTP/1.1 client of the subscriber's callback.

Event k of the stream (protolab.events: the same JSON per event as WebSocket push,
polling and SSE carry) is POSTed to the callback when it is born, `sent_ns` stamped as
the request is written. The delivery connection is kept alive across events, as real
webhook senders (GitHub's, Stripe's) pool theirs; a receiver that answers
`Connection: close` or drops it gets a new connection for the next event, and a
kept-alive connection found dead before any answer is retried once on a fresh one. A
delivery that fails otherwise ends the subscription with one log line.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

import h11

from protolab.events import encode_event
from protolab.tcpsock import set_congestion_control
from protolab.timing import now_ns
from servers.common import ServerConfig, log, printable
from servers.tcp import READ_SIZE
from servers.webhook_subscription import Callback, Subscription


class _Delivery:
    """One kept-alive HTTP/1.1 connection to the callback."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.conn = h11.Connection(h11.CLIENT)

    @classmethod
    async def open(cls, callback: Callback, config: ServerConfig,
                   tls: ssl.SSLContext) -> _Delivery:
        family = socket.AF_INET6 if ":" in callback.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            set_congestion_control(sock, config.cc)  # the same algorithm as every listener
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (callback.host, callback.port))
            reader, writer = await asyncio.open_connection(
                sock=sock, ssl=tls if callback.scheme == "https" else None,
                server_hostname=callback.host if callback.scheme == "https" else None)
        except BaseException:
            sock.close()
            raise
        return cls(reader, writer)

    async def post(self, callback: Callback, body: bytes) -> bool:
        """POST one event and read the answer; whether the connection can be reused."""
        host = f"[{callback.host}]" if ":" in callback.host else callback.host
        headers = [("host", f"{host}:{callback.port}"), ("user-agent", "protolab-webhook"),
                   ("content-type", "application/json"), ("content-length", str(len(body)))]
        send = self.conn.send
        self.writer.write((send(h11.Request(method="POST", target=callback.target,
                                            headers=headers)) or b"")
                          + (send(h11.Data(data=body)) or b"")
                          + (send(h11.EndOfMessage()) or b""))
        await self.writer.drain()
        status = 0
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                data = await self.reader.read(READ_SIZE)
                if not data and status == 0:
                    raise ConnectionResetError("the receiver closed before answering")
                self.conn.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionResetError("the receiver closed mid-answer")
        if not 200 <= status < 300:
            raise _Refused(status)
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
            return True
        return False

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)
        except (TimeoutError, OSError, ssl.SSLError):
            pass


class _Refused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"the receiver answered {status}")


async def _sleep_until(when_ns: int) -> None:
    delay = when_ns - now_ns()
    if delay > 0:
        await asyncio.sleep(delay / 1e9)


class _Sender:
    """A subscription's connections to its callback: a small pool, as an HTTP client
    library keeps. An event goes out when it is born on an idle kept-alive connection,
    or on a new one when none is idle (at most MAX_CONNECTIONS at once), so a slow answer
    or a receiver that closes every connection delays that event, not the next."""

    MAX_CONNECTIONS = 8

    def __init__(self, callback: Callback, config: ServerConfig, tls: ssl.SSLContext) -> None:
        self.callback, self.config, self.tls = callback, config, tls
        self.idle: list[_Delivery] = []
        self.busy: set[_Delivery] = set()
        self.slots = asyncio.Semaphore(self.MAX_CONNECTIONS)
        self.failure: BaseException | None = None

    async def send(self, seq: int, born: int, size: int) -> None:
        """POST one event (stamped as it leaves); a kept-alive connection the receiver
        closed while idle is replaced once, as webhook senders retry. A failure is kept
        in `failure` (the subscription then stops), never raised."""
        async with self.slots:
            if self.failure is not None:
                return
            delivery = self.idle.pop() if self.idle else None
            try:
                try:
                    await self._post(delivery, seq, born, size)
                except (ConnectionError, h11.ProtocolError):
                    if delivery is None:
                        raise
                    await self._post(None, seq, born, size)
            except (OSError, TimeoutError, h11.ProtocolError, _Refused) as exc:
                self.failure = self.failure or exc

    async def _post(self, delivery: _Delivery | None, seq: int, born: int,
                    size: int) -> None:
        timeout = self.config.idle_timeout
        if delivery is None:
            delivery = await asyncio.wait_for(
                _Delivery.open(self.callback, self.config, self.tls), timeout)
        self.busy.add(delivery)
        try:
            body = encode_event(seq, born, now_ns(), size).encode()
            keep = await asyncio.wait_for(delivery.post(self.callback, body), timeout)
        except BaseException:
            self.busy.discard(delivery)
            await delivery.close()
            raise
        self.busy.discard(delivery)
        if keep:
            self.idle.append(delivery)
        else:
            await delivery.close()  # the receiver asked to close: the next event opens anew

    async def close(self) -> None:
        for delivery in [*self.idle, *self.busy]:
            await delivery.close()
        self.idle.clear()
        self.busy.clear()


async def deliver(sub: Subscription, origin: int, config: ServerConfig,
                  tls: ssl.SSLContext) -> None:
    """Run one subscription: each event POSTed when it is born, until the last is
    answered or a delivery fails (one log line says why)."""
    spec = sub.spec
    sender = _Sender(sub.callback, config, tls)
    sends: set[asyncio.Task[None]] = set()
    try:
        for seq in range(1, spec.count + 1):
            born = spec.born_ns(origin, seq)
            await _sleep_until(born)
            if sender.failure is not None:
                break
            task = asyncio.create_task(sender.send(seq, born, spec.size))
            sends.add(task)
            task.add_done_callback(sends.discard)
        await asyncio.gather(*sends)  # each send is bounded by its timeouts
    finally:
        for task in sends:
            task.cancel()
        await sender.close()
    if sender.failure is not None:
        reason = str(sender.failure) or type(sender.failure).__name__
        log.info("webhook %s: delivery stopped: %s", sub.callback.url, printable(reason))
