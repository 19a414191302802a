"""One cell repetition's capture folder and records -> its HOL result.

HOL delay of a byte range = when the application got it (the client's `arrivals`, the
lab's monotonic clock) - when it had crossed the link (the link's capture, brought onto
the same clock with the offset its header records). The capture says what held each
range (a hole in the order its transport delivers, and the dropped packets that left
it); the records say how long it actually waited.
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path

from protolab.core.record import RequestRecord
from protolab.hol.h2 import DroppedPacket, analyse_tcp
from protolab.hol.h3 import analyse_quic
from protolab.hol.model import Cause, Drop, HolResult, Piece, ReceiverStall, StreamHol
from protolab.hol.transfer import RawPiece, Transfer
from protolab.netem.pcap import CLOCK_COMMENT
from protolab.trace.keylog import KeyLog, load_keylog
from protolab.trace.packets import Segment, parse_frame
from protolab.trace.pcapfile import CaptureFile, Frame, read_capture

# A range nothing held but that reached the application this much later than it crossed
# is looked at again (another stream's retransmission released it?); below it, the
# receive path's own cost (kernel, event loop, decoder): a median of 0.2-0.5 ms measured
# here, with aioquic's occasional 2-4 ms.
STALL_THRESHOLD_NS = 5_000_000


def _words(comment: str) -> dict[str, str]:
    text = comment[comment.find("(") + 1:comment.rfind(")")] if "(" in comment else comment
    return dict(w.strip().split("=", 1) for w in text.split(",") if "=" in w)


def dropped_packets(capture: CaptureFile, offset_ns: int) -> list[DroppedPacket]:
    out = []
    for i, frame in enumerate(capture.dropped):
        seg = parse_frame(i, frame)
        if seg is None:
            continue
        words = _words(frame.comment)
        packet = words.get("packet", "0")
        out.append(DroppedPacket(seg, frame.ts_ns - offset_ns, words.get("direction", "?"),
                                 words.get("reason", "?"),
                                 int(packet) if packet.isdigit() else 0))
    return out


def analyse_capture(folder: Path, records: Sequence[RequestRecord], *,
                    stall_threshold_ns: int = STALL_THRESHOLD_NS) -> HolResult:
    """The capture folder of `bench --capture` (link.pcap, keylog.txt) and that
    repetition's records; never raises on a damaged or foreign capture (problems say)."""
    pcap = folder / "link.pcap"
    try:
        data = pcap.read_bytes()
    except OSError as exc:
        return HolResult("?", problems=[f"cannot read {pcap}: {exc.strerror}"])
    keylog_path = folder / "keylog.txt"
    keylog = load_keylog(keylog_path) if keylog_path.exists() else KeyLog()
    return analyse(read_capture(data), keylog, records, stall_threshold_ns=stall_threshold_ns)


def analyse(capture: CaptureFile, keylog: KeyLog, records: Sequence[RequestRecord], *,
            stall_threshold_ns: int = STALL_THRESHOLD_NS) -> HolResult:
    offset = capture.comment_value(CLOCK_COMMENT.rstrip("="))
    if offset is None or not offset.lstrip("-").isdigit():
        return HolResult("?", problems=[
            "the capture does not record its clock offset (not the emulated link's own "
            "capture): its times cannot be set against the records'"])
    offset_ns = int(offset)
    delivered = _segments(capture.frames)
    dropped = dropped_packets(capture, offset_ns)
    transfer = analyse_tcp(delivered, dropped, keylog, offset_ns)
    if not transfer.pieces:
        quic = analyse_quic(delivered, dropped, keylog, offset_ns)
        if quic.pieces or not any(s.transport == "tcp" for s in delivered):
            transfer = quic
    result = attribute(transfer, records, stall_threshold_ns)
    result.problems = list(capture.problems) + result.problems
    return result


def _segments(frames: Iterable[Frame]) -> list[Segment]:
    return [s for i, f in enumerate(frames) if (s := parse_frame(i, f)) is not None]


def _app_clock(records: Sequence[RequestRecord]) -> dict[int, tuple[list[int], list[int]]]:
    """Per stream: cumulative body bytes and when the application had them."""
    out: dict[int, tuple[list[int], list[int]]] = {}
    for record in records:
        if record.stream_id is None or not record.arrivals:
            continue
        ends, times, total = [], [], 0
        for t, n in record.arrivals:
            total += n
            ends.append(total)
            times.append(t)
        out[record.stream_id] = (ends, times)
    return out


def _app_ns(clock: dict[int, tuple[list[int], list[int]]], stream: int, end: int) -> int | None:
    if stream not in clock:
        return None
    ends, times = clock[stream]
    i = bisect.bisect_left(ends, end)
    return times[i] if i < len(times) else None


def attribute(transfer: Transfer, records: Sequence[RequestRecord],
              stall_threshold_ns: int = STALL_THRESHOLD_NS) -> HolResult:
    """Causes and per-stream HOL from a transport's pieces and the application's times
    (pure: no files, no clock)."""
    result = HolResult(transfer.transport, drops=list(transfer.drops),
                       problems=list(transfer.problems))
    clock = _app_clock(records)
    if transfer.pieces and not clock:
        result.problems.append("the records carry no arrivals (record_arrivals = false): "
                               "delays are the transport's, not measured")
    drops = {d.id: d for d in transfer.drops}
    refills = sorted((d.refilled_ns, d.id) for d in transfer.drops
                     if d.refilled_ns is not None and d.streams)
    for raw in transfer.pieces:
        if not raw.length:
            continue  # an empty DATA frame that ends a stream: nothing to deliver
        app = _app_ns(clock, raw.stream_id, raw.offset + raw.length)
        cause, held_by = _cause(raw, app, drops, refills, stall_threshold_ns)
        result.pieces.append(Piece(raw.stream_id, raw.offset, raw.length, raw.link_ns,
                                   raw.readable_ns, app, cause, held_by))
    result.stalls = receiver_stalls(result.pieces, stall_threshold_ns)
    origin = min((p.link_ns for p in result.pieces), default=0)
    for stall in result.stalls:
        result.problems.append(
            f"the client took nothing from any stream for {stall.ns / 1e6:.1f} ms "
            f"({(stall.start_ns - origin) / 1e6:.1f}-{(stall.end_ns - origin) / 1e6:.1f} ms "
            f"after the first range crossed) while {stall.pieces} ranges of streams "
            f"{', '.join(map(str, stall.streams))} were readable: the receiving process "
            "stalled (a garbage collection, the CPU); their delay is 'unattributed'")
    floor = [p.hol_ns for p in result.pieces if p.cause == "none" and p.hol_ns is not None]
    result.floor_ns = int(statistics.median(floor)) if floor else 0
    result.streams = summarise(result.pieces, result.drops)
    return result


def _cause(raw: RawPiece, app: int | None, drops: dict[int, Drop],
           refills: list[tuple[int, int]], threshold: int) -> tuple[Cause, tuple[int, ...]]:
    if raw.readable_ns > raw.link_ns:
        if not raw.drops:
            return "late", ()
        carried = {s for d in raw.drops for s in drops[d].streams}
        return ("own" if raw.stream_id in carried else "others"), raw.drops
    if app is None or app - raw.link_ns < threshold:
        return "none", ()
    # Nothing in its own order held it, yet it waited: did a retransmission that crossed
    # meanwhile release it? Only if the application had it at once after that crossing
    # (within the receive path's cost): a client that stalls for itself (a 30-60 ms
    # garbage collection measured here) releases everything when it resumes, whatever
    # crossed during the pause, and that is not another stream's loss.
    i = bisect.bisect_right(refills, (app, 1 << 62)) - 1
    if i >= 0 and refills[i][0] >= raw.link_ns and app - refills[i][0] < threshold:
        drop = drops[refills[i][1]]
        return ("own" if raw.stream_id in drop.streams else "others"), (drop.id,)
    return "unattributed", ()


def receiver_stalls(pieces: Sequence[Piece], threshold: int = STALL_THRESHOLD_NS,
                    ) -> list[ReceiverStall]:
    """Spans in which the application took nothing from any stream although ranges of
    at least two streams were readable in them: the receiving process itself stood
    still (its event loop blocked: a garbage collection, the CPU), not a protocol. A
    range the transport held (TCP's order, a stream's own hole) does not count: it was
    not readable during the wait."""
    times = sorted({p.app_ns for p in pieces if p.app_ns is not None})
    waited = [(max(p.link_ns, p.readable_ns), p.app_ns, p) for p in pieces
              if p.app_ns is not None and p.app_ns - max(p.link_ns, p.readable_ns) >= threshold]
    out = []
    for before, after in zip(times, times[1:], strict=False):
        if after - before < threshold:
            continue
        waiting = [p for ready, app, p in waited
                   if app >= after and before <= ready <= after - threshold]
        if len({p.stream_id for p in waiting}) < 2:
            continue
        start = min(max(p.link_ns, p.readable_ns) for p in waiting)
        out.append(ReceiverStall(start, after, len(waiting),
                                 tuple(sorted({p.stream_id for p in waiting}))))
    return out


def _union(intervals: list[tuple[int, int]]) -> int:
    total, end = 0, None
    for a, b in sorted(intervals):
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def summarise(pieces: Sequence[Piece], drops: Sequence[Drop]) -> list[StreamHol]:
    lost = {s for d in drops for s in d.streams}
    holes = [(d.at_ns, d.refilled_ns, set(d.streams)) for d in drops
             if d.streams and d.refilled_ns is not None]
    by_stream: dict[int, list[Piece]] = {}
    for piece in pieces:
        by_stream.setdefault(piece.stream_id, []).append(piece)
    out = []
    for sid, mine in sorted(by_stream.items()):
        spans: dict[Cause, list[tuple[int, int]]] = {}
        longest: dict[Cause, int] = {}
        for p in mine:
            end = p.app_ns if p.app_ns is not None else p.readable_ns
            if end <= p.link_ns:
                continue
            spans.setdefault(p.cause, []).append((p.link_ns, end))
            longest[p.cause] = max(longest.get(p.cause, 0), end - p.link_ns)
        out.append(StreamHol(
            sid, sum(p.length for p in mine), len(mine),
            own_ns=_union(spans.get("own", [])), others_ns=_union(spans.get("others", [])),
            late_ns=_union(spans.get("late", [])),
            unattributed_ns=_union(spans.get("unattributed", [])),
            own_max_ns=longest.get("own", 0), others_max_ns=longest.get("others", 0),
            lost_data=sid in lost,
            exposed=any(a < p.link_ns < b and sid not in carried
                        for p in mine for a, b, carried in holes),
            exposed_own=any(a < p.link_ns < b and sid in carried
                            for p in mine for a, b, carried in holes),
            drops=tuple(sorted({d for p in mine for d in p.drops}))))
    return out
