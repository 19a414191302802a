"""Per-request phase durations derived from a raw record (what `curl -w` would print)."""

from __future__ import annotations

from clients.base import RequestRecord


def _ms(later: int | None, earlier: int | None) -> float | None:
    if later is None or earlier is None:
        return None
    return (later - earlier) / 1e6


def phases(record: RequestRecord) -> dict[str, float | None]:
    """connect, tls, ttfb and total in milliseconds; None where the phase did not happen.

    connect and tls are the request's own only when it opened its connection; QUIC has
    no separate transport connect, so its whole handshake counts as tls.
    """
    tls_from = record.connected_ns if record.connected_ns is not None else record.conn_start_ns
    return {
        "connect_ms": _ms(record.connected_ns, record.conn_start_ns),
        "tls_ms": _ms(record.handshake_ns, tls_from),
        "ttfb_ms": _ms(record.first_byte_ns, record.start_ns),
        "total_ms": _ms(record.done_ns, record.start_ns),
    }
