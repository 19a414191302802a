"""HTTP/2 server connection on h2, with a selectable DATA scheduler.

Which stream's DATA goes next is an experiment parameter (the HOL experiments need
both): "round-robin" sends one frame per ready stream in turn; "sequential" drains
the lowest-numbered ready stream first. Both are work-conserving: a stream blocked
by its flow-control window does not stop the others.

A connection error is one GOAWAY with the code RFC 9113 names (`goaway_code`: h2's
FrameTooLargeError is FRAME_SIZE_ERROR, FlowControlError FLOW_CONTROL_ERROR, ...), one
log line, and the connection closed. A frame longer than our SETTINGS_MAX_FRAME_SIZE
is refused from its header, before its payload is read (servers/h2frames.py). The
idle timeout counts whenever the connection does nothing for its client: a request
left half sent, or DATA the client's window holds back, do not keep it open.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from protolab.workload import WorkloadRequest, WorkloadResponse
from servers.assembler import RequestAssembler, response_headers
from servers.common import ServerConfig, StreamTasks, drain, log, peer_name, printable, respond
from servers.h2frames import FrameHeaderCheck

_READ = 65_536
# Bytes one sequential round may take from a stream before the writer drains, so the
# scheduler keeps control of ordering instead of the socket buffer.
_SEQUENTIAL_BURST = 65_536


def goaway_code(exc: h2.exceptions.ProtocolError) -> h2.errors.ErrorCodes:
    """The GOAWAY error code for an error h2 raised (RFC 9113 §7), as h2 itself chose it:
    FrameTooLargeError and FrameDataMissingError -> FRAME_SIZE_ERROR, FlowControlError ->
    FLOW_CONTROL_ERROR, StreamClosedError -> STREAM_CLOSED, DenialOfServiceError ->
    ENHANCE_YOUR_CALM, InvalidSettingsValueError -> the code of the setting; any other
    ProtocolError -> PROTOCOL_ERROR."""
    code = getattr(exc, "error_code", None)
    if isinstance(code, int) and code in set(h2.errors.ErrorCodes):
        return h2.errors.ErrorCodes(code)
    return h2.errors.ErrorCodes.PROTOCOL_ERROR


class _Refused(Exception):
    """A connection error found by the lab, not by h2 (a frame refused from its header)."""

    def __init__(self, code: h2.errors.ErrorCodes, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass
class _Outbound:
    chunks: Iterator[bytes | memoryview]
    pending: memoryview | None = None
    live: deque[bytes] | None = None  # streamed body: chunks appended as they are produced
    live_done: bool = False  # the streamed body has no more chunks

    def take(self, limit: int) -> bytes | None:
        """Up to `limit` bytes of what is left (b"" = nothing yet), None when exhausted."""
        if self.pending is None or not len(self.pending):
            if self.live is not None:
                if not self.live:
                    return None if self.live_done else b""
                nxt: bytes | memoryview | None = self.live.popleft()
            else:
                nxt = next(self.chunks, None)
            if nxt is None:
                return None
            self.pending = memoryview(nxt)
        piece, self.pending = self.pending[:limit], self.pending[limit:]
        return bytes(piece)


class H2ServerConnection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        config: ServerConfig,
        alt_svc: str | None,
    ) -> None:
        self._reader, self._writer, self._config, self._alt_svc = reader, writer, config, alt_svc
        self._conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        self._inbound: dict[int, RequestAssembler] = {}  # streams not yet answered in full
        self._outbound: dict[int, _Outbound] = {}
        self._wakeup = asyncio.Event()
        self._tasks = StreamTasks()
        self._peer = peer_name(writer.get_extra_info("peername"))
        self._frames = FrameHeaderCheck(config.h2.max_frame_size)
        self._last_sent = 0.0  # loop time DATA last left (the idle check asks)
        self._flush_pending = False  # a `_flush_now` is scheduled

    async def run(self, initial: bytes) -> None:
        s = self._config.h2
        self._conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: s.window,
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: s.max_concurrent_streams,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: s.max_frame_size,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: self._config.limits.max_header_bytes,
            },
        )
        # h2 takes its frame size limit from SETTINGS it sees acknowledged, and a replaced
        # Settings object is never acknowledged as a change: without this it kept refusing
        # frames over 16,384 bytes whatever max_frame_size said.
        self._conn.max_inbound_frame_size = s.max_frame_size
        self._conn.initiate_connection()
        if s.connection_window > 65_535:
            self._conn.increment_flow_control_window(s.connection_window - 65_535)
        self._flush()
        sender = asyncio.create_task(self._send_loop())
        idle = self._config.idle_timeout
        try:
            if initial:
                self._receive(initial)
            while not self._closed():
                try:
                    data = await asyncio.wait_for(self._reader.read(_READ), idle)
                except TimeoutError:
                    if self._busy():
                        continue
                    log.info("h2 %s: idle for %.0f s%s, closing", self._peer, idle,
                             self._unfinished())
                    self._conn.close_connection()
                    self._flush()
                    break
                if not data:
                    break
                # No drain() here: the reader must keep reading requests (and WINDOW_UPDATEs)
                # while responses fill the send buffer; only the sender waits on it.
                self._receive(data)
        except _Refused as refused:
            self._goaway(refused.code, refused.reason)
        except h2.exceptions.ProtocolError as exc:
            self._goaway(goaway_code(exc), str(exc) or type(exc).__name__)
        except (ConnectionError, OSError):
            pass
        finally:
            sender.cancel()
            self._tasks.cancel()

    def _goaway(self, code: h2.errors.ErrorCodes, reason: str) -> None:
        """End the connection with a connection error (RFC 9113 §5.4.1): GOAWAY with the
        error code the RFC names, once, then close."""
        log.info("h2 %s: connection error %s (%s), closing", self._peer, code.name,
                 printable(reason.rstrip(".")))
        # h2 has queued its own GOAWAY for errors it raised; a second one would contradict it.
        if not self._closed():
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self._conn.close_connection(code, additional_data=reason.encode()[:128])
        self._flush()

    def _busy(self) -> bool:
        """Whether the connection is doing something for its client although the client
        says nothing: a response in think time or streaming, or DATA still leaving. A client
        that stopped reading, or that leaves a request half sent, is idle."""
        if self._tasks.running():
            return True
        recent = asyncio.get_running_loop().time() - self._last_sent < self._config.idle_timeout
        return bool(self._outbound) and recent

    def _unfinished(self) -> str:
        waiting = len(self._inbound) - len(self._outbound)
        return f" with {waiting} request(s) unfinished" if waiting > 0 else ""

    def _closed(self) -> bool:
        return self._conn.state_machine.state is h2.connection.ConnectionState.CLOSED

    def _flush(self) -> None:
        data = self._conn.data_to_send()
        if data and not self._writer.is_closing():
            self._writer.write(data)

    def _flush_soon(self) -> None:
        """Flush at the end of this loop turn: the HEADERS of every response started in it
        leave in one write. One write per response wrote 20 times on a connection already
        lost (asyncio logs each write after a failed send from the fifth on); the sender
        also flushes what is queued before it adds DATA, so HEADERS never share a write
        with DATA."""
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self._flush_pending = False
        self._flush()

    def _receive(self, data: bytes) -> None:
        refused = self._frames.feed(data)
        if refused is not None:
            # Frames before the refused one are the client's to have; its payload is never read.
            if refused.offset > 0:
                self._receive_frames(data[:refused.offset])
            raise _Refused(refused.code, refused.reason)
        self._receive_frames(data)

    def _receive_frames(self, data: bytes) -> None:
        for event in self._conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                self._on_request(event)
            elif isinstance(event, h2.events.DataReceived):
                self._on_data(event)
            elif isinstance(event, h2.events.StreamEnded):
                self._on_end(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                self._inbound.pop(event.stream_id, None)
                self._outbound.pop(event.stream_id, None)
            elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
                self._wakeup.set()
        self._flush()

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        sid = event.stream_id
        assert sid is not None  # h2 always sets it on this event
        assembler = self._inbound[sid] = RequestAssembler(self._config.limits)
        self._reject(sid, assembler.headers(list(event.headers or [])))

    def _on_data(self, event: h2.events.DataReceived) -> None:
        sid = event.stream_id
        assert sid is not None  # h2 always sets it on this event
        self._conn.acknowledge_received_data(event.flow_controlled_length or 0, sid)
        assembler = self._inbound.get(sid)
        if assembler is not None:
            self._reject(sid, assembler.data(event.data or b""))

    def _reject(self, sid: int, response: WorkloadResponse | None) -> None:
        if response is not None:
            log.info("h2 %s: stream %d rejected with %d", self._peer, sid, response.status)
            self._start_response(sid, response)

    def _on_end(self, sid: int) -> None:
        assembler = self._inbound.get(sid)
        request = assembler.end() if assembler is not None else None
        if request is not None:
            self._tasks.spawn(self._answer(sid, request))

    async def _answer(self, sid: int, request: WorkloadRequest) -> None:
        response = await respond(request, self._config.limits, self._config.compression)
        if sid in self._inbound:  # not reset meanwhile
            self._start_response(sid, response)

    def _start_response(self, sid: int, response: WorkloadResponse) -> None:
        headers = response_headers(response, self._alt_svc)
        empty = response.body.length == 0 and response.stream is None
        try:
            self._conn.send_headers(sid, headers, end_stream=empty)
        except h2.exceptions.ProtocolError as exc:  # stream closed under us
            log.info("h2 %s: stream %d: cannot respond: %s", self._peer, sid, exc)
            return
        # HEADERS leave in a write, and so a TLS record, of their own: packed with a 16 KB
        # DATA frame into one record, they could not be decrypted before the whole record
        # arrived, past TCP's initial window (DESIGN.md: 4.2 RTT instead of 3.1).
        self._flush_soon()
        if empty:
            self._inbound.pop(sid, None)
        elif response.stream is not None:
            outbound = _Outbound(iter(()), live=deque())
            self._outbound[sid] = outbound
            self._tasks.spawn(self._feed_live(outbound, response))
        else:
            self._outbound[sid] = _Outbound(response.body.chunks(self._config.h2.max_frame_size))
        self._wakeup.set()

    async def _feed_live(self, outbound: _Outbound, response: WorkloadResponse) -> None:
        assert response.stream is not None
        assert outbound.live is not None
        try:
            async for piece in response.stream():
                outbound.live.append(piece)
                self._wakeup.set()
        finally:
            outbound.live_done = True
            self._wakeup.set()

    async def _send_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                self._flush()  # HEADERS queued meanwhile go first, in a write of their own
                progressed = self._send_round()
                self._flush()
                if progressed:
                    await drain(self._writer)
                    self._last_sent = loop.time()
                else:
                    self._wakeup.clear()
                    await self._wakeup.wait()
        except ConnectionError:
            pass  # the client left; the reader sees the same and ends the connection

    def _send_round(self) -> bool:
        sequential = self._config.scheduling == "sequential"
        order = sorted(self._outbound) if sequential else list(self._outbound)
        progressed = False
        for sid in order:
            budget = _SEQUENTIAL_BURST if sequential else 1  # 1 = one frame per turn
            while budget > 0:
                window = self._conn.local_flow_control_window(sid)
                if window <= 0:
                    break
                size = min(window, self._conn.max_outbound_frame_size,
                           self._config.h2.data_frame)
                piece = self._outbound[sid].take(size)
                if piece == b"":  # a streamed body with nothing produced yet
                    break
                if piece is None:
                    self._conn.end_stream(sid)
                    del self._outbound[sid]
                    self._inbound.pop(sid, None)
                    progressed = True
                    break
                self._conn.send_data(sid, piece)
                progressed = True
                budget -= len(piece) if sequential else 1
            if sequential and progressed:
                break  # the lowest ready stream had its burst; start again from the lowest
        return progressed
