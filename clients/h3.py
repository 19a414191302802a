"""HTTP/3 client on aioquic: one QUIC connection, a stream per request, 0-RTT on request.

Session tickets the server sends are cached; with `zero_rtt=True`, a new connection
offers the latest ticket and sends its first request before the handshake completes,
so it leaves in 0-RTT packets (RFC 9001 §4.6). The record's `early_data` is true only
when the request was written before the handshake completed *and* the server
accepted early data — both read from the connection, not inferred from timing.

Failures are typed as the TCP clients type theirs (`clients.tcp`), and come at once:
the UDP socket is connected, so an ICMP port unreachable reaches `error_received` as
ECONNREFUSED ("connect_refused") instead of the handshake waiting for the idle timeout;
a handshake the TLS layer aborts ("tls_verify" for a rejected certificate, "tls_failed"
for other alerts) fails when the CONNECTION_CLOSE is decided, not three PTOs later when
aioquic reports the connection terminated (RFC 9000 §10.2).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, TextIO, cast

from aioquic.h3.connection import H3_ALPN
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import NetworkAddress
from aioquic.quic.logger import QuicFileLogger
from aioquic.tls import SessionTicket

from clients.base import timed_exchange
from clients.h3_connection import H3ClientProtocol, H3Stream, WatchedQuic
from clients.migration import Move, check_migrate_after
from protolab.compression import check_accept_encoding, with_accept_encoding
from protolab.core.record import Request, RequestRecord, Target, Timeline
from protolab.errors import ConfigError, ProtocolFailure
from protolab.qpack import DEFAULT_TABLE, check_table
from protolab.registry import MIGRATE_TO
from protolab.timing import now_ns
from protolab.tlsfiles import KeyLogFile, check_ca_file


@dataclass(frozen=True)
class H3Options:
    cc: str = "cubic"  # aioquic's congestion control
    connection_window: int = 16 << 20  # initial_max_data
    window: int = 4 << 20  # initial_max_stream_data
    zero_rtt: bool = False  # resume with a cached ticket and send the first request as 0-RTT
    ticket_wait: float = 5.0  # seconds close() waits for a session ticket when zero_rtt
    qlog_dir: Path | None = None
    timeout: float = 60.0
    # Accept-Encoding to send ("": the request's own, if any); coded bodies are decoded
    # as they arrive (protolab/compression.py): body_bytes stays what crossed the wire.
    accept_encoding: str = ""
    # Move to a new local UDP port once a response's body passes this many bytes (0:
    # never); the connection migrates (RFC 9000 §9), see clients/migration.py.
    migrate_after_bytes: int = 0
    # Where the move goes: "port" (a new UDP port, the address kept, as NAT rebinding
    # looks) or "address" (the new socket bound to `migrate_address`, a second local
    # address: the runner passes the emulated link's `client_addr_alt`).
    migrate_to: str = "port"
    migrate_address: str = ""
    # The QPACK dynamic table offered to the server (its response headers), bytes; 0:
    # static table only (protolab/qpack.py).
    qpack_table: int = DEFAULT_TABLE

    def __post_init__(self) -> None:
        if (why := check_table(self.qpack_table)) is not None:
            raise ConfigError(why)
        if self.cc not in ("reno", "cubic"):
            raise ConfigError(
                f"aioquic has no congestion control {self.cc!r}",
                hint="choose reno or cubic",
            )
        if (why := check_accept_encoding(self.accept_encoding)) is not None:
            raise ConfigError(why)
        check_migrate_after(self.migrate_after_bytes, "h3")
        if self.migrate_to not in MIGRATE_TO:
            raise ConfigError(f"h3: migrate_to must be one of {', '.join(MIGRATE_TO)}, "
                              f"got {self.migrate_to!r}")
        if self.migrate_address:
            try:
                ipaddress.ip_address(self.migrate_address)
            except ValueError:
                raise ConfigError(f"h3: migrate_address {self.migrate_address!r} is not an "
                                  "IP address") from None
        if self.migrate_to == "address" and self.migrate_after_bytes and not (
                self.migrate_address):
            raise ConfigError("h3: migrate_to = \"address\" needs a second local address "
                              "to move to (migrate_address)",
                              hint="suites over the emulated link get the link's own")


class H3Client:
    name: ClassVar[str] = "h3"

    def __init__(self, target: Target, options: H3Options | None = None) -> None:
        if not target.tls:
            raise ConfigError("HTTP/3 always runs over TLS (QUIC has no cleartext mode)")
        if target.ca_file is not None:
            check_ca_file(target.ca_file)  # aioquic reads it only when the server's arrives
        self.target, self.options = target, options or H3Options()
        self.tickets: list[SessionTicket] = []
        self._ticket_arrived = asyncio.Event()
        self._proto: H3ClientProtocol | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._lock = asyncio.Lock()
        self._numbers = 0
        # Opened (and so checked: a device that refuses writes is a ConfigError) now.
        self._keylog = KeyLogFile(target.keylog_file) if target.keylog_file else None
        self._moving: set[asyncio.Task[None]] = set()

    async def request(self, request: Request) -> RequestRecord:
        return await timed_exchange(self.name, request, self._exchange, self.options.timeout,
                                    on_timeout=self._timed_out)

    def _timed_out(self, tl: Timeline) -> None:
        """The request's time ran out: one that never saw the handshake complete is the
        handshake's failure, as a TLS handshake that never ends is over TCP, and the
        half-open connection is ended (its timers would outlive the request)."""
        proto = self._proto
        if proto is None or proto.handshake_complete:
            return
        tl.error = "handshake_timeout"
        tl.error_detail = (f"no QUIC handshake with {self.target.authority} within "
                           f"{self.options.timeout} s (nothing answers on that UDP port?)")
        self._proto = None
        proto.end()
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def close(self) -> None:
        """Close the connection at once: CONNECTION_CLOSE goes out, and the draining period
        (RFC 9000 §10.2) is not waited for — the server's state times out on its own."""
        if self._moving:  # a move under way finishes first: its socket is the one to close
            await asyncio.gather(*self._moving, return_exceptions=True)
        proto, transport = self._proto, self._transport
        self._proto = self._transport = None
        if proto is not None:
            if self.options.zero_rtt and proto.handshake_complete:
                await self._await_ticket()
            # CONNECTION_CLOSE, and the connection ends now (its qlog written): no timer
            # of it fires after the socket below is closed.
            proto.end()
        if transport is not None:
            transport.close()
        if self._keylog is not None:
            self._keylog.close()
            self._keylog = None

    async def _await_ticket(self) -> None:
        """A 0-RTT client keeps its connection until the server's NewSessionTicket arrives
        (about one RTT after the handshake), as a browser's long-lived connection would;
        without it the next connection could not resume. Outside any request's record."""
        try:
            await asyncio.wait_for(self._ticket_arrived.wait(), self.options.ticket_wait)
        except TimeoutError:
            pass  # the server issued none; the next connection does a full handshake

    def _on_ticket(self, ticket: SessionTicket) -> None:
        self.tickets.append(ticket)
        self._ticket_arrived.set()

    async def _exchange(self, request: Request, tl: Timeline) -> None:
        proto, new = await self._connection(tl)
        tl.connection_id = self._numbers
        h3 = proto.h3
        sid = proto._quic.get_next_available_stream_id()
        tl.stream_id = sid
        stream = H3Stream(tl, asyncio.get_running_loop().create_future(),
                          move=Move(self.options.migrate_after_bytes))
        proto.streams[sid] = stream
        scheme = b"https"
        headers = [
            (b":method", request.method.encode()), (b":scheme", scheme),
            (b":authority", self.target.authority.encode()), (b":path", request.path.encode()),
            (b"user-agent", b"protolab"),
            *((n.encode(), v.encode())
              for n, v in with_accept_encoding(request.headers, self.options.accept_encoding)),
        ]
        if request.body or request.method in ("POST", "PUT"):
            headers.append((b"content-length", str(len(request.body)).encode()))
        sent_early = not proto.handshake_complete
        h3.send_headers(sid, headers, end_stream=not request.body)
        if request.body:
            h3.send_data(sid, request.body, end_stream=True)
        await proto.transmit_soon()
        tl.request_sent_ns = now_ns()
        if new and sent_early:
            await self._wait_handshake(proto)
        if new:
            tl.handshake_ns = proto.handshake_ns
        tl.early_data = sent_early and proto.early_data_accepted
        tl.resumed = proto.resumed
        tl.alpn = "h3"
        tl.tls_version, tl.cipher = proto.tls_details()
        try:
            await stream.done
            if self._keylog is not None and self._keylog.failure is not None:
                raise self._keylog.failure  # the secrets of this connection are not saved
        finally:
            proto.streams.pop(sid, None)
            tl.bytes_out = proto.meter.sent.pop(sid, 0)
            tl.bytes_in = stream.received
            tl.transport = {**tl.transport,
                            **(dict(proto.datagrams.counters) if proto.datagrams else {})}
            if stream.move.moved:
                tl.transport.update(proto.path_change)
            stream.move.finish(tl)

    async def _connection(self, tl: Timeline) -> tuple[H3ClientProtocol, bool]:
        async with self._lock:
            if self._proto is not None and self._proto.terminated is None:
                tl.new_connection = False
                return self._proto, False
            await self.close()
            configuration = QuicConfiguration(
                alpn_protocols=H3_ALPN,
                is_client=True,
                server_name=self.target.server_name or self.target.host,
                congestion_control_algorithm=self.options.cc,
                max_data=self.options.connection_window,
                max_stream_data=self.options.window,
                quic_logger=QuicFileLogger(str(self.options.qlog_dir))
                if self.options.qlog_dir else None,
                secrets_log_file=self._secrets_log(),
            )
            if self.target.ca_file is not None:
                configuration.load_verify_locations(str(self.target.ca_file))
            if self.options.zero_rtt and self.tickets:
                # Servers take each ticket once (anti-replay, RFC 8446 §8): use the newest.
                configuration.session_ticket = self.tickets.pop()
            self._ticket_arrived.clear()
            address = await self._address()
            proto = await self._open(configuration, address)
            tl.new_connection = True
            tl.conn_start_ns = now_ns()
            self._numbers += 1
            # With 0-RTT the request goes out before the handshake; otherwise wait for it.
            proto.connect(address, transmit=True)
            proto.on_move_due = lambda: self._move(proto, address)
            self._proto = proto
            if configuration.session_ticket is None:
                await self._wait_handshake(proto)
            return proto, True

    def _secrets_log(self) -> TextIO | None:
        """The NSS key log aioquic appends to (Wireshark decrypts QUIC with it); a write
        that fails is kept as the requests' typed failure, not raised inside aioquic."""
        if self.target.keylog_file is None:
            return None
        if self._keylog is None:
            self._keylog = KeyLogFile(self.target.keylog_file)  # mode 0600; closed in close()
        return cast(TextIO, self._keylog)

    async def _wait_handshake(self, proto: H3ClientProtocol) -> None:
        try:
            await asyncio.wait_for(proto.wait_handshake(), self.options.timeout)
        except TimeoutError as exc:
            raise ProtocolFailure(
                "handshake_timeout", f"no QUIC handshake with {self.target.authority}"
            ) from exc
        except ConnectionError as exc:  # aioquic: terminated before the handshake completed
            if proto.failure is not None:
                raise proto.failure from exc
            raise ProtocolFailure("handshake_failed", f"QUIC handshake with "
                                  f"{self.target.authority} failed") from exc

    def _move(self, proto: H3ClientProtocol, address: NetworkAddress) -> None:
        """Leave the local UDP port (and with migrate_to = "address", the local address)
        now, as a host whose address changed: the old socket closes (what the server still
        sends there is lost), a new one — open before the old closes, so the kernel cannot
        hand out the same port — carries the connection on under a new connection ID (RFC
        9000 §9.5). Its first packet, a PING, is the non-probing packet that makes the
        server switch paths and validate this one."""
        old = self._transport
        if old is None or proto.datagrams is None or proto is not self._proto:
            return
        family = socket.AF_INET6 if ":" in str(address[0]) else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        to_address = self.options.migrate_to == "address"
        try:
            sock.setblocking(False)
            if to_address:
                sock.bind((self.options.migrate_address, 0))
            sock.connect((str(address[0]), int(address[1])))
        except OSError as exc:
            sock.close()
            where = f"address {self.options.migrate_address}" if to_address else "port"
            proto.fail(ProtocolFailure("connect_failed", f"moving to a new {where}: {exc}"))
            return
        old_name, new_name = old.get_extra_info("sockname"), sock.getsockname()
        proto.datagrams.detach()
        old.close()
        proto.moved(old_name[1], new_name[1], new_address=old_name[0] != new_name[0])
        proto.change_connection_id()  # sent (queued for the new socket) at once
        task = asyncio.create_task(self._rebind(proto, sock))
        self._moving.add(task)
        task.add_done_callback(self._moving.discard)

    async def _rebind(self, proto: H3ClientProtocol, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(lambda: proto, sock=sock)
        except OSError as exc:
            sock.close()
            proto.fail(ProtocolFailure("connect_failed", f"moving to a new port: {exc}"))
            return
        if self._proto is not proto:  # closed meanwhile
            transport.close()
            return
        self._transport = transport
        proto._quic.send_ping(0)
        proto.transmit()

    async def _address(self) -> NetworkAddress:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(
                self.target.host, self.target.port, type=socket.SOCK_DGRAM
            )
        except socket.gaierror as exc:
            raise ProtocolFailure("dns", f"cannot resolve {self.target.host}") from exc
        return cast(NetworkAddress, infos[0][4])

    async def _open(
        self, configuration: QuicConfiguration, address: NetworkAddress
    ) -> H3ClientProtocol:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in str(address[0]) else socket.AF_INET
        connection = WatchedQuic(
            configuration=configuration, session_ticket_handler=self._on_ticket
        )
        # A connected socket: the kernel reports ICMP errors for its peer (error_received)
        # and drops datagrams from anyone else. asyncio's transport then sends only to
        # `address`, which is the one address aioquic sends to (the client migrates to
        # a new local port, never to another server address).
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: H3ClientProtocol(connection, qpack_table=self.options.qpack_table),
                family=family,
                remote_addr=(str(address[0]), int(address[1])),
            )
        except OSError as exc:
            raise ProtocolFailure(
                "connect_failed", f"{self.target.authority}: {exc.strerror}") from exc
        self._transport = transport
        protocol.authority = self.target.authority
        return protocol
