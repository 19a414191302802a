"""The lab's HTTP/1.1 and HTTP/2 servers survive h2load (nghttp2's load generator).

h2load counts a request as succeeded only when it got a complete response with a
status code, so "all succeeded, 0 failed, 0 errored, 0 timeout" is the check. h2load
does not verify certificates (it has no --cacert); curl's tests cover verification.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.conftest import ServeProcess
from tests.helpers import TIMEOUT
from tests.interop.peers import require, server_complaints

REQUESTS = 200
SIZE = 4_096

CASES = [
    # (h2load options, server is TLS, application protocol h2load reports)
    pytest.param(["--h1", "-c", "4"], True, "http/1.1", id="h1-tls"),
    pytest.param(["-c", "4", "-m", "10"], True, "h2", id="h2-tls"),
    pytest.param(["--h1", "-c", "4"], False, "http/1.1", id="h1-cleartext"),
    pytest.param(["-c", "4", "-m", "10"], False, "h2c", id="h2c"),
]


@dataclass(frozen=True)
class H2loadSummary:
    """The counters of h2load's "requests:" and "status codes:" lines."""

    total: int
    started: int
    done: int
    succeeded: int
    failed: int
    errored: int
    timeout: int
    status_2xx: int
    protocol: str | None


_REQUESTS = re.compile(
    r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
    r"(\d+) failed, (\d+) errored, (\d+) timeout$", re.M,
)
_STATUS = re.compile(r"^status codes: (\d+) 2xx", re.M)
_PROTOCOL = re.compile(r"^Application protocol: (\S+)$", re.M)


def parse_h2load(output: str) -> H2loadSummary:
    requests, status = _REQUESTS.search(output), _STATUS.search(output)
    assert requests is not None, f"no requests line in h2load output:\n{output}"
    assert status is not None, f"no status codes line in h2load output:\n{output}"
    protocol = _PROTOCOL.search(output)
    total, started, done, succeeded, failed, errored, timeout = map(int, requests.groups())
    return H2loadSummary(
        total=total, started=started, done=done, succeeded=succeeded, failed=failed,
        errored=errored, timeout=timeout, status_2xx=int(status.group(1)),
        protocol=protocol.group(1) if protocol else None,
    )


@pytest.mark.interop
@pytest.mark.parametrize(("options", "tls", "protocol"), CASES)
def test_h2load_all_requests_succeed(
    serve_process: Callable[..., ServeProcess], options: list[str], tls: bool, protocol: str
) -> None:
    h2load = require("h2load", "nghttp2-client")
    server = serve_process("--proto", "h1,h2") if tls else serve_process(
        "--no-tls", "--proto", "h1,h2"
    )
    url = f"{server.urls['h2'].rstrip('/')}/bytes/{SIZE}"
    result = subprocess.run(
        [h2load, "-n", str(REQUESTS), *options, url],
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )
    assert result.returncode == 0, result.stderr
    summary = parse_h2load(result.stdout)
    assert summary.protocol == protocol
    assert (summary.failed, summary.errored, summary.timeout) == (0, 0, 0), result.stdout
    assert summary.succeeded == summary.done == summary.status_2xx == REQUESTS
    assert server_complaints(server.log) == []
