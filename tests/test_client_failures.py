"""Every client fails fast, with the same typed errors: a closed port is `connect_refused`,
a server certificate from a CA the client does not trust is `tls_verify` — on every
protocol, within a few seconds (the client timeout is a minute: the failure, not the
timeout, ends the request). Key logs are secrets: created or tightened to mode 0600."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from protolab import registry
from protolab.certs import CertBundle, ensure_certs
from protolab.core.record import Request, RequestRecord, Target
from protolab.errors import ConfigError
from protolab.registry import make_client
from protolab.timing import now_ns
from tests.conftest import ServerFactory
from tests.helpers import target_for

FAST_S = 5.0  # far below the clients' 60 s timeout: a shape, not a benchmark
TLS_CASES = [(name, True) for name in registry.NAMES] + [
    (name, False) for name in registry.by_capability(cleartext=True)
]


def probe(protocol: str) -> Request:
    spec = registry.get(protocol)
    return Request(path=spec.probe_path, body=spec.probe_body,
                   method="POST" if spec.probe_body else "GET")


async def one_request(protocol: str, target: Target) -> tuple[RequestRecord, float]:
    """One probe request on a fresh client; the record and how long it took, in s."""
    client = make_client(protocol, target)
    try:
        record = await client.request(probe(protocol))
    finally:
        await client.close()
    return record, (now_ns() - record.start_ns) / 1e9


@pytest.fixture
def closed_ports() -> Iterator[dict[str, int]]:
    """A TCP port and a UDP port nothing serves, kept ours while the test runs.

    TCP: bound, not listening — the kernel answers a SYN with RST. UDP: bound and
    connected to itself, so it accepts datagrams from nobody else and the kernel answers
    them with ICMP port unreachable (a bound socket that merely is not read would queue
    them silently, and a QUIC client could only time out).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        tcp.bind(("127.0.0.1", 0))
        udp.bind(("127.0.0.1", 0))
        udp.connect(udp.getsockname())
        yield {"tcp": tcp.getsockname()[1], "udp": udp.getsockname()[1]}


@pytest.fixture(scope="module")
def foreign_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second CA: valid PEM, but not the one that signed the lab server's leaf."""
    return ensure_certs(tmp_path_factory.mktemp("foreign-ca")).ca_file


@pytest.mark.asyncio
@pytest.mark.parametrize(("protocol", "tls"), TLS_CASES)
async def test_closed_port_is_connect_refused_at_once(
    closed_ports: dict[str, int], certs: CertBundle, protocol: str, tls: bool
) -> None:
    port = closed_ports[registry.get(protocol).transport]
    target = Target("127.0.0.1", port, tls=tls, ca_file=certs.ca_file if tls else None)
    record, took = await one_request(protocol, target)
    assert record.error == "connect_refused", record.error_detail
    assert f"127.0.0.1:{port}" in (record.error_detail or "")
    assert took < FAST_S


@pytest.mark.asyncio
async def test_closed_udp_port_over_ipv6_is_connect_refused(certs: CertBundle) -> None:
    # The connected socket's address is the IPv6 4-tuple aioquic must send to unchanged.
    try:
        udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        udp.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with udp:
        udp.connect(udp.getsockname())
        target = Target("::1", udp.getsockname()[1], ca_file=certs.ca_file)
        record, took = await one_request("h3", target)
    assert record.error == "connect_refused", record.error_detail
    assert took < FAST_S


@pytest.mark.asyncio
async def test_untrusted_ca_is_tls_verify_on_every_protocol(
    lab_server: ServerFactory, foreign_ca: Path
) -> None:
    async with lab_server(protocols=registry.NAMES) as running:
        for protocol in registry.NAMES:
            target = replace(target_for(running, protocol), ca_file=foreign_ca)
            record, took = await one_request(protocol, target)
            assert record.error == "tls_verify", (protocol, record.error, record.error_detail)
            assert "certificate" in (record.error_detail or ""), protocol
            assert took < FAST_S, protocol
            # The lab's own CA still works against the same server: the failure was the CA.
            good, _ = await one_request(protocol, target_for(running, protocol))
            assert good.ok, (protocol, good.error_detail)


@pytest.mark.asyncio
async def test_grpc_channel_to_a_server_that_is_not_grpc_fails_fast(
    lab_server: ServerFactory,
) -> None:
    async with lab_server(protocols=("h1",), certs=None) as running:
        # TCP connects; the HTTP/1.1 server does not speak gRPC's HTTP/2.
        target = Target("127.0.0.1", running.port("h1"), tls=False)
        record, took = await one_request("grpc", target)
    assert record.error == "connect_failed", record.error_detail
    assert took < FAST_S


@pytest.mark.parametrize("protocol", registry.NAMES)
@pytest.mark.parametrize("content", [b"not a certificate\n", None], ids=["junk", "directory"])
def test_unusable_ca_file_is_a_config_error_when_the_client_is_made(
    tmp_path: Path, protocol: str, content: bytes | None
) -> None:
    ca = tmp_path / "ca.pem"
    if content is None:
        ca.mkdir()
    else:
        ca.write_bytes(content)
    with pytest.raises(ConfigError, match="CA file"):
        make_client(protocol, Target("127.0.0.1", 1, ca_file=ca))


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", ["h1", "h2", "h3", "ws"])  # grpcio writes no key log
@pytest.mark.parametrize("existing", [False, True], ids=["new", "loose-existing"])
async def test_key_log_is_mode_0600(
    lab_server: ServerFactory, tmp_path: Path, protocol: str, existing: bool
) -> None:
    keylog = tmp_path / "keys.log"
    if existing:
        keylog.write_text("")
        keylog.chmod(0o644)
    old_umask = os.umask(0o022)  # the usual default: a plain open() would make it 0644
    try:
        async with lab_server(protocols=(protocol,)) as running:
            record, _ = await one_request(protocol, target_for(running, protocol,
                                                               keylog_file=keylog))
    finally:
        os.umask(old_umask)
    assert record.ok, record.error_detail
    assert stat.S_IMODE(keylog.stat().st_mode) == 0o600
    assert "TRAFFIC_SECRET" in keylog.read_text()  # NSS key log lines: Wireshark reads them


BAD_REQUESTS = [
    pytest.param(Request(path="/a b"), "path", id="space-in-path"),
    pytest.param(Request(path="/\u00e9"), "path", id="non-ascii-path"),
    pytest.param(Request(path="no-slash"), "path", id="relative-path"),
    pytest.param(Request(method="G ET"), "method", id="method"),
    pytest.param(Request(headers=(("X-Upper", "v"),)), "lower-case", id="upper-case-name"),
    pytest.param(Request(headers=(("x-a", "v\r\nx-b: injected"),)), "CR, LF", id="crlf-value"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", registry.NAMES)
@pytest.mark.parametrize(("request_", "words"), BAD_REQUESTS)
async def test_a_request_no_protocol_can_carry_is_bad_request_everywhere(
    certs: CertBundle, protocol: str, request_: Request, words: str
) -> None:
    # Refused before connecting: the target's port 1 is never tried. Before, h1 raised
    # h11's LocalProtocolError out of request(), and h2/h3 sent it for the server to reject.
    client = make_client(protocol, Target("127.0.0.1", 1, ca_file=certs.ca_file))
    try:
        record = await client.request(request_)
    finally:
        await client.close()
    assert record.error == "bad_request"
    assert words in (record.error_detail or "")
    assert record.conn_start_ns is None
