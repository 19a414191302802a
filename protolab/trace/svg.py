"""The SVG sequence diagram: client and server lifelines, one slanted arrow per packet
from when it left to when it arrived (the slant is the link's one-way delay), labelled with
the messages it carried; dashed lines where the request left and the first byte arrived.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from protolab.trace.render import header, summary
from protolab.trace.steps import HandshakeStep, Trace

WIDTH, CLIENT_X, SERVER_X, TOP = 960, 170, 790, 90
COLOURS = {"tcp": "#777777", "tls": "#1f5fbf", "quic": "#7b2fa8", "http": "#1c8a3a",
           "app": "#1c8a3a"}


def _packets(trace: Trace) -> list[list[HandshakeStep]]:
    """Steps grouped by the packet (and direction) that carried them, in order."""
    groups: dict[tuple[int, str], list[HandshakeStep]] = {}
    for step in trace.steps:
        groups.setdefault((step.packet, step.direction), []).append(step)
    return list(groups.values())


def _label(steps: list[HandshakeStep]) -> str:
    names = [s.name for s in steps if s.layer != "quic"] or [s.name for s in steps]
    text = ", ".join(dict.fromkeys(names))
    return text if len(text) <= 70 else text[:69] + "…"


def render_svg(trace: Trace) -> str:
    rtt = trace.round_trips.rtt_ns if trace.round_trips else 0
    end_ns = max([s.received_ns for s in trace.steps] + [1])
    scale = min(3.0, 1400 / (end_ns / 1e6))  # px per ms
    height = int(TOP + end_ns / 1e6 * scale + 110)

    def y(ns: int) -> float:
        return TOP + max(ns, 0) / 1e6 * scale

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">',
           '<defs><marker id="a" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
           'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
           'fill="context-stroke"/></marker></defs>',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{WIDTH / 2}" y="24" text-anchor="middle" font-size="14" '
           f'font-weight="bold">{escape(header(trace))}</text>']
    for x, name in ((CLIENT_X, "client"), (SERVER_X, "server")):
        out.append(f'<text x="{x}" y="{TOP - 22}" text-anchor="middle" font-weight="bold">'
                   f'{name}</text>')
        out.append(f'<line x1="{x}" y1="{TOP - 12}" x2="{x}" y2="{height - 90}" '
                   'stroke="#333" stroke-width="2"/>')
    for steps in _packets(trace):
        first = steps[0]
        x1, x2 = (CLIENT_X, SERVER_X) if first.from_client else (SERVER_X, CLIENT_X)
        y1, y2 = y(first.sent_ns), y(first.received_ns)
        layer = next((s.layer for s in steps if s.layer != "quic"), first.layer)
        colour = COLOURS.get(layer, "#333")
        out.append(f'<line x1="{x1}" y1="{y1:.1f}" x2="{x2}" y2="{y2:.1f}" stroke="{colour}" '
                   'stroke-width="1.5" marker-end="url(#a)"/>')
        mid_y = (y1 + y2) / 2 - 4
        out.append(f'<text x="{WIDTH / 2}" y="{mid_y:.1f}" text-anchor="middle" '
                   f'fill="{colour}">#{first.packet} {escape(_label(steps))}</text>')
        t = first.sent_ns if first.from_client else first.received_ns
        rtts = f" ({t / rtt:.2f} RTT)" if rtt else ""
        out.append(f'<text x="{CLIENT_X - 8}" y="{y(t) + 4:.1f}" text-anchor="end" '
                   f'fill="#555">{t / 1e6:.1f} ms{rtts}</text>')
    for step, what in ((trace.request_step, "request leaves"),
                       (trace.response_step, "first response byte")):
        if step is None:
            continue
        t = step.sent_ns if step.from_client else step.received_ns
        out.append(f'<line x1="20" y1="{y(t):.1f}" x2="{WIDTH - 20}" y2="{y(t):.1f}" '
                   'stroke="#c0392b" stroke-dasharray="5,4"/>')
        out.append(f'<text x="{WIDTH - 20}" y="{y(t) - 4:.1f}" text-anchor="end" '
                   f'fill="#c0392b">{what}</text>')
    for i, line in enumerate(summary(trace)):
        out.append(f'<text x="20" y="{height - 60 + i * 18}">{escape(line)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
