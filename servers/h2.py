"""HTTP/2 server connection on h2, with a selectable DATA scheduler.

Which stream's DATA goes next is an experiment parameter (the HOL experiments need
both): "round-robin" sends one frame per ready stream in turn; "sequential" drains
the lowest-numbered ready stream first. Both are work-conserving: a stream blocked
by its flow-control window does not stop the others.
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
from servers.common import ServerConfig, StreamTasks, log, peer_name, respond

_READ = 65_536
# Bytes one sequential round may take from a stream before the writer drains, so the
# scheduler keeps control of ordering instead of the socket buffer.
_SEQUENTIAL_BURST = 65_536


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
        self._conn.initiate_connection()
        if s.connection_window > 65_535:
            self._conn.increment_flow_control_window(s.connection_window - 65_535)
        self._flush()
        sender = asyncio.create_task(self._send_loop())
        try:
            if initial:
                self._receive(initial)
            while not self._closed():
                timeout = None if self._inbound or self._outbound else self._config.idle_timeout
                try:
                    data = await asyncio.wait_for(self._reader.read(_READ), timeout)
                except TimeoutError:
                    log.info("h2 %s: idle for %.0f s, closing", self._peer, timeout)
                    self._conn.close_connection()
                    self._flush()
                    break
                if not data:
                    break
                # No drain() here: the reader must keep reading requests (and WINDOW_UPDATEs)
                # while responses fill the send buffer; only the sender waits on it.
                self._receive(data)
        except h2.exceptions.ProtocolError as exc:
            log.info("h2 %s: protocol error, closing: %s", self._peer, exc)
            # Tell the peer why (RFC 9113 §5.4.1); h2 has not always queued a GOAWAY itself.
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self._conn.close_connection(h2.errors.ErrorCodes.PROTOCOL_ERROR)
            self._flush()
        except (ConnectionError, OSError):
            pass
        finally:
            sender.cancel()
            self._tasks.cancel()

    def _closed(self) -> bool:
        return self._conn.state_machine.state is h2.connection.ConnectionState.CLOSED

    def _flush(self) -> None:
        data = self._conn.data_to_send()
        if data and not self._writer.is_closing():
            self._writer.write(data)

    def _receive(self, data: bytes) -> None:
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
        response = await respond(request, self._config.limits)
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
        # HEADERS leave now, in their own write and so their own TLS record: packed with a
        # 16 KB DATA frame into one record, they could not be decrypted before the whole
        # record arrived, past TCP's initial window (DESIGN.md: 4.2 RTT instead of 3.1).
        self._flush()
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
        while True:
            progressed = self._send_round()
            self._flush()
            if progressed:
                await self._writer.drain()
            else:
                self._wakeup.clear()
                await self._wakeup.wait()

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
