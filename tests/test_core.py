"""The core vocabulary: one field list, one latency origin, and no import of the edges."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from protolab.core.latency import origin_ns, phases, total_ms, ttfb_ms
from protolab.core.record import RECORD_FIELDS, Request, RequestRecord, Timeline

CORE = Path(__file__).resolve().parents[1] / "protolab" / "core"


def test_the_recorder_fills_every_field_of_the_record() -> None:
    tl = Timeline("h2", Request(path="/bytes/3", keep_body=True))
    tl.status, tl.first_byte_ns, tl.done_ns = 200, tl.start_ns + 5, tl.start_ns + 9
    tl.body(b"\x00\x01\x02")
    record = tl.freeze()
    assert tuple(f.name for f in dataclasses.fields(record)) == RECORD_FIELDS
    assert (record.method, record.path, record.body_verified) == ("GET", "/bytes/3", True)
    assert record.content == b"\x00\x01\x02"
    assert isinstance(record.arrivals, tuple)


def test_latency_counts_from_the_intended_send_time_when_there_is_one() -> None:
    closed = RequestRecord(protocol="h1", method="GET", path="/", start_ns=1_000_000_000,
                           connection_id=0, new_connection=True,
                           first_byte_ns=1_030_000_000, done_ns=1_050_000_000)
    opened = dataclasses.replace(closed, intended_ns=990_000_000)  # sent 10 ms late
    assert origin_ns(closed) == closed.start_ns
    assert (ttfb_ms(closed), total_ms(closed)) == (30.0, 50.0)
    assert (ttfb_ms(opened), total_ms(opened)) == (40.0, 60.0)
    assert phases(opened)["ttfb_ms"] == ttfb_ms(opened)


def test_the_core_imports_neither_clients_nor_servers() -> None:
    for path in CORE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith(("clients", "servers")), f"{path.name}: {name}"


def test_a_records_document_gives_the_same_record_back_and_refuses_a_strangers() -> None:
    import json

    import pytest

    from protolab.core.record import MessageTiming
    from tests.bench.test_store import record

    original = dataclasses.replace(
        record(3), content=bytes(range(256)), arrivals=((5, 100), (9, 200)),
        messages=(MessageTiming(seq=1, size=4, sent_ns=2, received_ns=3, born_ns=1),),
        transport={"decoded_bytes": 7})
    sent = json.loads(json.dumps(original.to_document()))  # as it crosses a process
    assert RequestRecord.from_document(sent) == original
    assert original.to_json()["content"] == 256  # for people: the size only
    with pytest.raises(ValueError, match="other fields"):
        RequestRecord.from_document({**sent, "extra": 1})
    with pytest.raises(ValueError, match="message timings"):
        RequestRecord.from_document({**sent, "messages": [{"seq": 1}]})
