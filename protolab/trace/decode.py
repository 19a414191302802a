"""From capture bytes and a key log to traces: find the connections, decode each, and
account for its round trips against what the protocol's design predicts."""

from __future__ import annotations

from dataclasses import dataclass, field

from protolab.core.rtt import HANDSHAKE_RTTS
from protolab.trace.errors import TraceInputError, bug_note, unexpected
from protolab.trace.keylog import KeyLog
from protolab.trace.packets import Segment, parse_frame
from protolab.trace.pcapfile import CaptureFile, read_capture
from protolab.trace.quictrace import trace_quic_connections
from protolab.trace.steps import Clock, HandshakeStep, RoundTrips, Trace
from protolab.trace.tcpstream import tcp_connections
from protolab.trace.tcptrace import trace_tcp


@dataclass
class LinkTiming:
    """What is known of the link the capture crossed (nothing, for a brought capture)."""

    rtt_ns: int | None = None
    up_delay_ns: int = 0
    down_delay_ns: int = 0
    dropped_up: int = 0  # packets the link dropped, which a delivery-side capture lacks
    dropped_down: int = 0


@dataclass
class Decoded:
    traces: list[Trace] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    frames: int = 0

    @property
    def main(self) -> Trace | None:
        """The connection the user asked about: the last one (a resumed connection follows
        the one that earned its ticket)."""
        return self.traces[-1] if self.traces else None


def decode_capture(data: bytes, keylog: KeyLog, link: LinkTiming | None = None) -> Decoded:
    """Decode every TCP and QUIC connection of a capture; raises only TraceInputError (a
    non-capture). A decoder failure no parser maps is a problem line on its connection,
    or at worst a TraceInputError: never a traceback."""
    link = link or LinkTiming()
    capture = read_capture(data)
    try:
        return _decode(capture, keylog, link)
    except BaseException as exc:
        if not unexpected(exc):
            raise
        raise TraceInputError(bug_note("the capture", exc)) from exc


def _decode(capture: CaptureFile, keylog: KeyLog, link: LinkTiming) -> Decoded:
    out = Decoded(problems=list(capture.problems), frames=len(capture.frames))
    segments: list[Segment] = []
    for i, frame in enumerate(capture.frames):
        seg = parse_frame(i, frame)
        if seg is not None:
            segments.append(seg)
    if keylog.bad_lines:
        out.problems.append(f"{keylog.bad_lines} key log line(s) could not be read")
    for conn in tcp_connections(segments):
        if not conn.up.data and not conn.saw_syn:
            continue
        first = next((s for s in conn.segments if conn.from_client(s)), conn.segments[0])
        clock = Clock(first.ts_ns, link.up_delay_ns, link.down_delay_ns)
        try:
            out.traces.append(trace_tcp(conn, keylog, clock))
        except BaseException as exc:
            if not unexpected(exc):
                raise
            where = f"TCP {conn.client[0]}:{conn.client[1]} -> {conn.server[0]}:{conn.server[1]}"
            out.problems.append(bug_note(where, exc))
    out.traces += trace_quic_connections(segments, keylog, link.up_delay_ns,
                                         link.down_delay_ns, out.problems)
    for trace in out.traces:
        if link.dropped_up or link.dropped_down:
            trace.problems.append(
                f"the link dropped {link.dropped_up} client->server and {link.dropped_down} "
                "server->client packet(s) during the capture: the capture holds what was "
                "delivered, so a lost packet shows only as its retransmission, late")
        rtt, source = _rtt(link, trace.steps)
        trace.round_trips = account(trace, rtt, source, trace.request_step,
                                    trace.response_step)
    out.traces.sort(key=lambda t: t.first_ts_ns)
    if not out.traces:
        out.problems.append("no TCP or QUIC connection with a handshake in this capture")
    if len(keylog) == 0 and any(
            t.negotiated.get("version") not in (None, "cleartext") for t in out.traces):
        out.problems.append("no key log given (or it is empty): encrypted messages are "
                            "shown as sizes only")
    return out


def _rtt(link: LinkTiming, steps: list[HandshakeStep]) -> tuple[int, str]:
    """The link's configured RTT; else the handshake's own: the client's second flight
    leaves one RTT after its first (true at any capture point)."""
    if link.rtt_ns:
        return link.rtt_ns, "link"
    client = [s for s in steps if s.from_client]
    server = [s for s in steps if not s.from_client]
    if client and server:
        later = [s for s in client if s.sent_ns > server[0].received_ns - 1]
        if later:
            return max(1, later[0].sent_ns - client[0].sent_ns), "handshake"
    return 0, "unknown"


def stack_of(trace: Trace) -> str | None:
    """The key of DESIGN.md's table this connection belongs to."""
    version = trace.negotiated.get("version")
    if trace.transport == "quic":
        return "quic-0rtt" if trace.negotiated.get("early_data") else "quic"
    if version == "cleartext":
        return "cleartext"
    if version == "TLS 1.2":
        return "tls1.2"
    if version == "TLS 1.3":
        return "tls1.3-resumed" if trace.negotiated.get("resumed") else "tls1.3"
    return None


def account(trace: Trace, rtt_ns: int, rtt_source: str, request: HandshakeStep | None,
            response: HandshakeStep | None) -> RoundTrips:
    stack = stack_of(trace)
    predicted_fb = HANDSHAKE_RTTS.get(stack) if stack else None
    predicted_req = None if predicted_fb is None else predicted_fb - 1
    rt = RoundTrips(rtt_ns, rtt_source, request.sent_ns if request else None,
                    response.received_ns if response else None, predicted_req, predicted_fb)
    return RoundTrips(**{**rt.__dict__, "explanation": explain(trace, rt)})


def explain(trace: Trace, rt: RoundTrips) -> str:
    """Why measured and predicted round trips differ, when they do."""
    measured, predicted = rt.first_byte_rtts, rt.predicted_first_byte
    if measured is None or predicted is None:
        return "no request/response seen: the round trips cannot be counted"
    extra = measured - predicted
    if abs(extra) < 0.5:
        return "as the protocol's design predicts"
    reasons = []
    names = [s.name for s in trace.steps]
    if any(n.endswith("(retransmitted)") for n in names) or any(
            "dropped" in p for p in trace.problems):
        reasons.append("a packet was lost and retransmitted (a timeout costs at least one RTT)")
    if "HelloRetryRequest" in names:
        reasons.append("the server asked for another key share (HelloRetryRequest): one RTT")
    before = rt.request_ns if rt.request_ns is not None else rt.first_byte_ns or 0
    server_flight = [s for s in trace.steps if not s.from_client and s.layer in ("tls", "quic")
                     and s.received_ns <= before]
    if server_flight and rt.rtt_ns:
        spread = server_flight[-1].received_ns - server_flight[0].received_ns
        if spread > rt.rtt_ns / 2 and extra > 0:
            reasons.append("the server's handshake flight arrived over more than one round "
                           "trip (TCP's initial window, or QUIC's anti-amplification limit of "
                           "3x the bytes received, RFC 9000 §8.1)")
    if extra > 0 and _waited_for_server_settings(trace):
        reasons.append("the client waited for the server's HTTP/2 SETTINGS before sending "
                       "its first request (grpcio does; HTTP/2 does not require it)")
    if extra < 0:
        reasons.append("fewer round trips than predicted: resumption or early data")
    if not reasons:
        reasons.append("processing time at the endpoints, or a delayed flight")
    return f"{extra:+.1f} RTT: " + "; ".join(reasons)


def _waited_for_server_settings(trace: Trace) -> bool:
    request = trace.request_step
    settings = next((s for s in trace.steps if not s.from_client
                     and s.name == "HTTP/2 SETTINGS"), None)
    preface = next((s for s in trace.steps if s.name == "HTTP/2 preface"), None)
    if request is None or settings is None or preface is None:
        return False
    rtt = trace.round_trips.rtt_ns if trace.round_trips else 0
    return (request.sent_ns >= settings.received_ns
            and request.sent_ns - preface.sent_ns > (rtt or 1) / 2)
