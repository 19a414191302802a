"""HTTP/1.1 server connection on h11.

Keep-alive by default; pipelined requests are answered strictly in order (h11 parses
the next request only after the current response is complete, and data that arrived
early waits in its buffer); `Connection: close` from the client ends the connection
after its response, so one-connection-per-request (HTTP/1.0 style) is expressible.

What h11 lets through and RFC 9112 does not, refused here with the connection closed
after the answer: a head with obsolete line folding (400, §5.2), a request with both
Content-Length and Transfer-Encoding (400: the request-smuggling shape of §6.3, and the
connection must not be reused), and an HTTP major version other than 1 (505, RFC 9110
§15.6.6). h11 itself answers duplicate differing Content-Length and invalid field names
with 400.
"""

from __future__ import annotations

import asyncio
import re
from http import HTTPStatus

import h11

from protolab.compression import header_value
from protolab.workload import (
    WorkloadRequest,
    WorkloadResponse,
    body_too_large,
    check_head,
    declared_length,
    error,
    head_size,
)
from servers.common import ServerConfig, drain, log, peer_name, printable, respond

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
            reason = printable(str(exc))
            log.info("h1 %s: bad request, answered %d: %s", peer, status, reason)
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                await _send(writer, conn, error(status, f"bad request: {reason}"), alt_svc,
                            close=True, peer=peer, config=config)
            return
        except TimeoutError:
            if conn.their_state is not h11.IDLE or conn.trailing_data[0]:
                log.info("h1 %s: request incomplete after %.0f s, closing",
                         peer, config.idle_timeout)
            return
        if rejection is not None:
            log.info("h1 %s: refused with %d: %s", peer, rejection.status, _why(rejection))
            await _send(writer, conn, rejection, alt_svc, close=True, peer=peer, config=config)
            return
        if request is None:  # clean close between requests
            return
        target = request.target.decode("ascii", "replace")
        response = await respond(
            WorkloadRequest(request.method.decode("ascii", "replace"), target, body,
                            accept_encoding=header_value(request.headers, b"accept-encoding"),
                            range=header_value(request.headers, b"range")),
            config.limits, config.compression,
        )
        if not await _send(writer, conn, response, alt_svc, close=False, peer=peer,
                           config=config):
            return
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
        if conn.their_state is h11.IDLE:
            _check_head_lines(conn.trailing_data[0])
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
            rejection = _check_framing(event) or check_head(
                head_size(headers), declared_length(headers), config.limits)
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
    peer: str,
    config: ServerConfig,
) -> bool:
    """Write `response`; False if the connection cannot go on (the client left, or stopped
    reading for the idle timeout)."""
    headers = response.headers(alt_svc)
    if close:
        headers.append(("connection", "close"))
    idle = config.idle_timeout
    loop = asyncio.get_running_loop()
    try:
        # A client that reads nothing for the idle timeout is idle too: each drain that
        # completes moves the deadline on (one timer, not a task per chunk).
        async with asyncio.timeout(idle) as deadline:
            writer.write(conn.send(h11.Response(
                status_code=response.status, headers=headers,
                reason=HTTPStatus(response.status).phrase.encode(),  # h2load needs one
            )) or b"")
            for chunk in response.body.chunks():
                writer.write(conn.send(h11.Data(data=bytes(chunk))) or b"")
                await drain(writer)
                deadline.reschedule(loop.time() + idle)
            if response.stream is not None:  # no content-length: h11 uses chunked coding
                deadline.reschedule(None)  # the producer's pauses are the workload's
                async for piece in response.stream():
                    deadline.reschedule(loop.time() + idle)
                    writer.write(conn.send(h11.Data(data=piece)) or b"")
                    await drain(writer)
                    deadline.reschedule(None)
                deadline.reschedule(loop.time() + idle)
            writer.write(conn.send(h11.EndOfMessage()) or b"")
            await drain(writer)
    except h11.LocalProtocolError as exc:
        log.info("h1 %s: cannot send the response: %s", peer, printable(str(exc)))
        return False
    except TimeoutError:
        log.info("h1 %s: read nothing of the response for %.0f s, closing", peer, idle)
        return False
    except (ConnectionError, OSError):
        return False  # the client went away; nothing left to tell it
    return True


def _why(response: WorkloadResponse) -> str:
    literal = response.body.literal
    return printable(literal.decode("utf-8", "replace").strip()) if literal else "no reason"


# A head line that starts with whitespace: folding (RFC 9112 §5.2) or, right after the
# request line, whitespace before the first field (§2.2). h11 unfolds the first silently.
_FOLDED = re.compile(rb"\n[ \t]")
_HEAD_END = re.compile(rb"\r?\n\r?\n")


def _check_head_lines(buffered: bytes) -> None:
    """Refuse a request head (complete or not yet) whose lines are folded: RFC 9112 §5.2
    lets a server reject obs-fold or replace it, and a lab server has no old clients to
    keep working, so 400 is the answer that cannot be read two ways."""
    buffered = buffered.lstrip(b"\r\n")  # empty lines before a request line are ignored (§2.2)
    end = _HEAD_END.search(buffered)
    head = buffered[:end.start() + 1] if end else buffered
    if _FOLDED.search(head):
        raise h11.RemoteProtocolError(
            "a header line starts with whitespace (obsolete line folding, RFC 9112 §5.2)",
            error_status_hint=400)


def _check_framing(request: h11.Request) -> WorkloadResponse | None:
    """The 505 or 400 for a request h11 accepts but RFC 9112 does not want answered on a
    connection that goes on."""
    major = request.http_version.split(b".", 1)[0]
    if major != b"1":
        version = request.http_version.decode("ascii", "replace")
        return error(505, f"HTTP/{version} is not supported; this server speaks HTTP/1.1 here")
    names = {name for name, _ in request.headers}  # h11 lower-cases names
    if b"content-length" in names and b"transfer-encoding" in names:
        return error(400, "both Content-Length and Transfer-Encoding: the message framing is "
                          "ambiguous (RFC 9112 §6.3)")
    return None
