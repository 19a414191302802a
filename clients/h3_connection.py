"""The client side of one QUIC connection carrying HTTP/3 (aioquic's protocol, metered).

`H3ClientProtocol` turns aioquic's events into the records' moments (handshake done,
first byte, body arrivals) and counts what it sends per stream and per datagram; the
typed failures of a connection that closes are decided in `close_failure`. `clients.h3`
holds the options and the client the runner drives.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.buffer import Buffer  # type: ignore[attr-defined]
from aioquic.h3.connection import H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.connection import (
    NetworkAddress,
    QuicConnection,
    QuicConnectionState,
    QuicReceiveContext,
)
from aioquic.quic.events import (
    ConnectionTerminated,
    HandshakeCompleted,
    QuicEvent,
    StreamDataReceived,
    StreamReset,
)
from aioquic.quic.packet import QuicErrorCode
from aioquic.tls import AlertDescription

from clients import migration
from clients.base import NextTurn
from clients.migration import Move
from protolab.compression import BodyDecoder
from protolab.core.record import Timeline
from protolab.errors import ProtocolFailure
from protolab.qpack import DEFAULT_TABLE
from protolab.qpack_h3 import TableH3Connection
from protolab.timing import now_ns

# aioquic logs the reason of every connection it closes as a warning on "quic"; the
# record carries that reason, so without a handler configured the line would only be
# noise on stderr (logging's last-resort handler). Configured logging still sees it.
logging.getLogger("quic").addHandler(logging.NullHandler())

# TLS alerts (RFC 8446 §6.2) that mean "your certificate chain was not accepted".
_CERTIFICATE_ALERTS = frozenset({
    AlertDescription.bad_certificate, AlertDescription.unsupported_certificate,
    AlertDescription.certificate_revoked, AlertDescription.certificate_expired,
    AlertDescription.certificate_unknown, AlertDescription.unknown_ca,
})
CA_HINT = "pass the lab's CA with --cacert (printed by `protolab serve`)"


def close_failure(
    error_code: int, reason: str, *, handshake_done: bool
) -> ProtocolFailure:
    """The typed failure a CONNECTION_CLOSE (sent or received) means for the requests.

    QUIC carries a TLS alert as CRYPTO_ERROR + alert (RFC 9001 §4.8).
    """
    if not handshake_done:
        crypto = QuicErrorCode.CRYPTO_ERROR
        if crypto <= error_code < crypto + 256:
            alert = error_code - crypto
            if alert in _CERTIFICATE_ALERTS:
                return ProtocolFailure(
                    "tls_verify", f"server certificate rejected: {reason}", hint=CA_HINT)
            return ProtocolFailure("tls_failed", f"QUIC TLS handshake failed (alert {alert}): "
                                   f"{reason or 'no reason given'}")
        if error_code == QuicErrorCode.NO_ERROR and reason == "Idle timeout":
            return ProtocolFailure("handshake_timeout", "no QUIC handshake before the idle "
                                   "timeout (nothing answers on that UDP port?)")
        return ProtocolFailure("handshake_failed", f"QUIC handshake failed ({error_code:#x}: "
                               f"{reason or 'no reason given'})")
    return ProtocolFailure("connection_closed", f"connection closed ({error_code}: {reason})")


class _MeteredQuic:
    """The QuicConnection as H3Connection sees it, counting stream bytes it sends."""

    def __init__(self, quic: QuicConnection) -> None:
        self._quic = quic
        self.sent: defaultdict[int, int] = defaultdict(int)

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        self.sent[stream_id] += len(data)
        self._quic.send_stream_data(stream_id, data, end_stream)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._quic, name)


class WatchedQuic(QuicConnection):
    """aioquic's connection, telling when a PATH_CHALLENGE arrives (it emits no event):
    the sign that the server is validating the path the client moved to."""

    on_path_challenge: Callable[[], None] | None = None

    def _handle_path_challenge_frame(
        self, context: QuicReceiveContext, frame_type: int, buf: Buffer
    ) -> None:
        if self.on_path_challenge is not None:
            self.on_path_challenge()
        super()._handle_path_challenge_frame(context, frame_type, buf)


class _Datagrams:
    """Wraps the UDP transport to count datagrams and bytes each way. While the client
    moves (`detach` .. `attach`), what QUIC sends waits here for the new socket."""

    def __init__(self, transport: asyncio.DatagramTransport) -> None:
        self._transport: asyncio.DatagramTransport | None = transport
        self._waiting: list[tuple[bytes, NetworkAddress]] = []
        self.counters = {"datagrams_sent": 0, "udp_bytes_sent": 0,
                         "datagrams_received": 0, "udp_bytes_received": 0}

    def sendto(self, data: bytes, addr: NetworkAddress) -> None:
        self.counters["datagrams_sent"] += 1
        self.counters["udp_bytes_sent"] += len(data)
        if self._transport is None:
            self._waiting.append((data, addr))
        else:
            self._transport.sendto(data, addr)

    def detach(self) -> None:
        self._transport = None

    def attach(self, transport: asyncio.DatagramTransport) -> None:
        self._transport = transport
        waiting, self._waiting = self._waiting, []
        for data, addr in waiting:
            transport.sendto(data, addr)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


@dataclass
class H3Stream:
    timeline: Timeline
    done: asyncio.Future[None]
    received: int = 0
    move: Move = field(default_factory=lambda: Move(0))
    decoder: BodyDecoder | None = None  # the response is content-coded (protolab.compression)


class H3ClientProtocol(QuicConnectionProtocol):
    def __init__(self, *args: Any, qpack_table: int = DEFAULT_TABLE, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.meter = _MeteredQuic(self._quic)
        self.h3: H3Connection = TableH3Connection(cast(QuicConnection, self.meter),
                                                  qpack_table=qpack_table)
        self.streams: dict[int, H3Stream] = {}
        self.handshake_ns: int | None = None
        self.early_data_accepted = False
        self.resumed = False
        self.terminated: str | None = None
        self.failure: ProtocolFailure | None = None  # why the connection is unusable
        self.authority = "the server"  # host:port, for messages (set by the client)
        self.datagrams: _Datagrams | None = None
        self.transmit_soon = NextTurn(self.transmit)  # requests made together share packets
        # Moving (clients.migration): the client's hook, called when a stream's body
        # passes its threshold; and what the last move looked like on this connection.
        self.on_move_due: Callable[[], None] | None = None
        self.path_change: dict[str, int] = {}
        self._on_new_path = False
        if isinstance(self._quic, WatchedQuic):
            self._quic.on_path_challenge = self._path_challenged

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.datagrams is not None:  # the socket the client moved to
            self.datagrams.attach(cast(asyncio.DatagramTransport, transport))
            return
        self.datagrams = _Datagrams(cast(asyncio.DatagramTransport, transport))
        super().connection_made(cast(asyncio.BaseTransport, self.datagrams))

    def moved(self, old_port: int, new_port: int, *, new_address: bool = False) -> None:
        """The client left `old_port` (and its address, when `new_address`): every stream
        under way records the move."""
        self.path_change = {migration.OLD_PORT: old_port, migration.NEW_PORT: new_port,
                            migration.NEW_ADDRESS: int(new_address)}
        self._on_new_path = True
        for stream in self.streams.values():
            stream.move.leave(stream.timeline, refetch=False)

    def _path_challenged(self) -> None:
        if self._on_new_path and migration.CHALLENGED not in self.path_change:
            self.path_change[migration.CHALLENGED] = now_ns()

    def datagram_received(self, data: bytes | str, addr: NetworkAddress) -> None:
        if self._on_new_path and migration.PATH not in self.path_change:
            self.path_change[migration.PATH] = now_ns()
        if self.datagrams is not None:
            self.datagrams.counters["datagrams_received"] += 1
            self.datagrams.counters["udp_bytes_received"] += len(data)
        try:
            super().datagram_received(data, addr)
        except Exception as exc:  # raised in a loop callback, it would hang the handshake
            self.fail(ProtocolFailure("protocol_error", f"QUIC client failed: {exc!r}"))
            return
        closing = self._quic._close_event
        if closing is not None:  # the close is decided now; aioquic reports it 3 PTO later
            self.fail(close_failure(closing.error_code, closing.reason_phrase,
                                    handshake_done=self.handshake_complete))

    def error_received(self, exc: Exception) -> None:
        """The connected socket's ICMP errors (RFC 1122 §4.1.3.3): port unreachable is
        ECONNREFUSED — no QUIC server there, so nothing more will come."""
        if isinstance(exc, ConnectionRefusedError):
            self.fail(ProtocolFailure("connect_refused", f"{self.authority} refused (ICMP port "
                                      "unreachable: nothing serves QUIC there)"))
        else:
            self.fail(ProtocolFailure("connect_failed", f"UDP socket error: {exc}"))

    def end(self) -> None:
        """Close and end the connection now: CONNECTION_CLOSE goes out while the socket is
        open, and the draining period (RFC 9000 §10.2, 3 PTO) is cut short as aioquic's
        timer would end it, so no timer outlives the socket the client closes next and
        the qlog is written at once. Requests still under way fail as the close says."""
        quic = self._quic
        # Nobody waits for the handshake any more: aioquic would fail the waiter with a
        # ConnectionError no one reads ("Future exception was never retrieved").
        waiter, self._connected_waiter = self._connected_waiter, None
        if waiter is not None and not waiter.done():
            waiter.cancel()
        if quic._state is QuicConnectionState.TERMINATED:
            return
        self.close()
        if quic._close_event is not None:
            quic._close_end()  # what aioquic's timer does when draining ends (private API)
        self._process_events()
        self.transmit()  # nothing to send; disarms the timer (no deadline remains)

    def fail(self, failure: ProtocolFailure) -> None:
        """End every waiter and stream with `failure`; the connection is not used again."""
        if self.failure is not None:
            return
        self.failure = failure
        self.terminated = self.terminated or str(failure)
        waiter, self._connected_waiter = self._connected_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(failure)
            waiter.exception()  # whoever awaits it still gets it; unawaited, it is no noise
        for stream in self.streams.values():
            stream.timeline.fail(failure.kind, str(failure))
            if not stream.done.done():
                stream.done.set_result(None)
        self.streams.clear()

    async def wait_handshake(self) -> None:
        """Until the handshake completes; raises the failure that ended it. Either may
        have happened before this call (ICMP, or a fast 0-RTT answer, can beat the first
        await), and aioquic's `wait_connected` only learns of a completion it waited for."""
        if self.failure is not None:
            raise self.failure
        if self.handshake_complete:
            return
        await self.wait_connected()

    @property
    def handshake_complete(self) -> bool:
        return self.handshake_ns is not None

    def tls_details(self) -> tuple[str | None, str | None]:
        schedule = self._quic.tls.key_schedule
        cipher = schedule.cipher_suite.name if schedule is not None else None
        return "TLSv1.3", (f"TLS_{cipher}" if cipher else None)

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, HandshakeCompleted):
            self.handshake_ns = now_ns()
            self.early_data_accepted = event.early_data_accepted
            self.resumed = event.session_resumed
        elif isinstance(event, StreamDataReceived) and event.stream_id in self.streams:
            self.streams[event.stream_id].received += len(event.data)
        elif isinstance(event, StreamReset) and event.stream_id in self.streams:
            stream = self.streams.pop(event.stream_id)
            stream.timeline.fail("stream_reset", f"server reset stream ({event.error_code})")
            stream.done.set_result(None)
        elif isinstance(event, ConnectionTerminated):
            self.fail(close_failure(event.error_code, event.reason_phrase,
                                    handshake_done=self.handshake_complete))
        for h3_event in self.h3.handle_event(event):
            self._on_h3(h3_event)

    def _on_h3(self, event: H3Event) -> None:
        if not isinstance(event, HeadersReceived | DataReceived):
            return
        stream = self.streams.get(event.stream_id)
        if stream is None:
            return
        tl = stream.timeline
        if isinstance(event, HeadersReceived):
            tl.first_byte()
            tl.status = int(dict(event.headers).get(b":status", b"0"))
            stream.decoder = BodyDecoder.for_response(event.headers, keep=tl.request.keep_body)
        else:
            tl.body(event.data)
            if stream.decoder is not None:
                stream.decoder.feed(event.data)
            if event.data and migration.PATH in self.path_change:  # came on the new path
                stream.move.answered()
            if stream.move.due(tl) and self.on_move_due is not None:
                self.on_move_due()
        if event.stream_ended:
            if stream.decoder is not None:
                stream.decoder.apply(tl)  # decoded counters into tl.transport
            tl.done_ns = now_ns()
            del self.streams[event.stream_id]
            stream.done.set_result(None)
