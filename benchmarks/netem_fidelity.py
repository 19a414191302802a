"""How faithful is the emulated link? Prints a fidelity table (needs root; about 1 minute).

    .venv/bin/python benchmarks/netem_fidelity.py [--quick]

- configured RTT 0/20/100/300 ms → measured median and p99 error (UDP echo, 64 B),
- configured loss 1%/5% (one direction) → realised end-to-end loss with a 95% CI,
- configured rate 1/10/50/100 Mbit/s → TCP goodput (CUBIC) against rate less headers,
- the forwarder's ceiling at zero delay: TCP Mbit/s and small-UDP packets/s, with its
  CPU share and any drops it could not see (TUN tx_dropped).
Every load is bounded in packets and in seconds.
"""

from __future__ import annotations

import argparse
import socket
import threading
import time

from rich.console import Console
from rich.table import Table

from protolab.netem import measure
from protolab.netem.link import EmulatedLink
from protolab.netem.profiles import Overrides, build_profile

console = Console()
HEADER_EFFICIENCY = 1448 / 1500


def link(**overrides: object) -> EmulatedLink:
    return EmulatedLink(build_profile("loopback", Overrides(**overrides)))  # type: ignore[arg-type]


def rtt_table(probes: int) -> Table:
    table = Table(title=f"RTT fidelity (UDP echo, {probes} probes of 64 B)")
    for col in ("configured RTT", "median", "median error", "p99", "p99 error", "lost"):
        table.add_column(col, justify="right")
    for rtt_ms in (0, 20, 100, 300):
        half = f"{rtt_ms / 2}ms"
        with link(delay=half) as lk:
            echo = measure.udp_echo(lk, count=probes, interval_s=0.005, wait_s=1.0)
        median, p99 = echo.percentile_ns(50) / 1e6, echo.percentile_ns(99) / 1e6
        table.add_row(f"{rtt_ms} ms", f"{median:.3f} ms", f"{median - rtt_ms:+.3f} ms",
                      f"{p99:.3f} ms", f"{p99 - rtt_ms:+.3f} ms", str(echo.sent - echo.received))
    return table


def loss_table(probes: int, seeds: tuple[int, ...] = (1, 2, 3)) -> Table:
    table = Table(
        title=f"loss fidelity (client→server only, {probes} UDP probes x seeds {seeds})"
    )
    for col in ("configured", "realised", "95% CI", "model drops / packets in"):
        table.add_column(col, justify="right")
    for loss in ("1%", "5%"):
        sent = received = dropped = packets_in = 0
        # One seed is one binomial draw; pooling a few keeps a lucky seed from deciding.
        for seed in seeds:
            with link(loss=f"{loss}/0%", seed=seed) as lk:
                echo = measure.udp_echo(lk, count=probes, interval_s=0.0005, wait_s=0.5)
                up = lk.counters().up
            sent += echo.sent
            received += echo.received
            dropped += up.dropped_loss
            packets_in += up.packets_in
        lo, hi = measure.wilson_interval(sent - received, sent, z=1.96)
        table.add_row(loss, f"{(sent - received) / sent * 100:.2f}%",
                      f"{lo * 100:.2f}–{hi * 100:.2f}%", f"{dropped} / {packets_in}")
    return table


def rate_table(seconds: float) -> Table:
    table = Table(title=f"rate fidelity (TCP CUBIC, 10 ms RTT, 100-packet queue, {seconds:g} s)")
    for col in ("configured", "goodput", "of rate less headers", "retransmits", "queue drops"):
        table.add_column(col, justify="right")
    for mbit in (1, 10, 50, 100):
        with link(delay="5ms", rate=f"{mbit}mbit") as lk:
            result = measure.tcp_goodput(lk, seconds=seconds + 1.0, warmup_s=1.0)
            drops = lk.counters().down.dropped_queue
        expected = mbit * 1e6 * HEADER_EFFICIENCY
        table.add_row(f"{mbit} Mbit/s", f"{result.bps / 1e6:.2f} Mbit/s",
                      f"{result.bps / expected * 100:.1f}%", str(result.retransmits), str(drops))
    return table


def _udp_blast(lk: EmulatedLink, seconds: float, max_packets: int) -> tuple[int, float]:
    receiver = lk.call("server", socket.socket, socket.AF_INET, socket.SOCK_DGRAM)
    sender = lk.call("client", socket.socket, socket.AF_INET, socket.SOCK_DGRAM)
    stop = threading.Event()
    with receiver, sender:
        receiver.bind((lk.server_addr, 0))
        receiver.settimeout(0.2)
        target = receiver.getsockname()

        def drain() -> None:
            while not stop.is_set():
                try:
                    receiver.recv(2048)
                except (TimeoutError, OSError):
                    continue

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        payload = bytes(64)
        sent = 0
        start = time.monotonic()
        deadline = start + seconds
        while sent < max_packets and time.monotonic() < deadline:
            for _ in range(256):
                try:
                    sender.sendto(payload, target)
                    sent += 1
                except BlockingIOError:
                    break
        elapsed = time.monotonic() - start
        stop.set()
        reader.join(1.0)
    return sent, elapsed


def ceiling_table(seconds: float) -> Table:
    table = Table(title="forwarder ceiling at zero delay (2 cores, one for the forwarder)")
    for col in ("load", "delivered", "packets/s", "forwarder CPU", "unseen drops"):
        table.add_column(col, justify="right")
    with link() as lk:
        before = lk.counters()
        result = measure.tcp_goodput(lk, seconds=seconds + 0.5, warmup_s=0.5)
        after = lk.counters()
    wall = (after.at_ns - before.at_ns) / 1e9
    pkts = (after.down.delivered_packets + after.up.delivered_packets
            - before.down.delivered_packets - before.up.delivered_packets)
    cpu = (after.forwarder_cpu_s - before.forwarder_cpu_s) / wall
    unseen = after.up.unseen_drops + after.down.unseen_drops
    table.add_row("TCP bulk (CUBIC)", f"{result.bps / 1e6:.0f} Mbit/s", f"{pkts / wall:,.0f}",
                  f"{cpu * 100:.0f}%", str(unseen))
    with link() as lk:
        before = lk.counters()
        sent, elapsed = _udp_blast(lk, seconds, max_packets=5_000_000)
        after = lk.counters()
    wall = (after.at_ns - before.at_ns) / 1e9
    delivered = after.up.delivered_packets - before.up.delivered_packets
    cpu = (after.forwarder_cpu_s - before.forwarder_cpu_s) / wall
    mbit = (after.up.delivered_bytes - before.up.delivered_bytes) * 8 / elapsed / 1e6
    table.add_row(f"UDP 92 B packets ({sent / elapsed:,.0f}/s offered)",
                  f"{mbit:.1f} Mbit/s", f"{delivered / elapsed:,.0f}", f"{cpu * 100:.0f}%",
                  str(after.up.unseen_drops - before.up.unseen_drops))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer probes, shorter transfers")
    args = parser.parse_args()
    probes = 100 if args.quick else 400
    seconds = 1.5 if args.quick else 3.0
    console.print(rtt_table(probes))
    console.print(loss_table(1000 if args.quick else 5000))
    console.print(rate_table(seconds))
    console.print(ceiling_table(seconds))


if __name__ == "__main__":
    main()
