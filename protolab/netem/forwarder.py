"""The forwarder process: moves IP packets between the two TUN devices through the model.

Started by `EmulatedLink` as `python -m protolab.netem.forwarder` with three inherited
fds: the client-side TUN, the server-side TUN and one end of a control socket, and the
link profile's JSON document on stdin (an argv string is limited to 128 KiB). It
lives in the root namespace (the fds already belong to the devices) and speaks
newline-delimited JSON on the control socket: it sends {"ready": ...} once, answers
"counters" and "stop", and exits by itself when the socket closes, so a crashed
parent never leaves a forwarder behind. The parent's end of that protocol
(`command_line`, `read_ready`, `request`) is here too, beside what it talks to.

The wait is select() with microsecond timeouts: asyncio and epoll round timer
waits to whole milliseconds, which added 1-2 ms to every round trip when tried here.
How it asks the OS for punctual wake-ups (`timing.TimingSettings`: real-time scheduling,
CPU, collector, locked memory, the spin before a deadline) is chosen by the parent,
applied at start, and what was granted is reported in the ready message
(docs/netem.md#timing). What it counts is `counters`. With `--vnet` both devices carry
virtio_net_hdrs and a direction that only delays moves TCP super-packets, counted as
the wire packets they stand for (docs/netem.md#tcp-offload).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import heapq
import json
import os
import select
import signal
import socket
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from protolab.errors import ConfigError, LabError
from protolab.netem.config import Direction, DirectionConfig, LinkProfile
from protolab.netem.counters import COUNTER_NAMES, LATE_SLOTS
from protolab.netem.model import DirectionModel, LinkModel, Verdict
from protolab.netem.pcap import CaptureWriteError, PcapWriter
from protolab.netem.timing import (
    CPU_LATENCY_DEVICE,
    DEFAULT_TIMING,
    GC_MODES,
    READ_BATCH,
    SPIN_NS,
    TimingSettings,
    apply_timing,
    settle_collector,
)

if TYPE_CHECKING:
    import subprocess

# The timing settings (`timing`) and the counter slots (`counters`) were defined here
# once: they are re-exported for callers that import them from the forwarder.
__all__ = [
    "COUNTER_NAMES", "CPU_LATENCY_DEVICE", "DEFAULT_TIMING", "GC_MODES", "LATE_SLOTS",
    "MAX_WAIT_S", "READ_BATCH", "READ_SIZE", "SPIN_NS", "Forwarder", "TimingSettings",
    "apply_timing", "command_line", "main", "offloadable", "read_ready", "request",
    "unimpaired",
]

_IN, _BIN, _DEL, _BDEL, _LOSS, _QUEUE, _LIST, _WERR = range(len(COUNTER_NAMES))
_VERDICT_SLOT = {Verdict.LOSS: _LOSS, Verdict.QUEUE: _QUEUE, Verdict.DROPLIST: _LIST}

READ_SIZE = 65535
# With offloads (`vnet`), each packet starts with a virtio_net_hdr and may be a TCP
# super-packet of up to 64 KB of IP (v6: plus its 40-byte header); a read must hold it
# whole, and stay under glibc's 128 KiB mmap threshold, as each read allocates its size.
VNET_HDR_LEN = 10
READ_SIZE_VNET = 65600
# The longest single wait with packets due: profiles bound delays, but a wake-up per
# second costs nothing and keeps select()'s timeout far from its overflow whatever comes.
MAX_WAIT_S = 1.0


class Forwarder:
    def __init__(
        self, client_fd: int, server_fd: int, control: socket.socket, model: LinkModel,
        pcap: PcapWriter | None, timing: TimingSettings | None = None, *,
        vnet: bool = False,
    ) -> None:
        self.timing = timing or TimingSettings()
        # Both devices carry virtio_net_hdrs (`namespaces.open_tun(vnet_hdr=True)`): the
        # model and the capture see what follows it, the other device gets it unchanged.
        self.skip = VNET_HDR_LEN if vnet else 0
        self.read_size = READ_SIZE_VNET if vnet else READ_SIZE
        self.client_fd = client_fd
        self.server_fd = server_fd
        self.control = control
        self.model = model
        self.pcap = pcap
        self.counters = {Direction.UP: [0] * len(COUNTER_NAMES),
                         Direction.DOWN: [0] * len(COUNTER_NAMES)}
        # (deliver_at_ns, sequence, out_fd, direction, packet); the sequence keeps FIFO ties.
        self.heap: list[tuple[int, int, int, Direction, bytes]] = []
        self.seq = 0
        self.control_buffer = b""
        self.running = True
        self.started_ns = time.monotonic_ns()
        # How late scheduled deliveries left, against the model's deliver-at time.
        self.late_total_ns = 0
        self.late_count = 0
        self.late_max_ns = 0
        # Lateness histogram: slot i counts deliveries 2^(i-1)..2^i us late (slot 0: < 1 us).
        self.late_hist = [0] * LATE_SLOTS
        # Why the link stopped forwarding on its own (the capture refused a write): the
        # counters then stay as they were, and the parent reads them with this reason.
        self.failure: str | None = None

    def serve(self, granted: dict[str, Any] | None = None) -> None:
        self.send({"ready": True, "pid": os.getpid(), "timing": granted or {}})
        spin_ns = self.timing.spin_ns
        rlist = [self.client_fd, self.server_fd, self.control.fileno()]
        plain = [d for d in (self.model.up, self.model.down) if unimpaired(d.config)]
        plan = (
            (self.client_fd, self.server_fd, Direction.UP, self.model.up),
            (self.server_fd, self.client_fd, Direction.DOWN, self.model.down),
        )
        spin_share = self.timing.spin_share
        armed = -1  # the deadline whose spin window we are in: poll, do not sleep again
        max_wait_ns = int(MAX_WAIT_S * 1e9)
        while self.running:
            heap = self.heap
            if heap:
                # Wake early and poll until the deadline: waking an idle CPU here takes
                # ~150 us, which would be added to every delayed packet. The spin is at
                # most `spin_share` of the wait, so a busy link (a deadline every few
                # hundred us) does not keep a core spinning.
                due = heap[0][0]
                gap = due - time.monotonic_ns()
                if due <= armed or gap <= 0:
                    ready, _, _ = select.select(rlist, [], [], 0)
                else:
                    sleep_ns = gap - min(spin_ns, int(gap * spin_share))
                    ready, _, _ = select.select(rlist, [], [], min(sleep_ns, max_wait_ns) / 1e9)
                    if not ready and sleep_ns <= max_wait_ns:
                        armed = due
            else:
                ready, _, _ = select.select(rlist, [], [])
            for in_fd, out_fd, direction, dmodel in plan:
                if in_fd in ready:
                    if dmodel in plain and not heap and self.pcap is None:
                        self.pass_batch(in_fd, out_fd, direction)
                    else:
                        self.read_batch(in_fd, out_fd, direction, dmodel)
            self.deliver_due()
            if self.control.fileno() in ready:
                self.handle_control()

    def run(self, granted: dict[str, Any] | None = None) -> None:
        """`serve` until stopped; a capture that refuses a write ends the link there,
        with one line on stderr and, for the parent, a last snapshot saying why."""
        try:
            self.serve(granted)
        except CaptureWriteError as exc:
            self.failure = str(exc)
            if self.pcap is not None:
                self.pcap.discard()
                self.pcap = None
            print(f"protolab netem forwarder: {exc}; the link is cut", file=sys.stderr,
                  flush=True)
            self.send(self.snapshot())  # unasked: the parent's next request reads it

    def read_batch(self, in_fd: int, out_fd: int, direction: Direction,
                   dmodel: DirectionModel) -> None:
        counters = self.counters[direction]
        heap = self.heap
        skip, read_size = self.skip, self.read_size
        for _ in range(self.timing.read_batch):
            try:
                data = os.read(in_fd, read_size)
            except BlockingIOError:
                return
            now = time.monotonic_ns()
            packet = data[skip:] if skip else data
            wire_packets, wire_bytes = _wire(data) if skip and data[1] else (1, len(data) - skip)
            counters[_IN] += wire_packets
            counters[_BIN] += wire_bytes
            verdict, deliver_at = dmodel.offer(packet, now)
            if verdict is not Verdict.DELIVER:
                counters[_VERDICT_SLOT[verdict]] += 1
                if self.pcap is not None:
                    self.pcap.write_drop(now, packet, direction.value,
                                         _drop_reason(verdict, dmodel), counters[_IN])
                continue
            if deliver_at <= now and not heap:
                # Unimpaired fast path: nothing is waiting, so order is kept.
                self.write(out_fd, direction, data, now)
            else:
                self.seq += 1
                heapq.heappush(heap, (deliver_at, self.seq, out_fd, direction, data))

    def pass_batch(self, in_fd: int, out_fd: int, direction: Direction) -> None:
        """`read_batch` for a direction that impairs nothing, with nothing waiting and no
        capture: each packet is written as it is read. The model is skipped because it
        would decide nothing (no loss draw, rule, rate, trace or delay to keep state for);
        with SCHED_FIFO the zero-delay TCP ceiling went from ~1.9-2.5 to ~3.3 Gbit/s."""
        counters = self.counters[direction]
        read, write = os.read, os.write
        skip, read_size = self.skip, self.read_size
        packets = nbytes = delivered = dbytes = 0
        try:
            for _ in range(self.timing.read_batch):
                data = read(in_fd, read_size)
                # A TCP super-packet (offloads on) counts as the packets it stands for.
                n, size = _wire(data) if skip and data[1] else (1, len(data) - skip)
                packets += n
                nbytes += size
                try:
                    write(out_fd, data)
                except OSError:
                    counters[_WERR] += 1
                    continue
                delivered += n
                dbytes += size
        except BlockingIOError:
            pass
        finally:
            counters[_IN] += packets
            counters[_BIN] += nbytes
            counters[_DEL] += delivered
            counters[_BDEL] += dbytes

    def deliver_due(self) -> None:
        heap = self.heap
        now = time.monotonic_ns()
        while heap and heap[0][0] <= now:
            due, _, out_fd, direction, packet = heapq.heappop(heap)
            late = now - due
            self.late_total_ns += late
            self.late_count += 1
            if late > self.late_max_ns:
                self.late_max_ns = late
            self.late_hist[min((late >> 10).bit_length(), LATE_SLOTS - 1)] += 1
            self.write(out_fd, direction, packet, now)

    def write(self, out_fd: int, direction: Direction, data: bytes, now: int) -> None:
        """Hand `data` (as read: with its virtio_net_hdr when `vnet`) to the other device."""
        counters = self.counters[direction]
        try:
            os.write(out_fd, data)
        except OSError:
            # The receiving device refused it (down, or its backlog is full).
            counters[_WERR] += 1
            return
        skip = self.skip
        wire_packets, wire_bytes = _wire(data) if skip and data[1] else (1, len(data) - skip)
        counters[_DEL] += wire_packets
        counters[_BDEL] += wire_bytes
        if self.pcap is not None:
            self.pcap.write(now, data[skip:] if skip else data, direction.value)

    def handle_control(self) -> None:
        data = self.control.recv(4096)
        if not data:
            self.running = False
            return
        self.control_buffer += data
        while b"\n" in self.control_buffer:
            line, _, self.control_buffer = self.control_buffer.partition(b"\n")
            command = line.decode().strip()
            if command == "counters":
                self.send(self.snapshot())
            elif command == "stop":
                self.running = False
                self.send(self.snapshot())
            else:
                self.send({"error": f"unknown command {command!r}"})

    def snapshot(self) -> dict[str, Any]:
        if self.pcap is not None:
            self.pcap.flush()
        return {
            **({"error": self.failure} if self.failure is not None else {}),
            "at_ns": time.monotonic_ns(),
            "in_flight": len(self.heap),
            "cpu_s": sum(os.times()[:2]),
            "late_mean_ns": self.late_total_ns // self.late_count if self.late_count else 0,
            "late_max_ns": self.late_max_ns,
            "late_hist": self.late_hist,
            "gc_collections": [g["collections"] for g in gc.get_stats()],
            "epoch_ns": self.model.epoch_ns,
            "up": dict(zip(COUNTER_NAMES, self.counters[Direction.UP], strict=True)),
            "down": dict(zip(COUNTER_NAMES, self.counters[Direction.DOWN], strict=True)),
        }

    def send(self, message: dict[str, Any]) -> None:
        try:
            self.control.sendall(json.dumps(message).encode() + b"\n")
        except OSError:
            self.running = False


def _wire(data: bytes) -> tuple[int, int]:
    """What a TCP super-packet (`data`: virtio_net_hdr, then IP) stands for on the wire:
    the segments the sender's TSO would have cut at the header's gso_size, and their
    bytes, each with the IP and TCP headers it would have carried. Callers test
    `skip and data[1]` (a gso_type) first, inline: every other packet is one packet, and
    a call per packet would cost the hot path."""
    gso_size = int.from_bytes(data[4:6], sys.byteorder)  # legacy header: native order
    ip = VNET_HDR_LEN
    ip_header = (data[ip] & 0x0F) * 4 if data[ip] >> 4 == 4 else 40
    if len(data) < ip + ip_header + 20:  # no room for a TCP header: not a super-packet
        return 1, len(data) - ip
    headers = ip_header + (data[ip + ip_header + 12] >> 4) * 4
    payload = len(data) - ip - headers
    if gso_size <= 0 or payload <= 0:
        return 1, len(data) - ip
    segments = -(-payload // gso_size)
    return segments, payload + segments * headers


def offloadable(config: DirectionConfig) -> bool:
    """True when the model decides nothing per packet beyond one fixed delay: no loss,
    rate, trace, jitter or drop rule. A TCP super-packet's segments then arrive, wait and
    leave together, as they would one by one (TSO sent them in the same instant), so
    the direction's device may use TCP offload (`namespaces.set_tcp_offload`)."""
    return (config.jitter_ns == 0 and config.loss == 0.0 and config.burst is None
            and config.rate_bps is None and config.trace is None and not config.drops)


def unimpaired(config: DirectionConfig) -> bool:
    """True when the model would deliver every packet of this direction at once, in order."""
    return config.delay_ns == 0 and offloadable(config)


def _drop_reason(verdict: Verdict, dmodel: DirectionModel) -> str:
    """The capture's word for why a packet was dropped (pcap.DROP_REASONS)."""
    if verdict is Verdict.LOSS:
        return "burst" if dmodel.config.burst is not None else "loss"
    return "queue" if verdict is Verdict.QUEUE else "droplist"


# -- the parent's end (`EmulatedLink`) ------------------------------------------------


def command_line(client_fd: int, server_fd: int, control_fd: int, timing: TimingSettings,
                 pcap: Path | None, *, vnet: bool = False) -> list[str]:
    """The argv that starts a forwarder on fds it inherits (what `main` parses)."""
    argv = [
        sys.executable, "-m", "protolab.netem.forwarder",
        "--client-fd", str(client_fd), "--server-fd", str(server_fd),
        "--control-fd", str(control_fd),
        "--timing", json.dumps(timing.to_json()),
    ]
    if vnet:
        argv.append("--vnet")
    if pcap is not None:
        argv += ["--pcap", str(pcap)]
    return argv


def read_ready(control_file: IO[bytes], process: subprocess.Popen[bytes]) -> dict[str, Any]:
    """What the forwarder was granted of its timing settings, from the ready message it
    sends once (`Forwarder.serve`); LabError when none comes within the socket's timeout."""
    try:
        ready = json.loads(control_file.readline() or b"{}")
    except (TimeoutError, ValueError):
        ready = {}
    if isinstance(ready.get("error"), str):  # it said why (its capture file, ...)
        raise ConfigError(ready["error"])
    if not ready.get("ready"):
        raise LabError(
            "the link's forwarder did not start",
            hint=f"exit status {process.poll()}; see its error output above",
        )
    return dict(ready.get("timing", {}))


def request(control: socket.socket, control_file: IO[bytes], command: str) -> dict[str, Any]:
    """Send one command ("counters" or "stop") and read the forwarder's answer; LabError
    when it cannot be reached or has exited (the link is cut). One caller at a time."""
    try:
        control.sendall(command.encode() + b"\n")
    except OSError:
        pass  # it may have ended on its own and left its last snapshot to read
    try:
        line = control_file.readline()
    except OSError as exc:
        raise LabError(f"the link's forwarder is unreachable: {exc}") from exc
    if not line:
        raise LabError("the link's forwarder has exited", hint="the link is cut")
    answer: dict[str, Any] = json.loads(line)
    return answer


# -- the process ---------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m protolab.netem.forwarder")
    parser.add_argument("--client-fd", type=int, required=True)
    parser.add_argument("--server-fd", type=int, required=True)
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--pcap")
    parser.add_argument("--timing", default="{}", help="TimingSettings as JSON")
    parser.add_argument("--vnet", action="store_true",
                        help="the devices carry virtio_net_hdrs (TCP offloads)")
    args = parser.parse_args(argv)

    # Ctrl-C belongs to the parent, which stops us in order; SIGTERM still ends us
    # through the `finally` below so the pcap is complete.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def on_term(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    timing = TimingSettings.from_json(json.loads(args.timing))
    granted, refused = apply_timing(timing)
    granted["refused"] = refused
    profile = LinkProfile.from_json(json.loads(sys.stdin.buffer.read()))
    control = socket.socket(fileno=args.control_fd)
    try:
        pcap = PcapWriter(args.pcap) if args.pcap else None
    except CaptureWriteError as exc:  # before "ready": the parent tears the link down
        with contextlib.suppress(OSError):
            control.sendall(json.dumps({"error": str(exc)}).encode() + b"\n")
        return 1
    # A delivery trace's time 0 is now, when the link comes up (mm-link starts its
    # trace when it starts, too).
    model = LinkModel(profile.up, profile.down, profile.seed, start_ns=time.monotonic_ns())
    forwarder = Forwarder(args.client_fd, args.server_fd, control, model, pcap, timing,
                          vnet=args.vnet)
    settle_collector(timing.gc)
    try:
        forwarder.run(granted)
    finally:
        if forwarder.pcap is not None:
            try:
                forwarder.pcap.close()
            except CaptureWriteError as exc:  # its last buffered packets: said, not raised
                print(f"protolab netem forwarder: {exc}", file=sys.stderr, flush=True)
    return 1 if forwarder.failure is not None else 0


if __name__ == "__main__":
    sys.exit(main())
