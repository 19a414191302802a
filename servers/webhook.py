"""Webhooks: the server calls the client's own HTTP endpoint, one POST per event.

The subscriber asks, over HTTP/1.1 (h11; TLS as the lab's other listeners):

    POST /subscribe?callback=URL&count=M&size=S&interval_ms=I[&stream=NAME]

and is answered `202 Accepted` at once; then event k of the stream is POSTed to URL when
it is born, on connections kept alive across events (servers/webhook_delivery.py).

The callback is validated before anything is sent (servers/webhook_subscription.py): an
http:// or https:// URL on the address the subscriber came from, never this listener
itself; another host is one 403 naming both addresses, a malformed URL or stream
parameter a 400 with the reason. At most MAX_SUBSCRIPTIONS run at once (503 beyond).
This module is the listener: its HTTP handling, and the subscriptions it starts.
"""

from __future__ import annotations

import asyncio
import json
import socket
from http import HTTPStatus
from urllib.parse import urlsplit

import h11

from protolab.certs import CertBundle, client_tls_context, server_tls_context
from protolab.push import HUB
from protolab.timing import now_ns
from protolab.workload import Body, WorkloadResponse, error, head_size
from servers.common import ServerConfig, StreamTasks, log, printable
from servers.tcp import READ_SIZE, StreamListener, listen_streams
from servers.webhook_delivery import deliver
from servers.webhook_subscription import (
    Callback,
    Subscription,
    parse_callback,
    parse_subscription,
)

__all__ = ["MAX_SUBSCRIPTIONS", "Callback", "Subscription", "WebhookListener",
           "parse_callback", "parse_subscription", "start_webhook_server"]

MAX_SUBSCRIPTIONS = 64  # running at once, per listener
_MAX_BODY = 4096  # a subscribe request carries its parameters in the query


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
                    conn.receive_data(await asyncio.wait_for(reader.read(READ_SIZE),
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
        self._deliveries.spawn(deliver(found, origin, self._config, self._callback_tls))
        text = json.dumps({"stream": found.spec.name, "count": found.spec.count,
                           "callback": found.callback.url}).encode()
        return WorkloadResponse(202, "application/json", Body(len(text), text))


async def start_webhook_server(config: ServerConfig, certs: CertBundle | None,
                               sock: socket.socket) -> WebhookListener:
    """Serve POST /subscribe on `sock` (listening, with the lab's congestion control)."""
    deliveries = StreamTasks()
    serve = _Serve(config, certs, deliveries)
    streams = await listen_streams(sock, serve.tls, serve, idle_timeout=config.idle_timeout,
                                   tag="webhook", read_limit=2 * READ_SIZE)
    return WebhookListener(streams, deliveries)
