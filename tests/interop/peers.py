"""Helpers for the interop tests: finding third-party peers and checking what they got.

A peer binary that is missing skips its tests with the apt-get line that installs it;
CI installs them all (`./run test` asks apt for each missing one), so there they run.
"""

from __future__ import annotations

import re
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

from protolab.workload import Body, verify_content

# Lines the lab's servers log when they refuse or fail a client (servers/*.py); a
# well-behaved third-party peer must not cause any of them.
_COMPLAINT = re.compile(
    r"\b(h1|h2|h3)\b.*(bad request|rejected|cannot respond|cannot send|protocol error)"
)


def require(binary: str, package: str) -> str:
    """The peer's path, or skip with the command that installs it."""
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} not installed (apt-get install {package})")
    return path


def pattern_bytes(size: int) -> bytes:
    """The /bytes/`size` body (byte i = i % 251), as the lab's servers send it."""
    return b"".join(bytes(chunk) for chunk in Body(size).chunks())


def assert_pattern_body(data: bytes, size: int) -> None:
    """`data` is exactly the /bytes/`size` content."""
    assert len(data) == size, f"body is {len(data)} bytes, expected {size}"
    assert verify_content(0, data), "body differs from the /bytes/N pattern"


def server_complaints(log: Path) -> list[str]:
    """The server log lines that say a peer was refused or a response failed."""
    return [line for line in log.read_text().splitlines() if _COMPLAINT.search(line)]


def free_port_tcp_and_udp(host: str = "127.0.0.1") -> int:
    """A port number free for both TCP and UDP right now.

    Only for peers that cannot bind port 0 themselves (caddy): the lab's own servers
    always bind port 0. The window between closing and the peer binding is small, and
    a peer that loses the race fails loudly at start-up rather than silently.
    """
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port: int = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no port free for both TCP and UDP")


# Sizes of the /bytes/N files caddy serves (same content as the lab's /bytes/N).
CADDY_SIZES = (16_384, 1 << 20)


@dataclass(frozen=True)
class CaddyServer:
    host: str
    port: int  # TCP for h1/h2, UDP for h3
    log: Path
