"""Terminal views of raw request records: what `protolab get` prints.

A table row per request (phases in ms), what refused requests were told, one aggregate
line (rate and percentiles over the wall time), and per-message timings of WebSocket
and gRPC exchanges. Times come from `protolab.core.latency`.
"""

from __future__ import annotations

from http import HTTPStatus

from rich.table import Table

from protolab.core.latency import phases, total_ms
from protolab.core.record import RequestRecord
from protolab.core.stats import Histogram


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def succeeded(record: RequestRecord) -> bool:
    """The server answered and said yes: no failure, and no HTTP refusal (4xx, 5xx).

    A refused WebSocket upgrade and a failed gRPC call already carry an error (gRPC's
    status codes are 0..16, so they never look like an HTTP refusal)."""
    return record.ok and (record.status is None or record.status < 400)


def _answer(record: RequestRecord) -> str:
    if record.error is not None:
        return f"{record.error}: {record.error_detail or 'no detail'}"
    if record.body_verified is False:
        return "the body differs from what the server sends for that path"
    status = record.status
    try:
        reason = HTTPStatus(status).phrase if status is not None else ""
    except ValueError:
        reason = ""
    return f"server answered {status} {reason}".rstrip()


def answer_lines(records: list[RequestRecord]) -> list[str]:
    """What the requests that did not succeed were told, one line per kind of answer
    (an error kind or an HTTP status), with the first such request's words."""
    groups: dict[str, tuple[str, list[int]]] = {}
    for i, record in enumerate(records):
        if succeeded(record):
            continue
        key = record.error or f"status {record.status}"
        groups.setdefault(key, (_answer(record), []))[1].append(i)
    lines = []
    for text, which in groups.values():
        who = f"#{which[0]}" if len(which) == 1 else f"{len(which)} requests (#{which[0]} ...)"
        lines.append(f"{who}: {text}")
    return lines


def aggregate_line(records: list[RequestRecord], wall_ns: int) -> str:
    """Requests, ok/failed, req/s over the wall time, p50/p99 of the successful ones'
    total time (protolab.core.latency; HDR percentiles from protolab.core.stats)."""
    ok = [r for r in records if succeeded(r)]
    totals = [t for t in (total_ms(r) for r in ok) if t is not None and t >= 0]
    wall_s = wall_ns / 1e9
    rate = f"{len(records) / wall_s:.1f} req/s" if wall_s > 0 else "- req/s"
    if totals:
        histogram = Histogram.of(totals)
        spread = f"p50 {histogram.percentile(50):.2f} ms, p99 {histogram.percentile(99):.2f} ms"
    else:
        spread = "p50 -, p99 - (none succeeded)"
    return (f"{len(records)} requests: {len(ok)} ok, {len(records) - len(ok)} failed; "
            f"{rate} over {wall_s:.3f} s; total {spread}")


def message_lines(records: list[RequestRecord]) -> list[str]:
    """Per-message timing of message-oriented exchanges (WebSocket, gRPC), one line each."""
    lines = []
    for i, record in enumerate(records):
        delays = sorted((m.received_ns - m.sent_ns) / 1e6 for m in record.messages
                        if m.sent_ns is not None)
        if not delays:
            continue
        what = "one-way" if any(m.born_ns is not None for m in record.messages) else "rtt/delay"
        p50, p99 = delays[len(delays) // 2], delays[min(len(delays) - 1, int(len(delays) * 0.99))]
        lines.append(f"#{i}: {len(record.messages)} messages, {what} ms: min {delays[0]:.3f} "
                     f"p50 {p50:.3f} p99 {p99:.3f} max {delays[-1]:.3f}")
    return lines


def records_table(records: list[RequestRecord], title: str) -> Table:
    """One row per request, phases in ms; the negotiated TLS goes in the caption."""
    tls = {
        f"{r.alpn or '-'} {r.tls_version or 'cleartext'} {r.cipher or ''}".strip() for r in records
    }
    table = Table(title=title, caption=", ".join(sorted(tls)))
    for column in (
        "#",
        "status",
        "conn",
        "connect",
        "tls",
        "ttfb",
        "total",
        "bytes",
        "body",
        "0rtt",
        "error",
    ):
        numeric = column in ("connect", "tls", "ttfb", "total", "bytes")
        table.add_column(
            column + (" ms" if numeric and column != "bytes" else ""),
            justify="right" if numeric else "left",
        )
    for i, record in enumerate(records):
        p = phases(record)
        table.add_row(
            str(i),
            "-" if record.status is None else str(record.status),
            f"{record.connection_id}{'*' if record.new_connection else ''}",
            _fmt(p["connect_ms"]),
            _fmt(p["tls_ms"]),
            _fmt(p["ttfb_ms"]),
            _fmt(p["total_ms"]),
            str(record.bytes_in),
            {True: "ok", False: "CORRUPT", None: str(record.body_bytes)}[record.body_verified],
            "yes" if record.early_data else "",
            record.error or "",
        )
    return table
