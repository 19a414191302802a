"""The results physics and published papers predict, reproduced over the emulated link.

Delays are large (100-200 ms RTT) so machine noise of a few ms cannot flip a shape.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import pytest

from protolab.bench.runner import CellOutcome, run_cells
from protolab.bench.suite import parse_suite
from protolab.bench.summary import summarize_cell
from protolab.core.latency import total_ms
from protolab.core.record import RequestRecord
from protolab.core.rtt import HANDSHAKE_RTTS

pytestmark = [pytest.mark.netem, pytest.mark.slow, pytest.mark.usefixtures("needs_link")]




def run(tmp_path: Path, data: dict[str, Any], repetitions: int = 1) -> list[CellOutcome]:
    suite = parse_suite({"warmup": 0, "repetitions": repetitions, **data})
    return run_cells(suite, tmp_path)


def test_handshake_round_trips_match_the_protocol_designs(tmp_path: Path) -> None:
    variants = [
        {"label": "cleartext", "protocol": "h1", "tls": False},
        {"label": "tls1.2", "protocol": "h2", "tls_version": "1.2"},
        {"label": "tls1.3", "protocol": "h2"},
        {"label": "tls1.3-resumed", "protocol": "h2", "resume": True},
        {"label": "quic", "protocol": "h3"},
        {"label": "quic-0rtt", "protocol": "h3", "zero_rtt": True},
    ]
    data = {"variant": variants, "link": {"overrides": {"delay": "100ms"}},
            "workload": {"paths": ["/bytes/100"], "count": 2, "fresh_connection": True}}
    suite = parse_suite({"warmup": 0, "repetitions": 1, **data})
    measured = {}
    for outcome in run_cells(suite, tmp_path):
        summary = summarize_cell(suite, outcome.cell, {0: outcome.measured()})
        assert summary.failed == 0, outcome.error
        measured[outcome.cell.variant.label] = summary.ttfb_rtts
    for label, expected in HANDSHAKE_RTTS.items():
        assert measured[label] == pytest.approx(expected, rel=0.10), measured
    resumed = run_cells(suite, tmp_path)[3].measured()
    assert all(r.resumed for r in resumed)


def test_app_hol_only_blocks_http1_on_one_connection(tmp_path: Path) -> None:
    slow_first = ["/delay/1000/bytes/1000"] + ["/bytes/1000"] * 5
    outcomes = run(tmp_path, {
        "variant": [{"label": "h1-serial", "protocol": "h1", "connections": 1},
                    {"label": "h1-pipelined", "protocol": "h1", "connections": 1,
                     "pipeline": 6},
                    {"label": "h2", "protocol": "h2"}, {"label": "h3", "protocol": "h3"}],
        "link": {"overrides": {"delay": "50ms"}},
        "workload": {"paths": slow_first, "count": 6, "concurrency": 6},
    })
    for outcome in outcomes:
        records = outcome.measured()
        assert all(r.ok for r in records), outcome.error
        slow_done = _done(records[0])
        fast_done = max(_done(r) for r in records[1:])
        if outcome.cell.variant.protocol == "h1":
            assert fast_done > slow_done, outcome.cell.variant.label
        else:
            # The fast ones finish while the slow one is still being thought about.
            assert fast_done < slow_done - 500, outcome.cell.variant.label


def _done(record: RequestRecord) -> float:
    value = total_ms(record)
    assert value is not None
    return value + record.start_ns / 1e6


@pytest.mark.parametrize("protocol", ["h2", "h3"])
def test_one_drop_delays_every_http2_stream_but_one_http3_stream(
    tmp_path: Path, protocol: str
) -> None:
    """Ten 30 KB responses interleaved packet by packet (round-robin; HTTP/2 DATA frames
    of one packet, as QUIC sends) on one connection; one server->client packet shortly
    before the end of the data is dropped. HTTP/2's in-order byte stream holds every
    stream's last bytes behind the hole for about a round trip; HTTP/3 delays only the
    stream whose data was lost."""
    rtt_ms = 100.0
    base: dict[str, Any] = {
        "variant": [{"label": protocol, "protocol": protocol, "data_frame": 1300}],
        "workload": {"paths": ["/bytes/30000"], "count": 10, "concurrency": 10},
    }
    link = {"delay": "50ms", "rate": "10mbit", "queue": "200"}
    # Three repetitions each, compared rank by rank through their medians, so one slow
    # repetition (a busy machine) cannot pass for head-of-line blocking or hide it.
    clean = run(tmp_path, {**base, "link": {"overrides": link}}, repetitions=3)[0]
    packets = min(rep["down_packets"] for rep in clean.link)
    # ~20 packets from the end: before every stream's last packet (the last few packets
    # are the close, not data), with enough after it for fast retransmission / QUIC's
    # packet-threshold loss detection.
    drop = f"down:{packets - 20}"
    lossy = run(tmp_path, {**base, "link": {"overrides": {**link, "drop": drop}}},
                repetitions=3)[0]
    assert all(rep["down_dropped_droplist"] == 1 for rep in lossy.link)
    delays = [a - b for a, b in zip(_median_finish(lossy), _median_finish(clean), strict=True)]
    others = statistics.median(sorted(delays)[:9])  # all but the most-delayed stream
    if protocol == "h2":
        assert others > 0.7 * rtt_ms, delays
    else:
        assert others < 0.3 * rtt_ms, delays
        assert max(delays) > 0.4 * rtt_ms, delays  # the stream that lost data waited


def _median_finish(outcome: CellOutcome) -> list[float]:
    """Per completion rank, the median over repetitions of when that stream finished
    (ms after the repetition's first request started)."""
    ranks = []
    for _, _, records in outcome.records:
        assert all(r.ok for r in records)
        start = min(r.start_ns for r in records)
        ranks.append(sorted(((r.done_ns or 0) - start) / 1e6 for r in records))
    return [statistics.median(column) for column in zip(*ranks, strict=True)]
