"""Cross-check with Wireshark's dissector (tshark, from Debian) on the same capture and key
log: the same handshake messages in the same order, and the same negotiated version,
cipher, group and ALPN."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from protolab.trace.steps import Trace
from protolab.trace.tlsmessages import CIPHERS, GROUPS, HANDSHAKE_NAMES
from tests.trace.conftest import Traced

pytestmark = [pytest.mark.netem, pytest.mark.slow, pytest.mark.interop]

FIELDS = ["frame.number", "tls.handshake.type", "tls.handshake.extensions.supported_version",
          "tls.handshake.ciphersuite", "tls.handshake.extensions_key_share_group",
          "tls.handshake.extensions_alpn_str"]


@pytest.fixture(autouse=True)
def _needs_tshark() -> None:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (apt-get install tshark)")


def tshark_handshake(pcap: str, keylog: str, port: int, udp: bool) -> list[list[str]]:
    proto = "udp" if udp else "tcp"
    argv = ["tshark", "-r", pcap, "-o", f"tls.keylog_file:{keylog}",
            "-Y", f"tls.handshake and {proto}.port == {port}", "-T", "fields",
            "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,"]
    for f in FIELDS:
        argv += ["-e", f]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout
    return [line.split("|") for line in out.splitlines() if line.strip()]


def ours(trace: Trace) -> list[str]:
    names = set(HANDSHAKE_NAMES.values())
    return [s.name for s in trace.steps if s.layer == "tls" and s.name in names]


@pytest.mark.parametrize("kind", ["h1-tls12", "h2-tls13", "h2-tls13-resume", "h3", "h3-0rtt"])
def test_same_messages_and_parameters_as_wireshark(traced: Traced, kind: str) -> None:
    files, decoded = traced(kind)
    trace = decoded.main
    assert trace is not None
    assert files.keylog is not None
    port = int(trace.client.rsplit(":", 1)[1])
    rows = tshark_handshake(str(files.pcap), str(files.keylog), port, trace.transport == "quic")
    theirs = [HANDSHAKE_NAMES[int(t)] for row in rows for t in row[1].split(",") if t]
    assert ours(trace) == theirs
    server_hello = next(r for r in rows if r[1].split(",")[0] == "2")
    version = server_hello[2] or "0x0303"
    assert trace.negotiated["version"] == {"0x0304": "TLS 1.3", "0x0303": "TLS 1.2"}[version]
    assert trace.negotiated["cipher"] == CIPHERS[int(server_hello[3], 16)]
    group = server_hello[4].split(",")[0]
    if group:  # TLS 1.2 names its group in ServerKeyExchange, not a key_share
        assert trace.negotiated["group"] == GROUPS[int(group)]
    alpns = [r[5] for r in rows if r[5] and r[1].split(",")[0] != "1"]
    assert alpns
    assert trace.negotiated["alpn"] == alpns[0]
