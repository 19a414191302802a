"""Webhooks: the server calls the client's own HTTP endpoint, one POST per event.

The subscriber asks, over HTTP/1.1 (h11; TLS as the lab's other listeners):

    POST /subscribe?callback=URL&count=M&size=S&interval_ms=I[&stream=NAME]

and is answered `202 Accepted` at once; then event k of the stream (protolab.events: the
same JSON per event as WebSocket push, polling and SSE carry) is POSTed to URL when it
is born, `sent_ns` stamped as the request is written. The delivery connection is kept
alive across events, as real webhook senders (GitHub's, Stripe's) pool theirs; a
receiver that answers `Connection: close` or drops it gets a new connection for the
next event, and a kept-alive connection found dead before any answer is retried once on
a fresh one. A delivery that fails otherwise ends the subscription with one log line.

The callback is validated before anything is sent — a server that calls URLs it is
given is an SSRF hazard (OWASP SSRF Prevention Cheat Sheet): only http:// or https://,
no user info or fragment, and the host must be an IP literal equal to the address the
subscribing connection came from (no names, so no DNS rebinding), never this listener
itself. Another host is one 403 naming both addresses; a malformed URL or stream
parameter is a 400 with the reason. At most MAX_SUBSCRIPTIONS run at once (503 beyond).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import ssl
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import h11

from protolab.certs import CertBundle, client_tls_context, server_tls_context
from protolab.events import StreamSpec, encode_event, parse_spec
from protolab.push import HUB
from protolab.tcpsock import set_congestion_control
from protolab.timing import now_ns
from protolab.workload import Body, WorkloadResponse, error, head_size
from servers.common import ServerConfig, StreamTasks, log, printable
from servers.tcp import StreamListener, listen_streams

MAX_SUBSCRIPTIONS = 64  # running at once, per listener
_MAX_BODY = 4096  # a subscribe request carries its parameters in the query
_READ = 65_536


@dataclass(frozen=True)
class Callback:
    """Where the events go: a validated http(s) URL on the subscriber's own address."""

    scheme: str  # "http" or "https"
    host: str  # an IP literal, the subscriber's address
    port: int
    target: str  # path and query, as the request line carries them

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.target}"


@dataclass(frozen=True)
class Subscription:
    callback: Callback
    spec: StreamSpec


def _same_address(a: ipaddress.IPv4Address | ipaddress.IPv6Address,
                  b: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    def plain(x: ipaddress.IPv4Address | ipaddress.IPv6Address
              ) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        mapped = getattr(x, "ipv4_mapped", None)
        return mapped if mapped is not None else x

    return plain(a) == plain(b)


def parse_callback(raw: str, peer_host: str, own: tuple[str, int] | None = None,
                   ) -> Callback | WorkloadResponse:
    """The callback URL, if the subscriber at `peer_host` may be called there; else the
    400 (malformed) or 403 (not the subscriber's own address) to answer. `own` is this
    listener's address: a callback to it would make the server call itself."""
    split = urlsplit(raw)
    if split.scheme not in ("http", "https"):
        return error(400, f"callback must be an http:// or https:// URL, got {raw[:80]!r}")
    if split.username is not None or split.password is not None or split.fragment:
        return error(400, "callback must not carry user info or a fragment")
    if not split.hostname:
        return error(400, "callback has no host")
    try:
        given = split.port
    except ValueError:
        return error(400, "callback port must be a number in 1..65535")
    port = (443 if split.scheme == "https" else 80) if given is None else given
    if port == 0:
        return error(400, "callback port must be a number in 1..65535")
    target = split.path or "/"
    if split.query:
        target += "?" + split.query
    if not target.startswith("/") or not all("!" <= c <= "~" for c in target):
        return error(400, "callback path must be visible ASCII (percent-encode the rest)")
    try:
        peer = ipaddress.ip_address(peer_host)
    except ValueError:
        return error(403, "this server calls back only the subscriber's own address, and "
                          "cannot tell what that is here")
    try:
        host = ipaddress.ip_address(split.hostname)
    except ValueError:
        host = None
    if host is None or not _same_address(host, peer):
        return error(403, f"callback host {split.hostname!r} is not your address {peer}: "
                          "this server calls back only the address that subscribed")
    if own is not None and port == own[1] and _same_address(host, ipaddress.ip_address(own[0])):
        return error(403, "callback points at this server itself")
    return Callback(split.scheme, str(host), port, target)


def parse_subscription(target: str, peer_host: str, own: tuple[str, int] | None = None,
                       ) -> Subscription | WorkloadResponse:
    """POST /subscribe's query as a subscription, or the 4xx answer saying what is wrong."""
    query = parse_qs(urlsplit(target).query, keep_blank_values=True)
    callbacks = query.pop("callback", [])
    if len(callbacks) != 1:
        return error(400, "give exactly one callback=URL (percent-encoded)")
    spec = parse_spec(query)
    if isinstance(spec, str):
        return error(400, spec)
    callback = parse_callback(callbacks[0], peer_host, own)
    if isinstance(callback, WorkloadResponse):
        return callback
    return Subscription(callback, spec)


class WebhookListener:
    """The subscribe listener, its connections and the deliveries it runs."""

    def __init__(self, streams: StreamListener, deliveries: StreamTasks) -> None:
        self.streams, self.deliveries = streams, deliveries

    def close(self) -> None:
        self.streams.close()
        self.deliveries.cancel()


class _Serve:
    def __init__(self, config: ServerConfig, certs: CertBundle | None,
                 deliveries: StreamTasks) -> None:
        self._config, self._deliveries = config, deliveries
        self.tls = (server_tls_context(certs, ["http/1.1"], config.tls_version)
                     if certs is not None else None)
        # https callbacks are verified against the lab's CA (or the system's, in cleartext)
        self._callback_tls = client_tls_context(certs.ca_file if certs else None,
                                                ["http/1.1"])

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       peer: str) -> None:
        own = writer.get_extra_info("sockname")
        try:
            await self._requests(reader, writer, str(writer.get_extra_info("peername")[0]),
                                 (own[0], own[1]), peer)
        except (TimeoutError, h11.ProtocolError, ConnectionError, OSError):
            pass  # idle, garbled or gone: nothing more to say to it

    async def _requests(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        peer_host: str, own: tuple[str, int], peer: str) -> None:
        config = self._config
        conn = h11.Connection(h11.SERVER,
                              max_incomplete_event_size=config.limits.max_header_bytes)
        while True:
            request: h11.Request | None = None
            body = 0
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await asyncio.wait_for(reader.read(_READ),
                                                             config.idle_timeout))
                elif isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body += len(event.data)
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    break
            if request is None:
                return
            response = self._answer(request, body, peer_host, own, peer)
            head = [(n, v) for n, v in response.headers()]
            literal = response.body.literal or b""
            writer.write(conn.send(h11.Response(status_code=response.status, headers=head,
                                                reason=HTTPStatus(response.status).phrase
                                                .encode())) or b"")
            writer.write(conn.send(h11.Data(data=literal)) or b"")
            writer.write(conn.send(h11.EndOfMessage()) or b"")
            await writer.drain()
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()

    def _answer(self, request: h11.Request, body: int, peer_host: str,
                own: tuple[str, int], peer: str) -> WorkloadResponse:
        target = request.target.decode("ascii", "replace")
        path = urlsplit(target).path
        if head_size(list(request.headers)) > self._config.limits.max_header_bytes:
            return error(431, "request headers over the limit")
        if path == "/health":
            if request.method != b"GET":
                return error(405, "/health takes GET")
            return WorkloadResponse(200, "text/plain; charset=utf-8", Body(3, b"ok\n"))
        if path != "/subscribe":
            return error(404, f"no such resource: {path} (this listener takes "
                              "POST /subscribe?callback=URL&count=M&size=S&interval_ms=I)")
        if request.method != b"POST":
            return error(405, "/subscribe takes POST")
        if body > _MAX_BODY:
            return error(413, "a subscription's parameters go in the query, not the body")
        found = parse_subscription(target, peer_host, own)
        if isinstance(found, WorkloadResponse):
            reason = (found.body.literal or b"").decode().strip()
            log.info("webhook %s: refused with %d: %s", peer, found.status, printable(reason))
            return found
        if self._deliveries.running() >= MAX_SUBSCRIPTIONS:
            return error(503, f"{MAX_SUBSCRIPTIONS} subscriptions are running; try later")
        origin = HUB.origin(found.spec, now_ns())
        self._deliveries.spawn(_deliver(found, origin, self._config, self._callback_tls))
        text = json.dumps({"stream": found.spec.name, "count": found.spec.count,
                           "callback": found.callback.url}).encode()
        return WorkloadResponse(202, "application/json", Body(len(text), text))


async def start_webhook_server(config: ServerConfig, certs: CertBundle | None,
                               sock: socket.socket) -> WebhookListener:
    """Serve POST /subscribe on `sock` (listening, with the lab's congestion control)."""
    deliveries = StreamTasks()
    serve = _Serve(config, certs, deliveries)
    streams = await listen_streams(sock, serve.tls, serve, idle_timeout=config.idle_timeout,
                                   tag="webhook", read_limit=2 * _READ)
    return WebhookListener(streams, deliveries)


# --- delivery: the server as an HTTP client of the subscriber ---------------------------


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
                data = await self.reader.read(_READ)
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


async def _deliver(sub: Subscription, origin: int, config: ServerConfig,
                   tls: ssl.SSLContext) -> None:
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
