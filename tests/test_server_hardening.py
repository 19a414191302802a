"""The servers against hostile and careless peers, one test per class of defect: each
gets a clear answer or a clean close, one log line that names the peer and the reason,
and the server goes on serving everybody else.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import os
import re
import socket
import ssl
import struct
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import QuicEvent
from aioquic.tls import CipherSuite, SessionTicket
from grpc_reflection.v1alpha import reflection_pb2

from protolab import registry
from protolab.certs import (
    SERVER_TLS12_CIPHERS,
    CertBundle,
    client_tls_context,
    server_tls_context,
)
from protolab.core.record import Request
from protolab.labserver import start_local
from protolab.registry import make_client
from protolab.workload import DEFAULT_LIMITS
from servers.common import H3Settings, ServerConfig, printable
from servers.grpc import REFLECTION_V1, SERVICE, local_ipv4_addresses
from servers.h3 import TicketStore
from servers.run import RunningServers
from tests.conftest import ServeProcess, ServerFactory
from tests.helpers import TIMEOUT, target_for
from tests.test_bad_input import server_lines

CBC_ONLY = ("ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA:"
            "ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES128-SHA256:AES128-SHA256:AES256-SHA256:"
            "AES128-SHA:AES256-SHA")


async def exchange(port: int, payload: bytes) -> tuple[bytes, bool]:
    """Send `payload` on a fresh cleartext connection; what came back, and whether the
    server closed the connection (EOF) rather than keeping it for another request."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    received, closed = b"", False
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65_536), 1.0)
            if not chunk:
                closed = True
                break
            received += chunk
    except TimeoutError:
        pass  # still open after its answer: kept for another request
    except ConnectionResetError:
        closed = True
    finally:
        writer.close()
    return received, closed


async def still_serves(running: RunningServers, protocol: str = "h2") -> None:
    """A normal request of `protocol` (its registry probe) is answered."""
    spec = registry.get(protocol)
    client = make_client(protocol, target_for(running, protocol))
    try:
        record = await client.request(Request(path=spec.probe_path, body=spec.probe_body))
    finally:
        await client.close()
    assert record.ok, record.error_detail


# --- HTTP/1.1: what h11 lets through and RFC 9112 does not ---------------------------------

NEXT = b"GET /bytes/3 HTTP/1.1\r\nHost: lab\r\n\r\n"  # pipelined: answered only if kept open
STATUS_LINE = re.compile(rb"HTTP/1\.1 \d{3} ")


@pytest.mark.asyncio
@pytest.mark.parametrize(("head", "status", "words"), [
    (b"POST /echo HTTP/1.1\r\nHost: lab\r\nContent-Length: 5\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400,
     "both Content-Length and Transfer-Encoding"),
    (b"GET /bytes/5 HTTP/9.9\r\nHost: lab\r\n\r\n", 505, "HTTP/9.9 is not supported"),
    (b"GET /bytes/5 HTTP/2.0\r\nHost: lab\r\n\r\n", 505, "HTTP/2.0 is not supported"),
    (b"GET /bytes/5 HTTP/1.1\r\nHost: lab\r\nX-Folded: a\r\n  b\r\n\r\n", 400,
     "obsolete line folding"),
    (b"POST /echo HTTP/1.1\r\nHost: lab\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
     b"hello!", 400, "bad request"),
    (b"GET /bytes/5 HTTP/1.1\r\nHost: lab\r\nBad Name: v\r\n\r\n", 400, "bad request"),
    (b"GET /bytes/5 HTTP/1.1\r\nHost: lab\r\nBad\x01: v\r\n\r\n", 400, "bad request"),
], ids=["cl-and-te", "http-9.9", "http-2.0", "obs-fold", "two-content-lengths",
        "space-in-name", "control-in-name"])
async def test_rfc9112_ambiguous_or_foreign_requests_are_refused_and_the_connection_closed(
    lab_server: ServerFactory, caplog: pytest.LogCaptureFixture,
    head: bytes, status: int, words: str,
) -> None:
    caplog.set_level(logging.INFO, "protolab.server")
    async with lab_server(certs=None, protocols=("h1", "h2")) as running:
        answer, closed = await exchange(running.port("h1"), head + NEXT)
        await still_serves(running, "h1")
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:80]
    assert len(STATUS_LINE.findall(answer)) == 1  # the pipelined request was not served after it
    assert closed
    lines = [line for line in server_lines(caplog, "h1 127.0.0.1:") if str(status) in line]
    assert len(lines) == 1
    assert words in lines[0]
    assert "bytearray" not in lines[0]


@pytest.mark.asyncio
async def test_rfc9112_http_1_0_and_1_x_are_still_answered(lab_server: ServerFactory) -> None:
    async with lab_server(certs=None, protocols=("h1", "h2")) as running:
        old, _ = await exchange(running.port("h1"), b"GET /bytes/5 HTTP/1.0\r\n\r\n")
        newer, kept = await exchange(running.port("h1"),
                                     b"GET /bytes/5 HTTP/1.9\r\nHost: lab\r\n\r\n" + NEXT)
    assert old.startswith(b"HTTP/1.1 200 ")
    assert len(STATUS_LINE.findall(newer)) == 2  # a 1.x minor version is served as 1.1
    assert not kept


def test_log_lines_quote_a_short_escaped_prefix_of_the_peers_bytes() -> None:
    line = printable("illegal request line: bytearray(b'" + "\\x00" * 500 + "')")
    assert "bytearray" not in line
    assert line.startswith("illegal request line: '\\x00")
    assert len(line) < 80
    assert printable("a\x1b[31mred\nline") == "a\\x1b[31mred\\nline"


# --- idle connections are freed --------------------------------------------------------------

async def tls_handshake_then_silence(
    port: int, ca_file: Path, alpn: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection that completes a TLS handshake (in memory BIOs) and then says
    nothing: its reader sees the raw TCP stream, so EOF there is the server's FIN."""
    context = ssl.create_default_context(cafile=str(ca_file))
    context.set_alpn_protocols([alpn])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            writer.write(outgoing.read())
            data = await asyncio.wait_for(reader.read(65_536), TIMEOUT)
            assert data, "the server closed during the handshake"
            incoming.write(data)
    writer.write(outgoing.read())
    return reader, writer


async def eof_after(reader: asyncio.StreamReader) -> float:
    """Seconds until the server closes the TCP connection (whatever it sent before)."""
    start = time.monotonic()
    try:
        while await reader.read(65_536):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - start


@pytest.mark.asyncio
async def test_idle_connections_of_every_kind_are_closed_after_the_idle_timeout(
    lab_server: ServerFactory,
) -> None:
    async with lab_server(protocols=("h1", "h2", "ws"), idle_timeout=1.0) as running:
        assert running.certs is not None
        ca, http, ws = running.certs.ca_file, running.port("h1"), running.port("ws")
        opened: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        for i in range(10):  # 50 connections, 5 kinds
            opened.append(await asyncio.open_connection("127.0.0.1", http))  # no TLS at all
            reader, writer = await asyncio.open_connection("127.0.0.1", ws)
            writer.write(b"\x16\x03\x01\x02\x00\x01")  # half a ClientHello
            opened.append((reader, writer))
            opened.append(await tls_handshake_then_silence(http, ca, "h2"))
            opened.append(await tls_handshake_then_silence(http, ca, "http/1.1"))
            opened.append(await tls_handshake_then_silence(ws, ca, "http/1.1"))
            assert len(opened) == 5 * (i + 1)
        try:
            waits = await asyncio.wait_for(
                asyncio.gather(*(eof_after(reader) for reader, _ in opened)), TIMEOUT)
            await still_serves(running, "h2")
        finally:
            for _, writer in opened:
                writer.close()
    assert len(waits) == 50
    # Closed after the idle timeout (1 s) and the short TLS shutdown (2 s), not 30 s later.
    assert max(waits) < 1.0 + 2.0 + 3.0


@pytest.mark.asyncio
async def test_an_http2_request_left_half_sent_does_not_hold_the_connection(
    lab_server: ServerFactory,
) -> None:
    from tests.test_h2_conformance import raw_h2, request_headers

    async with lab_server(certs=None, protocols=("h1", "h2"), idle_timeout=1.0) as running:
        async with raw_h2(running) as client:
            await client.send(request_headers(1, end_stream=False))  # and nothing more
            goaways = await asyncio.wait_for(client.goaways_then_eof(), TIMEOUT)
        await still_serves(running)
    assert len(goaways) == 1
    assert goaways[0].error_code == 0  # NO_ERROR: idle, not the client's fault


@pytest.mark.asyncio
async def test_a_client_that_stops_reading_is_idle_too(
    lab_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "protolab.server")
    async with lab_server(certs=None, protocols=("h1", "h2"), idle_timeout=1.0) as running:
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port("h1"))
        writer.write(b"GET /bytes/200000000 HTTP/1.1\r\nHost: lab\r\n\r\n")  # never read
        try:
            line = await wait_for_line(caplog, "read nothing of the response")
        finally:
            writer.close()
        await still_serves(running, "h1")
    assert re.match(r"h1 127\.0\.0\.1:\d+: read nothing of the response for 1 s", line)


@pytest.mark.asyncio
async def test_an_http2_response_the_clients_window_holds_back_does_not_hold_the_connection(
    lab_server: ServerFactory,
) -> None:
    from tests.test_h2_conformance import raw_h2, request_headers

    async with lab_server(certs=None, protocols=("h1", "h2"), idle_timeout=1.0) as running:
        async with raw_h2(running) as client:  # 65,535-byte windows, never a WINDOW_UPDATE
            await client.send(request_headers(1, path="/bytes/1000000"))
            goaways = await asyncio.wait_for(client.goaways_then_eof(), TIMEOUT)
        await still_serves(running)
    assert len(goaways) == 1
    assert goaways[0].error_code == 0


async def wait_for_line(caplog: pytest.LogCaptureFixture, words: str) -> str:
    """The first protolab.server line with `words`, as soon as it is logged."""
    arrived = asyncio.Event()
    loop = asyncio.get_running_loop()

    class Signal(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if words in record.getMessage():
                loop.call_soon_threadsafe(arrived.set)

    handler = Signal()
    logging.getLogger("protolab.server").addHandler(handler)
    try:
        if not server_lines(caplog, words):
            await asyncio.wait_for(arrived.wait(), TIMEOUT)
    finally:
        logging.getLogger("protolab.server").removeHandler(handler)
    return server_lines(caplog, words)[0]


@pytest.mark.asyncio
async def test_rfc9000_10_1_an_idle_quic_connection_is_discarded_after_the_idle_timeout(
    lab_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "protolab.server")
    async with lab_server(idle_timeout=1.0) as running:
        assert running.certs is not None
        configuration = QuicConfiguration(alpn_protocols=H3_ALPN, is_client=True,
                                          idle_timeout=60.0, server_name="localhost")
        configuration.load_verify_locations(str(running.certs.ca_file))
        async with connect("127.0.0.1", running.port("h3"), configuration=configuration,
                           create_protocol=QuicOnly, wait_connected=True) as client:
            connected = time.monotonic()
            advertised = client._quic._remote_max_idle_timeout  # aioquic keeps it private
            await wait_for_line(caplog, "connection state discarded")
            idle_for = time.monotonic() - connected
        await still_serves(running, "h3")
    assert advertised == 1.0  # max_idle_timeout, from --idle-timeout (was always 60 s)
    assert running.h3_stats.idle_closed == 1
    assert 0.9 <= idle_for < 1.0 + 4.0  # a shape, not a timing benchmark


class QuicOnly(QuicConnectionProtocol):
    """A QUIC client that ignores the streams the server opens (HTTP/3's control and
    QPACK streams): these tests are about the connection, not HTTP."""

    def quic_event_received(self, event: QuicEvent) -> None:
        pass


def _ticket(label: int, not_after: dt.datetime) -> SessionTicket:
    return SessionTicket(age_add=0, cipher_suite=CipherSuite.AES_128_GCM_SHA256,
                         not_valid_after=not_after,
                         not_valid_before=not_after - dt.timedelta(days=1),
                         resumption_secret=b"s", server_name="localhost",
                         ticket=label.to_bytes(4, "big"))


def test_the_session_ticket_store_keeps_the_newest_and_drops_expired_ones() -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    store = TicketStore(capacity=8)
    for label in range(1000):
        store.add(_ticket(label, now + dt.timedelta(days=1)), now=now)
    assert len(store) == 8
    assert store.pop((0).to_bytes(4, "big"), now=now) is None  # the oldest went first
    assert store.pop((999).to_bytes(4, "big"), now=now) is not None
    assert store.pop((999).to_bytes(4, "big"), now=now) is None  # single use (RFC 8446 §8.1)
    later = now + dt.timedelta(days=2)  # every ticket so far has expired
    store.add(_ticket(5000, later + dt.timedelta(days=1)), now=later)
    assert len(store) == 1
    assert store.pop((998).to_bytes(4, "big"), now=later) is None


@pytest.mark.asyncio
async def test_many_resumptions_leave_a_bounded_ticket_store(lab_server: ServerFactory) -> None:
    async with lab_server(protocols=("h3",), h3=H3Settings(session_tickets=3)) as running:
        assert running.certs is not None
        tickets: list[SessionTicket] = []
        resumed = 0
        for _ in range(12):
            configuration = QuicConfiguration(alpn_protocols=H3_ALPN, is_client=True,
                                              server_name="localhost")
            configuration.load_verify_locations(str(running.certs.ca_file))
            if tickets:
                configuration.session_ticket = tickets[-1]
            got = asyncio.Event()

            def keep(ticket: SessionTicket, got: asyncio.Event = got) -> None:
                tickets.append(ticket)
                got.set()

            async with connect("127.0.0.1", running.port("h3"), configuration=configuration,
                               create_protocol=QuicOnly, session_ticket_handler=keep) as client:
                await asyncio.wait_for(got.wait(), TIMEOUT)
                resumed += bool(client._quic.tls.session_resumed)
        held = running.h3_stats.tickets
    assert resumed == 11
    assert held <= 3


# --- TLS: AEAD suites only; private key logs --------------------------------------------------

def test_every_server_tls_context_offers_aead_suites_only(certs: CertBundle) -> None:
    for version in ("1.2", "1.3"):
        context = server_tls_context(certs, ["h2", "http/1.1"], version)
        suites = context.get_ciphers()
        assert all(suite["aead"] for suite in suites), [s["name"] for s in suites]
        tls12 = [suite["name"] for suite in suites if suite["protocol"] == "TLSv1.2"]
        assert tls12
        assert all(name.startswith("ECDHE-") for name in tls12), tls12  # forward secrecy
    assert SERVER_TLS12_CIPHERS == "ECDHE+AESGCM:ECDHE+CHACHA20"


def cbc_only_client(ca_file: Path, alpn: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(str(ca_file))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(CBC_ONLY)
    context.set_alpn_protocols([alpn])
    assert not any(s["aead"] for s in context.get_ciphers() if s["protocol"] == "TLSv1.2")
    return context


async def tls_connect(port: int, context: ssl.SSLContext) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context,
                                              server_hostname="localhost")
    writer.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", ["h1", "ws", "grpc"])
async def test_a_client_offering_only_cbc_suites_cannot_connect(
    lab_server: ServerFactory, caplog: pytest.LogCaptureFixture, protocol: str
) -> None:
    caplog.set_level(logging.INFO, "protolab.server")
    async with lab_server(tls_version="1.2", protocols=("h1", "h2", "ws", "grpc")) as running:
        assert running.certs is not None
        context = cbc_only_client(running.certs.ca_file, "h2" if protocol == "grpc" else
                                  "http/1.1")
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await tls_connect(running.port(protocol), context)
        await still_serves(running, protocol)
    if protocol != "grpc":  # grpcio's C core gives no hook to log its handshakes
        lines = server_lines(caplog, "TLS handshake failed")
        assert len(lines) == 1
        assert "NO_SHARED_CIPHER" in lines[0]


@pytest.mark.asyncio
async def test_key_logs_are_readable_by_their_owner_only(
    lab_server: ServerFactory, tmp_path: Path, certs: CertBundle
) -> None:
    server_log = tmp_path / "server-quic-secrets.log"
    server_log.write_text("")
    server_log.chmod(0o644)  # an existing file is made private too
    async with lab_server(h3=H3Settings(secrets_log=server_log)) as running:
        await still_serves(running, "h3")
    client_log = tmp_path / "client-keys.log"
    client_tls_context(certs.ca_file, ["h2"], keylog_file=client_log)
    assert server_log.stat().st_size > 0
    assert server_log.stat().st_mode & 0o777 == 0o600
    assert client_log.stat().st_mode & 0o777 == 0o600


# --- log lines: which connection, what happened, why; once -----------------------------------

@pytest.mark.asyncio
@pytest.mark.parametrize(("garbage", "reason"), [
    (b"GET / HTTP/1.1\r\nHost: lab\r\n\r\n", "HTTP_REQUEST"),
    (b"\x16\x03\x01\x00\x05hello" + b"GARBAGE" * 10, "UNEXPECTED_MESSAGE"),
])
@pytest.mark.parametrize("protocol", ["h1", "ws"])
async def test_tls_garbage_is_one_line_with_the_peer_and_a_reason(
    lab_server: ServerFactory, caplog: pytest.LogCaptureFixture, protocol: str,
    garbage: bytes, reason: str,
) -> None:
    caplog.set_level(logging.INFO, "protolab.server")
    async with lab_server(protocols=("h1", "h2", "ws")) as running:
        await exchange(running.port(protocol), garbage)
        line = await wait_for_line(caplog, "TLS handshake failed")
        await still_serves(running, "h1" if protocol == "h1" else "ws")
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("protolab.server")]
    assert lines == [line]
    assert re.match(r"(tcp|ws) 127\.0\.0\.1:\d+: TLS handshake failed: ", line)
    assert reason in line


async def leave_mid_response(running: RunningServers, protocol: str) -> None:
    """A client that asks for a lot, reads a little, and resets the connection."""
    assert running.certs is not None
    context = ssl.create_default_context(cafile=str(running.certs.ca_file))
    context.set_alpn_protocols(["h2" if protocol == "h2" else "http/1.1"])
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", running.port(protocol), ssl=context, server_hostname="localhost")
    if protocol == "h2":
        import h2.config
        import h2.connection

        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.increment_flow_control_window(1 << 30)
        conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 30})
        for stream in range(1, 41, 2):
            conn.send_headers(stream, [(":method", "GET"), (":path", "/bytes/5000000"),
                                       (":scheme", "https"), (":authority", "lab")],
                              end_stream=True)
        writer.write(conn.data_to_send())
    else:  # 20 pipelined requests for 1 MB each
        writer.write(b"GET /bytes/1000000 HTTP/1.1\r\nHost: lab\r\n\r\n" * 20)
    await writer.drain()
    await reader.readexactly(50_000)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", ["h1", "h2"])
async def test_a_client_that_leaves_mid_response_costs_a_few_lines_at_most(
    lab_server: ServerFactory, caplog: pytest.LogCaptureFixture, protocol: str
) -> None:
    caplog.set_level(logging.INFO)
    async with lab_server(protocols=("h1", "h2")) as running:
        for _ in range(3):
            await leave_mid_response(running, protocol)
        await still_serves(running, protocol)  # and the server went on
    floods = [r for r in caplog.records if "socket.send() raised" in r.getMessage()]
    assert floods == []  # was 1,238 lines for three such clients
    assert len([r for r in caplog.records if r.name.startswith(("protolab", "asyncio"))]) <= 6


@pytest.mark.asyncio
async def test_websocket_lines_name_the_peer(
    lab_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "protolab.server")
    async with lab_server(certs=None, protocols=("h1", "h2", "ws")) as running:
        # Not an upgrade (426 from websockets itself), then an unknown path (ours, 404).
        await exchange(running.port("ws"), b"GET /echo HTTP/1.1\r\nHost: lab\r\n\r\n")
        await exchange(running.port("ws"), b"GET /nowhere HTTP/1.1\r\nHost: lab\r\n"
                       b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
                       b"dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        await still_serves(running, "ws")
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("protolab.server")]
    assert len(lines) == 2, lines
    assert all(re.match(r"ws 127\.0\.0\.1:\d+: ", line) for line in lines), lines
    assert "426" in lines[0]
    assert "404" in lines[1]
    assert "None" not in " ".join(lines)


# --- bind exactly the asked host -----------------------------------------------------------

def listening_addresses(pid: int | str = "self") -> dict[int, set[str]]:
    """Port -> local addresses of a process's listening TCP and bound UDP sockets."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found: dict[int, set[str]] = {}
    for table, listening in (("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != listening or fields[9] not in inodes:
                continue
            raw, port = fields[1].split(":")
            found.setdefault(int(port, 16), set()).add(_address(raw))
    return found


def _address(raw: str) -> str:
    import ipaddress

    words = bytes.fromhex(raw)
    packed = b"".join(words[i:i + 4][::-1] for i in range(0, len(words), 4))
    address = ipaddress.ip_address(packed)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)  # an IPv6 socket bound to an IPv4 address
    return str(address)


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "::1"])
def test_every_protocol_binds_exactly_the_asked_host(
    base_config: ServerConfig, host: str
) -> None:
    if host == "::1" and not _has_ipv6_loopback():
        pytest.skip("no IPv6 loopback here")
    # A server process of its own: grpcio's C core decides once per process whether IPv6
    # loopback exists, and a test that ran grpcio on a thread inside an IPv6-less network
    # namespace would have settled that question for this whole test process.
    config = dataclasses.replace(base_config, host=host,
                                 protocols=("h1", "h2", "h3", "ws", "grpc"))
    with start_local(config) as server:
        bound = listening_addresses(server.pid)
        ports = {p: server.port(p) for p in config.protocols}
    for protocol, port in ports.items():
        if protocol == "grpc" and host == "0.0.0.0":
            # grpcio would bind [::] (dual-stack): every IPv4 address instead, and no IPv6.
            assert bound[port] == set(local_ipv4_addresses()), bound[port]
            assert "127.0.0.1" in bound[port]
        else:
            assert bound[port] == {host}, (protocol, bound[port])


def test_the_hosts_ipv4_addresses_come_from_its_local_routes(tmp_path: Path) -> None:
    trie = tmp_path / "fib_trie"
    trie.write_text("Local:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.0.0.7\n        /32 host LOCAL\n"
                    "     |-- 10.0.0.255\n        /32 link BROADCAST\n"
                    "     |-- 127.0.0.1\n        /32 host LOCAL\n"
                    "     |-- 127.0.0.0\n        /8 host LOCAL\n")
    assert local_ipv4_addresses(trie) == ["127.0.0.1", "10.0.0.7"]
    assert local_ipv4_addresses(tmp_path / "missing") == []


# --- gRPC reflection v1 ------------------------------------------------------------------

@pytest.mark.asyncio
async def test_grpc_reflection_v1_lists_and_describes_the_lab_service(
    lab_server: ServerFactory,
) -> None:
    async with lab_server(certs=None, protocols=("h1", "h2", "grpc")) as running:
        port = running.port("grpc")

        def ask_v1() -> list[reflection_pb2.ServerReflectionResponse]:
            # v1 and v1alpha share their messages; what is v1 is the method's name.
            requests = [reflection_pb2.ServerReflectionRequest(list_services=""),
                        reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE),
                        reflection_pb2.ServerReflectionRequest(
                            file_containing_symbol=REFLECTION_V1)]
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                call = channel.stream_stream(
                    f"/{REFLECTION_V1}/ServerReflectionInfo",
                    request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                    response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
                return list(call(iter(requests), timeout=TIMEOUT))

        listed, lab, itself = await asyncio.to_thread(ask_v1)
    names = [service.name for service in listed.list_services_response.service]
    assert SERVICE in names
    assert REFLECTION_V1 in names
    assert lab.WhichOneof("message_response") == "file_descriptor_response"
    assert itself.WhichOneof("message_response") == "file_descriptor_response"


# --- serve --no-tls ---------------------------------------------------------------------------

def test_serve_no_tls_with_the_default_protocols_drops_http3_with_one_notice(
    serve_process: Callable[..., ServeProcess],
) -> None:
    server = serve_process("--no-tls")
    assert set(server.urls) == {"h1", "h2"}
    assert all(url.startswith("http://") for url in server.urls.values())
    notices = [line for line in server.log.read_text().splitlines() if "--no-tls" in line]
    assert len(notices) == 1
    assert "HTTP/3" in notices[0]


def test_serve_no_tls_with_h3_named_is_an_error_naming_the_fix() -> None:
    from tests.test_cli import protolab

    result = protolab("serve", "--no-tls", "--proto", "h1,h3", "--port", "0")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "HTTP/3 needs TLS" in lines[0]
    assert "drop --no-tls" in lines[0]


_BIG = 16 << 20  # far more than a socket's buffers hold: most is still unsent at refusal


def _send_all_then_read(port: int, ca_file: Path | None, head: bytes, size: int) -> bytes:
    """Send `head` and `size` bytes after it as one blocking client would, then read to
    the end: what the server said, or ConnectionError if a reset took it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    if ca_file is not None:
        sock = client_tls_context(ca_file, ["http/1.1"]).wrap_socket(
            sock, server_hostname="localhost")
    with sock:
        return _send_then_read(sock, head, size)


def _send_then_read(sock: socket.socket, head: bytes, size: int) -> bytes:
    sock.sendall(head)
    chunk = bytes(65_536)
    for _ in range(size // len(chunk)):
        sock.sendall(chunk)
    received = b""
    while part := sock.recv(65_536):
        received += part
    return received


def _ws_upgrade(port: int, ca_file: Path | None) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    if ca_file is not None:
        sock = client_tls_context(ca_file, ["http/1.1"]).wrap_socket(
            sock, server_hostname="localhost")
    sock.sendall(b"GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 b"Sec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _ws_send_big_then_read(port: int, ca_file: Path | None, size: int) -> bytes:
    with _ws_upgrade(port, ca_file) as sock:
        # One binary frame, masked with the key 0 (RFC 6455 §5.2): payload as is.
        return _send_then_read(sock, b"\x82\xff" + struct.pack("!Q", size) + bytes(4), size)


@pytest.mark.asyncio
@pytest.mark.parametrize("tls", [False, True], ids=["cleartext", "tls"])
@pytest.mark.parametrize("protocol", ["h1", "ws"])
async def test_a_client_refused_while_it_is_still_sending_reads_the_refusal(
    lab_server: ServerFactory, protocol: str, tls: bool
) -> None:
    """RFC 1122 §4.2.2.13: closing with unread data sends a reset, which can take the
    server's last words with it; the server lingers, so the client gets them."""
    small = dataclasses.replace(DEFAULT_LIMITS, max_body_bytes=1 << 16)
    overrides = {} if tls else {"certs": None}
    async with lab_server(protocols=("h1", "h2", "ws"), limits=small, **overrides) as running:
        ca = running.certs.ca_file if running.certs is not None else None
        if protocol == "h1":
            head = (b"POST /echo HTTP/1.1\r\nHost: localhost\r\n"
                    b"Content-Length: %d\r\n\r\n" % _BIG)
            got = await asyncio.to_thread(_send_all_then_read, running.port("h1"), ca,
                                          head, _BIG)
            assert got.startswith(b"HTTP/1.1 413"), got[:80]
        else:
            got = await asyncio.to_thread(_ws_send_big_then_read, running.port("ws"), ca,
                                          _BIG)
            assert got[:1] == b"\x88", got[:16]  # a close frame
            assert struct.unpack("!H", got[2:4])[0] == 1009, got[:16]
        await still_serves(running, "h2")
