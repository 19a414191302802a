"""HTTP/1.1 server connection on h11.

Keep-alive by default; pipelined requests are answered strictly in order (h11 parses
the next request only after the current response is complete, and data that arrived
early waits in its buffer); `Connection: close` from the client ends the connection
after its response, so one-connection-per-request (HTTP/1.0 style) is expressible.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus

import h11

from protolab.workload import (
    WorkloadRequest,
    WorkloadResponse,
    body_too_large,
    check_head,
    declared_length,
    error,
    head_size,
)
from servers.common import ServerConfig, log, peer_name, respond

_READ = 65_536


async def serve_h1(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    config: ServerConfig,
    initial: bytes,
    alt_svc: str | None,
) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=config.limits.max_header_bytes)
    peer = peer_name(writer.get_extra_info("peername"))
    if initial:
        conn.receive_data(initial)
    while True:
        try:
            request, body, rejection = await _read_request(conn, reader, config)
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint
            log.info("h1 %s: bad request (%s): %s", peer, status, exc)
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                await _send(writer, conn, error(status, f"bad request: {exc}"), alt_svc, close=True)
            return
        except TimeoutError:
            if conn.their_state is not h11.IDLE or conn.trailing_data[0]:
                log.info("h1 %s: request incomplete after %.0f s, closing",
                         peer, config.idle_timeout)
            return
        if rejection is not None:
            log.info("h1 %s: rejected with %d", peer, rejection.status)
            await _send(writer, conn, rejection, alt_svc, close=True)
            return
        if request is None:  # clean close between requests
            return
        target = request.target.decode("ascii", "replace")
        response = await respond(
            WorkloadRequest(request.method.decode("ascii", "replace"), target, body),
            config.limits,
        )
        await _send(writer, conn, response, alt_svc, close=False)
        if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
            return
        try:
            conn.start_next_cycle()
        except h11.LocalProtocolError:
            return


async def _read_request(
    conn: h11.Connection, reader: asyncio.StreamReader, config: ServerConfig
) -> tuple[h11.Request | None, bytes, WorkloadResponse | None]:
    """The next request and its body, or a 413 to answer instead; (None, b"", None) on close."""
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await asyncio.wait_for(reader.read(_READ), config.idle_timeout)
            conn.receive_data(data)
            continue
        if isinstance(event, h11.Request):
            request = event
            # Sized as HTTP/2 and HTTP/3 size headers, so one limit means the same everywhere
            # (h11's max_incomplete_event_size only catches heads that arrive in pieces).
            headers = list(event.headers)
            rejection = check_head(head_size(headers), declared_length(headers), config.limits)
        elif isinstance(event, h11.Data):
            body += event.data
            rejection = body_too_large(len(body), config.limits)
        elif isinstance(event, h11.EndOfMessage):
            return request, bytes(body), None
        else:  # ConnectionClosed
            return None, b"", None
        if rejection is not None:
            return request, b"", rejection


async def _send(
    writer: asyncio.StreamWriter,
    conn: h11.Connection,
    response: WorkloadResponse,
    alt_svc: str | None,
    *,
    close: bool,
) -> None:
    headers = response.headers(alt_svc)
    if close:
        headers.append(("connection", "close"))
    try:
        writer.write(conn.send(h11.Response(
            status_code=response.status, headers=headers,
            reason=HTTPStatus(response.status).phrase.encode(),  # h2load needs one
        )) or b"")
        for chunk in response.body.chunks():
            writer.write(conn.send(h11.Data(data=bytes(chunk))) or b"")
            await writer.drain()
        if response.stream is not None:  # no content-length: h11 uses chunked coding
            async for piece in response.stream():
                writer.write(conn.send(h11.Data(data=piece)) or b"")
                await writer.drain()
        writer.write(conn.send(h11.EndOfMessage()) or b"")
        await writer.drain()
    except h11.LocalProtocolError as exc:
        log.info("h1: cannot send response: %s", exc)
    except (ConnectionError, OSError):
        pass  # the client went away; nothing left to tell it
