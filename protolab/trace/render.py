"""Rendering a trace: the terminal ladder (client and server columns, arrows with labels
and times in ms and in link RTTs) and the JSON document.

Times in the ladder are the client's view: a client->server arrow at the time it left the
client, a server->client arrow at the time it reached the client; the round-trip summary
counts in the same frame.
"""

from __future__ import annotations

from typing import Any

from protolab.trace.decode import Decoded
from protolab.trace.steps import HandshakeStep, Trace

ARROW = 46  # width of the arrow column


def _label(step: HandshakeStep) -> str:
    return f"{step.name} ({step.size} B)" if step.size else step.name


def arrow(step: HandshakeStep, width: int = ARROW) -> str:
    label = f" {_label(step)} "
    if len(label) > width - 6:
        label = label[: width - 7] + "… "
    if step.from_client:
        return "──" + label + "─" * (width - 3 - len(label)) + "▶"
    return "◀" + "─" * (width - 3 - len(label)) + label + "──"


def client_time(step: HandshakeStep) -> int:
    return step.sent_ns if step.from_client else step.received_ns


def ladder(trace: Trace, *, notes: bool = True) -> list[str]:
    rtt = trace.round_trips.rtt_ns if trace.round_trips else 0
    lines = [f"{'ms':>8} {'RTT':>5}  {'client':<{ARROW // 2}}{'server':>{ARROW - ARROW // 2}}"
             "  frame"]
    for step in trace.steps:
        t = client_time(step)
        rtts = f"{t / rtt:5.2f}" if rtt else "    -"
        mark = ""
        if step is trace.request_step:
            mark = "  ◆ request leaves"
        elif step is trace.response_step:
            mark = "  ◆ first response byte"
        note = f"  {step.note}" if notes and step.note and not mark else ""
        lines.append(f"{t / 1e6:8.1f} {rtts}  {arrow(step)}  #{step.packet:<4}{mark}{note}")
    return lines


def header(trace: Trace) -> str:
    n = trace.negotiated
    parts = [p for p in (n.get("version"), n.get("cipher"), n.get("group"),
                         f"ALPN {n['alpn']}" if n.get("alpn") else None,
                         "resumed" if n.get("resumed") else None,
                         "0-RTT accepted" if n.get("early_data") else None) if p]
    rtt = trace.round_trips.rtt_ns if trace.round_trips else 0
    source = trace.round_trips.rtt_source if trace.round_trips else "unknown"
    return (f"{trace.kind or trace.transport.upper()} {trace.client} → {trace.server}: "
            f"{', '.join(parts)}; RTT {rtt / 1e6:.1f} ms ({source})")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def summary(trace: Trace) -> list[str]:
    rt = trace.round_trips
    if rt is None:
        return []
    pr = "-" if rt.predicted_request is None else f"{rt.predicted_request:g}"
    pf = "-" if rt.predicted_first_byte is None else f"{rt.predicted_first_byte:g}"
    return [
        f"request left after {_fmt(rt.request_rtts)} RTT (design: {pr}); "
        f"first response byte after {_fmt(rt.first_byte_rtts)} RTT (design: {pf})",
        rt.explanation,
    ]


def text_report(decoded: Decoded, files: dict[str, str] | None = None) -> list[str]:
    """The whole terminal output: each connection's ladder, the summary, problems, files."""
    lines: list[str] = []
    for i, trace in enumerate(decoded.traces):
        main = trace is decoded.main
        if not main:
            lines.append(f"connection {i + 1} of {len(decoded.traces)} (earlier): "
                         + header(trace))
            lines += ["  " + s for s in summary(trace)]
            lines.append("")
            continue
        lines.append(header(trace))
        lines += ladder(trace)
        lines += summary(trace)
        lines += [f"note: {p}" for p in trace.problems]
    lines += [f"problem: {p}" for p in decoded.problems]
    for name, path in (files or {}).items():
        lines.append(f"{name}: {path}")
    return lines


def json_report(decoded: Decoded, files: dict[str, str] | None = None) -> dict[str, Any]:
    main = decoded.main
    return {
        "trace": main.to_json() if main else None,
        "earlier_connections": [t.to_json() for t in decoded.traces if t is not main],
        "problems": decoded.problems,
        "frames": decoded.frames,
        "files": files or {},
    }


def _before_first_byte(trace: Trace) -> tuple[int, int, int, int]:
    """(client packets, client bytes, server packets, server bytes) up to the first byte."""
    limit = trace.response_step.packet if trace.response_step else 1 << 62
    seen: dict[int, HandshakeStep] = {}
    for step in trace.steps:
        if step.packet <= limit:
            seen.setdefault(step.packet, step)
    c = [s for s in seen.values() if s.from_client]
    s_ = [s for s in seen.values() if not s.from_client]
    return len(c), sum(x.packet_bytes for x in c), len(s_), sum(x.packet_bytes for x in s_)


def compare_rows(a: Trace, b: Trace) -> list[tuple[str, str, str]]:
    """(what, A, B) rows putting two traces side by side."""

    def negotiated(t: Trace) -> str:
        n = t.negotiated
        return ", ".join(str(v) for v in (n.get("transport"), n.get("version"), n.get("cipher"),
                                          n.get("alpn")) if v)

    def rt(t: Trace, which: str) -> str:
        r = t.round_trips
        if r is None:
            return "-"
        measured = r.request_rtts if which == "request" else r.first_byte_rtts
        design = r.predicted_request if which == "request" else r.predicted_first_byte
        ns = r.request_ns if which == "request" else r.first_byte_ns
        ms = "-" if ns is None else f"{ns / 1e6:.1f} ms"
        return f"{_fmt(measured)} RTT ({ms}; design {'-' if design is None else f'{design:g}'})"

    def handshake(t: Trace) -> str:
        return str(sum(1 for s in t.steps if s.layer in ("tls", "tcp") and s.packet <= (
            t.response_step.packet if t.response_step else 1 << 62)))

    rows = [("connection", a.kind or "-", b.kind or "-"),
            ("negotiated", negotiated(a), negotiated(b)),
            ("request leaves", rt(a, "request"), rt(b, "request")),
            ("first response byte", rt(a, "first"), rt(b, "first")),
            ("TCP/TLS messages before it", handshake(a), handshake(b))]
    pa, pb = _before_first_byte(a), _before_first_byte(b)
    rows.append(("packets before it (c→s / s→c)", f"{pa[0]} / {pa[2]}", f"{pb[0]} / {pb[2]}"))
    rows.append(("bytes before it (c→s / s→c)", f"{pa[1]} / {pa[3]}", f"{pb[1]} / {pb[3]}"))
    rows.append(("verdict", a.round_trips.explanation if a.round_trips else "-",
                 b.round_trips.explanation if b.round_trips else "-"))
    return rows
