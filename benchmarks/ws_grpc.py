"""Loopback ceilings of the WebSocket and gRPC pairs, and the cost of the records encodings.

    .venv/bin/python benchmarks/ws_grpc.py [--rounds N] [--seconds S] [--tls/--no-tls]

1. WebSocket echo: N sequential round trips of 64 bytes on one connection (lab client,
   lab server): round trips per second, p50/p99 RTT.
2. gRPC unary: N sequential Unary calls (size=64) on one channel: calls per second,
   p50/p99 latency per call.
3. Records N=1000 as protobuf, JSON and JSON+gzip: bytes, and CPU time to serialise
   and parse (pure encoding, no network), median of repetitions.

Client and server share one process and one event loop, so 1 and 2 measure Python's
ceiling on this machine, not the protocols; each loop is bounded by count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from protolab.core.record import Request, Target
from protolab.proto.convert import records_from_proto, records_to_proto
from protolab.records import make_records, records_from_json, records_json
from protolab.registry import make_client
from servers.common import CertSpec, ServerConfig
from servers.run import RunningServers, start_servers


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def line(name: str, count: int, seconds: float, lat_ms: list[float]) -> str:
    return (f"{name:<22} {count:>6} in {seconds:6.2f} s = {count / seconds:8.0f}/s   "
            f"p50 {pct(lat_ms, 0.5):6.3f} ms   p99 {pct(lat_ms, 0.99):6.3f} ms")


def target(running: RunningServers, protocol: str) -> Target:
    certs = running.certs
    return Target("127.0.0.1", running.port(protocol), tls=certs is not None,
                  ca_file=certs.ca_file if certs else None, server_name="localhost")


async def ws_echo(running: RunningServers, rounds: int, seconds: float) -> str:
    client = make_client("ws", target(running, "ws"))
    try:
        await client.request(Request("POST", "/echo", b"warm-up"))
        batch = max(1, min(rounds, 500))
        rtts: list[float] = []
        start = time.perf_counter()
        while len(rtts) < rounds and time.perf_counter() - start < seconds:
            record = await client.request(Request("POST", f"/echo?count={batch}", b"x" * 64))
            assert record.ok, record.error_detail
            rtts += [(m.received_ns - (m.sent_ns or 0)) / 1e6 for m in record.messages]
        elapsed = time.perf_counter() - start
    finally:
        await client.close()
    return line("websocket echo 64 B", len(rtts), elapsed, rtts)


async def grpc_unary(running: RunningServers, rounds: int, seconds: float) -> str:
    client = make_client("grpc", target(running, "grpc"))
    try:
        await client.request(Request(path="/Unary?size=64"))  # channel ready, warm-up
        latencies: list[float] = []
        start = time.perf_counter()
        while len(latencies) < rounds and time.perf_counter() - start < seconds:
            record = await client.request(Request(path="/Unary?size=64"))
            assert record.ok, record.error_detail
            latencies.append(((record.done_ns or 0) - record.start_ns) / 1e6)
        elapsed = time.perf_counter() - start
    finally:
        await client.close()
    return line("grpc unary 64 B", len(latencies), elapsed, latencies)


def encodings(count: int, repetitions: int, seconds: float) -> list[str]:
    records = make_records(count)
    cases: dict[str, tuple[Callable[[], bytes], Callable[[bytes], object]]] = {
        "protobuf": (lambda: records_to_proto(records).SerializeToString(), records_from_proto),
        "json": (lambda: records_json(records), records_from_json),
        "json+gzip": (lambda: records_json(records, gzipped=True), records_from_json),
    }
    out = []
    for name, (encode, decode) in cases.items():
        data = encode()
        assert decode(data) == records
        enc_times, dec_times = [], []
        deadline = time.process_time() + seconds
        for _ in range(repetitions):
            t0 = time.process_time()
            data = encode()
            t1 = time.process_time()
            decode(data)
            t2 = time.process_time()
            enc_times.append(t1 - t0)
            dec_times.append(t2 - t1)
            if time.process_time() > deadline:
                break
        out.append(f"records N={count} {name:<10} {len(data):>8} bytes   serialise "
                   f"{statistics.median(enc_times) * 1e3:7.2f} ms   parse "
                   f"{statistics.median(dec_times) * 1e3:7.2f} ms   (CPU, median of "
                   f"{len(enc_times)})")
    return out


async def network(rounds: int, seconds: float, tls: bool) -> list[str]:
    certs = CertSpec(Path("results/bench-certs")) if tls else None
    config = ServerConfig(port=0, certs=certs, protocols=("ws", "grpc"))
    running = await start_servers(config)
    try:
        return [await ws_echo(running, rounds, seconds),
                await grpc_unary(running, rounds, seconds)]
    finally:
        await running.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=20.0, help="time bound per loop")
    parser.add_argument("--no-tls", action="store_true")
    args = parser.parse_args()
    print(f"loopback, {'cleartext' if args.no_tls else 'TLS 1.3'}, client and server in one "
          "process")
    for text in asyncio.run(network(args.rounds, args.seconds, not args.no_tls)):
        print(text)
    for text in encodings(1000, 50, args.seconds):
        print(text)


if __name__ == "__main__":
    main()
