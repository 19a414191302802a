"""The bundled experiments conn-per-request, push and grpc-vs-json: they parse, and a short
run of each through the emulated link stores records whose claims all get verdicts.
Shapes are asserted only where physics leaves no doubt, with generous margins."""

from __future__ import annotations

import dataclasses
import gc
import tomllib
from importlib import resources
from pathlib import Path
from statistics import median
from typing import Any

import pytest

from protolab.bench.claims import METRICS, CellView
from protolab.bench.session import run_bench
from protolab.bench.suite import BUNDLED, expand, load_suite, parse_suite
from protolab.core.record import MessageTiming, RequestRecord
from protolab.store import ResultsStore

NEW = ("conn-per-request", "push", "grpc-vs-json", "headers", "reordering")


def bundled(name: str, **changes: Any) -> Any:
    """A bundled suite's document with top-level keys (and link/workload keys) replaced."""
    text = resources.files("protolab.bench").joinpath(f"suites/{name}.toml").read_text()
    data = tomllib.loads(text)
    for key in ("link", "workload"):
        data[key] = {**data.get(key, {}), **changes.pop(key, {})}
    return parse_suite({**data, **changes}, name)


@pytest.mark.parametrize("name", NEW)
def test_new_suites_are_bundled_parse_and_declare_claims(name: str) -> None:
    assert name in BUNDLED
    full, short = load_suite(name), load_suite(name, short=True)
    assert full.claims
    assert short.claims == full.claims
    assert full.description
    assert full.expected
    assert short.repetitions < full.repetitions
    labels = {v.label for v in full.variants}
    for claim in full.claims:
        assert claim.metric in METRICS
        assert claim.a.variant in labels
    assert expand(full)


def test_message_metrics_come_from_the_raw_records() -> None:
    push = RequestRecord(
        "ws", "GET", "/push", start_ns=0, connection_id=1, new_connection=True, status=101,
        done_ns=300_000_000, bytes_in=900, bytes_out=100,
        messages=(MessageTiming(1, 100, 26_000_000, 27_000_000, 1_000_000),
                  MessageTiming(2, 100, 126_000_000, 128_000_000, 101_000_000)))
    kept = RequestRecord("h1", "GET", "/records?count=10", start_ns=0, connection_id=1,
                         new_connection=False, status=200, done_ns=2_000_000, body_bytes=3870)
    fresh = dataclasses.replace(kept, new_connection=True, done_ns=9_000_000)
    view = CellView("ws", {}, 50.0, [push, kept, fresh])
    assert METRICS["event_latency"][1](view) == [26.0, 27.0]  # born -> received
    assert METRICS["message_latency"][1](view) == [1.0, 2.0]  # sent -> received
    assert METRICS["event_bytes"][1](view) == [500.0]  # (900 + 100) bytes / 2 events
    assert METRICS["total_reused"][1](view) == [2.0]  # the call that opened it left out
    assert METRICS["body_bytes"][1](view) == [0.0, 3870.0, 3870.0]


def _run(suite: Any, tmp_path: Path) -> tuple[Any, dict[tuple[str, str], list[RequestRecord]]]:
    with ResultsStore(tmp_path / "lab.db") as store:
        result = run_bench(suite, store, tmp_path / "out")
        cells = store.cells(result.run_id)
        records = {(c.params["label"], c.params["link"].get("delay", "")): store.samples(c.id)
                   for c in cells}
        statuses = [c.status for c in cells]
    assert result.status == "complete"
    assert statuses == ["ok"] * len(statuses)
    for key, recs in records.items():
        assert recs, key
        assert all(r.ok for r in recs), (key, [r.error_detail for r in recs])
    # Every claim is judged (a verdict word, whatever it is) on the cells it names.
    judged = {v.claim for v in result.verdicts}
    assert judged == {c.id for c in suite.claims}
    assert all(v.verdict in ("holds", "refuted", "inconclusive") for v in result.verdicts)
    assert all(v.value is not None for v in result.verdicts), [
        (v.claim, v.note) for v in result.verdicts if v.value is None]
    return result, records


def _metric(name: str, records: list[RequestRecord], rtt_ms: float = 0.0) -> float:
    return median(METRICS[name][1](CellView("x", {}, rtt_ms, records)))




@pytest.mark.netem
@pytest.mark.slow
@pytest.mark.usefixtures("needs_link")
def test_a_connection_per_request_pays_the_handshake_again(tmp_path: Path) -> None:
    suite = bundled("conn-per-request", repetitions=1, warmup=0,
                    link={"sweep": {"delay": ["10ms", "50ms"]}}, workload={"count": 3})
    _, records = _run(suite, tmp_path)
    gc.collect()  # a client transport left open would warn here, failing this test
    rtt = 100.0
    close, kept = records[("h1-close", "50ms")], records[("h1-keepalive", "50ms")]
    assert all(r.new_connection for r in close)
    assert [r.new_connection for r in kept] == [True, False, False]
    kept_ttfb = [_metric("ttfb", [r]) for r in kept[1:]]
    # TCP + TLS 1.3 again: at least one extra round trip on every request (physics: two).
    for record in close:
        assert _metric("ttfb", [record]) > max(kept_ttfb) + rtt
    clear = records[("h1-clear-close", "50ms")]
    assert all(_metric("ttfb", [r]) > 1.8 * rtt for r in clear)


@pytest.mark.netem
@pytest.mark.slow
@pytest.mark.usefixtures("needs_link")
def test_push_delivers_every_event_and_polls_cost_bytes(tmp_path: Path) -> None:
    suite = bundled("push", repetitions=2, warmup=0, workload={
        "paths": ["/push?count=5&size=64&interval_ms=60&poll_ms=200"]})
    _, records = _run(suite, tmp_path)
    for recs in records.values():
        assert all([m.seq for m in r.messages] == [1, 2, 3, 4, 5] for r in recs)
    ws, poll = records[("ws", "25ms")], records[("short-poll", "25ms")]
    long_poll = records[("long-poll", "25ms")]
    # An open connection delivers an event one one-way delay (25 ms) after its birth;
    # a poll every 200 ms makes most events wait for the next poll.
    assert 20 < _metric("event_latency", ws) < 60
    assert _metric("event_latency", poll) > _metric("event_latency", ws) + 20
    # A long poll is a request and a response (headers both ways) per event.
    assert _metric("event_bytes", long_poll) > _metric("event_bytes", ws) + 100


@pytest.mark.netem
@pytest.mark.slow
@pytest.mark.usefixtures("needs_link")
def test_grpc_vs_json_moves_the_same_records_in_fewer_bytes(tmp_path: Path) -> None:
    suite = bundled("grpc-vs-json", repetitions=2, warmup=0, workload={"count": 8})
    _, records = _run(suite, tmp_path)
    for delay in ("0ms", "25ms"):
        stub = records[("grpc-stub", delay)]
        assert all(r.transport["records"] in (10, 650) for r in stub)
        for rest in ("rest-h1", "rest-h2", "httpx-h1", "httpx-h2"):
            for path in ("/records?count=10", "/records?count=650"):
                json_bytes = _metric("body_bytes", [r for r in records[(rest, delay)]
                                                    if r.path == path])
                proto_bytes = _metric("body_bytes", [r for r in stub if r.path == path])
                assert proto_bytes < json_bytes
    # At 50 ms RTT a call takes at least a round trip, whatever the encoding.
    for label in ("rest-h1", "httpx-h1", "httpx-h2", "grpc-stub"):
        kept = [r for r in records[(label, "25ms")] if not r.new_connection]
        assert kept
        assert min(_metric("total", [r]) for r in kept) > 45


@pytest.mark.netem
@pytest.mark.slow
@pytest.mark.usefixtures("needs_link")
def test_hpack_and_qpack_send_repeated_headers_as_indexes(tmp_path: Path) -> None:
    suite = bundled("headers", repetitions=1, warmup=0, workload={"count": 5})
    _, records = _run(suite, tmp_path)
    h1, h2, h3 = (records[(label, "10ms")] for label in ("h1", "h2", "h3"))
    assert len({r.bytes_out for r in h1}) == 1  # HTTP/1.1: the same text every time
    assert h1[0].bytes_out > 600  # the suite's ten fields, as text
    for later in (h2[1:], h3[1:]):  # after the first request: indexes into the table
        assert all(r.bytes_out < 0.2 * h1[0].bytes_out for r in later)
    assert h2[0].bytes_out > 3 * h2[1].bytes_out  # the first one taught the table


@pytest.mark.parametrize(("headers", "words"), [
    ({"User-Agent": "x"}, "not a lower-case header name"),
    ({"host": "example.org"}, "set by the protocol"),
    ({"cookie": "caf\u00e9"}, "visible ASCII"),
    ({"x-big": "y" * 9000}, "at most 8 KiB"),
    ({"x-n": 3}, "must be a string"),
])
def test_suite_headers_are_checked(headers: dict[str, object], words: str) -> None:
    from protolab.errors import ConfigError

    with pytest.raises(ConfigError, match=words):
        parse_suite({"variant": [{"protocol": "h2"}], "workload": {"headers": headers}})
