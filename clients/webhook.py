"""Webhooks as their receiver sees them: the client serves HTTP, the server calls it.

One exchange is one whole subscription, as a WebSocket `/push` exchange is. The client
starts an HTTP/1.1 endpoint (h11 over a real listening socket, port 0) on its own
address — the one the kernel routes from toward the server: loopback on loopback, the
link address in the client's namespace — then subscribes over the lab's HTTP/1.1 client
(clients/h1.py, TLS as the target says) to the server's webhook listener:

    POST /subscribe?callback=http://ADDR:PORT/hook&stream=...&count=M&size=S&interval_ms=I

The server (servers/webhook.py) POSTs each event's JSON (protolab.events) to that URL
when it is born, on one connection it keeps alive across events. The request path is
the push vocabulary every push client reads (`/push?count=M&size=S&interval_ms=I`;
`poll_ms` and `wait_ms` are other clients' and ignored), each exchange on a fresh
stream name. With `keepalive = false` the endpoint answers every callback with
`Connection: close`, so every event costs the server a new TCP connection.

The record: one `MessageTiming` per event with the server's `born_ns`/`sent_ns` and the
arrival of the read that completed its POST; `size` = the event's JSON text. Phases are
the subscribe request's; `bytes_in`/`bytes_out` add every callback byte the endpoint
received and sent (HTTP/1.1 message bytes, as the other push clients count) to the
subscribe exchange's; transport counters add `callbacks` and `callback_connections`.
The callback endpoint is cleartext (it has no certificate of its own).
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from dataclasses import dataclass, field
from typing import ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import h11

from clients.http_push import HttpPushOptions, OverHttp1
from protolab.core.record import MessageTiming, Request, Target, Timeline
from protolab.errors import ProtocolFailure
from protolab.events import decode_event
from protolab.tcpsock import set_congestion_control
from protolab.timing import now_ns

_OTHER_CLIENTS = ("poll_ms", "wait_ms", "after")  # push parameters this client never sends
_MAX_EVENT_BODY = 2 << 20


@dataclass(frozen=True)
class WebhookOptions(HttpPushOptions):
    """keepalive = False: the endpoint closes after every callback (and subscribe)."""

    host: str | None = None  # the endpoint's address; None: the source address toward
    # the server (the address the server sees the subscription come from)


def _stream_query(path: str) -> list[tuple[str, str]]:
    split = urlsplit(path)
    if split.path != "/push" and not split.path.startswith("/events/"):
        raise ProtocolFailure("bad_request", f"a push path is /push?count=M&size=S&"
                              f"interval_ms=I, not {path!r}")
    query = [p for p in parse_qsl(split.query) if p[0] not in _OTHER_CLIENTS]
    if not any(k == "stream" for k, _ in query):
        query.append(("stream", f"s{uuid.uuid4().hex[:16]}"))
    return query


async def own_address(target: Target) -> str:
    """The address this host sends from toward `target` (a connected UDP socket sends
    nothing; the kernel just picks the route's source address)."""
    infos = await asyncio.get_running_loop().getaddrinfo(target.host, target.port,
                                                         type=socket.SOCK_DGRAM)
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect(addr)
        return str(probe.getsockname()[0])


@dataclass
class _Inbox:
    """What the endpoint received, across its connections."""

    count: int  # events expected
    keepalive: bool
    messages: list[MessageTiming] = field(default_factory=list)
    bytes_in: int = 0
    bytes_out: int = 0
    connections: int = 0
    transports: set[asyncio.Transport] = field(default_factory=set)  # open ones
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())

    def fail(self, kind: str, detail: str) -> None:
        if not self.done.done():
            self.done.set_exception(ProtocolFailure(kind, detail))


class _CallbackConnection(asyncio.Protocol):
    """One connection the server opened to the endpoint: HTTP/1.1 requests in, answers out."""

    def __init__(self, inbox: _Inbox) -> None:
        self._inbox = inbox
        self._conn = h11.Connection(h11.SERVER)
        self._transport: asyncio.Transport | None = None
        self._target = b""
        self._body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if isinstance(transport, asyncio.Transport):
            self._transport = transport
            self._inbox.transports.add(transport)
        self._inbox.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._inbox.transports.discard(self._transport)

    def data_received(self, data: bytes) -> None:
        arrived = now_ns()
        self._inbox.bytes_in += len(data)
        self._conn.receive_data(data)
        try:
            self._events(arrived)
        except h11.RemoteProtocolError as exc:
            self._inbox.fail("bad_callback", f"the server's callback is not HTTP/1.1: {exc}")
            self._answer(400, close=True)

    def eof_received(self) -> bool | None:
        self._conn.receive_data(b"")
        return None

    def _events(self, arrived: int) -> None:
        while True:
            event = self._conn.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self._target, self._body = event.target, bytearray()
            elif isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > _MAX_EVENT_BODY:
                    self._inbox.fail("bad_callback", "a callback body over 2 MiB")
                    self._answer(413, close=True)
                    return
            elif isinstance(event, h11.EndOfMessage):
                self._event(arrived)
                if not self._answer(204, close=not self._inbox.keepalive):
                    return
                self._conn.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed):
                return

    def _event(self, arrived: int) -> None:
        try:
            event = decode_event(bytes(self._body))
        except (ValueError, KeyError, TypeError) as exc:
            self._inbox.fail("bad_event", f"callback {self._target!r} carried no event: {exc}")
            return
        inbox = self._inbox
        inbox.messages.append(MessageTiming(event.seq, len(self._body), event.sent_ns, arrived,
                                            event.born_ns))
        if len(inbox.messages) >= inbox.count and not inbox.done.done():
            inbox.done.set_result(None)

    def _answer(self, status: int, *, close: bool) -> bool:
        """Answer the current request; False when the connection is done."""
        headers = [("content-length", "0"), ("server", "protolab-webhook-receiver")]
        if close:
            headers.append(("connection", "close"))
        try:
            data = (self._conn.send(h11.Response(status_code=status, headers=headers)) or b"")
            data += self._conn.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError:
            close, data = True, b""
        self._inbox.bytes_out += len(data)
        if self._transport is not None:
            self._transport.write(data)
            if close or self._conn.our_state is h11.MUST_CLOSE:
                self._transport.close()
                return False
        return True


class _Endpoint:
    """The client's callback server: a listening socket on its own address, port 0."""

    def __init__(self, server: asyncio.Server, inbox: _Inbox, host: str) -> None:
        self._server, self.inbox, self.host = server, inbox, host
        self.port: int = server.sockets[0].getsockname()[1]

    @classmethod
    async def start(cls, host: str, cc: str, inbox: _Inbox) -> _Endpoint:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            set_congestion_control(sock, cc)  # accepted sockets inherit it
            sock.bind((host, 0))
            sock.listen(16)
            sock.setblocking(False)
            server = await asyncio.get_running_loop().create_server(
                lambda: _CallbackConnection(inbox), sock=sock)
        except BaseException:
            sock.close()
            raise
        return cls(server, inbox, host)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/hook"

    async def close(self) -> None:
        self._server.close()
        for transport in list(self.inbox.transports):
            transport.abort()  # the subscription is over: what the server still sends is not
        await self._server.wait_closed()


class WebhookClient(OverHttp1[WebhookOptions]):
    name: ClassVar[str] = "http-webhook"
    options_type = WebhookOptions

    async def _exchange(self, request: Request, tl: Timeline) -> None:
        query = _stream_query(request.path)
        count = next((v for k, v in query if k == "count"), "10")
        inbox = _Inbox(int(count) if count.isdigit() else 0, self.options.keepalive)
        try:
            host = self.options.host or await own_address(self.target)
            endpoint = await _Endpoint.start(host, self.options.cc, inbox)
        except OSError as exc:
            raise ProtocolFailure("endpoint_failed", f"cannot serve the callback: "
                                  f"{exc.strerror or exc}") from exc
        try:
            if inbox.count == 0:
                inbox.done.set_result(None)
            path = "/subscribe?" + urlencode([("callback", endpoint.url), *query])
            await self._subscribe(path, tl)
            await asyncio.shield(inbox.done)
            tl.done_ns = max(m.received_ns for m in inbox.messages) if inbox.messages \
                else now_ns()
        finally:
            await endpoint.close()
            tl.messages = sorted(inbox.messages, key=lambda m: m.seq)
            tl.bytes_in += inbox.bytes_in
            tl.bytes_out += inbox.bytes_out
            tl.transport.update({"callbacks": len(inbox.messages),
                                 "callback_connections": inbox.connections})

    async def _subscribe(self, path: str, tl: Timeline) -> None:
        record = await self._http.request(Request(method="POST", path=path, keep_body=True))
        tl.connection_id, tl.new_connection = record.connection_id, record.new_connection
        tl.conn_start_ns, tl.connected_ns = record.conn_start_ns, record.connected_ns
        tl.handshake_ns, tl.request_sent_ns = record.handshake_ns, record.request_sent_ns
        tl.first_byte_ns, tl.status = record.first_byte_ns, record.status
        tl.alpn, tl.tls_version, tl.cipher = record.alpn, record.tls_version, record.cipher
        tl.bytes_in += record.bytes_in
        tl.bytes_out += record.bytes_out
        tl.transport = dict(record.transport)
        if record.error is not None:
            raise ProtocolFailure(record.error, record.error_detail or record.error)
        if record.status != 202:
            reason = (record.content or b"").decode("utf-8", "replace").strip()
            raise ProtocolFailure("http_status", f"/subscribe answered {record.status}: "
                                  f"{reason[:200]}")
