"""The forwarder process: moves IP packets between the two TUN devices through the model.

Started by `EmulatedLink` as `python -m protolab.netem.forwarder` with three inherited
fds: the client-side TUN, the server-side TUN and one end of a control socket, and the
link profile's JSON document on stdin (an argv string is limited to 128 KiB). It
lives in the root namespace (the fds already belong to the devices) and speaks
newline-delimited JSON on the control socket: it sends {"ready": ...} once, answers
"counters" and "stop", and exits by itself when the socket closes, so a crashed
parent never leaves a forwarder behind.

The wait is select() with microsecond timeouts: asyncio and epoll round timer
waits to whole milliseconds, which added 1-2 ms to every round trip when tried here.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import heapq
import json
import os
import select
import signal
import socket
import sys
import time
from typing import Any

from protolab.netem.config import Direction, LinkProfile
from protolab.netem.model import DirectionModel, LinkModel, Verdict
from protolab.netem.pcap import PcapWriter

# Counter slots per direction (a list is cheaper than a dataclass on the hot path).
COUNTER_NAMES = (
    "packets_in", "bytes_in", "delivered_packets", "delivered_bytes",
    "dropped_loss", "dropped_queue", "dropped_droplist", "write_errors",
)
_IN, _BIN, _DEL, _BDEL, _LOSS, _QUEUE, _LIST, _WERR = range(len(COUNTER_NAMES))
_VERDICT_SLOT = {Verdict.LOSS: _LOSS, Verdict.QUEUE: _QUEUE, Verdict.DROPLIST: _LIST}

# Bounded reads per fd per wake-up, so one busy direction cannot starve due deliveries.
READ_BATCH = 64
READ_SIZE = 65535
SPIN_NS = 250_000
# The longest single wait with packets due: profiles bound delays, but a wake-up per
# second costs nothing and keeps select()'s timeout far from its overflow whatever comes.
MAX_WAIT_S = 1.0


class Forwarder:
    def __init__(
        self, client_fd: int, server_fd: int, control: socket.socket, model: LinkModel,
        pcap: PcapWriter | None,
    ) -> None:
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

    def serve(self) -> None:
        self.send({"ready": True, "pid": os.getpid()})
        rlist = [self.client_fd, self.server_fd, self.control.fileno()]
        plan = (
            (self.client_fd, self.server_fd, Direction.UP, self.model.up),
            (self.server_fd, self.client_fd, Direction.DOWN, self.model.down),
        )
        while self.running:
            heap = self.heap
            if heap:
                # Wake SPIN_NS early and poll until the deadline: waking an idle CPU
                # here takes ~150 us, which would be added to every delayed packet.
                wait_ns = heap[0][0] - time.monotonic_ns() - SPIN_NS
                wait_s = min(wait_ns / 1e9, MAX_WAIT_S) if wait_ns > 0 else 0
                ready, _, _ = select.select(rlist, [], [], wait_s)
            else:
                ready, _, _ = select.select(rlist, [], [])
            for in_fd, out_fd, direction, dmodel in plan:
                if in_fd in ready:
                    self.read_batch(in_fd, out_fd, direction, dmodel)
            self.deliver_due()
            if self.control.fileno() in ready:
                self.handle_control()

    def read_batch(self, in_fd: int, out_fd: int, direction: Direction,
                   dmodel: DirectionModel) -> None:
        counters = self.counters[direction]
        heap = self.heap
        for _ in range(READ_BATCH):
            try:
                packet = os.read(in_fd, READ_SIZE)
            except BlockingIOError:
                return
            now = time.monotonic_ns()
            counters[_IN] += 1
            counters[_BIN] += len(packet)
            verdict, deliver_at = dmodel.offer(packet, now)
            if verdict is not Verdict.DELIVER:
                counters[_VERDICT_SLOT[verdict]] += 1
                if self.pcap is not None:
                    self.pcap.write_drop(now, packet, direction.value,
                                         _drop_reason(verdict, dmodel), counters[_IN])
                continue
            if deliver_at <= now and not heap:
                # Unimpaired fast path: nothing is waiting, so order is kept.
                self.write(out_fd, direction, packet, now)
            else:
                self.seq += 1
                heapq.heappush(heap, (deliver_at, self.seq, out_fd, direction, packet))

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
            self.write(out_fd, direction, packet, now)

    def write(self, out_fd: int, direction: Direction, packet: bytes, now: int) -> None:
        counters = self.counters[direction]
        try:
            os.write(out_fd, packet)
        except OSError:
            # The receiving device refused it (down, or its backlog is full).
            counters[_WERR] += 1
            return
        counters[_DEL] += 1
        counters[_BDEL] += len(packet)
        if self.pcap is not None:
            self.pcap.write(now, packet, direction.value)

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
            "at_ns": time.monotonic_ns(),
            "in_flight": len(self.heap),
            "cpu_s": sum(os.times()[:2]),
            "late_mean_ns": self.late_total_ns // self.late_count if self.late_count else 0,
            "late_max_ns": self.late_max_ns,
            "epoch_ns": self.model.epoch_ns,
            "up": dict(zip(COUNTER_NAMES, self.counters[Direction.UP], strict=True)),
            "down": dict(zip(COUNTER_NAMES, self.counters[Direction.DOWN], strict=True)),
        }

    def send(self, message: dict[str, Any]) -> None:
        try:
            self.control.sendall(json.dumps(message).encode() + b"\n")
        except OSError:
            self.running = False


def _drop_reason(verdict: Verdict, dmodel: DirectionModel) -> str:
    """The capture's word for why a packet was dropped (pcap.DROP_REASONS)."""
    if verdict is Verdict.LOSS:
        return "burst" if dmodel.config.burst is not None else "loss"
    return "queue" if verdict is Verdict.QUEUE else "droplist"


def _tight_timers() -> None:
    """Ask for 1 ns timer slack: the default 50 us would be added to every select() wake-up."""
    pr_set_timerslack = 29
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.prctl(pr_set_timerslack, 1, 0, 0, 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m protolab.netem.forwarder")
    parser.add_argument("--client-fd", type=int, required=True)
    parser.add_argument("--server-fd", type=int, required=True)
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--pcap")
    args = parser.parse_args(argv)

    # Ctrl-C belongs to the parent, which stops us in order; SIGTERM still ends us
    # through the `finally` below so the pcap is complete.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def on_term(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    _tight_timers()
    profile = LinkProfile.from_json(json.loads(sys.stdin.buffer.read()))
    control = socket.socket(fileno=args.control_fd)
    pcap = PcapWriter(args.pcap) if args.pcap else None
    # A delivery trace's time 0 is now, when the link comes up (mm-link starts its
    # trace when it starts, too).
    model = LinkModel(profile.up, profile.down, profile.seed, start_ns=time.monotonic_ns())
    forwarder = Forwarder(args.client_fd, args.server_fd, control, model, pcap)
    try:
        forwarder.serve()
    finally:
        if pcap is not None:
            pcap.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
