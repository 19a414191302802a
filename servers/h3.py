"""HTTP/3 server on aioquic.

Response bodies are fed into QUIC streams as the connection sends them (a small
unsent backlog per stream) rather than all at once: a 100 MB body is not copied into
memory, and the server can choose which stream gets data next — "round-robin" feeds
every open response (aioquic then serves streams in turn), "sequential" feeds only
the lowest-numbered one, as the HTTP/2 server does.

Session tickets are issued and accepted, so a client holding one can resume and send
its request as 0-RTT early data (RFC 9001 §4.6); requests that arrive before the
handshake completes are counted as `early_requests`. The server keeps at most
`H3Settings.session_tickets` of them, the least recently issued dropped first, and never
an expired one: each connection leaves a ticket behind, and clients that never come
back used to leave them forever.

The idle timeout is QUIC's own (RFC 9000 §10.1): advertised as max_idle_timeout and kept
by aioquic's timer, so an idle connection's state is discarded silently after it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, cast

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer
from aioquic.buffer import Buffer  # type: ignore[attr-defined]
from aioquic.h3.connection import H3_ALPN, ErrorCode, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import NetworkAddress, QuicConnectionState
from aioquic.quic.events import (
    ConnectionTerminated,
    HandshakeCompleted,
    ProtocolNegotiated,
    QuicEvent,
    StreamReset,
)
from aioquic.quic.logger import QuicFileLogger
from aioquic.quic.packet import QuicErrorCode, pull_quic_header
from aioquic.tls import SessionTicket

from protolab.certs import CertBundle
from protolab.errors import ConfigError
from protolab.qpack_h3 import TableH3Connection
from protolab.workload import WorkloadRequest, WorkloadResponse
from servers.assembler import RequestAssembler, response_headers
from servers.common import ServerConfig, StreamTasks, log, peer_name, printable, respond

# Unsent bytes kept queued per stream; enough to fill a packet train, small enough that
# the scheduler, not aioquic's buffer, decides the order.
_BACKLOG = 64 * 1024
_FEED = 16 * 1024
H3_NO_ERROR = ErrorCode.H3_NO_ERROR


class TicketStore:
    """Session tickets the server issued, so resumption and 0-RTT can find them: at most
    `capacity`, the oldest dropped first, expired ones dropped as they are met."""

    def __init__(self, capacity: int, stats: H3ServerStats | None = None) -> None:
        self.capacity = capacity
        self._tickets: OrderedDict[bytes, SessionTicket] = OrderedDict()
        self._stats = stats

    def __len__(self) -> int:
        return len(self._tickets)

    def add(self, ticket: SessionTicket, now: dt.datetime | None = None) -> None:
        now = now or dt.datetime.now(dt.UTC)
        self._tickets[ticket.ticket] = ticket
        self._tickets.move_to_end(ticket.ticket)
        # Oldest first: expired ones (lifetimes are equal, so they are the oldest) and then
        # whatever is over capacity.
        while self._tickets:
            oldest = next(iter(self._tickets.values()))
            if len(self._tickets) <= self.capacity and not _expired(oldest, now):
                break
            self._tickets.popitem(last=False)
        self._count()

    def pop(self, label: bytes, now: dt.datetime | None = None) -> SessionTicket | None:
        # Single use: a replayed 0-RTT ticket is refused (RFC 8446 §8.1).
        ticket = self._tickets.pop(label, None)
        self._count()
        if ticket is None or _expired(ticket, now or dt.datetime.now(dt.UTC)):
            return None
        return ticket

    def _count(self) -> None:
        if self._stats is not None:
            self._stats.tickets = len(self._tickets)


def _expired(ticket: SessionTicket, now: dt.datetime) -> bool:
    return now > ticket.not_valid_after


@dataclass
class H3ServerStats:
    connections: int = 0
    early_requests: int = 0  # requests received before the handshake completed (0-RTT)
    undecodable_datagrams: int = 0
    idle_closed: int = 0  # connections whose state the idle timeout discarded
    tickets: int = 0  # session tickets held for resumption now
    migrations: int = 0  # clients that moved to a new address or port (RFC 9000 §9)
    paths_validated: int = 0  # of whose new paths a PATH_RESPONSE confirmed


@dataclass
class _Stream:
    request: RequestAssembler
    chunks: Iterator[bytes | memoryview] | None = None
    written: int = 0  # stream bytes handed to QUIC


class H3ServerProtocol(QuicConnectionProtocol):
    def __init__(self, *args: Any, lab: ServerConfig, stats: H3ServerStats, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lab, self._stats = lab, stats
        self._h3: H3Connection | None = None
        self._streams: dict[int, _Stream] = {}
        self._handshake_done = False
        self._tasks = StreamTasks()
        self._path: NetworkAddress | None = None  # the client's address, as last seen
        self._validating = False  # the client moved and its new path is not validated
        stats.connections += 1

    def datagram_received(self, data: bytes | str, addr: NetworkAddress) -> None:
        super().datagram_received(data, addr)
        self._watch_path()

    def _watch_path(self) -> None:
        """Say when the client moves: aioquic switches to a new address on the first
        non-probing packet from it, sends there under the anti-amplification limit
        (3x what it received there) and validates it with PATH_CHALLENGE (RFC 9000 §9.3,
        §8.2); it keeps its congestion controller and RTT estimate (allowed when only the
        port changed, §9.4). aioquic emits no event for this; its path list is private."""
        paths = self._quic._network_paths
        if not paths:
            return
        active = paths[0]
        if self._path is None:
            self._path = active.addr
        elif active.addr != self._path:
            self._stats.migrations += 1
            log.info("h3 %s: client moved to %s; validating the new path", peer_name(self._path),
                     peer_name(active.addr))
            self._path, self._validating = active.addr, not active.is_validated
        if self._validating and active.is_validated:
            self._validating = False
            self._stats.paths_validated += 1
            log.info("h3 %s: new path validated (PATH_RESPONSE)", peer_name(active.addr))

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
            self._h3 = TableH3Connection(self._quic, qpack_table=self._lab.h3.qpack_table)
        elif isinstance(event, HandshakeCompleted):
            self._handshake_done = True
        elif isinstance(event, StreamReset):
            self._streams.pop(event.stream_id, None)
        elif isinstance(event, ConnectionTerminated):
            self._on_terminated(event)
        if self._h3 is None:
            return
        # H3Connection closes the connection itself on an HTTP/3 protocol error.
        for h3_event in self._h3.handle_event(event):
            self._on_h3(h3_event)

    def _on_terminated(self, event: ConnectionTerminated) -> None:
        self._tasks.cancel()
        self._streams.clear()  # nothing more is fed to a connection that has ended
        peer = peer_name(self._peer())
        if event.reason_phrase == "Idle timeout":  # aioquic's timer; no frame was sent
            self._stats.idle_closed += 1
            log.info("h3 %s: idle for %.0f s, connection state discarded", peer,
                     self._lab.idle_timeout)
        elif event.error_code not in (QuicErrorCode.NO_ERROR, H3_NO_ERROR):
            log.info("h3 %s: connection closed with error 0x%x (%s)", peer, event.error_code,
                     printable(event.reason_phrase or "no reason", 120))

    def _on_h3(self, event: H3Event) -> None:
        if isinstance(event, HeadersReceived):
            stream = self._streams[event.stream_id] = _Stream(RequestAssembler(self._lab.limits))
            if not self._handshake_done:
                self._stats.early_requests += 1
            rejection = stream.request.headers(event.headers)
        elif isinstance(event, DataReceived):
            found = self._streams.get(event.stream_id)
            if found is None:
                return
            rejection = found.request.data(event.data)
        else:
            return
        if rejection is not None:
            log.info("h3 %s: stream %d rejected with %d", peer_name(self._peer()),
                     event.stream_id, rejection.status)
            self._start_response(event.stream_id, rejection)
        elif event.stream_ended:
            self._on_end(event.stream_id)

    def _on_end(self, sid: int) -> None:
        stream = self._streams.get(sid)
        request = stream.request.end() if stream is not None else None
        if request is not None:
            self._tasks.spawn(self._answer(sid, request))

    async def _answer(self, sid: int, request: WorkloadRequest) -> None:
        response = await respond(request, self._lab.limits, self._lab.compression)
        if sid in self._streams:
            self._start_response(sid, response)
            self.transmit()

    def _start_response(self, sid: int, response: WorkloadResponse) -> None:
        assert self._h3 is not None  # streams exist only once h3 is up
        empty = response.body.length == 0 and response.stream is None
        self._h3.send_headers(sid, response_headers(response), end_stream=empty)
        if empty:
            self._streams.pop(sid, None)
        elif response.stream is not None:
            self._tasks.spawn(self._send_live(sid, response))
        else:
            self._streams[sid].chunks = response.body.chunks(_FEED)

    async def _send_live(self, sid: int, response: WorkloadResponse) -> None:
        """A streamed body (SSE): each chunk goes out as it is produced; these are small,
        so QUIC's send buffer, not a backlog, holds them."""
        assert self._h3 is not None
        assert response.stream is not None
        async for piece in response.stream():
            if sid not in self._streams:  # reset by the client
                return
            self._h3.send_data(sid, piece, end_stream=False)
            self.transmit()
        if self._streams.pop(sid, None) is not None:
            self._h3.send_data(sid, b"", end_stream=True)
            self.transmit()

    def transmit(self) -> None:
        if self._transport is None or self._transport.is_closing():
            # The listener's socket is closed: asyncio's unconnected UDP transport would
            # raise from inside its error path ("'NoneType' object has no attribute
            # 'call_exception_handler'") for a timer or an answer that comes after it.
            return
        self._feed_streams()
        super().transmit()

    def shutdown(self) -> None:
        """The server stops: CONNECTION_CLOSE (H3_NO_ERROR) goes out now, while the socket
        is still open, and the connection ends at once instead of after its draining
        period (RFC 9000 §10.2: 3 PTO), as aioquic's timer would end it: no timer, task or
        datagram is left to outlive the socket or the event loop."""
        quic = self._quic
        if quic._state is QuicConnectionState.TERMINATED:
            return
        self.close(error_code=H3_NO_ERROR, reason_phrase="server stopping")
        if quic._close_event is not None:
            quic._close_end()  # what aioquic's timer does when draining ends (private API)
        self._process_events()  # ConnectionTerminated: tasks cancelled, waiters released
        super().transmit()  # nothing to send; disarms the timer (no deadline remains)

    def _feed_streams(self) -> None:
        """Top up the unsent backlog of responding streams, in the configured order."""
        if self._h3 is None:
            return
        sequential = self._lab.scheduling == "sequential"
        for sid in sorted(self._streams) if sequential else list(self._streams):
            stream = self._streams[sid]
            if stream.chunks is None:
                continue
            quic_stream = self._quic._streams.get(sid)  # aioquic has no public send-buffer API
            sent = quic_stream.sender.highest_offset if quic_stream is not None else 0
            while stream.written - sent < _BACKLOG:
                chunk = next(stream.chunks, None)
                if chunk is None:
                    self._h3.send_data(sid, b"", end_stream=True)
                    del self._streams[sid]
                    break
                self._h3.send_data(sid, bytes(chunk), end_stream=False)
                stream.written += len(chunk) + 4  # DATA frame type + length varints
            if sequential and sid in self._streams:
                break  # only the lowest-numbered responding stream is fed

    def _peer(self) -> NetworkAddress | None:
        if self._transport is None:
            return None
        return cast(NetworkAddress | None, self._transport.get_extra_info("peername"))


class _LabQuicServer(QuicServer):
    """aioquic's server, logging (rate-limited) the datagrams that are not QUIC at all."""

    def __init__(self, *, stats: H3ServerStats, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._stats = stats

    def close(self) -> None:
        """End every connection (each says CONNECTION_CLOSE first), then the socket."""
        for protocol in set(self._protocols.values()):
            if isinstance(protocol, H3ServerProtocol):
                protocol.shutdown()
            else:
                protocol.close()
        self._protocols.clear()
        if self._transport is not None:
            self._transport.close()

    def datagram_received(self, data: bytes | str, addr: NetworkAddress) -> None:
        try:
            pull_quic_header(Buffer(data=cast(bytes, data)), host_cid_length=8)
        except ValueError:
            self._stats.undecodable_datagrams += 1
            count = self._stats.undecodable_datagrams
            if count & (count - 1) == 0:  # log the 1st, 2nd, 4th, 8th ... only
                log.info("h3: dropped undecodable datagram from %s (%d so far)",
                         peer_name(addr), count)
            return
        super().datagram_received(data, addr)


def quic_server_configuration(lab: ServerConfig, certs: CertBundle) -> QuicConfiguration:
    s = lab.h3
    configuration = QuicConfiguration(
        alpn_protocols=H3_ALPN,
        is_client=False,
        congestion_control_algorithm=s.cc,
        max_data=s.connection_window,
        max_stream_data=s.window,
        # Advertised as max_idle_timeout and kept by the server's own timer (RFC 9000 §10.1).
        idle_timeout=lab.idle_timeout,
        quic_logger=QuicFileLogger(str(s.qlog_dir)) if s.qlog_dir else None,
        secrets_log_file=_secrets_file(s.secrets_log) if s.secrets_log else None,
    )
    configuration.load_cert_chain(str(certs.chain_file), str(certs.key_file))
    return configuration


def _secrets_file(path: Path) -> TextIO:
    """The QUIC secrets log, opened for appending and readable by its owner only: it
    decrypts every connection (the SSLKEYLOGFILE format)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through open(); not this one
    return os.fdopen(fd, "a", buffering=1)


@dataclass
class QuicListener:
    transport: asyncio.DatagramTransport
    secrets: TextIO | None  # the QUIC secrets log, closed with the listener
    server: _LabQuicServer | None = None  # its connections end with it

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        self.transport.close()
        if self.secrets is not None:
            self.secrets.close()


async def start_h3_server(
    lab: ServerConfig, certs: CertBundle | None, port: int, stats: H3ServerStats
) -> QuicListener:
    if certs is None:  # ServerConfig refuses h3 without TLS; this guards other callers
        raise ConfigError("HTTP/3 needs TLS (QUIC has no cleartext mode)")
    configuration = quic_server_configuration(lab, certs)
    tickets = TicketStore(lab.h3.session_tickets, stats)
    loop = asyncio.get_running_loop()

    def create_protocol(*args: Any, **kwargs: Any) -> H3ServerProtocol:
        return H3ServerProtocol(*args, lab=lab, stats=stats, **kwargs)

    try:
        transport, server = await loop.create_datagram_endpoint(
            lambda: _LabQuicServer(
                stats=stats,
                configuration=configuration,
                create_protocol=create_protocol,
                session_ticket_fetcher=tickets.pop,
                session_ticket_handler=tickets.add,
            ),
            local_addr=(lab.host, port),
        )
    except BaseException:
        if configuration.secrets_log_file is not None:
            configuration.secrets_log_file.close()
        raise
    return QuicListener(transport, configuration.secrets_log_file, server)

