"""`protolab loopback`: serve every protocol on loopback, fetch from each with the lab's
own clients, and put the phase timings side by side — a first look that needs neither
root nor the emulated link (the lab's main job is `protolab bench demo`)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

from protolab.core.latency import phases
from protolab.core.record import Request, RequestRecord, Target
from protolab.registry import make_client
from servers.common import CertSpec, ServerConfig
from servers.run import RunningServers, start_servers


@dataclass(frozen=True)
class LoopbackRow:
    label: str
    fresh: RequestRecord  # a tiny GET on a new connection: the handshake cost
    bulk: RequestRecord  # 1 MB on the same connection
    burst: list[RequestRecord]  # 20 x 10 KB, 10 in flight


def run_loopback(cert_dir: Path | None, out_dir: Path) -> tuple[list[LoopbackRow], Path]:
    """Run every case on loopback and write the raw records; returns rows and the file."""
    certs = CertSpec(cert_dir)
    rows = asyncio.run(_run_cases(ServerConfig(host="127.0.0.1", port=0, certs=certs)))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"loopback-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(
        {row.label: [r.to_json() for r in [row.fresh, row.bulk, *row.burst]] for row in rows},
        indent=1,
    ))
    return rows, path


async def _run_cases(config: ServerConfig) -> list[LoopbackRow]:
    running = await start_servers(config)
    try:
        return [await _measure(running, proto, label, options)
                for proto, label, options in _CASES]
    finally:
        await running.close()


_CASES: list[tuple[str, str, dict[str, object]]] = [
    ("h1", "h1 x6", {}),
    ("h2", "h2", {}),
    ("h3", "h3", {}),
    ("h3", "h3 0rtt", {"zero_rtt": True}),
]


async def _measure(
    running: RunningServers, protocol: str, label: str, options: dict[str, object]
) -> LoopbackRow:
    assert running.certs is not None
    target = Target(host="127.0.0.1", port=running.port(protocol), ca_file=running.certs.ca_file)
    client = make_client(protocol, target, **options)
    try:
        if options.get("zero_rtt"):
            await client.request(Request(path="/bytes/1"))  # earn a session ticket
            await client.close()
        fresh = await client.request(Request(path="/bytes/100"))
        bulk = await client.request(Request(path="/bytes/1048576"))
        slots = asyncio.Semaphore(10)

        async def small(i: int) -> RequestRecord:
            async with slots:
                return await client.request(Request(path=f"/bytes/10240?i={i}"))

        burst = list(await asyncio.gather(*(small(i) for i in range(20))))
    finally:
        await client.close()
    return LoopbackRow(label, fresh, bulk, burst)


def summary_rows(rows: list[LoopbackRow]) -> list[list[str]]:
    """Table cells: label, handshake phases of the fresh GET, 1 MB time, burst p50/max."""
    out = []
    for row in rows:
        p = phases(row.fresh)
        totals = sorted(phases(r)["total_ms"] or 0.0 for r in row.burst)
        ok = all(r.ok for r in [row.fresh, row.bulk, *row.burst])
        out.append([
            row.label, _f(p["connect_ms"]), _f(p["tls_ms"]), _f(p["ttfb_ms"]),
            _f(p["total_ms"]), _f(phases(row.bulk)["total_ms"]),
            _f(totals[len(totals) // 2]), _f(totals[-1]),
            "yes" if row.fresh.early_data else "no", "ok" if ok else "FAILED",
        ])
    return out


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
