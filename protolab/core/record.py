"""The measurement vocabulary: where a client connects, what it asks, and the raw record
every request, stream or message exchange yields.

This is the centre of the lab: clients fill these records in, servers stamp messages,
the runner, store, statistics, charts and tracer read them. It imports nothing of
`clients/` or `servers/`. Times are monotonic nanoseconds from the one clock
(`protolab.timing.now_ns`); None means the moment did not happen.
`RECORD_FIELDS` is the one list of a record's fields: the store's columns and the
recorder's `freeze()` are derived from it.
"""

from __future__ import annotations

import base64
import dataclasses
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from protolab.certs import TlsVersion
from protolab.timing import now_ns
from protolab.workload import verify_content


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
        """For people and scripts (`--json`): a kept body as its size only."""
        data = asdict(self)
        data["arrivals"] = [list(a) for a in self.arrivals]
        data["content"] = None if self.content is None else len(self.content)  # size only
        return data

    def to_document(self) -> dict[str, Any]:
        """Lossless, for another process (a Dask worker's records): a kept body as base64,
        arrivals and messages as lists; `from_document` gives the record back."""
        data = asdict(self)
        data["arrivals"] = [list(a) for a in self.arrivals]
        data["content"] = None if self.content is None else base64.b64encode(
            self.content).decode("ascii")
        return data

    @classmethod
    def from_document(cls, data: Any) -> RequestRecord:
        """The record `to_document` wrote; ValueError for a document with other fields
        (another revision's records) or values of the wrong kind."""
        if not isinstance(data, dict) or set(data) != set(RECORD_FIELDS):
            raise ValueError("a record with other fields than this protolab's")
        messages = data["messages"]
        if not isinstance(messages, list | tuple) or not all(
                isinstance(m, dict) and set(m) == _MESSAGE_FIELDS for m in messages):
            raise ValueError("message timings this protolab does not know")
        content = data["content"]
        return cls(**{
            **data,
            "arrivals": tuple((int(t), int(n)) for t, n in data["arrivals"]),
            "messages": tuple(MessageTiming(**m) for m in messages),
            "content": None if content is None else base64.b64decode(content),
            "transport": dict(data["transport"]),
        })


# The one list of a record's fields, in declaration order.
RECORD_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RequestRecord))
_MESSAGE_FIELDS = frozenset(f.name for f in dataclasses.fields(MessageTiming))

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
        """The frozen record: every field of `RECORD_FIELDS` taken from this recorder (lists
        become tuples), except the few that are derived from the request or the checks."""
        verified: bool | None = None
        if self.status == 200 and _BYTES_PATH.match(self.request.path):
            verified = self.body_ok
        content: bytes | None = bytes(self.content) if self.content is not None else (
            b"" if self.request.keep_body and self.error is None else None)
        derived: dict[str, Any] = {
            "method": self.request.method, "path": self.request.path,
            "body_verified": verified, "content": content, "intended_ns": None,
        }
        values: dict[str, Any] = {}
        for name in RECORD_FIELDS:
            if name in derived:
                values[name] = derived[name]
                continue
            value = getattr(self, name)
            if isinstance(value, list):
                value = tuple(value)
            elif isinstance(value, dict):
                value = dict(value)
            values[name] = value
        return RequestRecord(**values)
