"""The tracer's output vocabulary: steps, the round-trip summary, and the whole trace.

Times: the emulated link's pcap stamps each packet when the link *delivers* it, so a
client->server packet's stamp is its arrival at the server and a server->client packet's
its arrival at the client. `Clock` turns stamps into the ladder's two ends (sent at the
sender, received at the receiver) with the link's one-way delays; for a capture brought
from elsewhere the delays are unknown and taken as zero (a client-side capture: client
packets stamped when sent, server packets when received — exactly the client's view).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

C2S, S2C = "client->server", "server->client"


@dataclass(frozen=True)
class Clock:
    """Maps capture stamps to times since the client's first packet left."""

    first_ts_ns: int  # capture stamp of the connection's first client packet
    up_delay_ns: int = 0  # client->server one-way delay (emulated link), else 0
    down_delay_ns: int = 0

    def sent_received(self, ts_ns: int, from_client: bool) -> tuple[int, int]:
        origin = self.first_ts_ns - self.up_delay_ns
        delay = self.up_delay_ns if from_client else self.down_delay_ns
        return ts_ns - delay - origin, ts_ns - origin


@dataclass(frozen=True)
class HandshakeStep:
    """One message of the handshake ladder."""

    sent_ns: int  # when it left its sender, since the client's first packet left
    received_ns: int  # when it reached its receiver
    direction: str  # C2S or S2C
    layer: str  # tcp, tls, quic, http
    name: str  # e.g. "SYN", "ClientHello", "Initial", "HTTP/2 HEADERS"
    packet: int  # capture frame number, from 1 as in Wireshark
    packet_bytes: int  # IP bytes of that frame
    size: int  # bytes of this message (record, handshake message, frame)
    note: str = ""  # what the step achieves
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def from_client(self) -> bool:
        return self.direction == C2S

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RoundTrips:
    """When the request left and the first response byte arrived, measured and predicted."""

    rtt_ns: int  # the link's round-trip time the counts are in
    rtt_source: str  # "link" (configured) or "handshake" (estimated from the capture)
    request_ns: int | None  # request left the client, since the first packet left
    first_byte_ns: int | None  # first response byte reached the client
    predicted_request: float | None  # RTTs, from DESIGN.md's table
    predicted_first_byte: float | None
    explanation: str = ""

    @property
    def request_rtts(self) -> float | None:
        return None if self.request_ns is None or not self.rtt_ns else self.request_ns / self.rtt_ns

    @property
    def first_byte_rtts(self) -> float | None:
        if self.first_byte_ns is None or not self.rtt_ns:
            return None
        return self.first_byte_ns / self.rtt_ns

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["request_rtts"] = self.request_rtts
        data["first_byte_rtts"] = self.first_byte_rtts
        return data


@dataclass
class Trace:
    """One traced connection: what it negotiated, its steps and its round trips."""

    kind: str | None  # trace kind, None for a brought capture whose kind is unknown
    transport: str  # "tcp" or "quic"
    client: str  # "addr:port"
    server: str
    negotiated: dict[str, Any] = field(default_factory=dict)  # version, cipher, group, alpn..
    steps: list[HandshakeStep] = field(default_factory=list)
    round_trips: RoundTrips | None = None
    problems: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    first_ts_ns: int = 0  # capture stamp of the first packet (orders connections)
    request_step: HandshakeStep | None = None  # the request (or first client data)
    response_step: HandshakeStep | None = None  # the first response bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "transport": self.transport, "client": self.client,
            "server": self.server, "negotiated": self.negotiated,
            "round_trips": self.round_trips.to_json() if self.round_trips else None,
            "steps": [s.to_json() for s in self.steps], "problems": self.problems,
            "files": self.files,
        }


def within(measured: float | None, predicted: float | None, tolerance: float = 0.25) -> bool:
    return measured is not None and predicted is not None and abs(measured - predicted) <= tolerance
