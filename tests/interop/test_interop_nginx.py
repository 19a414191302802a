"""The lab's HTTP/2 client against nginx's graceful GOAWAY (RFC 9113 §6.8).

nginx ends an HTTP/2 connection after `keepalive_requests` requests: it sends GOAWAY
with the last stream it accepted *before* the responses it still owes, then closes.
With 10 per connection and up to 30 requests in flight, connections pass requests over;
each must still complete, on a later connection, marked `retried_after_goaway`.

nginx gets its listening socket already bound to port 0 and listening (the inherited-
socket mechanism of its binary upgrade: the NGINX environment variable names the fd),
so no port is guessed and no readiness is waited for: connections queue in the backlog.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from clients.h2 import RETRIED
from protolab.certs import CertBundle
from protolab.core.record import Target
from protolab.fetch import fetch
from tests.helpers import TIMEOUT, stop_process
from tests.interop.peers import pattern_bytes, require

KEEPALIVE_REQUESTS = 10
SIZE = 3_000

_CONF = """\
daemon off;
master_process on;  # a single-process nginx closes inherited sockets
worker_processes 1;
{user}
pid {home}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    {temp_paths}
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {chain};
        ssl_certificate_key {key};
        keepalive_requests {keepalive};
        root {site};
    }}
}}
"""


@dataclass(frozen=True)
class Nginx:
    port: int
    log: Path


def _temp_paths(binary: str, home: Path) -> str:
    """Every temp directory this nginx build has, under `home` (the compiled-in defaults
    live in /var/lib/nginx, which may not exist or be writable)."""
    built = subprocess.run([binary, "-V"], capture_output=True, text=True, check=True).stderr
    kinds = re.findall(r"--http-(\w+?)-temp-path=", built)
    return "\n    ".join(
        f"{'client_body' if kind == 'client-body' else kind}_temp_path {home}/tmp-{kind};"
        for kind in kinds
    )


@pytest.fixture
def nginx(certs: CertBundle, tmp_path: Path) -> Iterator[Nginx]:
    binary = require("nginx", "nginx-light")
    site = tmp_path / "site"
    (site / "bytes").mkdir(parents=True)
    (site / "bytes" / str(SIZE)).write_bytes(pattern_bytes(SIZE))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    conf = tmp_path / "nginx.conf"
    conf.write_text(_CONF.format(
        user="user root;" if os.geteuid() == 0 else "", home=tmp_path,
        temp_paths=_temp_paths(binary, tmp_path), port=port, chain=certs.chain_file,
        key=certs.key_file, keepalive=KEEPALIVE_REQUESTS, site=site,
    ))
    log = tmp_path / "error.log"
    argv = [binary, "-p", str(tmp_path), "-c", str(conf), "-e", str(log)]
    check = subprocess.run([*argv, "-t"], capture_output=True, text=True, timeout=TIMEOUT,
                           check=False)
    if check.returncode != 0:
        listener.close()
        pytest.fail(f"nginx rejects the test's configuration:\n{check.stderr}")
    with listener:
        proc = subprocess.Popen(
            argv, pass_fds=[listener.fileno()], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "NGINX": f"{listener.fileno()};"},
        )
    try:
        yield Nginx(port, log)
    finally:
        stop_process(proc)


@pytest.mark.asyncio
async def test_h2_client_completes_every_request_across_nginx_goaways(
    nginx: Nginx, certs: CertBundle
) -> None:
    target = Target("127.0.0.1", nginx.port, ca_file=certs.ca_file)
    records = await fetch("h2", target, f"/bytes/{SIZE}", count=100, parallel=30,
                          options={"timeout": TIMEOUT})
    failed = [(r.error, r.error_detail) for r in records if not r.ok]
    assert not failed, f"{len(failed)} failed: {failed[:3]}\n{nginx.log.read_text()[-2000:]}"
    assert all(r.status == 200 and r.body_verified for r in records)
    per_connection: dict[int, int] = {}
    for record in records:
        per_connection[record.connection_id] = per_connection.get(record.connection_id, 0) + 1
    assert max(per_connection.values()) <= KEEPALIVE_REQUESTS
    # Up to 30 requests in flight and nginx takes 10 per connection: those it passed
    # over were sent again, and say so (how many depends on how the writes interleave).
    assert any(r.transport.get(RETRIED) for r in records)
