"""The lab's server as a separate process: started, read until ready, measured, stopped.

`protolab serve` announces itself on stdout, one line per protocol (`h2: https://ADDR:PORT/
(tcp)`), then `CA: PATH` when it runs TLS, then `ready`. Everything that starts a server
process — the bench runner, the tracer, tests — reads that banner here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from protolab.core.procfs import process_cpu_s
from protolab.errors import LabError

_URL_LINE = re.compile(r"^([a-z0-9]+):\s+(\S+://\S+)")


@dataclass(frozen=True)
class Banner:
    urls: dict[str, str]  # protocol -> URL
    ca_file: Path | None


def read_banner(lines: Iterable[str]) -> Banner | None:
    """The banner up to "ready", or None if the lines end first (the server died)."""
    urls: dict[str, str] = {}
    ca: Path | None = None
    for line in lines:
        match = _URL_LINE.match(line)
        if match:
            urls[match.group(1)] = match.group(2)
        elif line.startswith("CA:"):
            ca = Path(line.split(":", 1)[1].strip())
        elif line.strip() == "ready":
            return Banner(urls, ca)
    return None


@dataclass
class LabServer:
    process: subprocess.Popen[str]
    urls: dict[str, str]
    ca_file: Path | None

    def port(self, protocol: str) -> int:
        port = urlsplit(self.urls[protocol]).port
        if port is None:
            raise LabError(f"the server's {protocol} URL has no port: {self.urls[protocol]}")
        return port

    def cpu_s(self) -> float:
        return process_cpu_s(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.communicate(timeout=5)  # drains and closes its stdout
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()


def serve_argv(host: str, cert_dir: Path, options: list[str]) -> list[str]:
    return [sys.executable, "-m", "protolab", "serve", "--host", host, "--port", "0",
            "--cert-dir", str(cert_dir), *options]


def start_in_namespace(link: Any, options: list[str], cert_dir: Path) -> LabServer:
    """`protolab serve OPTIONS` in the link's server namespace, once it says ready."""
    process = link.popen("server", serve_argv(link.server_addr, cert_dir, options),
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    banner = read_banner(process.stdout or ())
    if banner is None:
        raise LabError(f"the lab server did not start in {link.server_ns} "
                       f"(exit {process.wait()})")
    return LabServer(process, banner.urls, banner.ca_file)
