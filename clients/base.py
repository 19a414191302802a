"""The one client interface every protocol implements, and the raw record each request yields.

The runner drives every protocol through `ProtocolClient`: `request()` returns a
`RequestRecord` of monotonic timestamps (from `protolab.timing.now_ns`) and byte
counts; it never raises for a failed request — the failure is a typed `error` in the
record, so a run keeps its raw samples whatever happens. Statistics are computed
later, from these records, never inside a client.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from protolab.certs import TlsVersion
from protolab.errors import ProtocolFailure
from protolab.timing import now_ns
from protolab.workload import verify_content


@dataclass(frozen=True)
class Capabilities:
    """What a protocol can do, so callers branch on features, not on protocol names."""

    multiplexed: bool  # many requests in flight on one connection, interleaved
    over_quic: bool  # UDP/QUIC transport rather than TCP
    early_data: bool  # can send a request in the first flight (0-RTT)
    pipelining: bool  # requests in flight in order, without interleaving


@dataclass(frozen=True)
class Target:
    """Where a client connects and how it authenticates the server."""

    host: str
    port: int
    tls: bool = True
    ca_file: Path | None = None  # trust only this CA; None -> the system store
    server_name: str | None = None  # SNI / certificate name; defaults to host
    tls_version: TlsVersion | None = None  # pin the client to one version
    keylog_file: Path | None = None  # NSS key log for Wireshark/tshark

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class Request:
    method: str = "GET"
    path: str = "/"
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()  # extra request headers (lower-case names)
    record_arrivals: bool = False  # keep (time, bytes) of every body data arrival
    keep_body: bool = False  # keep the response body in the record's `content`


@dataclass(frozen=True)
class MessageTiming:
    """One message of a message-oriented exchange (WebSocket, gRPC streams, push events)."""

    seq: int  # the message's sequence number (1-based)
    size: int  # payload bytes
    sent_ns: int | None  # when it left its sender: client clock (echo) or server stamp (push)
    received_ns: int  # when it arrived at its receiver: the client, or for
    # client-to-server messages the server's stamp in its reply
    born_ns: int | None = None  # push events: when the server produced the event


@dataclass(frozen=True)
class RequestRecord:
    """The raw timeline of one request. Times are `now_ns()` values; None = did not happen."""

    protocol: str  # "h1", "h2", "h3"
    method: str
    path: str
    start_ns: int  # request() was called
    connection_id: int  # client-local number of the connection used
    new_connection: bool  # this request opened its connection (connect phases are its own)
    conn_start_ns: int | None = None  # connection attempt began (new connections only)
    connected_ns: int | None = None  # TCP established (TCP only)
    handshake_ns: int | None = None  # TLS / QUIC handshake complete
    request_sent_ns: int | None = None  # last request byte handed to the transport
    first_byte_ns: int | None = None  # first response byte arrived
    done_ns: int | None = None  # response complete
    status: int | None = None
    stream_id: int | None = None
    bytes_out: int = 0  # request bytes at the protocol's framing layer
    bytes_in: int = 0  # response bytes at the protocol's framing layer
    body_bytes: int = 0  # response body bytes
    body_verified: bool | None = None  # /bytes content checked: True ok, False corrupt
    alpn: str | None = None
    tls_version: str | None = None
    cipher: str | None = None
    resumed: bool = False  # TLS session / QUIC ticket resumption
    early_data: bool = False  # request left in 0-RTT and the server accepted it
    arrivals: tuple[tuple[int, int], ...] = ()  # (time, bytes) per body data arrival
    error: str | None = None  # typed failure name, e.g. "connect_refused", "timeout"
    error_detail: str | None = None
    transport: dict[str, int] = field(default_factory=dict)  # e.g. kernel TCP_INFO counters
    upgraded_ns: int | None = None  # WebSocket upgrade done / gRPC channel ready
    messages: tuple[MessageTiming, ...] = ()  # per message, for message-oriented protocols
    content: bytes | None = None  # the response body, when the request asked to keep it
    # Open-loop load: when the load model meant to send this request. Latency counts from
    # here, so a late send is not hidden (coordinated omission, Tene's "How NOT to
    # measure latency"); None under closed-loop load.
    intended_ns: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and self.body_verified is not False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["arrivals"] = [list(a) for a in self.arrivals]
        data["content"] = None if self.content is None else len(self.content)  # size only
        return data


_BYTES_PATH = re.compile(r"^/(?:delay/\d+/)?bytes/\d+(?:\?.*)?$")


@dataclass(slots=True)
class Timeline:
    """Mutable recorder a protocol fills in while a request runs; `freeze()` makes the record."""

    protocol: str
    request: Request
    start_ns: int = field(default_factory=now_ns)
    connection_id: int = -1
    new_connection: bool = False
    conn_start_ns: int | None = None
    connected_ns: int | None = None
    handshake_ns: int | None = None
    request_sent_ns: int | None = None
    first_byte_ns: int | None = None
    done_ns: int | None = None
    status: int | None = None
    stream_id: int | None = None
    bytes_out: int = 0
    bytes_in: int = 0
    body_bytes: int = 0
    body_ok: bool = True
    alpn: str | None = None
    tls_version: str | None = None
    cipher: str | None = None
    resumed: bool = False
    early_data: bool = False
    arrivals: list[tuple[int, int]] = field(default_factory=list)
    error: str | None = None
    error_detail: str | None = None
    transport: dict[str, int] = field(default_factory=dict)
    upgraded_ns: int | None = None
    messages: list[MessageTiming] = field(default_factory=list)
    content: bytearray | None = None

    def first_byte(self) -> None:
        if self.first_byte_ns is None:
            self.first_byte_ns = now_ns()

    def body(self, data: bytes | memoryview) -> None:
        """Account for a piece of response body: verify it, count it, maybe time it."""
        t = now_ns()
        if self.first_byte_ns is None:
            self.first_byte_ns = t
        if self.status == 200 and self.body_ok and _BYTES_PATH.match(self.request.path):
            self.body_ok = verify_content(self.body_bytes, data)
        self.body_bytes += len(data)
        if self.request.keep_body:
            if self.content is None:
                self.content = bytearray()
            self.content += data
        if self.request.record_arrivals:
            self.arrivals.append((t, len(data)))

    def fail(self, kind: str, detail: str) -> None:
        if self.error is None:
            self.error, self.error_detail = kind, detail

    def freeze(self) -> RequestRecord:
        verified: bool | None = None
        if self.status == 200 and _BYTES_PATH.match(self.request.path):
            verified = self.body_ok
        return RequestRecord(
            protocol=self.protocol, method=self.request.method, path=self.request.path,
            start_ns=self.start_ns, connection_id=self.connection_id,
            new_connection=self.new_connection, conn_start_ns=self.conn_start_ns,
            connected_ns=self.connected_ns, handshake_ns=self.handshake_ns,
            request_sent_ns=self.request_sent_ns, first_byte_ns=self.first_byte_ns,
            done_ns=self.done_ns, status=self.status, stream_id=self.stream_id,
            bytes_out=self.bytes_out, bytes_in=self.bytes_in, body_bytes=self.body_bytes,
            body_verified=verified, alpn=self.alpn, tls_version=self.tls_version,
            cipher=self.cipher, resumed=self.resumed, early_data=self.early_data,
            arrivals=tuple(self.arrivals), error=self.error, error_detail=self.error_detail,
            transport=dict(self.transport), upgraded_ns=self.upgraded_ns,
            messages=tuple(self.messages),
            content=bytes(self.content) if self.content is not None
            else (b"" if self.request.keep_body and self.error is None else None),
        )


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


async def timed_exchange(
    protocol: str,
    request: Request,
    exchange: Callable[[Request, Timeline], Awaitable[None]],
    timeout_s: float,
    on_timeout: Callable[[Timeline], None] | None = None,
) -> RequestRecord:
    """Run one exchange under the per-request timeout and freeze its record.

    The one place every client maps failures into the record: a timeout becomes error
    "timeout" (and `on_timeout` may retire what the exchange left half-done), a
    `ProtocolFailure` its own typed kind. Nothing escapes: a failed request is a sample.
    """
    tl = Timeline(protocol, request)
    try:
        await asyncio.wait_for(exchange(request, tl), timeout_s)
    except TimeoutError:
        tl.fail("timeout", f"no complete response within {timeout_s} s")
        if on_timeout is not None:
            on_timeout(tl)
    except ProtocolFailure as exc:
        tl.fail(exc.kind, str(exc))
    if tl.error is None:
        tl.done_ns = tl.done_ns or now_ns()
    return tl.freeze()


class ProtocolClient(Protocol):
    """One client per protocol: the runner sees only this."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    async def request(self, request: Request) -> RequestRecord:
        """Send one request (opening a connection if needed) and return its raw record."""
        ...

    async def close(self) -> None:
        """Close every connection; pending requests end with error "closed"."""
        ...
