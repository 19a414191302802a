"""Each client against its own protocol's server, over real sockets on loopback."""

from __future__ import annotations

import asyncio

import pytest

from protolab.core.record import Request, RequestRecord
from protolab.registry import make_client
from protolab.workload import page_objects
from servers.common import H2Settings
from tests.conftest import ServerFactory
from tests.helpers import target_for

PROTOCOLS = ["h1", "h2", "h3"]


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("size", [0, 1024, 1 << 20, 10 << 20])
async def test_bodies_arrive_verified(lab_server: ServerFactory, protocol: str, size: int) -> None:
    async with lab_server() as running:
        client = make_client(protocol, target_for(running, protocol))
        try:
            record = await client.request(Request(path=f"/bytes/{size}"))
        finally:
            await client.close()
    assert record.error is None, record.error_detail
    assert record.status == 200
    assert record.body_bytes == size
    assert record.body_verified is True
    assert record.alpn == {"h1": "http/1.1", "h2": "h2", "h3": "h3"}[protocol]
    assert record.tls_version == "TLSv1.3"
    # Every phase happened, in order, on the one clock.
    assert record.new_connection
    stamps = [record.start_ns, record.conn_start_ns, record.handshake_ns,
              record.request_sent_ns, record.first_byte_ns, record.done_ns]
    assert all(s is not None for s in stamps)
    assert stamps == sorted(stamps)  # type: ignore[type-var]
    assert record.bytes_in > size  # framing and headers on top of the body


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", ["h2", "h3"])
async def test_hundred_concurrent_requests_share_one_connection(
    lab_server: ServerFactory, protocol: str
) -> None:
    async with lab_server() as running:
        client = make_client(protocol, target_for(running, protocol))
        try:
            records = await asyncio.gather(
                *(client.request(Request(path=f"/bytes/{1000 + i}")) for i in range(100))
            )
        finally:
            await client.close()
    assert all(r.ok for r in records), [r.error_detail for r in records if not r.ok]
    assert {r.connection_id for r in records} == {1}
    assert sum(r.new_connection for r in records) == 1
    assert len({r.stream_id for r in records}) == 100
    assert [r.body_bytes for r in records] == [1000 + i for i in range(100)]


@pytest.mark.asyncio
async def test_h1_pipelining_depth_four_on_one_connection(lab_server: ServerFactory) -> None:
    async with lab_server() as running:
        client = make_client("h1", target_for(running, "h1"), connections=1, pipeline=4)
        try:
            records = await asyncio.gather(
                *(client.request(Request(path=f"/delay/150/bytes/{100 + i}")) for i in range(4))
            )
        finally:
            await client.close()
    assert all(r.ok for r in records)
    assert {r.connection_id for r in records} == {1}
    # All four requests left before the first response came back: that is pipelining.
    first_done = min(r.done_ns or 0 for r in records)
    assert all((r.request_sent_ns or 0) < first_done for r in records)
    # Responses come back in order, each body matching its own request.
    assert [r.body_bytes for r in records] == [100, 101, 102, 103]
    dones = [r.done_ns or 0 for r in records]
    assert dones == sorted(dones)


@pytest.mark.asyncio
async def test_h1_pool_and_connection_close(lab_server: ServerFactory) -> None:
    async with lab_server() as running:
        pooled = make_client("h1", target_for(running, "h1"), connections=6)
        per_request = make_client("h1", target_for(running, "h1"), keepalive=False)
        try:
            many = await asyncio.gather(
                *(pooled.request(Request(path="/delay/100/bytes/10")) for _ in range(12))
            )
            serial = [await per_request.request(Request(path="/bytes/10")) for _ in range(3)]
        finally:
            await pooled.close()
            await per_request.close()
    assert all(r.ok for r in many + serial)
    assert len({r.connection_id for r in many}) == 6  # the pool, never more
    assert [r.new_connection for r in serial] == [True, True, True]


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_echo_and_page(lab_server: ServerFactory, protocol: str) -> None:
    payload = bytes(range(256)) * 400
    async with lab_server() as running:
        client = make_client(protocol, target_for(running, protocol))
        try:
            echo = await client.request(Request(method="POST", path="/echo", body=payload))
            page = await client.request(Request(path="/page/4?size=100"))
            missing = await client.request(Request(path="/nope"))
        finally:
            await client.close()
    assert echo.ok
    assert echo.body_bytes == len(payload)
    assert echo.bytes_out > len(payload)
    assert page.status == 200
    assert missing.status == 404


@pytest.mark.asyncio
async def test_page_manifest_drives_object_fetches(lab_server: ServerFactory) -> None:
    """A client can fetch a "page": the manifest, then every object it lists."""
    async with lab_server() as running:
        client = make_client("h2", target_for(running, "h2"))
        body = bytearray()
        try:
            manifest = await client.request(Request(path="/page/3?size=500", record_arrivals=True))
            assert manifest.ok
            # The manifest body itself is not kept in the record; re-plan it to read the URLs.
            from protolab.workload import WorkloadRequest, plan

            for chunk in plan(WorkloadRequest("GET", "/page/3?size=500")).body.chunks():
                body += chunk
            objects = await asyncio.gather(
                *(client.request(Request(path=p)) for p in page_objects(bytes(body)))
            )
        finally:
            await client.close()
    assert [o.body_bytes for o in objects] == [500, 500, 500]
    assert all(o.body_verified for o in objects)


@pytest.mark.asyncio
async def test_h3_zero_rtt_resumption_sends_early_data(lab_server: ServerFactory) -> None:
    async with lab_server() as running:
        client = make_client("h3", target_for(running, "h3"), zero_rtt=True)
        try:
            first = await client.request(Request(path="/bytes/100"))
            assert client.tickets, "the server issued no session ticket"  # type: ignore[attr-defined]
            await client.close()
            second = await client.request(Request(path="/bytes/100"))
        finally:
            await client.close()
        early_seen_by_server = running.h3_stats.early_requests
    assert first.ok
    assert not first.early_data
    assert second.ok
    assert second.new_connection
    assert second.resumed
    assert second.early_data
    # The server received the request before its handshake completed: only 0-RTT does that.
    assert early_seen_by_server == 1
    assert second.request_sent_ns is not None
    assert second.handshake_ns is not None
    assert second.request_sent_ns < second.handshake_ns


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", ["h1", "h2"])
async def test_cleartext_and_tls12(lab_server: ServerFactory, protocol: str) -> None:
    async with lab_server(certs=None, protocols=("h1", "h2")) as running:
        client = make_client(protocol, target_for(running, protocol))
        try:
            clear = await client.request(Request(path="/bytes/5000"))
        finally:
            await client.close()
    async with lab_server(tls_version="1.2") as running:
        client = make_client(protocol, target_for(running, protocol))
        try:
            tls12 = await client.request(Request(path="/bytes/5000"))
        finally:
            await client.close()
    assert clear.ok
    assert clear.tls_version is None
    assert clear.handshake_ns is None
    assert tls12.ok
    assert tls12.tls_version == "TLSv1.2"


def interleaved(first: RequestRecord, later: RequestRecord, fraction: float) -> bool:
    """Did `later` receive body data before `first` had `fraction` of its body?"""
    start_later = later.arrivals[0][0]
    got = sum(n for t, n in first.arrivals if t < start_later)
    return got < fraction * first.body_bytes


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", ["h2", "h3"])
async def test_scheduling_round_robin_vs_sequential(
    lab_server: ServerFactory, protocol: str
) -> None:
    size = 2 << 20
    results: dict[str, list[RequestRecord]] = {}
    for scheduling in ("round-robin", "sequential"):
        async with lab_server(scheduling=scheduling, h2=H2Settings()) as running:
            client = make_client(protocol, target_for(running, protocol))
            try:
                await client.request(Request(path="/bytes/1"))  # connection up first
                records = await asyncio.gather(
                    *(client.request(Request(path=f"/bytes/{size}", record_arrivals=True))
                      for _ in range(3))
                )
            finally:
                await client.close()
        assert all(r.ok for r in records)
        results[scheduling] = sorted(records, key=lambda r: r.stream_id or 0)
    rr, seq = results["round-robin"], results["sequential"]
    # Round-robin: the last stream starts while the first has most of its body to come.
    assert interleaved(rr[0], rr[2], 0.7)
    # Sequential: the last stream starts only when the first is (nearly) complete.
    assert not interleaved(seq[0], seq[2], 0.9)


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", ["h1", "h2"])
@pytest.mark.parametrize("tls_version", ["1.2", "1.3"])
async def test_tls_session_resumption_over_tcp(
    lab_server: ServerFactory, protocol: str, tls_version: str
) -> None:
    async with lab_server(tls_version=tls_version) as running:
        records = {}
        for resume in (True, False):
            client = make_client(protocol, target_for(running, protocol), resume=resume)
            try:
                first = await client.request(Request(path="/bytes/10"))
                await client.close()
                second = await client.request(Request(path="/bytes/10"))
            finally:
                await client.close()
            records[resume] = (first, second)
    (first, second), (_, unresumed) = records[True], records[False]
    assert first.ok
    assert second.ok
    assert not first.resumed
    assert second.new_connection
    assert second.resumed
    assert second.tls_version == f"TLSv{tls_version}"
    assert not unresumed.resumed
