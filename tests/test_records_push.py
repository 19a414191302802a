"""Structured records as JSON, and the HTTP push endpoints (short poll, long poll, SSE), on
every HTTP protocol; the pure parts (record generation, event schedule) without sockets."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from protolab.core.record import Request
from protolab.events import EventHub, StreamSpec, decode_event, parse_spec
from protolab.push import poll_answer
from protolab.records import make_records, records_from_json, records_json
from protolab.registry import make_client
from protolab.timing import now_ns
from protolab.workload import WorkloadRequest, plan
from servers.run import RunningServers
from tests.conftest import ServerFactory
from tests.helpers import TIMEOUT, target_for

PROTOCOLS = ["h1", "h2", "h3"]


def test_records_are_deterministic_and_prefix_stable() -> None:
    assert make_records(50, seed=3) == make_records(50, seed=3)
    assert make_records(100, seed=3)[:50] == make_records(50, seed=3)
    assert make_records(5, seed=3) != make_records(5, seed=4)
    assert len({r.id for r in make_records(1000)}) == 1000


def test_records_json_round_trips_exactly() -> None:
    records = make_records(300, seed=9)
    assert records_from_json(records_json(records)) == records
    assert records_from_json(records_json(records, gzipped=True)) == records
    # Deterministic bytes too (gzip mtime fixed), so byte counts are comparable across runs.
    assert records_json(records, gzipped=True) == records_json(records, gzipped=True)


def test_records_endpoint_limits() -> None:
    assert plan(WorkloadRequest("GET", "/records?count=100001")).status == 400
    assert plan(WorkloadRequest("GET", "/records?count=x")).status == 400
    assert plan(WorkloadRequest("POST", "/records")).status == 405
    gz = plan(WorkloadRequest("GET", "/records?count=10&gzip=1"))
    assert ("content-encoding", "gzip") in gz.headers()


def test_event_schedule_is_pure() -> None:
    spec = StreamSpec("s", count=5, size=3, interval_ms=10)
    assert spec.born_by(1000, 999) == 0
    assert spec.born_by(1000, 1000) == 1
    assert spec.born_by(1000, 1000 + 25_000_000) == 3
    assert spec.born_by(1000, 10**12) == 5
    assert StreamSpec("s", count=5, interval_ms=0).born_by(0, 0) == 5
    answer = json.loads(poll_answer(spec, 0, 1, 25_000_000).body.literal or b"")
    assert [e["seq"] for e in answer["events"]] == [2, 3]
    assert answer["last"] == 3
    assert answer["done"] is False
    assert isinstance(parse_spec({"count": ["100001"]}), str)
    assert isinstance(parse_spec({"stream": ["../etc"]}), str)
    hub = EventHub(capacity=2)
    assert hub.origin(spec, 5) == 5
    assert hub.origin(spec, 9) == 5


async def get(protocol: str, running: RunningServers, path: str) -> bytes:
    client = make_client(protocol, target_for(running, protocol))
    try:
        record = await client.request(Request(path=path, keep_body=True))
    finally:
        await client.close()
    assert record.ok, record.error_detail
    assert record.content is not None
    return record.content


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_records_json_over_http(lab_server: ServerFactory, protocol: str) -> None:
    async with lab_server() as running:
        plain = await get(protocol, running, "/records?count=200&seed=5")
        gzipped = await get(protocol, running, "/records?count=200&seed=5&gzip=1")
    assert records_from_json(plain) == make_records(200, seed=5)
    assert records_from_json(gzipped) == make_records(200, seed=5)
    # The lab's clients decode a coded body: `content` is what the application gets (the
    # wire sizes are checked in tests/test_compression.py).
    assert gzipped == plain


def stream_query(count: int = 8, interval_ms: int = 15) -> str:
    return f"stream=t{uuid.uuid4().hex[:12]}&count={count}&size=32&interval_ms={interval_ms}"


def check_sequence(seqs: list[int], count: int) -> None:
    assert seqs == list(range(1, count + 1)), "every event exactly once, in order"


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("kind", ["poll", "long-poll"])
async def test_polling_delivers_every_event_once_in_order(
    lab_server: ServerFactory, protocol: str, kind: str
) -> None:
    query = stream_query()
    seqs: list[int] = []
    async with lab_server() as running:
        client = make_client(protocol, target_for(running, protocol))
        after, polls, deadline = 0, 0, now_ns() + int(TIMEOUT * 1e9)
        try:
            while now_ns() < deadline and polls < 1000:
                record = await client.request(Request(
                    path=f"/events/{kind}?{query}&after={after}", keep_body=True))
                polls += 1
                assert record.ok, record.error_detail
                answer = json.loads(record.content or b"")
                for item in answer["events"]:
                    event = decode_event(json.dumps(item))
                    assert event.born_ns <= event.sent_ns <= (record.done_ns or 0)
                    seqs.append(event.seq)
                after = answer["last"]
                if answer["done"]:
                    break
                if kind == "poll":
                    await asyncio.sleep(0.005)  # the poll period: short polling's nature
        finally:
            await client.close()
    check_sequence(seqs, 8)
    if kind == "long-poll":
        # Held until an event: no empty answers while the stream runs.
        assert polls <= 8


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_sse_delivers_every_event_once_in_order(
    lab_server: ServerFactory, protocol: str
) -> None:
    async with lab_server() as running:
        client = make_client(protocol, target_for(running, protocol))
        try:
            record = await client.request(Request(
                path=f"/events/sse?{stream_query(count=6, interval_ms=20)}",
                keep_body=True, record_arrivals=True))
        finally:
            await client.close()
    assert record.ok, record.error_detail
    messages = (record.content or b"").decode().split("\n\n")
    assert messages[-1] == ""
    ids = [int(m.split("\n")[0].removeprefix("id: ")) for m in messages[:-1]]
    events = [decode_event(m.split("\n")[1].removeprefix("data: ")) for m in messages[:-1]]
    check_sequence(ids, 6)
    check_sequence([e.seq for e in events], 6)
    # Sent as born, over time: the data arrived in several pieces, ~20 ms apart.
    assert len(record.arrivals) >= 3
    assert record.arrivals[-1][0] - record.arrivals[0][0] >= 60_000_000
