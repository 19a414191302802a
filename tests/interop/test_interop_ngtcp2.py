"""The lab's HTTP/3 server answers ngtcp2's client (Debian's `gtlsclient`: ngtcp2 + GnuTLS).

Two requests on one QUIC connection; the client saves each body with --download and
exits when both streams are closed. Its debug log (stderr) names the negotiated ALPN
and each response's :status.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import ServeProcess
from tests.helpers import TIMEOUT
from tests.interop.peers import assert_pattern_body, require, server_complaints

SIZES = (1 << 20, 1_000)


@pytest.mark.interop
def test_gtlsclient_downloads_over_http3(
    serve_process: Callable[..., ServeProcess], tmp_path: Path
) -> None:
    client = require("gtlsclient", "ngtcp2-client")
    server = serve_process("--proto", "h3")
    url = urlsplit(server.urls["h3"])
    assert url.hostname is not None
    assert url.port is not None
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    result = subprocess.run(
        [
            client, "--no-quic-dump", "--no-http-dump", "--exit-on-all-streams-close",
            f"--timeout={int(TIMEOUT)}s", "--download", str(downloads),
            url.hostname, str(url.port),
            *(f"https://{url.netloc}/bytes/{size}" for size in SIZES),
        ],
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )
    log = result.stderr
    assert result.returncode == 0, log[-2000:]
    assert "Negotiated ALPN is h3" in log
    statuses = re.findall(r"http: stream 0x[0-9a-f]+ \[:status: (\d+)\]", log)
    assert statuses == ["200", "200"]
    for size in SIZES:  # --download names each file after the last path segment
        assert_pattern_body((downloads / str(size)).read_bytes(), size)
    assert server_complaints(server.log) == []
