"""Files the lab writes during a run, peers that never answer, servers that die: each is
one clear line and a typed failure (or a non-zero exit), at the moment it says, never a
traceback, a hang or a file silently not written."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from protolab import tlsfiles
from protolab.certs import CertBundle
from protolab.core.record import Request, Target
from protolab.errors import ConfigError, LabError
from protolab.labserver import start_local
from protolab.netem import measure, namespaces
from protolab.netem.link import EmulatedLink
from protolab.netem.profiles import build_profile
from protolab.registry import make_client
from protolab.timing import now_ns
from servers.common import ServerConfig
from tests.conftest import ServerFactory
from tests.helpers import TIMEOUT, target_for
from tests.netem.conftest import LinkFactory, make_link, netem_available  # noqa: F401
from tests.test_bad_input import still_serves
from tests.test_client_failures import FAST_S, one_request

FULL = Path("/dev/full")  # every write: ENOSPC
FULL_LINE = f"cannot write the key log {FULL}: No space left on device"
KEYLOG_PROTOCOLS = ["h1", "h2", "h3", "ws"]  # grpcio cannot write a key log


# -- a key log that cannot be written ------------------------------------------------------


@pytest.mark.parametrize("url", ["https://127.0.0.1:1/bytes/10", "wss://127.0.0.1:1/echo"])
@pytest.mark.parametrize("proto", ["h1", "h2", "h3"])
def test_get_with_an_unwritable_key_log_is_one_line_before_connecting(
    url: str, proto: str
) -> None:
    # Port 1 is never connected to: the edge check's real (empty) write refuses first.
    result = subprocess.run(
        [sys.executable, "-m", "protolab", "get", "--keylog", str(FULL), "--proto", proto, url],
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {FULL_LINE}"]
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("protocol", KEYLOG_PROTOCOLS)
def test_an_unwritable_key_log_is_refused_when_the_client_is_made(
    certs: CertBundle, protocol: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(FULL_LINE)):
        make_client(protocol, Target("127.0.0.1", 1, ca_file=certs.ca_file, keylog_file=FULL))


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", KEYLOG_PROTOCOLS)
async def test_a_key_log_write_failing_mid_run_is_keylog_write(
    lab_server: ServerFactory, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    # As a disk that fills after the check: the check is skipped, so the library's own
    # writes (OpenSSL's, aioquic's) are the ones that fail.
    monkeypatch.setattr(tlsfiles, "_check_writes", lambda fd, path: None)
    async with lab_server(protocols=(protocol, "h1")) as running:
        record, _ = await one_request(protocol, target_for(running, protocol, keylog_file=FULL))
        await still_serves(running, "h1")  # the server was not the one that failed
    assert record.error == "keylog_write", (record.error, record.error_detail)
    assert record.error_detail == FULL_LINE


# -- a capture that cannot be written --------------------------------------------------------


def test_a_capture_that_refuses_its_header_keeps_the_link_down(
    netem_available: None,  # noqa: F811 - the fixture imported above
) -> None:
    link = EmulatedLink(build_profile("loopback"), pcap="/proc/version")
    with pytest.raises(ConfigError, match=r"^cannot write the capture /proc/version: "
                       r"Input/output error$"):
        link.start()
    assert not {link.client_ns, link.server_ns} & set(namespaces.list_netns())


def test_a_capture_failing_mid_run_ends_the_link_with_one_line_and_its_counters(
    make_link: LinkFactory, tmp_path: Path,  # noqa: F811 - the fixture imported above
) -> None:
    # A FIFO whose reader goes away: the forwarder's next flush gets EPIPE, as a full disk
    # would give ENOSPC.
    fifo = tmp_path / "link.pcapng"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        link = make_link(pcap=str(fifo))
        assert os.read(reader, 65536)[:4] == bytes.fromhex("0a0d0d0a")  # the header came
        echo = measure.udp_echo(link, count=5, interval_s=0.01, wait_s=0.5)
    finally:
        os.close(reader)
    counters = link.counters()  # the flush it asks for fails: its last snapshot answers
    assert link.error is not None
    assert link.error.startswith(f"cannot write the capture {fifo}: ")
    assert counters.up.delivered_packets == echo.sent == 5
    assert link.counters() == counters  # kept, though the forwarder has ended
    link.close()  # torn down; the reason and the counters stay
    assert link.error.startswith("cannot write the capture")
    assert link.counters() == counters


# -- peers that never answer ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_h3_to_a_udp_port_that_never_answers_is_a_handshake_timeout(
    certs: CertBundle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "asyncio")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # bound, never read: no ICMP, no answer
        target = Target("127.0.0.1", silent.getsockname()[1], ca_file=certs.ca_file)
        client = make_client("h3", target, timeout=1.0)
        try:
            record = await client.request(Request(path="/bytes/10"))
        finally:
            await client.close()
        took = (now_ns() - record.start_ns) / 1e9
    await asyncio.sleep(0)  # let the loop run what the close left (nothing, now)
    gc.collect()  # an unretrieved future's exception is logged when it is collected
    assert record.error == "handshake_timeout", record.error_detail
    assert "within 1.0 s" in (record.error_detail or "")
    assert took < 1.0 + FAST_S
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


@pytest.mark.asyncio
async def test_grpcs_to_a_listener_that_never_speaks_fails_when_its_message_says(
    certs: CertBundle,
) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)  # accepts (the kernel does), never says a word
        target = Target("127.0.0.1", silent.getsockname()[1], ca_file=certs.ca_file)
        record, took = await one_request("grpc", target)
    assert record.error == "tls_timeout", record.error_detail
    stated = re.search(r"within ([0-9.]+) s", record.error_detail or "")
    assert stated is not None, record.error_detail
    assert abs(float(stated.group(1)) - took) < 1.0


# -- a lab server that dies before it is ready ----------------------------------------------


def test_a_lab_server_that_dies_before_ready_says_why(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(
        "import os, sys\n"
        "sys.stderr.write('lab server test: dying on purpose before ready\\n')\n"
        "sys.stderr.flush()\n"
        "os._exit(9)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    with pytest.raises(LabError) as raised:
        start_local(ServerConfig(port=0, protocols=("h1",), certs=None), env=env)
    message = str(raised.value)
    assert "exited (9) before it was ready" in message
    assert "dying on purpose before ready" in message
    assert "stderr=" not in message  # no Python argument in a user's hint
