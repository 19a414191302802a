"""Measure a live link with real kernel sockets: UDP echo RTT/loss and TCP goodput.

Used by `protolab netem check`, the tests and the fidelity benchmark. Endpoints are
plain sockets created inside each namespace (a socket keeps its namespace), driven
by threads of this process; every loop is bounded in packets and in time.
TCP sockets use CUBIC explicitly: the kernel default here is BBR, which ignores loss
and would make any loss-related figure meaningless for comparison.
"""

from __future__ import annotations

import contextlib
import math
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass

from protolab.netem.link import EmulatedLink
from protolab.timing import now_ns

# Sequence number, send time (monotonic ns), send time (wall-clock ns: the clock of the
# kernel's receive timestamps), and the reflector's turnaround (ns), which it fills in.
_PROBE = struct.Struct("!IQQQ")
_TURNAROUND_AT = struct.calcsize("!IQQ")
_TURNAROUND = struct.Struct("!Q")
_TIMESPEC = struct.Struct("@qq")
# Linux's SO_TIMESTAMPNS (asm-generic/socket.h; also SCM_TIMESTAMPNS); typeshed omits it.
SO_TIMESTAMPNS: int = getattr(socket, "SO_TIMESTAMPNS", 35)
TCP_INFO_TOTAL_RETRANS = 100  # byte offset of tcpi_total_retrans in struct tcp_info


@dataclass(frozen=True)
class EchoResult:
    """Round trips of a UDP echo probe, two ways.

    `rtts_ns`: send to the reply's return to the probing thread, as an application
    sees it (its own wake-ups and the reflector's included). `link_rtts_ns`: the link's
    own round trip, TWAMP-style: from the send to the kernel's receive timestamp of the
    reply (SO_TIMESTAMPNS), less the reflector's turnaround (its kernel receive timestamp
    to its send), so neither end's scheduling is counted as the link's.
    """

    sent: int
    received: int
    rtts_ns: tuple[int, ...]  # in arrival order, duplicates ignored
    link_rtts_ns: tuple[int, ...] = ()  # the same probes, the link's part only

    @property
    def loss(self) -> float:
        return 1.0 - self.received / self.sent if self.sent else 0.0

    def percentile_ns(self, q: float, *, link_only: bool = False) -> float:
        """Percentile by linear interpolation between closest ranks (q in 0..100)."""
        values = sorted(self.link_rtts_ns if link_only else self.rtts_ns)
        if not values:
            return math.nan
        k = (len(values) - 1) * q / 100.0
        lo, hi = math.floor(k), math.ceil(k)
        return values[lo] + (values[hi] - values[lo]) * (k - lo)


@dataclass(frozen=True)
class GoodputResult:
    bytes_received: int  # in the measured window (after warm-up)
    seconds: float  # length of the measured window
    total_bytes: int  # everything that arrived, warm-up included
    retransmits: int  # sender's TCP_INFO tcpi_total_retrans
    congestion: str

    @property
    def bps(self) -> float:
        return self.bytes_received * 8 / self.seconds if self.seconds > 0 else 0.0


def wilson_interval(successes: int, n: int, z: float = 3.29) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; z=3.29 is 99.9% two-sided."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def tcp_total_retrans(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int.from_bytes(info[TCP_INFO_TOTAL_RETRANS : TCP_INFO_TOTAL_RETRANS + 4], "little")


def family(link: EmulatedLink) -> socket.AddressFamily:
    """The socket family of the link's addresses (`LinkProfile.ip`)."""
    return socket.AF_INET6 if ":" in link.server_addr else socket.AF_INET


def set_congestion(sock: socket.socket, name: str) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, name.encode())


def udp_echo(
    link: EmulatedLink, *, count: int = 200, interval_s: float = 0.005, size: int = 64,
    wait_s: float = 2.0,
) -> EchoResult:
    """Send `count` probes client→server, echo them back, and time each round trip.

    After the last probe, waits at most `wait_s` for stragglers.
    """
    server = link.call("server", socket.socket, family(link), socket.SOCK_DGRAM)
    client = link.call("client", socket.socket, family(link), socket.SOCK_DGRAM)
    stop = threading.Event()
    try:
        for sock in (server, client):
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        server.bind((link.server_addr, 0))
        target = (link.server_addr, server.getsockname()[1])
        echo = threading.Thread(target=reflect_loop, args=(server, stop), daemon=True)
        echo.start()
        rtts: dict[int, int] = {}
        link_rtts: dict[int, int] = {}
        padding = bytes(max(0, size - _PROBE.size))
        client.setblocking(False)
        start = now_ns()
        interval_ns = int(interval_s * 1e9)
        deadline = start + count * interval_ns + int(wait_s * 1e9)
        sent = 0
        while now_ns() < deadline and len(rtts) < count:
            now = now_ns()
            if sent < count and now >= start + sent * interval_ns:
                client.sendto(_PROBE.pack(sent, now, time.time_ns(), 0) + padding, target)
                sent += 1
                continue
            next_send = start + sent * interval_ns if sent < count else deadline
            timeout = max(0.0, (min(next_send, deadline) - now) / 1e9)
            readable, _, _ = select.select([client], [], [], timeout)
            if readable:
                _drain_replies(client, rtts, link_rtts)
        return EchoResult(sent=sent, received=len(rtts), rtts_ns=tuple(rtts.values()),
                          link_rtts_ns=tuple(link_rtts[seq] for seq in rtts if seq in link_rtts))
    finally:
        stop.set()
        client.close()
        server.close()


def _drain_replies(sock: socket.socket, rtts: dict[int, int],
                   link_rtts: dict[int, int]) -> None:
    while True:
        try:
            data, ancillary, _, _ = sock.recvmsg(65535, _ANCILLARY)
        except BlockingIOError:
            return
        arrived = now_ns()
        if len(data) < _PROBE.size:
            continue  # not one of ours
        seq, sent_at, sent_wall, turnaround = _PROBE.unpack_from(data)
        if seq in rtts:
            continue
        rtts[seq] = arrived - sent_at
        received_wall = _kernel_timestamp(ancillary)
        if received_wall is not None and turnaround:
            link_rtts[seq] = received_wall - sent_wall - turnaround


_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size)


def _kernel_timestamp(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The SO_TIMESTAMPNS receive time (wall-clock ns) among a datagram's control data."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            seconds, nanos = _TIMESPEC.unpack_from(data)
            return int(seconds) * 1_000_000_000 + int(nanos)
    return None


def reflect_loop(sock: socket.socket, stop: threading.Event) -> None:
    """Echo probes back with the reflector's turnaround written in (a TWAMP reflector's
    job): from the kernel's receive timestamp (SO_TIMESTAMPNS on `sock`) to just before
    the send, so the probing side can take this end's scheduling out of its round trip."""
    sock.settimeout(0.05)
    while not stop.is_set():
        try:
            data, ancillary, _, peer = sock.recvmsg(65535, _ANCILLARY)
        except TimeoutError:
            continue
        except OSError:
            return
        received_wall = _kernel_timestamp(ancillary)
        reply = bytearray(data)
        if received_wall is not None and len(reply) >= _PROBE.size:
            turnaround = max(1, time.time_ns() - received_wall)
            _TURNAROUND.pack_into(reply, _TURNAROUND_AT, turnaround)
        with contextlib.suppress(OSError):
            sock.sendto(reply, peer)


def echo_loop(sock: socket.socket, stop: threading.Event) -> None:
    """Send every datagram on `sock` back where it came from until `stop` is set."""
    sock.settimeout(0.05)
    while not stop.is_set():
        try:
            data, peer = sock.recvfrom(65535)
        except TimeoutError:
            continue
        except OSError:
            return
        with contextlib.suppress(OSError):
            sock.sendto(data, peer)


def tcp_goodput(
    link: EmulatedLink, *, seconds: float = 3.0, warmup_s: float = 0.5,
    max_bytes: int = 2_000_000_000, congestion: str = "cubic",
) -> GoodputResult:
    """Bulk transfer server→client for `seconds`; goodput counted after `warmup_s`."""
    listener = link.call("server", socket.socket, family(link), socket.SOCK_STREAM)
    client = link.call("client", socket.socket, family(link), socket.SOCK_STREAM)
    retrans: list[int] = []
    try:
        # Set on the listener: accepted sockets inherit it.
        set_congestion(listener, congestion)
        set_congestion(client, congestion)
        listener.bind((link.server_addr, 0))
        listener.listen(1)
        listener.settimeout(10)
        sender = threading.Thread(
            target=_send_bulk, args=(listener, seconds + 1.0, max_bytes, retrans), daemon=True
        )
        sender.start()
        client.settimeout(10)
        client.connect(listener.getsockname())
        first = now_ns()
        end = first + int(seconds * 1e9)
        warm_end = first + int(warmup_s * 1e9)
        total = 0
        counted = 0
        measured_from = None
        client.settimeout(0.2)
        while (now := now_ns()) < end:
            try:
                chunk = client.recv(1 << 20)
            except TimeoutError:
                continue
            if not chunk:
                break
            total += len(chunk)
            if now >= warm_end:
                if measured_from is None:
                    measured_from = now
                else:
                    counted += len(chunk)
        window = (now_ns() - measured_from) / 1e9 if measured_from is not None else 0.0
        client.close()
        sender.join(timeout=5)
        return GoodputResult(
            bytes_received=counted, seconds=window, total_bytes=total,
            retransmits=retrans[0] if retrans else -1, congestion=congestion,
        )
    finally:
        client.close()
        listener.close()


def _send_bulk(
    listener: socket.socket, seconds: float, max_bytes: int, retrans: list[int],
) -> None:
    try:
        conn, _ = listener.accept()
    except OSError:
        return
    block = bytes(256 * 1024)
    deadline = time.monotonic() + seconds
    sent = 0
    conn.settimeout(1.0)
    try:
        while sent < max_bytes and time.monotonic() < deadline:
            try:
                sent += conn.send(block)
            except TimeoutError:
                continue
    except OSError:
        pass  # the receiver closed: the measurement is over
    finally:
        with contextlib.suppress(OSError):
            retrans.append(tcp_total_retrans(conn))
        conn.close()
