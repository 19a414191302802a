"""Kernel TCP socket settings and counters the lab records for every TCP connection.

Congestion control is set explicitly on every socket because this machine's kernel
default is BBR, which ignores loss; comparing it with aioquic's Reno or CUBIC would
measure the algorithms, not the protocols (DESIGN.md, fair comparisons).
"""

from __future__ import annotations

import socket
import struct

from protolab.errors import ConfigError

CC_ALGORITHMS = ("cubic", "reno", "bbr")
DEFAULT_CC = "cubic"


def available_cc() -> tuple[str, ...]:
    try:
        with open("/proc/sys/net/ipv4/tcp_available_congestion_control") as handle:
            return tuple(handle.read().split())
    except OSError:
        return ()


def set_congestion_control(sock: socket.socket, algorithm: str) -> None:
    """Set TCP_CONGESTION; on a listening socket accepted sockets inherit it."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, algorithm.encode())
    except OSError as exc:
        have = ", ".join(available_cc()) or "unknown"
        raise ConfigError(
            f"kernel refused TCP congestion control {algorithm!r} ({exc.strerror})",
            hint=f"available here: {have}",
        ) from exc


def congestion_control(sock: socket.socket) -> str:
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16)
    return raw.split(b"\0", 1)[0].decode()


# Offsets in struct tcp_info (include/uapi/linux/tcp.h), stable since Linux 4.19.
_FIELDS: dict[str, tuple[int, str]] = {
    "total_retrans": (100, "I"),
    "rtt_us": (68, "I"),
    "snd_cwnd": (80, "I"),
    "bytes_acked": (120, "Q"),
    "bytes_received": (128, "Q"),
    "segs_out": (136, "I"),
    "segs_in": (140, "I"),
    "min_rtt_us": (148, "I"),
    "bytes_sent": (200, "Q"),
    "bytes_retrans": (208, "Q"),
}
_TCP_INFO_LEN = 232


def tcp_info(sock: socket.socket) -> dict[str, int]:
    """Selected kernel TCP_INFO counters (cumulative for the connection); {} if unavailable."""
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LEN)
    except OSError:
        return {}
    out: dict[str, int] = {}
    for name, (offset, fmt) in _FIELDS.items():
        size = struct.calcsize(fmt)
        if offset + size <= len(raw):
            out[name] = struct.unpack_from("=" + fmt, raw, offset)[0]
    return out
