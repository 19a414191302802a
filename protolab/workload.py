"""The request vocabulary every server answers identically.

A comparison is only fair when every protocol moves the same bytes, so routing,
limits, status codes, headers and body content live here, once, as pure code.
Servers translate their wire protocol into a `WorkloadRequest`, call `plan()`, and
translate the resulting `WorkloadResponse` back.

Paths:
  GET  /bytes/N                N bytes of deterministic content (see `content_at`)
  GET  /delay/MS/bytes/N       the same after MS milliseconds of server think time
  GET  /page/K?size=S          a JSON manifest listing K object URLs of S bytes each
  POST /echo                   the request body, back
  GET  /health                 "ok"
  GET  /records?count=N[&seed=K][&gzip=1]
                               N structured records as JSON (protolab.records), the same
                               data the gRPC Records call returns as protobuf
  GET  /events/poll?after=SEQ  short polling: the events of a stream born so far after SEQ
  GET  /events/long-poll?after=SEQ[&wait_ms=W]
                               long polling: held until an event after SEQ is born (or W ms)
  GET  /events/sse[?after=SEQ] server-sent events (text/event-stream), one per event as
                               it is born, ending after the last
  (the /events/* paths take stream=NAME&count=M&size=S&interval_ms=I: see protolab.events)

The GETs of fixed bodies (/bytes, /delay/../bytes, /page, /records, /health) say
`accept-ranges: bytes` and answer one `Range: bytes=...` with a 206 (`select_range`).

Here are the requests and their routing (`plan`); the response, its headers and body
content are `workload_response`, Range selection is `workload_range`, and both are
importable from here.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from protolab.events import MAX_WAIT_MS, parse_spec
from protolab.records import DEFAULT_SEED, make_records, records_json
from protolab.workload_range import RangeChoice, choose_range, select_range
from protolab.workload_response import (
    CHUNK,
    Body,
    ChunkStream,
    PushKind,
    PushPlan,
    WorkloadResponse,
    content_at,
    verify_content,
)

# The response, its body and Range selection are re-exported: servers, clients and tests
# import the whole vocabulary from here.
__all__ = [
    "CHUNK", "DEFAULT_LIMITS", "Body", "ChunkStream", "Limits", "PushKind", "PushPlan",
    "RangeChoice", "WorkloadRequest", "WorkloadResponse", "body_too_large", "check_head",
    "choose_range", "content_at", "declared_length", "error", "head_size", "page_objects",
    "plan", "select_range", "verify_content",
]


@dataclass(frozen=True)
class Limits:
    """What servers accept; shown in `protolab serve --help` and enforced the same everywhere."""

    max_bytes: int = 1 << 30  # largest /bytes/N
    max_delay_ms: int = 60_000  # longest /delay/MS
    max_page_objects: int = 1_000  # largest K in /page/K
    max_header_bytes: int = 16_384  # total request header size; larger -> 431
    max_body_bytes: int = 16 << 20  # request body (POST /echo); larger -> 413
    max_records: int = 100_000  # largest N in /records and the gRPC Records call


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class WorkloadRequest:
    """A request as any protocol delivers it, already decoded."""

    method: str
    target: str  # path with optional query, e.g. "/bytes/1024?i=3"
    body: bytes = b""
    accept_encoding: str | None = None  # the request's Accept-Encoding (protolab.compression)
    range: str | None = None  # the request's Range (select_range; None: absent)


def error(status: int, reason: str) -> WorkloadResponse:
    text = (reason + "\n").encode()
    return WorkloadResponse(status, "text/plain; charset=utf-8", Body(len(text), text))


def _text(
    status: int, text: str, content_type: str = "text/plain; charset=utf-8"
) -> WorkloadResponse:
    data = text.encode()
    return WorkloadResponse(status, content_type, Body(len(data), data))


def head_size(headers: list[tuple[bytes, bytes]]) -> int:
    """Header size as HPACK/QPACK account for it (RFC 7541 §4.1): name + value + 32 a field."""
    return sum(len(name) + len(value) + 32 for name, value in headers)


def check_head(
    header_bytes: int, declared_body: int | None, limits: Limits
) -> WorkloadResponse | None:
    """The 431/413 answer for a request head over the limits, before its body is read."""
    if header_bytes > limits.max_header_bytes:
        return error(431, f"request headers of {header_bytes} bytes exceed the limit of "
                          f"{limits.max_header_bytes}")
    if declared_body is not None and declared_body > limits.max_body_bytes:
        return error(413, f"request body of {declared_body} bytes is over the limit of "
                          f"{limits.max_body_bytes}")
    return None


def body_too_large(size: int, limits: Limits) -> WorkloadResponse | None:
    if size > limits.max_body_bytes:
        return error(413, f"request body is over the limit of {limits.max_body_bytes} bytes")
    return None


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length" and value.strip().isdigit():
            return int(value)
    return None


def _number(raw: str, name: str, upper: int) -> int | WorkloadResponse:
    if not raw.isdigit() or len(raw) > 18:
        return error(400, f"{name} must be a non-negative integer, got {raw!r}")
    value = int(raw)
    if value > upper:
        return error(400, f"{name}={value} is over the limit of {upper}")
    return value


def plan(req: WorkloadRequest, limits: Limits = DEFAULT_LIMITS) -> WorkloadResponse:
    """Decide the response to `req`. Pure: the server applies `delay_ms` itself."""
    split = urlsplit(req.target)
    parts = [p for p in split.path.split("/") if p]
    method = req.method.upper()

    if parts == ["health"]:
        return _method_guard(method, "GET") or _fixed(_text(200, "ok\n"))
    if parts == ["echo"]:
        if method != "POST":
            return error(405, "/echo takes POST")
        return WorkloadResponse(200, "application/octet-stream", Body(len(req.body), req.body))
    if len(parts) == 2 and parts[0] == "bytes":
        return _method_guard(method, "GET") or _fixed(_bytes(parts[1], 0, limits))
    if len(parts) == 4 and parts[0] == "delay" and parts[2] == "bytes":
        guard = _method_guard(method, "GET")
        if guard:
            return guard
        delay = _number(parts[1], "MS", limits.max_delay_ms)
        if isinstance(delay, WorkloadResponse):
            return delay
        return _fixed(_bytes(parts[3], delay, limits))
    if len(parts) == 2 and parts[0] == "page":
        return _method_guard(method, "GET") or _fixed(_page(parts[1], split.query, limits))
    if parts == ["records"]:
        return _method_guard(method, "GET") or _fixed(_records(split.query, limits))
    if len(parts) == 2 and parts[0] == "events" and parts[1] in ("poll", "long-poll", "sse"):
        kind: PushKind = "poll" if parts[1] == "poll" else (
            "long-poll" if parts[1] == "long-poll" else "sse")
        return _method_guard(method, "GET") or _push(kind, split.query)
    return error(404, f"no such resource: {split.path} (try /bytes/N, /delay/MS/bytes/N, "
                      "/page/K?size=S, POST /echo, /health, /records?count=N, "
                      "/events/poll|long-poll|sse)")


def _fixed(response: WorkloadResponse) -> WorkloadResponse:
    """A 200 whose body is the same for every identical GET: Range requests may select
    from it (RFC 9110 §14.3: it says so with Accept-Ranges)."""
    if response.status != 200:
        return response
    return dataclasses.replace(response, accept_ranges=True)


def _method_guard(method: str, allowed: str) -> WorkloadResponse | None:
    if method == allowed:
        return None
    return error(405, f"method {method} not allowed here; use {allowed}")


def _bytes(raw: str, delay_ms: int, limits: Limits) -> WorkloadResponse:
    size = _number(raw, "N", limits.max_bytes)
    if isinstance(size, WorkloadResponse):
        return size
    return WorkloadResponse(200, "application/octet-stream", Body(size), delay_ms=delay_ms)


def _page(raw: str, query: str, limits: Limits) -> WorkloadResponse:
    count = _number(raw, "K", limits.max_page_objects)
    if isinstance(count, WorkloadResponse):
        return count
    sizes = parse_qs(query).get("size", ["1024"])
    size = _number(sizes[0], "size", limits.max_bytes)
    if isinstance(size, WorkloadResponse):
        return size
    # Distinct URLs (the ?i= query) so no layer can collapse them into one fetch.
    manifest = {"objects": [f"/bytes/{size}?i={i}" for i in range(count)], "size": size}
    return _text(200, json.dumps(manifest), "application/json")


def _records(query: str, limits: Limits) -> WorkloadResponse:
    params = parse_qs(query)
    count = _number(params.get("count", ["10"])[0], "count", limits.max_records)
    if isinstance(count, WorkloadResponse):
        return count
    seed = _number(params.get("seed", [str(DEFAULT_SEED)])[0], "seed", 2**31 - 1)
    if isinstance(seed, WorkloadResponse):
        return seed
    gzipped = params.get("gzip", ["0"])[0] == "1"
    body = records_json(make_records(count, seed), gzipped=gzipped)
    extra = (("content-encoding", "gzip"),) if gzipped else ()
    return WorkloadResponse(200, "application/json", Body(len(body), body), extra_headers=extra)


def _push(kind: PushKind, query: str) -> WorkloadResponse:
    params = parse_qs(query)
    spec = parse_spec(params)
    if isinstance(spec, str):
        return error(400, spec)
    after = _number(params.get("after", ["0"])[0], "after", spec.count)
    if isinstance(after, WorkloadResponse):
        return after
    wait = _number(params.get("wait_ms", ["30000"])[0], "wait_ms", MAX_WAIT_MS)
    if isinstance(wait, WorkloadResponse):
        return wait
    return WorkloadResponse(200, "application/json", Body(0),
                            push=PushPlan(kind, spec, after, wait))


def page_objects(manifest: bytes) -> list[str]:
    """The object URLs of a /page/K manifest, for clients fetching a page."""
    data = json.loads(manifest)
    objects = data["objects"]
    if not isinstance(objects, list) or not all(isinstance(o, str) for o in objects):
        raise ValueError("page manifest has no list of object URLs")
    return objects
