"""Webhooks (servers/webhook.py, clients/webhook.py): the server POSTs every event to the
client's own HTTP endpoint over real sockets — on loopback, and through the emulated
link — and refuses, with one clear 4xx, a callback that is not the subscriber's own
address or a subscription with bad parameters."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from urllib.parse import quote

import pytest

from clients.h1 import H1Client, H1Options
from clients.webhook import own_address
from protolab.bench.claims import METRICS, CellView
from protolab.bench.session import run_bench
from protolab.bench.suite import parse_suite
from protolab.core.record import Request, RequestRecord, Target
from protolab.netem.privileges import missing
from protolab.registry import make_client
from protolab.store import ResultsStore
from protolab.workload import WorkloadResponse
from servers.run import RunningServers
from servers.webhook import Callback, parse_subscription
from tests.conftest import ServerFactory
from tests.helpers import TIMEOUT, target_for

PROTOCOLS = ("h1", "h2", "h3", "ws", "http-webhook")
PATH = "/push?count=6&size=32&interval_ms=40&poll_ms=100"


@pytest.fixture
def needs_link() -> None:
    lacking = missing()
    if lacking:
        pytest.skip(f"the emulated link cannot be built here: {'; '.join(lacking)}")


async def subscribe(running: RunningServers, protocol: str, count: int = 1,
                    **options: object) -> list[RequestRecord]:
    client = make_client(protocol, target_for(running, protocol), **options)
    try:
        return [await client.request(Request(path=PATH)) for _ in range(count)]
    finally:
        await client.close()


async def raw_subscribe(running: RunningServers, query: str, method: str = "POST",
                        ) -> RequestRecord:
    """/subscribe as any HTTP client would ask, with the lab's HTTP/1.1 client."""
    client = H1Client(target_for(running, "http-webhook"), H1Options(connections=1))
    try:
        return await client.request(Request(method=method, path=f"/subscribe?{query}",
                                            keep_body=True))
    finally:
        await client.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("tls", [True, False], ids=["tls", "clear"])
async def test_the_server_posts_every_event_to_the_clients_endpoint_on_one_connection(
    lab_server: ServerFactory, tls: bool
) -> None:
    overrides: dict[str, object] = {"protocols": PROTOCOLS} if tls else {
        "certs": None, "protocols": ("h1", "h2", "ws", "http-webhook")}
    async with lab_server(**overrides) as running:
        first, again = await subscribe(running, "http-webhook", count=2)
        (ws,) = await subscribe(running, "ws")
    for record in (first, again):
        assert record.ok, record.error_detail
        assert record.status == 202
        assert [m.seq for m in record.messages] == [1, 2, 3, 4, 5, 6]
        for m in record.messages:
            assert m.born_ns is not None
            assert m.sent_ns is not None
            assert m.born_ns <= m.sent_ns <= m.received_ns
        assert record.messages[0].born_ns is not None
        assert record.messages[0].born_ns >= record.start_ns  # a fresh stream each time
        assert record.transport["callbacks"] == 6
        assert record.transport["callback_connections"] == 1  # kept alive across events
        # Six POSTs with headers and six answers: far more than WebSocket's framing.
        assert record.bytes_in > sum(m.size for m in record.messages) + 6 * 100
    assert first.new_connection
    assert not again.new_connection  # the subscribe connection is kept too
    assert (first.alpn == "http/1.1") == tls
    per_event = METRICS["event_bytes"][1](CellView("x", {}, 0.0, [first]))[0]
    assert per_event > 2 * METRICS["event_bytes"][1](CellView("x", {}, 0.0, [ws]))[0]


@pytest.mark.asyncio
async def test_a_receiver_that_closes_each_callback_gets_a_new_connection_per_event(
    lab_server: ServerFactory,
) -> None:
    async with lab_server(protocols=PROTOCOLS) as running:
        (record,) = await subscribe(running, "http-webhook", keepalive=False)
    assert record.ok, record.error_detail
    assert [m.seq for m in record.messages] == [1, 2, 3, 4, 5, 6]
    assert record.transport["callback_connections"] == 6


def test_subscriptions_are_checked_before_anything_is_sent() -> None:
    def answer(query: str, peer: str = "10.0.0.1") -> Callback | int:
        found = parse_subscription(f"/subscribe?{query}", peer, ("10.0.0.2", 8446))
        return found.status if isinstance(found, WorkloadResponse) else found.callback

    ok = answer("callback=" + quote("http://10.0.0.1:4000/hook?x=1") + "&count=3")
    assert ok == Callback("http", "10.0.0.1", 4000, "/hook?x=1")
    assert answer("callback=" + quote("https://[::1]:4000/h"), peer="::1") == Callback(
        "https", "::1", 4000, "/h")
    # IPv4 seen through an IPv6 socket is the same subscriber.
    assert isinstance(answer("callback=" + quote("http://10.0.0.1:1/"),
                             peer="::ffff:10.0.0.1"), Callback)
    for other_host in ("http://10.0.0.9:4000/", "http://localhost:4000/",
                       "http://example.org/", "http://169.254.169.254/latest/meta-data",
                       "http://10.0.0.2:8446/"):  # the last: the server itself
        assert answer("callback=" + quote(other_host)) == 403, other_host
    for malformed in ("callback=" + quote("ftp://10.0.0.1/"), "count=3",
                      "callback=" + quote("http://u:p@10.0.0.1:4000/"),
                      "callback=" + quote("http://10.0.0.1:99999/"),
                      "callback=" + quote("http://10.0.0.1:0/"),
                      "callback=a&callback=b",
                      "callback=" + quote("http://10.0.0.1:4000/") + "&count=lots",
                      "callback=" + quote("http://10.0.0.1:4000/") + "&size=99999999"):
        assert answer(malformed) == 400, malformed


@pytest.mark.asyncio
async def test_a_callback_to_another_host_is_refused_with_one_403_and_never_called(
    lab_server: ServerFactory,
) -> None:
    # A listener on another loopback address stands for "another host": the server must
    # refuse to call it (the subscriber is 127.0.0.1) and never connect there.
    connected: list[object] = []
    other = await asyncio.start_server(lambda r, w: connected.append(w), "127.0.0.2", 0)
    port = other.sockets[0].getsockname()[1]
    try:
        async with lab_server(protocols=PROTOCOLS) as running:
            refused = await raw_subscribe(
                running, f"callback={quote(f'http://127.0.0.2:{port}/hook')}&count=2")
            bad = await raw_subscribe(running, "callback=x&count=-1")
            missing = await raw_subscribe(running, "count=2")
            wrong_method = await raw_subscribe(running, "count=2", method="GET")
            (delivered,) = await subscribe(running, "http-webhook")  # after the refusals
    finally:
        other.close()
        await other.wait_closed()
    assert refused.status == 403
    assert b"127.0.0.2" in (refused.content or b"")
    assert b"127.0.0.1" in (refused.content or b"")  # names the address it would call
    assert bad.status == 400
    assert b"count must be a non-negative integer" in (bad.content or b"")
    assert missing.status == 400
    assert wrong_method.status == 405
    assert delivered.ok, delivered.error_detail
    assert connected == []


@pytest.mark.asyncio
async def test_the_client_records_a_refused_subscription_as_a_typed_failure(
    lab_server: ServerFactory,
) -> None:
    async with lab_server(protocols=PROTOCOLS) as running:
        # An endpoint address that is not the client's own: the server must refuse it.
        (record,) = await subscribe(running, "http-webhook", host="127.0.0.3", timeout=TIMEOUT)
    assert record.error == "http_status"
    assert "403" in (record.error_detail or "")
    assert not record.messages


@pytest.mark.netem
@pytest.mark.slow
@pytest.mark.usefixtures("needs_link")
def test_webhooks_cross_the_emulated_link_from_the_clients_link_address(tmp_path: Path) -> None:
    suite = parse_suite({
        "name": "webhook-link", "repetitions": 2, "warmup": 0, "timeout_s": 60,
        "link": {"profile": "loopback", "overrides": {"delay": "25ms"}},
        "workload": {"paths": ["/push?count=4&size=32&interval_ms=150"], "count": 1},
        "variant": [{"label": "webhook", "protocol": "http-webhook"},
                    {"label": "webhook-close", "protocol": "http-webhook",
                     "keepalive": False}],
    }, "webhook-link")
    with ResultsStore(tmp_path / "lab.db") as store:
        result = run_bench(suite, store, tmp_path / "out")
        records = {c.params["label"]: store.samples(c.id) for c in store.cells(result.run_id)}
    assert result.status == "complete"
    for label, recs in records.items():
        assert recs
        for record in recs:
            assert record.ok, (label, record.error_detail)
            assert [m.seq for m in record.messages] == [1, 2, 3, 4]
    latency = METRICS["event_latency"][1]
    # Over the link every callback crosses it: one one-way delay (25 ms) on the kept-alive
    # connection, the TCP handshake first (1.5 RTT = 75 ms) on a new one — the first
    # event's always (events are 150 ms apart: each answer is back before the next).
    for record in records["webhook"]:
        first, *rest = latency(CellView("webhook", {}, 50.0, [record]))
        assert 60 < first < 150
        assert all(20 < v < 60 for v in rest), rest
        assert record.transport["callback_connections"] == 1
    fresh = latency(CellView("webhook-close", {}, 50.0, records["webhook-close"]))
    assert all(60 < v < 150 for v in fresh), fresh
    assert all(r.transport["callback_connections"] == 4 for r in records["webhook-close"])


def test_the_endpoint_binds_the_address_the_kernel_sends_from() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert asyncio.run(own_address(Target("127.0.0.1", port))) == "127.0.0.1"
