"""The HOL analysis on made-up transfers: no sockets, no clock - what holds a byte range,
who is blamed, and how a stream's HOL delay adds up."""

from __future__ import annotations

from protolab.core.record import RequestRecord
from protolab.hol import attribute
from protolab.hol.intervals import FirstArrivals
from protolab.hol.model import Drop, StreamHol, others_ms, own_ms
from protolab.hol.transfer import RawPiece, Transfer, held

MS = 1_000_000


def record(stream: int, arrivals: list[tuple[int, int]]) -> RequestRecord:
    return RequestRecord(protocol="h2", method="GET", path="/bytes/3000", start_ns=0,
                         connection_id=1, new_connection=False, status=200,
                         stream_id=stream, arrivals=tuple(arrivals))


def test_first_arrivals_keep_only_new_bytes_and_know_what_came_last() -> None:
    fa = FirstArrivals()
    assert [(s.start, s.end) for s in fa.add(0, 100, 1, 0)] == [(0, 100)]
    assert [(s.start, s.end) for s in fa.add(200, 300, 2, 1)] == [(200, 300)]
    # The retransmission overlaps what came: only the hole [100, 200) is new.
    assert [(s.start, s.end) for s in fa.add(50, 250, 9, 2)] == [(100, 200)]
    fa.freeze()
    assert fa.latest_in(0, 300) == 9
    assert fa.latest_in(200, 300) == 2
    assert fa.latest_in(250, 400) is None  # some bytes never crossed
    binding = fa.latest_before(200)
    assert binding is not None
    assert (binding.start, binding.end, binding.at_ns) == (100, 200, 9)
    # Bytes after the hole crossed at 2 and could be handed over only at 9.
    assert held(fa, 200, 2) == (9, (100, 200))
    assert held(fa, 0, 1) == (1, (0, 0))


def test_one_drop_on_tcp_blames_the_stream_whose_data_it_carried() -> None:
    # Stream 1's packet was dropped at 10 ms and retransmitted at 110 ms; stream 3's
    # data crossed at 20 ms behind the hole and stream 1's later data at 30 ms.
    drop = Drop(0, 10 * MS, "down", "droplist", 40, 1500, streams=(1,), refilled_ns=110 * MS)
    transfer = Transfer("tcp", drops=[drop], pieces=[
        RawPiece(1, 0, 1000, 110 * MS, 110 * MS, ()),
        RawPiece(3, 0, 1000, 20 * MS, 110 * MS, (0,)),
        RawPiece(1, 1000, 1000, 30 * MS, 110 * MS, (0,)),
        RawPiece(3, 1000, 1000, 120 * MS, 120 * MS, ()),
    ])
    records = [record(1, [(111 * MS, 2000)]),
               record(3, [(111 * MS, 1000), (int(120.3 * MS), 1000)])]
    result = attribute(transfer, records)
    causes = [(p.stream_id, p.cause) for p in result.pieces]
    assert causes == [(1, "none"), (3, "others"), (1, "own"), (3, "none")]
    by_stream = {s.stream_id: s for s in result.streams}
    assert by_stream[3].others_ns == 91 * MS
    assert by_stream[3].own_ns == 0
    assert by_stream[3].exposed
    assert not by_stream[3].lost_data
    assert by_stream[1].own_ns == 81 * MS
    assert by_stream[1].lost_data
    assert by_stream[1].exposed_own
    assert not by_stream[3].exposed_own
    assert by_stream[1].drops == (0,) == by_stream[3].drops
    assert result.floor_ns == int(0.65 * MS)  # the median of 1 and 0.3 ms
    assert others_ms(result.streams) == [91.0]
    assert own_ms(result.streams) == [81.0]


def test_a_late_unheld_range_is_blamed_on_a_retransmission_that_released_it() -> None:
    # QUIC: stream 4's range was not behind a hole of its own, yet the application got
    # it 60 ms late, just after stream 0's retransmission crossed: another stream's loss.
    drop = Drop(0, 10 * MS, "down", "loss", 12, 1200, streams=(0,), refilled_ns=100 * MS)
    transfer = Transfer("quic", drops=[drop], pieces=[
        RawPiece(4, 0, 500, 40 * MS, 40 * MS, ()),
        RawPiece(4, 500, 500, 150 * MS, 150 * MS, ()),
    ])
    result = attribute(transfer, [record(4, [(101 * MS, 500), (170 * MS, 500)])])
    assert [(p.cause, p.drops) for p in result.pieces] == [("others", (0,)),
                                                           ("unattributed", ())]
    stream = result.streams[0]
    assert stream.others_ns == 61 * MS
    assert stream.unattributed_ns == 20 * MS


def test_hol_is_a_union_over_overlapping_ranges_and_late_data_is_not_loss() -> None:
    transfer = Transfer("tcp", drops=[
        Drop(0, 0, "down", "loss", 5, 1500, streams=(9,), refilled_ns=100 * MS)], pieces=[
        RawPiece(1, 0, 100, 10 * MS, 100 * MS, (0,)),
        RawPiece(1, 100, 100, 20 * MS, 100 * MS, (0,)),
        RawPiece(1, 200, 100, 200 * MS, 230 * MS, ()),  # held by reordering, no drop
    ])
    result = attribute(transfer, [record(1, [(100 * MS, 200), (230 * MS, 100)])])
    stream = result.streams[0]
    assert stream.others_ns == 90 * MS  # [10, 100] and [20, 100] overlap
    assert stream.others_max_ns == 90 * MS
    assert stream.late_ns == 30 * MS
    assert not stream.lost_data
    assert stream.stalled


def test_without_arrivals_the_transport_times_stand_in_and_it_says_so() -> None:
    transfer = Transfer("tcp", pieces=[RawPiece(1, 0, 100, 10 * MS, 50 * MS, ())])
    result = attribute(transfer, [])
    assert result.pieces[0].app_ns is None
    assert result.streams[0].late_ns == 40 * MS
    assert any("record_arrivals" in p for p in result.problems)
    assert isinstance(result.streams[0], StreamHol)


def test_a_client_that_stalls_for_itself_is_not_blamed_on_a_retransmission() -> None:
    # Seen on the link: the HTTP/3 client's event loop stood still for ~50 ms (a Python
    # full garbage collection) while every stream's data kept crossing, and stream 0's
    # retransmission crossed in the middle of it. Everything was released when the client
    # resumed, 30 ms after that crossing: not another stream's loss, but the client.
    drop = Drop(0, 10 * MS, "down", "loss", 12, 1200, streams=(0,), refilled_ns=120 * MS)
    transfer = Transfer("quic", drops=[drop], pieces=[
        RawPiece(4, 0, 500, 95 * MS, 95 * MS, ()),
        RawPiece(8, 0, 500, 100 * MS, 100 * MS, ()),
        RawPiece(4, 500, 500, 110 * MS, 110 * MS, ()),
        RawPiece(8, 500, 500, 115 * MS, 115 * MS, ()),
    ])
    records = [record(4, [(95 * MS, 500), (150 * MS, 500)]),
               record(8, [(int(150.1 * MS), 500), (int(150.2 * MS), 500)])]
    result = attribute(transfer, records)
    assert [p.cause for p in result.pieces] == ["none", "unattributed", "unattributed",
                                                "unattributed"]
    assert all(s.others_ns == 0 for s in result.streams)
    by_stream = {s.stream_id: s for s in result.streams}
    assert by_stream[8].unattributed_ns == int(50.2 * MS)
    # The analysis says what it saw: nothing taken from any stream while both had data.
    [stall] = result.stalls
    assert (stall.start_ns, stall.end_ns, stall.streams) == (100 * MS, 150 * MS, (4, 8))
    assert stall.pieces == 3
    assert any("took nothing from any stream for 50.0 ms" in p for p in result.problems)


def test_one_stream_waiting_alone_is_not_a_client_stall() -> None:
    # Another stream kept getting data while stream 4's range waited: whatever held it,
    # the client was running.
    transfer = Transfer("quic", pieces=[
        RawPiece(4, 0, 500, 10 * MS, 10 * MS, ()),
        RawPiece(8, 0, 500, 20 * MS, 20 * MS, ()),
        RawPiece(8, 500, 500, 30 * MS, 30 * MS, ()),
    ])
    records = [record(4, [(60 * MS, 500)]),
               record(8, [(int(20.2 * MS), 500), (int(30.2 * MS), 500)])]
    result = attribute(transfer, records)
    assert [p.cause for p in result.pieces] == ["unattributed", "none", "none"]
    assert result.stalls == []
    assert not any("took nothing" in p for p in result.problems)
