"""What `protolab trace` can capture, and the round trips the protocol's design predicts.

Predictions follow DESIGN.md ("What physics says") and `protolab.core.rtt.HANDSHAKE_RTTS`:
counted from the first packet of the traced connection, in link round-trip times.
"""

from __future__ import annotations

from dataclasses import dataclass

from protolab import registry
from protolab.core.rtt import HANDSHAKE_RTTS
from protolab.errors import ConfigError


@dataclass(frozen=True)
class TraceKind:
    """One kind of connection the tracer can run."""

    name: str
    protocol: str  # client registry name: h1, h2, h3, ws, grpc
    tls_version: str | None  # "1.2", "1.3", or None for cleartext
    resumed: bool  # traced connection is the second one, resuming the first's session
    stack: str  # key of HANDSHAKE_RTTS
    description: str

    @property
    def predicted_first_byte_rtt(self) -> float:
        return HANDSHAKE_RTTS[self.stack]

    @property
    def predicted_request_rtt(self) -> float:
        """When the request can leave: one round trip before the first response byte."""
        return HANDSHAKE_RTTS[self.stack] - 1

    @property
    def over_quic(self) -> bool:
        return registry.get(self.protocol).capabilities.over_quic


KINDS: dict[str, TraceKind] = {
    k.name: k
    for k in (
        TraceKind("h1-clear", "h1", None, False, "cleartext", "HTTP/1.1 over plain TCP"),
        TraceKind("h1-tls12", "h1", "1.2", False, "tls1.2", "HTTP/1.1 over TLS 1.2"),
        TraceKind("h1-tls13", "h1", "1.3", False, "tls1.3", "HTTP/1.1 over TLS 1.3"),
        TraceKind("h2-tls12", "h2", "1.2", False, "tls1.2", "HTTP/2 over TLS 1.2"),
        TraceKind("h2-tls13", "h2", "1.3", False, "tls1.3", "HTTP/2 over TLS 1.3"),
        TraceKind("h2-tls13-resume", "h2", "1.3", True, "tls1.3-resumed",
                  "HTTP/2 over TLS 1.3, resuming the session of a first connection"),
        TraceKind("h3", "h3", "1.3", False, "quic", "HTTP/3 over QUIC, 1-RTT handshake"),
        TraceKind("h3-0rtt", "h3", "1.3", True, "quic-0rtt",
                  "HTTP/3 over QUIC, resumed with the request as 0-RTT early data"),
        TraceKind("ws", "ws", "1.3", False, "tls1.3",
                  "WebSocket upgrade over TLS 1.3 and one echoed message"),
        # grpcio (BoringSSL inside gRPC's C core) cannot write a key log: the first call is
        # traced over cleartext HTTP/2, where its HEADERS and first message can be read.
        TraceKind("grpc", "grpc", None, False, "cleartext",
                  "gRPC's first unary call over cleartext HTTP/2 (h2c)"),
    )
}


def get_kind(name: str) -> TraceKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ConfigError(
            f"unknown trace kind {name!r}", hint=f"choose one of {', '.join(KINDS)}"
        ) from None
