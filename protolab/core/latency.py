"""The one definition of latency: where it counts from, and the phases of a request.

Under open load a request is due at its intended send time; a client that falls behind
sends it late, and counting from the late send would hide the queueing (coordinated
omission, Tene's "How NOT to measure latency"). So latency counts from when the request
was due (`intended_ns`) when it had one, else from when it started. Every summary, table,
comparison, export and chart takes its times from here.
"""

from __future__ import annotations

from protolab.core.record import RequestRecord

LATE_NS = 1_000_000  # an open-load request sent more than 1 ms after it was due is late


def origin_ns(record: RequestRecord) -> int:
    """When this request's latency starts: when it was due (open load) or started."""
    return record.intended_ns if record.intended_ns is not None else record.start_ns


def _ms(later: int | None, earlier: int | None) -> float | None:
    if later is None or earlier is None:
        return None
    return (later - earlier) / 1e6


def ttfb_ms(record: RequestRecord) -> float | None:
    """Time to the first response byte, in ms, from `origin_ns`."""
    return _ms(record.first_byte_ns, origin_ns(record))


def total_ms(record: RequestRecord) -> float | None:
    """Time to the complete response, in ms, from `origin_ns`."""
    return _ms(record.done_ns, origin_ns(record))


def is_late(record: RequestRecord) -> bool:
    """Open load: the client could not send this request on time."""
    return record.intended_ns is not None and record.start_ns - record.intended_ns > LATE_NS


def late_sends(records: list[RequestRecord]) -> int:
    return sum(1 for r in records if is_late(r))


def phases(record: RequestRecord) -> dict[str, float | None]:
    """connect, tls, ttfb and total in milliseconds (what `curl -w` would print); None where
    the phase did not happen.

    connect and tls are the request's own only when it opened its connection; QUIC has
    no separate transport connect, so its whole handshake counts as tls.
    """
    tls_from = record.connected_ns if record.connected_ns is not None else record.conn_start_ns
    return {
        "connect_ms": _ms(record.connected_ns, record.conn_start_ns),
        "tls_ms": _ms(record.handshake_ns, tls_from),
        "ttfb_ms": ttfb_ms(record),
        "total_ms": total_ms(record),
    }
