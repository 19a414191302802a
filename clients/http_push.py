"""HTTP push as a browser's script does it: short polling, long polling, server-sent events.

The push experiment compares WebSocket (`ws` at `/push`) with the HTTP endpoints
(`/events/poll`, `/events/long-poll`, `/events/sse`, protolab/push.py). One exchange
here is one whole subscription, as one WebSocket `/push` exchange is: every event of a
stream, over as many HTTP requests as the technique needs, in one record. Underneath is
the lab's own HTTP/1.1 client (clients/h1.py, one connection, kept alive unless
`keepalive = false`), so every request and response byte — headers included — is
counted the way the other HTTP records count them.

A request's path carries the stream in the vocabulary WebSocket push uses, so one
suite drives every technique with one path:

  /push?count=M&size=S&interval_ms=I[&poll_ms=P][&wait_ms=W]

(`/events/<anything>?...` is read the same way). Each exchange uses a fresh stream name,
so repetitions never see a stream that has already run. `poll_ms` is the short-polling
period (default: the event interval); it and `wait_ms` (the long-poll hold, default
30 s) are read by this client and not sent. The modes are three protocols:

- `http-poll`: GET /events/poll?after=L every P ms on a fixed schedule from the first
  poll (a poll whose answer comes late is followed at once by the next due one).
- `http-long-poll`: GET /events/long-poll?after=L again as soon as each answer arrives.
- `http-sse`: one GET /events/sse, read as the events arrive.

The record: one `MessageTiming` per event with the server's `born_ns` and `sent_ns`
stamps and the client's arrival time (a poll's events arrive when its response is
complete; an SSE event when the body chunk holding its end arrived), `size` = the
event's JSON text, as WebSocket push counts it. The connection phases are the first
request's; `bytes_in`/`bytes_out`/`body_bytes` sum every request; transport counters add
`requests` (how many HTTP requests the subscription took) and `empty_polls`.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from clients.base import timed_exchange
from clients.h1 import H1Client, H1Options
from protolab.core.record import MessageTiming, Request, RequestRecord, Target, Timeline
from protolab.errors import ConfigError, ProtocolFailure
from protolab.events import decode_event
from protolab.tcpsock import DEFAULT_CC
from protolab.timing import now_ns

Mode = Literal["poll", "long-poll", "sse"]
_CLIENT_PARAMS = ("poll_ms", "wait_ms")  # read here, never sent
_MAX_REQUESTS = 100_000


@dataclass(frozen=True)
class HttpPushOptions:
    keepalive: bool = True  # False: every poll on a new connection
    cc: str = DEFAULT_CC
    timeout: float = 120.0  # one whole subscription, seconds

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ConfigError("push timeout must be positive")


@dataclass(frozen=True)
class _Stream:
    query: list[tuple[str, str]]  # the stream's parameters, as sent
    interval_ms: int
    poll_ms: int
    wait_ms: int


def _stream(path: str) -> _Stream:
    split = urlsplit(path)
    if split.path != "/push" and not split.path.startswith("/events/"):
        raise ProtocolFailure("bad_request", f"a push path is /push?count=M&size=S&"
                              f"interval_ms=I, not {path!r}")
    pairs = parse_qsl(split.query)
    mine = dict(p for p in pairs if p[0] in _CLIENT_PARAMS)
    query = [p for p in pairs if p[0] not in (*_CLIENT_PARAMS, "after")]
    if not any(k == "stream" for k, _ in query):
        query.append(("stream", f"s{uuid.uuid4().hex[:16]}"))
    numbers = {k: v for k, v in (*query, *mine.items())}
    for key in ("interval_ms", *_CLIENT_PARAMS):
        if key in numbers and not numbers[key].isdigit():
            raise ProtocolFailure("bad_request", f"{key} must be a non-negative integer")
    interval = int(numbers.get("interval_ms", "100"))
    return _Stream(query, interval, int(numbers.get("poll_ms", str(interval))),
                   int(numbers.get("wait_ms", "30000")))


OptionsT = TypeVar("OptionsT", bound=HttpPushOptions)


class OverHttp1(Generic[OptionsT]):
    """A push technique carried by the lab's HTTP/1.1 client (one connection, kept alive
    unless `keepalive = false`); one exchange is one whole subscription."""

    name: ClassVar[str]
    options_type: ClassVar[type[Any]]  # OptionsT, made with its defaults when none are given

    def __init__(self, target: Target, options: OptionsT | None = None) -> None:
        self.target = target
        self.options: OptionsT = options if options is not None else self.options_type()
        self._http = H1Client(target, H1Options(connections=1, keepalive=self.options.keepalive,
                                                cc=self.options.cc,
                                                timeout=self.options.timeout))

    async def request(self, request: Request) -> RequestRecord:
        return await timed_exchange(self.name, request, self._exchange, self.options.timeout)

    async def close(self) -> None:
        await self._http.close()

    async def _exchange(self, request: Request, tl: Timeline) -> None:
        raise NotImplementedError


class _HttpPushClient(OverHttp1[HttpPushOptions]):
    mode: ClassVar[Mode]
    options_type = HttpPushOptions

    async def _exchange(self, request: Request, tl: Timeline) -> None:
        stream = _stream(request.path)
        tl.transport = {"requests": 0, "empty_polls": 0}
        if self.mode == "sse":
            await self._sse(stream, tl)
        else:
            await self._polls(stream, tl)

    async def _get(self, path: str, tl: Timeline, *, arrivals: bool = False) -> RequestRecord:
        """One HTTP request of the subscription, folded into the subscription's record."""
        record = await self._http.request(Request(path=path, keep_body=True,
                                                  record_arrivals=arrivals))
        first = tl.transport["requests"] == 0
        tl.transport["requests"] += 1
        if first:
            tl.connection_id, tl.new_connection = record.connection_id, record.new_connection
            tl.conn_start_ns, tl.connected_ns = record.conn_start_ns, record.connected_ns
            tl.handshake_ns, tl.request_sent_ns = record.handshake_ns, record.request_sent_ns
            tl.first_byte_ns = record.first_byte_ns
            tl.alpn, tl.tls_version, tl.cipher = record.alpn, record.tls_version, record.cipher
        tl.bytes_in += record.bytes_in
        tl.bytes_out += record.bytes_out
        tl.body_bytes += record.body_bytes
        tl.status = record.status
        tl.transport.update({k: v for k, v in record.transport.items()
                             if k not in ("requests", "empty_polls")})
        if record.error is not None:
            raise ProtocolFailure(record.error, record.error_detail or record.error)
        if record.status != 200:
            raise ProtocolFailure("http_status", f"{path} answered {record.status}")
        return record

    def _event(self, tl: Timeline, text: str, arrived: int) -> None:
        try:
            event = decode_event(text)
        except (ValueError, KeyError) as exc:
            raise ProtocolFailure("bad_event", f"not an event: {exc}") from exc
        size = len(text.encode())
        tl.messages.append(MessageTiming(event.seq, size, event.sent_ns, arrived, event.born_ns))
        if tl.request.keep_body:
            tl.content = (tl.content or bytearray()) + text.encode() + b"\n"

    async def _polls(self, stream: _Stream, tl: Timeline) -> None:
        endpoint = "/events/poll" if self.mode == "poll" else "/events/long-poll"
        extra = [("wait_ms", str(stream.wait_ms))] if self.mode == "long-poll" else []
        after, started = 0, now_ns()
        for n in range(_MAX_REQUESTS):
            if self.mode == "poll" and n:
                due = started + n * stream.poll_ms * 1_000_000
                if due > now_ns():
                    await asyncio.sleep((due - now_ns()) / 1e9)
            query = urlencode([*stream.query, *extra, ("after", str(after))])
            record = await self._get(f"{endpoint}?{query}", tl)
            try:
                answer = json.loads(record.content or b"")
                events, after, done = answer["events"], int(answer["last"]), bool(answer["done"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ProtocolFailure("bad_event", f"not a poll answer: {exc}") from exc
            arrived = record.done_ns or now_ns()
            if not events:
                tl.transport["empty_polls"] += 1
            for event in events:
                self._event(tl, json.dumps(event, separators=(",", ":")), arrived)
            if done:
                tl.done_ns = arrived
                return
        raise ProtocolFailure("incomplete", f"stream not done after {_MAX_REQUESTS} requests")

    async def _sse(self, stream: _Stream, tl: Timeline) -> None:
        record = await self._get(f"/events/sse?{urlencode(stream.query)}", tl, arrivals=True)
        body = record.content or b""
        # Each chunk's arrival time, by the offset of its last byte in the body.
        ends: list[tuple[int, int]] = []
        offset = 0
        for when, size in record.arrivals:
            offset += size
            ends.append((offset, when))
        start = 0
        chunk = 0
        while (end := body.find(b"\n\n", start)) >= 0:
            last = end + 2
            while chunk < len(ends) and ends[chunk][0] < last:
                chunk += 1
            arrived = ends[chunk][1] if chunk < len(ends) else (record.done_ns or now_ns())
            for line in body[start:end].decode().split("\n"):
                if line.startswith("data: "):
                    self._event(tl, line[len("data: "):], arrived)
            start = last
        tl.done_ns = record.done_ns


class ShortPollClient(_HttpPushClient):
    name: ClassVar[str] = "http-poll"
    mode: ClassVar[Mode] = "poll"


class LongPollClient(_HttpPushClient):
    name: ClassVar[str] = "http-long-poll"
    mode: ClassVar[Mode] = "long-poll"


class SseClient(_HttpPushClient):
    name: ClassVar[str] = "http-sse"
    mode: ClassVar[Mode] = "sse"
