"""The analysis on small captures of the real link kept in tests/hol/data (no root):
3 x 24 KB at 10 Mbit/s, 100 ms RTT, the 14th server->client packet dropped; HTTP/2 with
2 KB DATA frames, HTTP/3 round-robin. Each folder holds what `bench --capture` keeps
(link.pcap with the drop, keylog.txt) and the repetition's stream ids and arrivals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from protolab.core.record import RequestRecord
from protolab.hol import analyse, analyse_capture
from protolab.trace.keylog import KeyLog
from protolab.trace.pcapfile import read_capture

DATA = Path(__file__).parent / "data"
RTT_NS = 100_000_000


def records(folder: Path) -> list[RequestRecord]:
    return [RequestRecord(protocol="h2", method="GET", path="/bytes/24000", start_ns=0,
                          connection_id=1, new_connection=False, status=200,
                          stream_id=r["stream_id"],
                          arrivals=tuple((t, n) for t, n in r["arrivals"]))
            for r in json.loads((folder / "records.json").read_text())]


def test_h2_one_drop_holds_the_stream_it_missed_for_about_an_rtt() -> None:
    folder = DATA / "h2-one-drop"
    result = analyse_capture(folder, records(folder))
    assert result.transport == "tcp"
    assert result.problems == []
    [drop] = result.drops
    assert (drop.reason, drop.direction, drop.packet) == ("droplist", "down", 14)
    by_stream = {s.stream_id: s for s in result.streams}
    assert set(by_stream) == {1, 3, 5}
    assert all(s.bytes == 24_000 for s in result.streams)
    for sid, stream in by_stream.items():
        if sid in drop.streams:
            assert stream.lost_data
            assert stream.own_ns >= 0.7 * RTT_NS
        else:  # its data was not in the lost packet, yet TCP held it behind the hole
            assert stream.exposed
            assert stream.others_ns >= 0.7 * RTT_NS
            assert stream.own_ns == 0
        assert stream.drops == (drop.id,)
    assert 0 < result.floor_ns < 2_000_000  # the receive path's own cost


def test_h3_one_drop_holds_only_the_stream_that_lost_data() -> None:
    folder = DATA / "h3-one-drop"
    result = analyse_capture(folder, records(folder))
    assert result.transport == "quic"
    [drop] = [d for d in result.drops if d.direction == "down"]
    assert drop.packet == 14
    [lost] = drop.streams
    for stream in result.streams:
        if stream.stream_id == lost:
            assert stream.own_ns >= 0.4 * RTT_NS
        else:
            assert stream.exposed
            assert stream.others_ns == 0
            assert stream.own_ns == 0
    assert sum(p.length for p in result.pieces) == 3 * 24_000


def test_a_capture_without_its_clock_or_keys_says_so(tmp_path: Path) -> None:
    folder = DATA / "h2-one-drop"
    shutil.copy(folder / "link.pcap", tmp_path / "link.pcap")
    result = analyse_capture(tmp_path, records(folder))  # no key log
    assert result.pieces == []
    assert any("key log" in p for p in result.problems)
    assert analyse_capture(tmp_path / "missing", []).problems[0].startswith("cannot read")
    # A pcap someone else wrote (no clock offset in its header) cannot be aligned.
    capture = read_capture((folder / "link.pcap").read_bytes())
    capture.comments.clear()
    result = analyse(capture, KeyLog(), [])
    assert "clock offset" in result.problems[0]


@pytest.mark.parametrize("name", ["h2-one-drop", "h3-one-drop"])
def test_the_tracer_still_reads_the_link_capture(name: str) -> None:
    capture = read_capture((DATA / name / "link.pcap").read_bytes())
    assert capture.problems == []
    assert len(capture.dropped) == 1
    assert len(capture.frames) > 40
