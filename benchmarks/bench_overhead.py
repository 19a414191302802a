"""What the benchmark machinery costs, and how long each bundled suite takes.

1. Runner overhead per request: the same closed-loop workload (N tiny GETs, one
   connection) run (a) as a runner cell on a zero-impairment link and (b) as a bare
   client loop on a thread in the same link's client namespace, against the same
   server. The difference per request is what the runner adds (store writes excluded).
2. Wall time of each bundled suite (`--suites`, with `--repeat` to shorten them).

Needs the emulated link (root, or user namespaces and a usable /dev/net/tun).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from protolab.bench.runner import _link_and_servers, run_cells
from protolab.bench.suite import BUNDLED, expand, link_overrides, parse_suite
from protolab.core.record import Request, Target
from protolab.netem.profiles import build_profile
from protolab.registry import make_client


def overhead(protocol: str, count: int, work: Path) -> tuple[float, float]:
    """Median per-request wall time (ms): runner cell, then bare loop."""
    data = {"warmup": 1, "repetitions": 3, "variant": [{"protocol": protocol}],
            "workload": {"paths": ["/bytes/100"], "count": count}}
    suite = parse_suite(data)
    runner_ms = []
    for outcome in run_cells(suite, work):
        per_rep = [r for _, warm, r in outcome.records if not warm]
        for records in per_rep:
            span = max(r.done_ns or 0 for r in records) - min(r.start_ns for r in records)
            runner_ms.append(span / 1e6 / len(records))
    cell = expand(suite)[0]
    profile = build_profile(suite.link.profile, link_overrides(cell.link_point, suite.seed))
    bare_ms = []
    with _link_and_servers(profile, [cell], work) as (link, servers):
        server = servers[cell.variant.server_key()]
        target = Target(host=link.server_addr, port=server.port(protocol),
                        ca_file=server.ca_file)
        for _ in range(4):  # the first is warm-up, as in the runner
            bare_ms.append(link.call("client", _bare_loop, protocol, target, count))
    return statistics.median(runner_ms), statistics.median(bare_ms[1:])


def _bare_loop(protocol: str, target: Target, count: int) -> float:
    async def loop() -> float:
        client = make_client(protocol, target)
        try:
            start = time.perf_counter()
            for _ in range(count):
                await client.request(Request(path="/bytes/100"))
            return (time.perf_counter() - start) * 1000 / count
        finally:
            await client.close()

    return asyncio.run(loop())


def suite_wall_time(name: str, repeat: int | None, work: Path) -> float:
    argv = [sys.executable, "-m", "protolab", "bench", name, "--json",
            "--db", str(work / "bench.db"), "--out", str(work / "out")]
    if repeat:
        argv += ["--repeat", str(repeat)]
    start = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, timeout=3600)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200, help="requests per repetition")
    parser.add_argument("--suites", nargs="*", default=[], help=f"any of {', '.join(BUNDLED)}")
    parser.add_argument("--repeat", type=int, default=None, help="repetitions per suite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"runner overhead, {args.count} x GET /bytes/100 on one connection, "
              "zero-impairment link")
        print(f"{'proto':6} {'runner ms/req':>14} {'bare ms/req':>12} {'overhead':>9}")
        for protocol in ("h1", "h2", "h3"):
            runner, bare = overhead(protocol, args.count, work)
            print(f"{protocol:6} {runner:14.3f} {bare:12.3f} {runner - bare:+9.3f}")
        for name in args.suites:
            seconds = suite_wall_time(name, args.repeat, work)
            print(f"suite {name:14} {seconds:7.1f} s"
                  + (f" (--repeat {args.repeat})" if args.repeat else ""))


if __name__ == "__main__":
    main()
