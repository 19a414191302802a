"""What physics says: round trips a tiny GET on a fresh connection costs, per stack.

From the first packet to the first response byte (DESIGN.md, "What physics says";
RFC 8446 for TLS 1.3, RFC 9000/9001 for QUIC). The tracer, the summaries and the charts
hold their measurements against this one table.
"""

from __future__ import annotations

from collections.abc import Mapping

HANDSHAKE_RTTS: Mapping[str, float] = {
    "cleartext": 2,
    "tls1.2": 4,
    "tls1.3": 3,
    "tls1.3-resumed": 3,
    "quic": 2,
    "quic-0rtt": 1,
}


def request_leaves_rtts(stack: str) -> float:
    """Round trips before the request can leave (one less than the first byte)."""
    return HANDSHAKE_RTTS[stack] - 1
