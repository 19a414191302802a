"""Head-of-line delay through the real link: one deterministic drop, HTTP/2 and HTTP/3.

100 ms RTT so that processing noise (well under 5 ms) cannot flip a shape: on HTTP/2
every other stream with data in flight waits about one RTT for the retransmission and
the analysis names that drop; on HTTP/3 (round-robin) only the stream that lost data
waits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from protolab.bench.session import run_bench
from protolab.bench.suite import parse_suite
from protolab.store import ResultsStore

pytestmark = [pytest.mark.netem, pytest.mark.slow, pytest.mark.usefixtures("needs_link")]
RTT_MS = 100.0


def one_drop_suite() -> Any:
    # 4 x 100 KB at 10 Mbit/s; the 40th server->client packet is dropped (in slow
    # start, data of every stream in flight behind it). 4 KB DATA frames interleave the
    # HTTP/2 streams finely enough that each has bytes right behind the hole.
    return parse_suite({
        "name": "hol-one-drop", "warmup": 0, "repetitions": 1, "capture": True,
        "variant": [{"label": "h2-rr", "protocol": "h2", "data_frame": 4096},
                    {"label": "h3-rr", "protocol": "h3"}],
        "link": {"overrides": {"delay": "50ms", "rate": "10mbit", "queue": "100",
                               "drop": "down:40"}},
        "workload": {"paths": ["/bytes/102400"], "count": 4, "concurrency": 4,
                     "record_arrivals": True},
        "claim": [
            {"id": "h2-others", "text": "t", "source": "s", "metric": "hol_others_rtts",
             "relation": "above", "value": 0.7, "a": "h2-rr"},
            {"id": "h3-others", "text": "t", "source": "s", "metric": "hol_others_rtts",
             "relation": "below", "value": 0.1, "a": "h3-rr"},
        ],
    })


def test_one_drop_stalls_every_h2_stream_and_only_the_h3_stream_that_lost_data(
        tmp_path: Path) -> None:
    with ResultsStore(tmp_path / "lab.db") as store:
        result = run_bench(one_drop_suite(), store, tmp_path / "out")
        cells = store.cells(result.run_id)
        streams = {c.index: [h for _, h in store.hol_streams(c.id)] for c in cells}
        drops = {c.index: [d for _, d in store.hol_drops(c.id)] for c in cells}
        pieces = {c.index: [p for _, p in store.hol_pieces(c.id)] for c in cells}
        metrics = {c.index: {m.name: m.value for m in store.metrics(c.id)} for c in cells}
    assert result.status == "complete"
    for index in (0, 1):
        assert [(d.reason, d.direction, d.packet) for d in drops[index]
                if d.direction == "down"] == [("droplist", "down", 40)]
        assert len(streams[index]) == 4
        assert sum(p.length for p in pieces[index]) == 4 * 102_400
        assert all(p.app_ns is not None and p.app_ns >= p.link_ns for p in pieces[index])
    drop_h2, drop_h3 = drops[0][0], drops[1][0]
    assert drop_h2.streams
    assert drop_h3.streams
    # HTTP/2: the streams whose data was not lost wait ~1 RTT, held by that drop.
    h2_others = [s for s in streams[0] if not s.lost_data]
    assert h2_others
    for s in h2_others:
        assert s.exposed
        assert s.others_ns >= 0.7 * RTT_MS * 1e6
        assert s.drops == (drop_h2.id,)
    for s in streams[0]:
        if s.lost_data:
            assert s.own_ns >= 0.4 * RTT_MS * 1e6
            assert s.others_ns == 0
    held_h2 = [p for p in pieces[0] if p.cause == "others"]
    assert held_h2
    assert all(p.drops == (drop_h2.id,) for p in held_h2)
    # HTTP/3: the others are not held at all; the stream that lost data is.
    for s in streams[1]:
        if s.lost_data:
            assert s.own_ns >= 0.4 * RTT_MS * 1e6
        else:
            assert s.exposed
            assert s.others_ns < 0.1 * RTT_MS * 1e6
            assert s.own_ns == 0
    assert metrics[0]["hol_others_p50"] >= 0.7 * RTT_MS
    assert metrics[1]["hol_others_p50"] < 0.1 * RTT_MS
    assert metrics[1]["hol_own_p50"] >= 0.4 * RTT_MS
    assert metrics[0]["hol_streams_stalled"] == 4
    assert metrics[1]["hol_streams_stalled"] == len([s for s in streams[1] if s.lost_data])
    verdicts = {v.claim: v.verdict for v in result.verdicts}
    assert verdicts == {"h2-others": "holds", "h3-others": "holds"}
