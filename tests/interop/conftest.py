"""Fixtures for the interop tests: an independent server (caddy) for the lab's clients."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from protolab.certs import CertBundle
from tests.helpers import TIMEOUT, stop_process
from tests.interop.peers import (
    CADDY_SIZES,
    CaddyServer,
    free_port_tcp_and_udp,
    pattern_bytes,
    require,
)

# Caddy 2.6 serves HTTP/3 on the same port over UDP when TLS is on; `protocols` makes
# the three explicit. `auto_https off` and `admin off`: no ACME, no redirects, no
# admin socket — only this one site, with the lab's certificate.
_CADDYFILE = """\
{{
\tadmin off
\tauto_https off
\tservers {{
\t\tprotocols h1 h2 h3
\t}}
}}
https://{host}:{port} {{
\tbind {host}
\ttls {chain} {key}
\troot * {site}
\tfile_server
}}
"""


@pytest.fixture(scope="module")
def caddy(certs: CertBundle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaddyServer]:
    """Caddy serving files at /bytes/N on h1, h2 and h3 with the lab's certificate."""
    binary = require("caddy", "caddy")
    home = tmp_path_factory.mktemp("caddy")
    site = home / "site"
    (site / "bytes").mkdir(parents=True)
    for size in CADDY_SIZES:
        (site / "bytes" / str(size)).write_bytes(pattern_bytes(size))
    host, port = "127.0.0.1", free_port_tcp_and_udp()
    caddyfile = home / "Caddyfile"
    caddyfile.write_text(
        _CADDYFILE.format(
            host=host, port=port, chain=certs.chain_file, key=certs.key_file, site=site
        )
    )
    # Caddy keeps state under $HOME and the XDG directories; keep it in the test's.
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
    }
    log = home / "caddy.log"
    with log.open("w") as log_file:
        proc = subprocess.Popen(
            [binary, "run", "--config", str(caddyfile), "--adapter", "caddyfile"],
            stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=home,
        )
    try:
        _wait_until_ready(proc, host, port, log)
        yield CaddyServer(host=host, port=port, log=log)
    finally:
        stop_process(proc)


def _wait_until_ready(proc: subprocess.Popen[bytes], host: str, port: int, log: Path) -> None:
    """Ready = caddy logged "server running" (after enabling its HTTP/3 listener, so the
    UDP side is up) and the TCP port accepts a connection."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"caddy exited with {proc.returncode}:\n{log.read_text()}")
        if '"server running"' in log.read_text():
            try:
                socket.create_connection((host, port), timeout=1).close()
                return
            except OSError:
                pass
        time.sleep(0.02)  # poll interval, bounded by the deadline
    raise AssertionError(f"caddy not ready within {TIMEOUT} s:\n{log.read_text()}")
