"""The lab's HTTP/1.1 and HTTP/2 servers answer curl (libcurl + OpenSSL + nghttp2).

One curl run per case fetches two URLs on one connection: a 1 MiB /bytes body (status,
HTTP version as curl reports it, content byte for byte) and an unknown path (404 —
the same status every protocol gives).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ServeProcess
from tests.helpers import TIMEOUT
from tests.interop.peers import assert_pattern_body, require, server_complaints

SIZE = 1 << 20

CASES = [
    # (curl option, server is TLS, expected %{http_version})
    pytest.param("--http1.1", True, "1.1", id="h1-tls"),
    pytest.param("--http2", True, "2", id="h2-tls-alpn"),
    pytest.param("--http1.1", False, "1.1", id="h1-cleartext"),
    pytest.param("--http2-prior-knowledge", False, "2", id="h2c-prior-knowledge"),
]


@pytest.mark.interop
@pytest.mark.parametrize(("option", "tls", "version"), CASES)
def test_curl_fetches_bytes_and_404(
    serve_process: Callable[..., ServeProcess],
    tmp_path: Path,
    option: str,
    tls: bool,
    version: str,
) -> None:
    curl = require("curl", "curl")
    server = serve_process("--proto", "h1,h2") if tls else serve_process(
        "--no-tls", "--proto", "h1,h2"
    )
    base = server.urls["h2"].rstrip("/")
    assert base.startswith("https://" if tls else "http://")
    body = tmp_path / "body"
    common = [curl, "--silent", "--show-error", option, "--max-time", str(TIMEOUT),
              "--write-out", "%{http_code} %{http_version} %{num_connects}\n"]
    if tls:
        assert server.ca_file is not None
        common += ["--cacert", str(server.ca_file)]  # verification on: the lab's CA only
    fetches = [["--output", str(body), f"{base}/bytes/{SIZE}"],
               ["--output", "/dev/null", f"{base}/no/such/path"]]
    if option == "--http2-prior-knowledge":
        # curl 7.88 fails to reuse a prior-knowledge connection ("Error in the HTTP2
        # framing layer" before it sends anything; curl/curl#10634, fixed in 8.0).
        runs = [_curl(common + urls) for urls in fetches]
        assert runs == [["200", version, "1"], ["404", version, "1"]]
    else:
        words = _curl(common + fetches[0] + fetches[1], expect_lines=2)
        # The second transfer reused the first's connection (keep-alive / a new stream).
        assert words == ["200", version, "1", "404", version, "0"]
    assert_pattern_body(body.read_bytes(), SIZE)
    assert server_complaints(server.log) == []


def _curl(argv: list[str], expect_lines: int = 1) -> list[str]:
    """Run curl; the words of its --write-out lines."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == expect_lines, result.stdout
    return result.stdout.split()
