"""Does a trace-driven link carry what its trace says? Prints per-second figures (needs root).

    .venv/bin/python benchmarks/netem_trace.py [--trace-down cellular.down] [--seconds 20]

One link: 20 ms one-way delay, the down direction's capacity from a mahimahi trace
(default: the bundled cellular.down, a two-state Markov capacity with deep fades), a
100-packet drop-tail queue, the up direction unconstrained. A bulk TCP transfer (CUBIC)
runs server→client for `--seconds` while a UDP echo probe crosses the link every 20 ms.

- Utilisation: IP bytes the link delivered down, against what the trace offered over the
  same window (the trace's time 0 is when the link came up, `LinkCounters.epoch_ns`;
  deliveries lag the opportunities by the propagation delay). The claim: within 10%.
- Queueing delay: probe RTT minus the base RTT, per second, next to that second's
  capacity; it should rise in fades and fall in good spells (a negative rank correlation).
Every load is bounded in time (and the echo in packets).
"""

from __future__ import annotations

import argparse
import select
import socket
import statistics
import struct
import threading
import time

from rich.console import Console
from rich.table import Table

from protolab.netem import measure
from protolab.netem.link import EmulatedLink
from protolab.netem.profiles import Overrides, build_profile
from protolab.netem.trace import OPPORTUNITY_BYTES, DeliveryTrace

console = Console()
DELAY_MS = 20
PROBE = struct.Struct("!Qq")


def probe(link: EmulatedLink, seconds: float, interval_s: float,
          out: list[tuple[int, int]]) -> None:
    """(sent_ns, rtt_ns) of UDP echoes client→server→client, one per `interval_s`."""
    server = link.call("server", socket.socket, socket.AF_INET, socket.SOCK_DGRAM)
    client = link.call("client", socket.socket, socket.AF_INET, socket.SOCK_DGRAM)
    stop = threading.Event()
    with server, client:
        server.bind((link.server_addr, 0))
        echo = threading.Thread(target=measure.echo_loop, args=(server, stop), daemon=True)
        echo.start()
        target = server.getsockname()
        client.setblocking(False)
        start = time.monotonic_ns()
        step = int(interval_s * 1e9)
        count = int(seconds / interval_s)
        deadline = start + count * step + 2_000_000_000
        sent = 0
        while (now := time.monotonic_ns()) < deadline:
            if sent < count and now >= start + sent * step:
                client.sendto(PROBE.pack(sent, now) + bytes(36), target)
                sent += 1
                continue
            due = start + sent * step if sent < count else deadline
            readable, _, _ = select.select([client], [], [], max(0.0, (due - now) / 1e9))
            while readable:
                try:
                    data = client.recv(2048)
                except BlockingIOError:
                    break
                _, sent_at = PROBE.unpack_from(data)
                out.append((sent_at, time.monotonic_ns() - sent_at))
        stop.set()
        echo.join(1.0)


def spearman(xs: list[float], ys: list[float]) -> float:
    def ranks(values: list[float]) -> list[float]:
        order = sorted(range(len(values)), key=values.__getitem__)
        r = [0.0] * len(values)
        for rank, i in enumerate(order):
            r[i] = float(rank)
        return r

    rx, ry = ranks(xs), ranks(ys)
    return statistics.correlation(rx, ry) if len(xs) > 2 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace-down", default="cellular.down")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args()
    profile = build_profile("loopback", Overrides(
        delay=f"{DELAY_MS}ms", trace_down=args.trace_down))  # 100-packet queue by default
    trace = profile.down.trace
    assert isinstance(trace, DeliveryTrace)
    console.print(f"trace {trace.name}: {len(trace.ms)} opportunities, period "
                  f"{trace.period_ms / 1000:g} s, {trace.capacity().describe()}")
    samples: list[tuple[int, int, int]] = []  # (at_ns, down delivered bytes, packets)
    probes: list[tuple[int, int]] = []
    total = args.warmup + args.seconds
    with EmulatedLink(profile) as link:
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                c = link.counters()
                samples.append((c.at_ns, c.down.delivered_bytes, c.down.delivered_packets))
                stop.wait(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        prober = threading.Thread(target=probe, args=(link, total, 0.02, probes), daemon=True)
        sampler.start()
        prober.start()
        began = time.monotonic_ns()
        result = measure.tcp_goodput(link, seconds=total, warmup_s=args.warmup)
        # The receiver stops reading at `total`; the sender's last second is not bulk.
        ended = began + int((total - 0.5) * 1e9)
        prober.join(total + 5)
        stop.set()
        sampler.join(2)
        counters = link.counters()
    epoch = counters.epoch_ns
    lag = DELAY_MS * 1_000_000

    def trace_ms(at_ns: int) -> float:
        return (at_ns - lag - epoch) / 1e6

    measured = [s for s in samples if began + args.warmup * 1e9 <= s[0] <= ended]
    a, b = measured[0], measured[-1]
    offered = trace.opportunities_between(trace_ms(a[0]), trace_ms(b[0])) * OPPORTUNITY_BYTES
    delivered = b[1] - a[1]
    seconds = (b[0] - a[0]) / 1e9
    console.print(
        f"\nwindow {seconds:.1f} s (after {args.warmup:g} s warm-up): the trace offered "
        f"{offered * 8 / seconds / 1e6:.3f} Mbit/s, the link delivered "
        f"{delivered * 8 / seconds / 1e6:.3f} Mbit/s of IP packets = "
        f"[bold]{delivered / offered * 100:.1f}%[/bold] of capacity; TCP goodput "
        f"{result.bps / 1e6:.3f} Mbit/s over its own window ({result.retransmits} retransmits, "
        f"{counters.down.dropped_queue} queue drops, {counters.down.unseen_drops} unseen)")
    table = Table(title="per second: capacity the trace offered vs delivered, and queueing "
                  f"delay (probe RTT - {2 * DELAY_MS} ms)")
    for col in ("second", "capacity Mbit/s", "delivered Mbit/s", "of capacity",
                "queue delay p50 ms", "p90 ms", "probes"):
        table.add_column(col, justify="right")
    caps: list[float] = []
    delays: list[float] = []
    base = 2 * DELAY_MS * 1e6
    t = float(a[0])
    second = 0
    while t + 1e9 <= b[0]:
        lo = min(measured, key=lambda s: abs(s[0] - t))
        hi = min(measured, key=lambda s: abs(s[0] - (t + 1e9)))
        span = (hi[0] - lo[0]) / 1e9
        cap = trace.capacity_bps_between(trace_ms(lo[0]), trace_ms(hi[0])) / 1e6
        got = (hi[1] - lo[1]) * 8 / span / 1e6
        # A probe's reply waits behind the down queue: sent in this second, it measures
        # the queue that this second's capacity drains (the reply leaves ~one delay later).
        rtts = sorted((rtt - base) / 1e6 for sent, rtt in probes if lo[0] <= sent < hi[0])
        p50 = statistics.median(rtts) if rtts else float("nan")
        p90 = rtts[int(0.9 * (len(rtts) - 1))] if rtts else float("nan")
        caps.append(cap)
        delays.append(p50)
        table.add_row(str(second), f"{cap:.2f}", f"{got:.2f}",
                      f"{got / cap * 100:.0f}%" if cap else "-", f"{p50:.1f}", f"{p90:.1f}",
                      str(len(rtts)))
        t += 1e9
        second += 1
    console.print(table)
    pairs = [(c, d) for c, d in zip(caps, delays, strict=True) if d == d]  # drop NaN
    caps, delays = [c for c, _ in pairs], [d for _, d in pairs]
    console.print(f"rank correlation of capacity and queueing delay per second: "
                  f"{spearman(caps, delays):+.2f} (negative: delay rises as capacity falls); "
                  f"queueing delay p50 ranged {min(delays):.1f}–{max(delays):.1f} ms")


if __name__ == "__main__":
    main()
