"""The one client interface every protocol implements, and the machinery they share.

The runner drives every protocol through `ProtocolClient`: `request()` returns a
`RequestRecord` (the core's vocabulary, `protolab.core.record`) of monotonic timestamps
and byte counts; it never raises for a failed request — the failure is a typed `error`
in the record, so a run keeps its raw samples whatever happens. Statistics are computed
later, from these records, never inside a client.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

from protolab.core.record import Request, RequestRecord, Timeline
from protolab.errors import ProtocolFailure
from protolab.timing import now_ns


class NextTurn:
    """Run `action` once on the next event-loop turn for everyone who asks during this one.

    Requests issued together must leave together, as a browser's do: written one by one,
    ten tiny requests are ten TCP segments (or QUIC packets) that fill the initial window
    (RFC 6928; RFC 9002 §7.2) and hold the next request back a round trip for an ACK.
    """

    def __init__(self, action: Callable[[], None]) -> None:
        self._action = action
        self._pending: asyncio.Future[None] | None = None

    def __call__(self) -> asyncio.Future[None]:
        if self._pending is None:
            loop = asyncio.get_running_loop()
            self._pending = loop.create_future()
            loop.call_soon(self._run)
        return self._pending

    def _run(self) -> None:
        future, self._pending = self._pending, None
        self._action()
        if future is not None and not future.done():
            future.set_result(None)


# RFC 9110 §5.6.2 tokens; header names lower-case as HTTP/2 and HTTP/3 require (RFC 9113
# §8.2.1, RFC 9114 §4.2), so a request means the same on every protocol.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+")


def check_request(request: Request) -> None:
    """Refuse, the same way on every protocol and before a byte is sent, a request that
    no protocol can carry (h11 would raise mid-exchange; h2 and aioquic would send it
    and let the server tear the connection down)."""
    if not _TOKEN.fullmatch(request.method):
        raise ProtocolFailure("bad_request", f"method {request.method!r} is not an HTTP token")
    if not request.path.startswith("/") or not all("!" <= c <= "~" for c in request.path):
        raise ProtocolFailure("bad_request", f"path {request.path!r} must start with / and be "
                              "visible ASCII (percent-encode the rest)")
    for name, value in request.headers:
        if not _NAME.fullmatch(name):
            raise ProtocolFailure("bad_request", f"header name {name!r} must be a lower-case "
                                  "token")
        if any(c in value for c in "\r\n\0"):
            raise ProtocolFailure("bad_request", f"header {name} holds CR, LF or NUL")


async def timed_exchange(
    protocol: str,
    request: Request,
    exchange: Callable[[Request, Timeline], Awaitable[None]],
    timeout_s: float,
    on_timeout: Callable[[Timeline], None] | None = None,
) -> RequestRecord:
    """Run one exchange under the per-request timeout and freeze its record.

    The one place every client maps failures into the record: a request no protocol can
    carry becomes "bad_request", a timeout "timeout" (and `on_timeout` may retire what
    the exchange left half-done), a `ProtocolFailure` its own typed kind, an untyped
    socket error "connection_lost". Nothing escapes: a failed request is a sample.
    """
    tl = Timeline(protocol, request)
    try:
        check_request(request)
        await asyncio.wait_for(exchange(request, tl), timeout_s)
    except TimeoutError:
        tl.fail("timeout", f"no complete response within {timeout_s} s")
        if on_timeout is not None:
            on_timeout(tl)
    except ProtocolFailure as exc:
        tl.fail(exc.kind, str(exc))
    except OSError as exc:  # a transport's error a client did not type: still a sample
        tl.fail("connection_lost", str(exc))
    if tl.error is None:
        tl.done_ns = tl.done_ns or now_ns()
    return tl.freeze()
