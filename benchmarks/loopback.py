"""Loopback ceilings of the lab's own stacks, and h2load against the same servers.

    .venv/bin/python benchmarks/loopback.py [--download-bytes N] [--requests N] ...

Per protocol (h1, h2, h3; TLS 1.3, the lab's ECDSA P-256 certificate, cubic):

* bulk: one /bytes/N download (default 100 MiB) on a warmed-up connection — Mbit/s
  of body from the record's start to done, client and server CPU seconds;
* small: /bytes/1024 with 10 requests in flight (default 2000 requests, stopped after
  --time-limit seconds) after a warm-up — req/s and p50/p99 of done_ns - start_ns.

Then h2load (nghttp2, C) runs the small workload against the same h1 and h2 servers
with matching concurrency: h2 is `-c 1 -m 10` (10 streams on one connection, as the
lab's h2 client), h1 is `--h1 -c 10 -m 1` (10 connections, one request each, and the
lab's h1 client gets a pool of 10 here instead of its default 6).

The server runs as the lab's server process (protolab/labserver.py, the same one the
bench runner starts); its CPU time comes from protolab.core.procfs, the client's from
time.process_time() in this process. On loopback
these are CPU ceilings, not network measurements: a CPU column near the wall time
means that side was saturated and the rate measures Python, not the protocol.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from protolab.core.record import Request, RequestRecord, Target
from protolab.errors import LabError
from protolab.labserver import LabServer, start_local
from protolab.registry import make_client
from servers.common import CertSpec, ServerConfig

PROTOCOLS = ("h1", "h2", "h3")


@dataclass(frozen=True)
class Bulk:
    protocol: str
    mbit_s: float
    seconds: float
    client_cpu: float
    server_cpu: float
    error: str | None


@dataclass(frozen=True)
class Small:
    protocol: str
    completed: int
    failed: int
    req_s: float
    p50_ms: float
    p99_ms: float
    seconds: float
    client_cpu: float
    server_cpu: float


@dataclass(frozen=True)
class H2load:
    protocol: str
    settings: str
    req_s: float | None
    succeeded: int
    failed: int
    mean_ms: float | None
    server_cpu: float
    error: str | None = None


def percentile(sorted_values: list[int], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil without floats
    return float(sorted_values[int(rank) - 1])


def client_options(protocol: str, args: argparse.Namespace) -> dict[str, object]:
    options: dict[str, object] = {"timeout": args.timeout}
    if protocol == "h1":
        options["connections"] = args.h1_connections
    return options


async def bulk(
    protocol: str, target: Target, server: LabServer, args: argparse.Namespace
) -> Bulk:
    client = make_client(protocol, target, **client_options(protocol, args))
    try:
        warm = await client.request(Request(path="/bytes/1"))  # handshake outside the timing
        if warm.error:
            return Bulk(protocol, 0.0, 0.0, 0.0, 0.0, f"warm-up: {warm.error}")
        cpu0, srv0 = time.process_time(), server.cpu_s()
        record = await client.request(Request(path=f"/bytes/{args.download_bytes}"))
        cpu1, srv1 = time.process_time(), server.cpu_s()
    finally:
        await client.close()
    seconds = ((record.done_ns or record.start_ns) - record.start_ns) / 1e9
    error = None if record.ok else f"{record.error}: {record.error_detail}"
    if record.ok and record.body_bytes != args.download_bytes:
        error = f"short body: {record.body_bytes} bytes"
    mbit_s = record.body_bytes * 8 / seconds / 1e6 if seconds > 0 else 0.0
    return Bulk(protocol, mbit_s, seconds, cpu1 - cpu0, srv1 - srv0, error)


async def small(
    protocol: str, target: Target, server: LabServer, args: argparse.Namespace
) -> Small:
    client = make_client(protocol, target, **client_options(protocol, args))
    request = Request(path=f"/bytes/{args.small_bytes}")
    records: list[RequestRecord] = []

    async def worker(count: int, deadline: float, keep: bool) -> None:
        while count > 0 and time.monotonic() < deadline:
            count -= 1
            record = await client.request(request)
            if keep:
                records.append(record)

    async def run(total: int, seconds: float, keep: bool) -> None:
        deadline = time.monotonic() + seconds
        share, extra = divmod(total, args.concurrency)
        await asyncio.gather(*(
            worker(share + (i < extra), deadline, keep) for i in range(args.concurrency)
        ))

    try:
        await run(args.warmup, args.time_limit, keep=False)  # connections up, caches warm
        cpu0, srv0, t0 = time.process_time(), server.cpu_s(), time.monotonic()
        await run(args.requests, args.time_limit, keep=True)
        cpu1, srv1, t1 = time.process_time(), server.cpu_s(), time.monotonic()
    finally:
        await client.close()
    ok = [r for r in records if r.ok]
    latencies = sorted((r.done_ns or 0) - r.start_ns for r in ok)
    return Small(
        protocol, len(ok), len(records) - len(ok), len(ok) / (t1 - t0),
        percentile(latencies, 50) / 1e6, percentile(latencies, 99) / 1e6,
        t1 - t0, cpu1 - cpu0, srv1 - srv0,
    )


def run_h2load(protocol: str, server: LabServer, args: argparse.Namespace) -> H2load:
    """h2load with the lab client's concurrency; it does not verify certificates."""
    if protocol == "h2":
        flags = ["-c", "1", "-m", str(args.concurrency)]
    else:
        flags = ["--h1", "-c", str(args.h1_connections), "-m", "1"]
    settings = " ".join(flags)
    binary = shutil.which("h2load")
    if binary is None:
        return H2load(protocol, settings, None, 0, 0, None, 0.0,
                      "h2load not installed (apt-get install nghttp2-client)")
    url = f"https://127.0.0.1:{server.port(protocol)}/bytes/{args.small_bytes}"
    srv0 = server.cpu_s()
    try:
        result = subprocess.run(
            [binary, "-n", str(args.h2load_requests), *flags, url],
            capture_output=True, text=True, timeout=args.time_limit * 3 + 10, check=False,
        )
    except subprocess.TimeoutExpired:
        return H2load(protocol, settings, None, 0, 0, None, server.cpu_s() - srv0,
                      "timed out")
    srv1 = server.cpu_s()
    rate = re.search(r"^finished in \S+, ([\d.]+) req/s", result.stdout, re.M)
    counts = re.search(r"(\d+) succeeded, (\d+) failed", result.stdout)
    mean = re.search(r"^time for request:\s+\S+\s+\S+\s+(\S+)", result.stdout, re.M)
    if rate is None or counts is None:
        return H2load(protocol, settings, None, 0, 0, None, srv1 - srv0,
                      f"exit {result.returncode}: {result.stderr.strip()[:200]}")
    return H2load(
        protocol, settings, float(rate.group(1)), int(counts.group(1)), int(counts.group(2)),
        _duration_ms(mean.group(1)) if mean else None, srv1 - srv0,
    )


def _duration_ms(text: str) -> float:
    """h2load's durations: 12.3ms, 950us, 1.2s."""
    for unit, scale in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    return float(text)


def print_report(
    bulks: list[Bulk], smalls: list[Small], h2loads: list[H2load], args: argparse.Namespace
) -> None:
    mib = args.download_bytes / (1 << 20)
    print(f"\nBulk: one {mib:g} MiB download per protocol (TLS 1.3, loopback)")
    print(f"{'proto':<6}{'Mbit/s':>9}{'seconds':>9}{'client CPU s':>14}{'server CPU s':>14}")
    for b in bulks:
        if b.error:
            print(f"{b.protocol:<6}  failed: {b.error}")
            continue
        print(f"{b.protocol:<6}{b.mbit_s:>9.0f}{b.seconds:>9.2f}{b.client_cpu:>14.2f}"
              f"{b.server_cpu:>14.2f}{_saturated(b.client_cpu, b.server_cpu, b.seconds)}")

    lab = {s.protocol: s for s in smalls}
    print(f"\nSmall: /bytes/{args.small_bytes}, {args.concurrency} in flight, "
          f"up to {args.requests} requests or {args.time_limit:g} s (lab clients)")
    print(f"{'proto':<6}{'ok':>7}{'failed':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'seconds':>9}{'client CPU s':>14}{'server CPU s':>14}")
    for s in smalls:
        print(f"{s.protocol:<6}{s.completed:>7}{s.failed:>8}{s.req_s:>9.0f}{s.p50_ms:>9.2f}"
              f"{s.p99_ms:>9.2f}{s.seconds:>9.2f}{s.client_cpu:>14.2f}{s.server_cpu:>14.2f}"
              f"{_saturated(s.client_cpu, s.server_cpu, s.seconds)}")

    if h2loads:
        print(f"\nSame servers, lab client vs h2load ({args.h2load_requests} requests)")
        print(f"{'proto':<6}{'h2load settings':<20}{'lab req/s':>10}{'h2load req/s':>14}"
              f"{'h2load ok':>10}{'failed':>8}{'mean ms':>9}{'server CPU s':>14}")
        for h in h2loads:
            mine = lab.get(h.protocol)
            lab_rate = f"{mine.req_s:.0f}" if mine else "-"
            if h.error or h.req_s is None:
                print(f"{h.protocol:<6}{h.settings:<20}{lab_rate:>10}  h2load: {h.error}")
                continue
            mean = f"{h.mean_ms:.2f}" if h.mean_ms is not None else "-"
            wall = (h.succeeded + h.failed) / h.req_s if h.req_s > 0 else 0.0
            print(f"{h.protocol:<6}{h.settings:<20}{lab_rate:>10}{h.req_s:>14.0f}"
                  f"{h.succeeded:>10}{h.failed:>8}{mean:>9}{h.server_cpu:>14.2f}"
                  f"{_saturated(0.0, h.server_cpu, wall)}")
    print("\n* = client or server CPU >= 90% of wall time: a CPU ceiling, not the protocol's.")


def _saturated(client_cpu: float, server_cpu: float, seconds: float) -> str:
    return "  *" if seconds > 0 and max(client_cpu, server_cpu) >= 0.9 * seconds else ""


async def measure(
    server: LabServer, args: argparse.Namespace
) -> tuple[list[Bulk], list[Small]]:
    bulks: list[Bulk] = []
    smalls: list[Small] = []
    for protocol in args.protocols:
        target = Target(host="127.0.0.1", port=server.port(protocol), tls=True,
                        ca_file=server.ca_file)
        print(f"{protocol}: bulk ...", file=sys.stderr, flush=True)
        bulks.append(await bulk(protocol, target, server, args))
        print(f"{protocol}: small ...", file=sys.stderr, flush=True)
        smalls.append(await small(protocol, target, server, args))
    return bulks, smalls


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--protocols", default="h1,h2,h3", help="comma-separated (h1,h2,h3)")
    parser.add_argument("--download-bytes", type=int, default=100 * 1024 * 1024,
                        help="size of the bulk download (default 100 MiB)")
    parser.add_argument("--small-bytes", type=int, default=1024, help="small response size")
    parser.add_argument("--requests", type=int, default=2000, help="small requests per protocol")
    parser.add_argument("--warmup", type=int, default=100, help="small requests discarded first")
    parser.add_argument("--concurrency", type=int, default=10, help="small requests in flight")
    parser.add_argument("--h1-connections", type=int, default=10,
                        help="lab h1 pool size and h2load --h1 -c (default: = concurrency)")
    parser.add_argument("--time-limit", type=float, default=10.0,
                        help="seconds each small-request run may take before it stops")
    parser.add_argument("--h2load-requests", type=int, default=2000, help="h2load -n")
    parser.add_argument("--no-h2load", action="store_true", help="skip the h2load comparison")
    parser.add_argument("--timeout", type=float, default=120.0, help="per-request timeout (s)")
    args = parser.parse_args(argv)
    args.protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    bad = [p for p in args.protocols if p not in PROTOCOLS]
    if bad:
        parser.error(f"unknown protocol(s) {bad}; choose from {', '.join(PROTOCOLS)}")
    for name in ("download_bytes", "small_bytes", "requests", "concurrency", "h1_connections",
                 "h2load_requests"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="protolab-bench-") as state:
        config = ServerConfig(port=0, protocols=PROTOCOLS, certs=CertSpec(Path(state) / "certs"))
        try:
            server = start_local(config, timeout=30)
        except LabError as exc:
            raise SystemExit(f"the lab server did not start: {exc}") from None
        with server:
            bulks, smalls = asyncio.run(measure(server, args))
            h2loads = [] if args.no_h2load else [
                run_h2load(p, server, args) for p in ("h1", "h2") if p in args.protocols
            ]
    print_report(bulks, smalls, h2loads, args)


if __name__ == "__main__":
    main()
