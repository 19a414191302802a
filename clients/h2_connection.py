"""The client side of one HTTP/2 connection: h2's state machine, its streams, its bytes.

`H2ClientConnection` reads the socket, turns h2's events into the records' moments
(first byte, body arrivals, end, reset) and meters frame bytes per stream both ways. A
GOAWAY (RFC 9113 §6.8) is settled here stream by stream: those above its last stream id
are marked to be sent again, the rest may still finish. What concerns every connection —
which one takes new streams, retiring a drained one, the client moving away — is the
client's (`clients.h2`), told through the hooks each connection is given.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.errors
import h2.exceptions
import h2.settings
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from hyperframe.frame import Frame, GoAwayFrame

from clients.base import NextTurn
from clients.migration import Move
from clients.tcp import TcpConnection
from protolab.compression import BodyDecoder
from protolab.core.record import Timeline
from protolab.errors import ProtocolFailure
from protolab.timing import now_ns

_READ = 65_536
_PREFACE_LEN = 24


class FrameMeter:
    """Counts HTTP/2 frame bytes (9-byte header + payload) per stream in a byte stream."""

    def __init__(self, skip: int = 0) -> None:
        self.per_stream: defaultdict[int, int] = defaultdict(int)
        self._skip = skip  # the client connection preface is not a frame
        self._header = b""
        self._left = 0  # payload bytes still to come for the current frame
        self._stream = 0

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._skip:
                n = min(self._skip, len(view))
                self._skip -= n
                view = view[n:]
            elif self._left:
                n = min(self._left, len(view))
                self._left -= n
                self.per_stream[self._stream] += n
                view = view[n:]
            else:
                need = 9 - len(self._header)
                self._header += bytes(view[:need])
                view = view[need:]
                if len(self._header) == 9:
                    self._left = int.from_bytes(self._header[:3], "big")
                    self._stream = int.from_bytes(self._header[5:9], "big") & 0x7FFF_FFFF
                    self.per_stream[self._stream] += 9
                    self._header = b""


class _DrainingH2Connection(h2.connection.H2Connection):
    """h2 moves its connection to CLOSED on a received GOAWAY and then rejects every
    frame ("Invalid input RECV_HEADERS in state CLOSED", python-hyper/h2#1181), so the
    responses the server still owes are lost. Here a GOAWAY is reported and nothing
    else: the state and the bytes queued for the server stay, and the client opens no
    new stream on this connection."""

    def _receive_goaway_frame(
        self, frame: GoAwayFrame
    ) -> tuple[list[Frame], list[Event]]:
        event = ConnectionTerminated()
        try:
            event.error_code = h2.errors.ErrorCodes(frame.error_code)
        except ValueError:
            event.error_code = frame.error_code  # an extension's code
        event.last_stream_id = frame.last_stream_id
        event.additional_data = frame.additional_data or None
        return [], [event]


def client_h2_state(window: int, max_frame_size: int) -> h2.connection.H2Connection:
    """h2's client state machine with our SETTINGS: the stream window, the largest frame
    we accept, no server push; a GOAWAY leaves it draining (`_DrainingH2Connection`)."""
    conn = _DrainingH2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    conn.local_settings = h2.settings.Settings(
        client=True,
        initial_values={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window,
            h2.settings.SettingCodes.MAX_FRAME_SIZE: max_frame_size,
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
        },
    )
    return conn


@dataclass
class H2Stream:
    timeline: Timeline
    done: asyncio.Future[None]
    retry: bool = False  # above a GOAWAY's last stream id: not processed, send it again
    move: Move = field(default_factory=lambda: Move(0))  # the request's move, if it moves
    moved: bool = False  # the client moved away from this connection: send it again
    decoder: BodyDecoder | None = None  # the response is content-coded


@dataclass(eq=False)  # identity: kept in a set while it drains
class H2ClientConnection:
    tcp: TcpConnection
    h2: h2.connection.H2Connection
    number: int
    # The client's, called from this connection's reader: a response passed the bytes
    # after which the client leaves its address (every connection goes); a GOAWAY came
    # (this one takes no new stream; retire it once drained); a draining one has ended.
    on_move_away: Callable[[], None]
    on_goaway: Callable[[H2ClientConnection], None]
    on_ended: Callable[[H2ClientConnection], None]
    streams: dict[int, H2Stream] = field(default_factory=dict)
    meter_in: FrameMeter = field(default_factory=FrameMeter)
    meter_out: FrameMeter = field(default_factory=lambda: FrameMeter(skip=_PREFACE_LEN))
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    alive: bool = True
    draining: bool = False  # a GOAWAY came: finish its streams, open no new one
    goaway_last: int | None = None  # the GOAWAY's last stream id
    reader_task: asyncio.Task[None] | None = None
    flush_soon: NextTurn = field(init=False)

    def __post_init__(self) -> None:
        self.flush_soon = NextTurn(self.flush)  # requests made together share one write

    def start(self, connection_window: int) -> asyncio.Task[None]:
        """Send the preface and SETTINGS, open the connection window to
        `connection_window` bytes, and start reading; the reader's task."""
        self.h2.initiate_connection()
        extra = connection_window - 65_535
        if extra > 0:
            self.h2.increment_flow_control_window(extra)
        self.flush()
        self.reader_task = asyncio.create_task(self._read_loop())
        return self.reader_task

    def flush(self) -> None:
        if self.tcp.writer.is_closing():
            return
        data = self.h2.data_to_send()
        if data:
            self.meter_out.feed(data)
            self.tcp.writer.write(data)

    @property
    def open(self) -> bool:
        """New streams may start here."""
        return self.alive and not self.draining

    def fail_all(self, kind: str, detail: str) -> None:
        self.alive = False
        for stream in self.streams.values():
            if not stream.done.done():  # a finished response stays finished (nginx closes
                stream.timeline.fail(kind, detail)  # right after the last one it owed)
                stream.done.set_result(None)
        self.streams.clear()
        self.changed.set()

    def retire(self, kind: str, detail: str) -> None:
        """Say goodbye (our GOAWAY), fail what is left, close the socket."""
        with contextlib.suppress(h2.exceptions.ProtocolError, ConnectionError, OSError):
            self.h2.close_connection()
            self.flush()
        self.fail_all(kind, detail)
        if self.reader_task is not None:
            self.reader_task.cancel()
        self.tcp.writer.close()

    def leave(self) -> None:
        """The client left its address, so this connection's 4-tuple is gone: the socket
        is closed at once (nothing more arrives on it, as the OS would have it once the
        address is gone; the server sees a reset) and its requests go again elsewhere."""
        self.alive = False
        for stream in self.streams.values():
            stream.move.leave(stream.timeline, refetch=True)
            stream.moved = True
            if not stream.done.done():
                stream.done.set_result(None)
        self.streams.clear()
        self.changed.set()
        self.tcp.writer.transport.abort()

    async def send_body(self, sid: int, body: bytes) -> None:
        view = memoryview(body)
        while view:
            if sid not in self.streams:  # failed, or to be retried after a GOAWAY
                return
            window = self.h2.local_flow_control_window(sid)
            if window <= 0:
                self.changed.clear()
                await self.changed.wait()
                if not self.alive:
                    raise ProtocolFailure("connection_lost", "connection closed mid-request")
                continue
            n = min(window, self.h2.max_outbound_frame_size, len(view))
            self.h2.send_data(sid, bytes(view[:n]), end_stream=n == len(view))
            view = view[n:]
            self.flush()
            await self.drain()

    async def drain(self) -> None:
        """Wait for the socket's buffer to drain; a failed transport is a typed failure."""
        try:
            await self.tcp.writer.drain()
        except OSError as exc:
            raise self.tcp.lost(exc) from exc

    async def _read_loop(self) -> None:
        try:
            while self.alive:
                data = await self.tcp.reader.read(_READ)
                if not data:
                    after = " after its GOAWAY" if self.draining else ""
                    self.fail_all("connection_closed", f"server closed the connection{after}")
                    return
                self.meter_in.feed(data)
                for event in self.h2.receive_data(data):
                    self._on_event(event)
                self.flush()
        except h2.exceptions.ProtocolError as exc:
            self.fail_all("protocol_error", f"HTTP/2 protocol error: {exc}")
        except OSError as exc:
            failure = self.tcp.lost(exc)
            self.fail_all(failure.kind, str(failure))
        finally:
            if self.draining and not self.alive:
                self.on_ended(self)
                self.tcp.writer.close()
                await self.tcp.wait_closed()

    def _on_event(self, event: Event) -> None:
        sid = getattr(event, "stream_id", None)
        stream = self.streams.get(sid) if sid else None
        if isinstance(event, ResponseReceived) and stream:
            stream.timeline.first_byte()
            stream.move.answered()
            status = dict(event.headers or []).get(b":status", b"0")
            stream.move.head(stream.timeline, int(status), list(event.headers or []))
            stream.decoder = BodyDecoder.for_response(
                event.headers or [], keep=stream.timeline.request.keep_body)
        elif isinstance(event, DataReceived) and sid is not None:
            self.h2.acknowledge_received_data(event.flow_controlled_length or 0, sid)
            if stream:
                stream.timeline.body(event.data or b"")
                if stream.move.due(stream.timeline):
                    self.on_move_away()
                if stream.decoder is not None:
                    stream.decoder.feed(event.data or b"")
        elif isinstance(event, StreamEnded) and stream:
            if stream.decoder is not None:
                stream.decoder.apply(stream.timeline)  # decoded counters into transport
            stream.timeline.done_ns = now_ns()
            stream.done.set_result(None)
            del self.streams[event.stream_id]
        elif isinstance(event, StreamReset) and stream:
            stream.timeline.fail("stream_reset", f"server reset stream {sid} ({event.error_code})")
            stream.done.set_result(None)
            del self.streams[event.stream_id]
        elif isinstance(event, ConnectionTerminated):
            self._on_goaway(event)
        elif isinstance(event, WindowUpdated | RemoteSettingsChanged):
            self.changed.set()

    def _on_goaway(self, event: ConnectionTerminated) -> None:
        """RFC 9113 §6.8: streams above last_stream_id were not processed — send them
        again elsewhere; those at or below may still complete here, unless the GOAWAY
        reports an error (the server closes the connection after it, §5.4.1)."""
        self.draining = True
        self.goaway_last = event.last_stream_id
        last = event.last_stream_id if event.last_stream_id is not None else 2**31 - 1
        for sid in [sid for sid in self.streams if sid > last]:
            stream = self.streams.pop(sid)
            stream.retry = True
            if not stream.done.done():
                stream.done.set_result(None)
        code = event.error_code
        if code not in (None, h2.errors.ErrorCodes.NO_ERROR):
            self.fail_all("goaway", f"server sent GOAWAY ({code!r}, last stream {last})")
        self.changed.set()
        self.on_goaway(self)
