"""What a claim measures: each metric turns one cell's stored records (and its streams'
head-of-line delays) into one value per sample, in the metric's unit.

A metric is a name in `METRICS`, which claims name as their `metric` key; its function
sees a `CellView`, so it is tested on made-up records with no run or database behind it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from protolab.core.latency import phases, total_ms, ttfb_ms
from protolab.core.record import MessageTiming, RequestRecord
from protolab.hol.model import StreamHol, others_ms, own_ms


@dataclass(frozen=True)
class CellView:
    """What a claim needs of a cell: its variant, its link's words and RTT, its records."""

    label: str
    link: Mapping[str, str]
    rtt_ms: float
    records: Sequence[RequestRecord]  # measured (no warm-up)
    hol: tuple[StreamHol, ...] = ()  # per stream and repetition, from the cell's captures
    # Deliveries the link left ≥ 1 ms late during the cell: the instrument's own error,
    # said in the note of every verdict the cell's samples went into.
    link_late_1ms: int = 0


# metric name -> (unit, one value per sample of a cell)
MetricFn = Callable[[CellView], list[float]]


def _per_request(value: Callable[[RequestRecord], float | None]) -> MetricFn:
    def values(cell: CellView) -> list[float]:
        return [v for r in cell.records if r.ok and (v := value(r)) is not None]

    return values


def _in_rtts(value: Callable[[RequestRecord], float | None]) -> MetricFn:
    def values(cell: CellView) -> list[float]:
        if cell.rtt_ms <= 0:
            return []
        return [v / cell.rtt_ms for r in cell.records if r.ok and (v := value(r)) is not None]

    return values


def _phase(name: str) -> Callable[[RequestRecord], float | None]:
    return lambda record: phases(record)[name]


def _setup_ms(record: RequestRecord) -> float | None:
    """Connection setup: transport and TLS/QUIC handshakes, until the request can leave."""
    if record.handshake_ns is None or record.conn_start_ns is None:
        return None
    return (record.handshake_ns - record.conn_start_ns) / 1e6


def _per_message(value: Callable[[MessageTiming], int | None]) -> MetricFn:
    """One value per message of every ok record (push events, echo round trips), in ms."""
    def values(cell: CellView) -> list[float]:
        return [v / 1e6 for r in cell.records if r.ok for m in r.messages
                if (v := value(m)) is not None]

    return values


def _born_to_received(m: MessageTiming) -> int | None:
    """Push: from when the server produced the event to its arrival (one host, one clock)."""
    return None if m.born_ns is None else m.received_ns - m.born_ns


def _sent_to_received(m: MessageTiming) -> int | None:
    """Echo: the round trip on the client's clock; push: from when it left the server."""
    return None if m.sent_ns is None else m.received_ns - m.sent_ns


def _bytes_per_message(record: RequestRecord) -> float | None:
    """Everything the exchange cost on the wire (both ways, framing and headers, the
    upgrade or every poll), shared out over the messages it delivered."""
    if not record.messages:
        return None
    return (record.bytes_in + record.bytes_out) / len(record.messages)


def _transport_ms(counter: str) -> Callable[[RequestRecord], float | None]:
    """A microsecond counter of the record's `transport`, in ms (None when absent)."""
    def value(record: RequestRecord) -> float | None:
        us = record.transport.get(counter)
        return None if us is None else us / 1000

    return value


# A client's move mid-transfer (clients/migration.py) is kept in the record's transport
# counters under these keys, as moments on the one clock.
MIGRATION_MOVED = "migration_moved_ns"


def _since_move(key: str) -> Callable[[RequestRecord], float | None]:
    """ms from the client's move to `key` (recovered: the first response byte after it;
    path: the first datagram on the new port; reconnected: TCP+TLS done again)."""
    def value(record: RequestRecord) -> float | None:
        moved, then = record.transport.get(MIGRATION_MOVED), record.transport.get(key)
        return None if moved is None or then is None else (then - moved) / 1e6

    return value


def _refetched(record: RequestRecord) -> float | None:
    """Body bytes asked for again after the move (None: the request did not move)."""
    if MIGRATION_MOVED not in record.transport:
        return None
    return float(record.transport.get("migration_refetched_bytes", 0))


def _goodput(record: RequestRecord) -> float | None:
    ms = total_ms(record)
    return None if ms is None or ms <= 0 else record.body_bytes * 8 / (ms * 1000)


def _bursts(records: Sequence[RequestRecord]) -> list[float]:
    """ms from start to end of each burst: requests whose lifetimes overlap, chained (a
    closed-load repetition with every request issued at once is one burst). A burst with
    a failed request has no value: its end is not the page's."""
    out: list[float] = []
    ordered = sorted(records, key=lambda r: r.start_ns)
    i = 0
    while i < len(ordered):
        start, end, ok = ordered[i].start_ns, ordered[i].done_ns, ordered[i].ok
        j = i + 1
        while j < len(ordered) and end is not None and ordered[j].start_ns <= end:
            done = ordered[j].done_ns
            end = None if done is None else max(end, done)
            ok = ok and ordered[j].ok
            j += 1
        if ok and end is not None:
            out.append((end - start) / 1e6)
        i = j
    return out


def _hol(values: Callable[[Sequence[StreamHol]], list[float]], *, rtts: bool = False,
         ) -> MetricFn:
    def fn(cell: CellView) -> list[float]:
        if rtts and cell.rtt_ms <= 0:
            return []
        return [v / cell.rtt_ms if rtts else v for v in values(cell.hol)]

    return fn


METRICS: dict[str, tuple[str, MetricFn]] = {
    "ttfb": ("ms", _per_request(ttfb_ms)),
    "setup": ("ms", _per_request(_setup_ms)),
    "tls": ("ms", _per_request(_phase("tls_ms"))),
    "total": ("ms", _per_request(total_ms)),
    "ttfb_rtts": ("RTT", _in_rtts(ttfb_ms)),
    "total_rtts": ("RTT", _in_rtts(total_ms)),
    "bytes_in": ("bytes", _per_request(lambda r: float(r.bytes_in))),
    "bytes_out": ("bytes", _per_request(lambda r: float(r.bytes_out))),
    "bytes": ("bytes", _per_request(lambda r: float(r.bytes_in + r.bytes_out))),
    # Head-of-line delay per stream, measured from captures (protolab/hol): from another
    # stream's loss (streams it could stall), from its own (streams that lost data).
    "hol_others": ("ms", _hol(others_ms)),
    "hol_own": ("ms", _hol(own_ms)),
    "hol_others_rtts": ("RTT", _hol(others_ms, rtts=True)),
    "hol_own_rtts": ("RTT", _hol(own_ms, rtts=True)),
    # On a connection already open: what a call costs once its setup is paid (the
    # setup itself is `setup`, and the conn-per-request suite's subject).
    "total_reused": ("ms", _per_request(lambda r: None if r.new_connection else total_ms(r))),
    "body_bytes": ("bytes", _per_request(lambda r: float(r.body_bytes))),
    "event_latency": ("ms", _per_message(_born_to_received)),
    "message_latency": ("ms", _per_message(_sent_to_received)),
    "event_bytes": ("bytes", _per_request(_bytes_per_message)),
    # One value per burst of requests in flight together (a page's objects fetched at
    # once): from the first one's start to the last one's end.
    "page_total": ("ms", lambda cell: _bursts(cell.records)),
    # Body bits over the request's whole time (handshakes included, as the QUIC interop
    # runner's goodput case counts them).
    "goodput": ("Mbit/s", _per_request(_goodput)),
    # The client moved mid-transfer (migrate_after_bytes): how long until the response
    # came again, and what had to be fetched again. Requests that did not move have none.
    "migration_recovery": ("ms", _per_request(_since_move("migration_recovered_ns"))),
    "migration_recovery_rtts": ("RTT", _in_rtts(_since_move("migration_recovered_ns"))),
    "migration_path_rtts": ("RTT", _in_rtts(_since_move("migration_path_ns"))),
    "migration_reconnect_rtts": ("RTT", _in_rtts(_since_move("migration_reconnected_ns"))),
    "migration_refetched_bytes": ("bytes", _per_request(_refetched)),
    # Content coding (protolab/compression.py; body_bytes is the coded body on the wire):
    # the body after decoding, the server's encode time (its Server-Timing `enc`), and the
    # client's CPU time in the decoder. An uncoded body is its own decoded size.
    "decoded_bytes": ("bytes", _per_request(
        lambda r: float(r.transport.get("decoded_bytes", r.body_bytes)))),
    "server_encode_ms": ("ms", _per_request(_transport_ms("server_encode_us"))),
    "decode_ms": ("ms", _per_request(_transport_ms("decode_us"))),
}
