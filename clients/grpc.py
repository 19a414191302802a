"""gRPC client (grpcio asyncio API) behind the lab's one client interface.

A `Request` names a method of `protolab.Lab` by its path, with its arguments in the query:

  /Unary?size=N                      (body, if any, is echoed instead)
  /ServerStream?count=M&size=S&interval_ms=I
  /ClientStream?count=M&size=S
  /Bidi?count=M&size=S               M ping-pong round trips on one call
  /Records?count=N&seed=K[&gzip=1]   (keep_body: the serialised RecordList in `content`);
  /records?...                       the same (REST's `GET /records`, so one suite asks both
                                     for the same thing); gzip=1 compresses the request
  /pkg.Service/Method?raw=1          the request body sent as is, unary (tests, other services)

The full form `/protolab.Lab/Unary` works too. The channel is opened on the first
request: `conn_start_ns` is its creation and `handshake_ns` / `upgraded_ns` the moment
it became READY (TCP + TLS + HTTP/2 settings, which grpcio does not split). Byte
counts are protobuf messages plus gRPC's 5-byte length prefix each; HTTP/2 framing
and headers are inside grpcio and not counted. `status` is the gRPC status code
(0 = OK); a failed call's error is `grpc_<code>` with the server's details.

A channel that cannot connect fails at once with the TCP clients' vocabulary: grpcio
retries a failed connection with backoff until the deadline and says only
TRANSIENT_FAILURE, so at the first TRANSIENT_FAILURE one probe with the lab's own
TCP+TLS opener (after the measured attempt failed, so it costs nothing measured) says
why: `connect_refused`, `tls_verify`, `tls_failed`, `dns` end the attempt at once; a
server that accepts the probe gets grpcio's own retries for a few seconds more (a first
attempt can fail transiently) before the call fails `connect_failed`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

# gRPC C-core logs each failed handshake on stderr (INFO lines, even by default); the
# record carries the failure. Read once, when grpc is first imported: "ERROR" keeps
# C-core's real errors (grpcio 1.85 takes DEBUG, INFO, ERROR or NONE).
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import grpc  # noqa: E402 - after GRPC_VERBOSITY
from google.protobuf.message import DecodeError  # noqa: E402

from clients.base import check_request  # noqa: E402
from clients.tcp import open_tcp, tls_context_for  # noqa: E402
from protolab.core.record import MessageTiming, Request, RequestRecord, Target, Timeline
from protolab.errors import ConfigError, ProtocolFailure
from protolab.proto import lab_pb2
from protolab.tcpsock import DEFAULT_CC
from protolab.timing import now_ns
from protolab.tlsfiles import check_ca_file  # noqa: E402

SERVICE = "protolab.Lab"
_PREFIX = 5  # gRPC message prefix: compressed flag + 4-byte length


@dataclass(frozen=True)
class GrpcOptions:
    max_message: int = 64 << 20  # largest reply message accepted
    timeout: float = 60.0  # per call, seconds (sent as the gRPC deadline)
    # "gzip": the channel compresses its request messages (grpc-encoding: gzip), as the
    # server with the same knob compresses its replies; "identity": the channel does not
    # (it still accepts gzip replies, as every grpcio channel does).
    grpc_compression: str = "identity"

    def __post_init__(self) -> None:
        if self.max_message < 1024:
            raise ConfigError("gRPC max message size must be at least 1024 bytes")
        if self.grpc_compression not in ("identity", "gzip"):
            raise ConfigError("gRPC compression must be identity or gzip")

    @property
    def compression(self) -> grpc.Compression:
        """The channel's compression, as grpcio names it."""
        return (grpc.Compression.Gzip if self.grpc_compression == "gzip"
                else grpc.Compression.NoCompression)


def query_int(query: dict[str, list[str]], key: str, default: int) -> int:
    raw = query.get(key, [str(default)])[0]
    if not raw.isdigit() or len(raw) > 18:
        raise ProtocolFailure("bad_request", f"{key} must be a non-negative integer: {raw!r}")
    return int(raw)


# How long a server that accepts TCP but failed gRPC's first attempt gets to become ready.
_REACHABLE_GRACE_S = 3.0
# The lab's own TCP (+TLS) probe, after grpcio's attempt failed (its connect deadline
# is 20 s: a server that accepts and never speaks costs both).
PROBE_LIMIT_S = 5.0
_WAITED_KINDS = frozenset({"connect_timeout", "tls_timeout", "connect_failed"})


def _as_waited(failure: ProtocolFailure, start_ns: int, *, grace: bool = False) -> ProtocolFailure:
    """`failure` saying how long the channel was really waited for: the probe's own
    "TLS handshake took over 5.0 s" came after grpcio's 20 s attempt, so the message and
    the moment the request fails agree (a refusal or a rejected certificate is at once)."""
    if failure.kind not in _WAITED_KINDS or (failure.kind == "connect_failed" and not grace):
        return failure
    waited = (now_ns() - start_ns) / 1e9
    what = {"connect_timeout": "no TCP answer", "tls_timeout": "no TLS handshake"}.get(
        failure.kind)
    if what is None:
        return ProtocolFailure(failure.kind, f"{failure} (gave up after {waited:.1f} s)")
    return ProtocolFailure(failure.kind, f"{what} from the gRPC server within {waited:.1f} s "
                           f"(grpcio's connection attempt, then the lab's own for "
                           f"{PROBE_LIMIT_S:g} s)")


class GrpcClient:
    name: ClassVar[str] = "grpc"

    def __init__(self, target: Target, options: GrpcOptions | None = None) -> None:
        if target.tls and target.ca_file is not None:
            check_ca_file(target.ca_file)
        self.target, self.options = target, options or GrpcOptions()
        self._channel: grpc.aio.Channel | None = None
        self._ready: asyncio.Task[tuple[int, int]] | None = None
        self._numbers = 0

    async def request(self, request: Request) -> RequestRecord:
        tl = Timeline(self.name, request)
        try:
            check_request(request)
            await self._connect(tl)
            await self._call(request, tl)
        except TimeoutError:
            tl.fail("timeout", f"no answer within {self.options.timeout} s")
        except ProtocolFailure as exc:
            tl.fail(exc.kind, str(exc))
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            tl.status = code.value[0]
            tl.fail(f"grpc_{code.name.lower()}", exc.details() or code.name)
        if tl.error is None:
            tl.done_ns = tl.done_ns or now_ns()
        return tl.freeze()

    async def close(self) -> None:
        if self._channel is not None:
            await self._drop(self._channel)

    async def _drop(self, channel: grpc.aio.Channel) -> None:
        """Close `channel`; the next request opens a new one (unless one already did)."""
        if self._channel is channel:
            if self._ready is not None:
                self._ready.cancel()  # still connecting: nobody will read its outcome
            self._channel, self._ready = None, None
        await channel.close()

    async def _connect(self, tl: Timeline) -> None:
        new = self._channel is None
        if self._channel is None or self._ready is None:
            self._numbers += 1
            self._channel = self._open_channel()
            self._ready = asyncio.create_task(self._wait_ready(self._channel, now_ns()))
        channel, ready_task = self._channel, self._ready
        try:
            start, ready = await asyncio.wait_for(asyncio.shield(ready_task),
                                                  self.options.timeout)
        except TimeoutError as exc:
            await self._drop(channel)
            raise ProtocolFailure(
                "connect_timeout", f"gRPC channel to {self.target.authority} not ready within "
                f"{self.options.timeout} s") from exc
        except ProtocolFailure:
            await self._drop(channel)
            raise
        tl.connection_id, tl.new_connection = self._numbers, new
        if new:
            tl.conn_start_ns, tl.handshake_ns, tl.upgraded_ns = start, ready, ready
        tl.alpn = "h2"
        tl.tls_version = "TLS" if self.target.tls else None  # grpcio does not expose it

    async def _wait_ready(self, channel: grpc.aio.Channel, start: int) -> tuple[int, int]:
        """READY, or the typed reason of the first TRANSIENT_FAILURE (grpcio would retry
        with backoff until the deadline and hide why)."""
        state = channel.get_state(try_to_connect=True)
        while state is not grpc.ChannelConnectivity.READY:
            if state is grpc.ChannelConnectivity.TRANSIENT_FAILURE:
                failure = _as_waited(await self._diagnose(), start)
                # Refused, untrusted, unresolvable: final at once. A server that accepts TCP
                # (and TLS) gets grpcio's next attempts for a few seconds (its backoff
                # starts at 1 s): a first attempt can fail transiently without anything
                # being wrong with the server.
                if failure.kind != "connect_failed":
                    raise failure
                try:
                    await asyncio.wait_for(self._until_ready(channel), _REACHABLE_GRACE_S)
                except TimeoutError:
                    raise _as_waited(failure, start, grace=True) from None
                return start, now_ns()
            if state is grpc.ChannelConnectivity.SHUTDOWN:
                raise ProtocolFailure("closed", "gRPC channel closed while connecting")
            await channel.wait_for_state_change(state)
            state = channel.get_state(try_to_connect=True)
        return start, now_ns()

    @staticmethod
    async def _until_ready(channel: grpc.aio.Channel) -> None:
        state = channel.get_state(try_to_connect=True)
        while state is not grpc.ChannelConnectivity.READY:
            if state is grpc.ChannelConnectivity.SHUTDOWN:
                raise ProtocolFailure("closed", "gRPC channel closed while connecting")
            await channel.wait_for_state_change(state)
            state = channel.get_state(try_to_connect=True)

    async def _diagnose(self) -> ProtocolFailure:
        """Why the channel failed, from one TCP (+TLS) connection of the lab's own."""
        limit = min(self.options.timeout, PROBE_LIMIT_S)
        try:
            probe = await open_tcp(self.target, tls_context_for(self.target, ["h2"]),
                                   DEFAULT_CC, limit)
        except ProtocolFailure as failure:
            return failure
        probe.writer.close()
        await probe.wait_closed()
        how = "TCP and TLS" if self.target.tls else "TCP"
        return ProtocolFailure(
            "connect_failed", f"gRPC channel to {self.target.authority} failed though {how} "
            "connect: not a gRPC (HTTP/2) server there?")

    def _open_channel(self) -> grpc.aio.Channel:
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", self.options.max_message),
            ("grpc.max_send_message_length", self.options.max_message),
            ("grpc.enable_retries", 0),  # a retried call would hide a failure's timing
        ]
        compression = self.options.compression
        if not self.target.tls:
            return grpc.aio.insecure_channel(self.target.authority, options=options,
                                             compression=compression)
        roots = self.target.ca_file.read_bytes() if self.target.ca_file else None
        if self.target.server_name:
            options.append(("grpc.ssl_target_name_override", self.target.server_name))
        credentials = grpc.ssl_channel_credentials(root_certificates=roots)
        return grpc.aio.secure_channel(self.target.authority, credentials, options=options,
                                       compression=compression)

    async def _call(self, request: Request, tl: Timeline) -> None:
        assert self._channel is not None  # _connect opened it
        split = urlsplit(request.path)
        parts = [p for p in split.path.split("/") if p]
        query = parse_qs(split.query)
        if len(parts) == 1:
            service, method = SERVICE, _ALIASES.get(parts[0], parts[0])
        elif len(parts) == 2:
            service, method = parts
        else:
            raise ProtocolFailure("bad_request", f"not a gRPC method path: {request.path!r}")
        full = f"/{service}/{method}"
        timeout = self.options.timeout
        channel = self._channel
        if service != SERVICE or query.get("raw") == ["1"] or method not in _BUILDERS:
            call = channel.unary_unary(full)
            await self._unary(call(request.body, timeout=timeout), request.body, tl, None)
            return
        if method == "Unary":
            body = lab_pb2.SizeRequest(size=query_int(query, "size", 0), body=request.body)
            await self._unary(channel.unary_unary(full)(body.SerializeToString(),
                                                        timeout=timeout),
                              body.SerializeToString(), tl, lab_pb2.Payload)
        elif method == "Records":
            body_r = lab_pb2.RecordsRequest(count=query_int(query, "count", 10),
                                            seed=query_int(query, "seed", 0))
            wire = body_r.SerializeToString()
            compression = grpc.Compression.Gzip if query.get("gzip") == ["1"] else None
            await self._unary(channel.unary_unary(full)(wire, timeout=timeout,
                                                        compression=compression),
                              wire, tl, None)
        elif method == "ServerStream":
            body_s = lab_pb2.StreamRequest(count=query_int(query, "count", 10),
                                           size=query_int(query, "size", 1024),
                                           interval_ms=query_int(query, "interval_ms", 0))
            wire = body_s.SerializeToString()
            tl.bytes_out = len(wire) + _PREFIX
            stream = channel.unary_stream(full)(wire, timeout=timeout)
            tl.request_sent_ns = now_ns()
            await self._read_stream(stream, tl, rtt=False)
            await self._finish(stream, tl)
        elif method == "ClientStream":
            count, size = query_int(query, "count", 10), query_int(query, "size", 1024)
            await self._client_stream(channel.stream_unary(full), count, size, tl)
        else:  # Bidi
            count, size = query_int(query, "count", 10), query_int(query, "size", 64)
            await self._bidi(channel.stream_stream(full), count, size, tl)

    async def _unary(self, call: Any, sent: bytes, tl: Timeline, parse: Any) -> None:
        tl.bytes_out = len(sent) + _PREFIX
        tl.request_sent_ns = now_ns()
        reply: bytes = await call
        tl.first_byte_ns = tl.done_ns = now_ns()
        tl.bytes_in = len(reply) + _PREFIX
        tl.body(reply)
        tl.first_byte_ns = tl.done_ns
        if parse is not None:
            message = parse.FromString(reply)
            tl.messages.append(MessageTiming(1, len(message.data), message.sent_ns, tl.done_ns))
        await self._finish(call, tl)

    async def _read_stream(self, stream: Any, tl: Timeline, *, rtt: bool) -> None:
        async for raw in stream:
            arrived = now_ns()
            self._on_message(raw, arrived, tl)

    def _on_message(self, raw: bytes, arrived: int, tl: Timeline) -> lab_pb2.Payload:
        if tl.first_byte_ns is None:
            tl.first_byte_ns = arrived
        tl.bytes_in += len(raw) + _PREFIX
        try:
            message: lab_pb2.Payload = lab_pb2.Payload.FromString(raw)
        except DecodeError as exc:
            raise ProtocolFailure("bad_message", f"undecodable Payload: {exc}") from exc
        tl.body_bytes += len(message.data)
        if tl.request.record_arrivals:
            tl.arrivals.append((arrived, len(raw)))
        tl.messages.append(MessageTiming(message.seq, len(message.data), message.sent_ns,
                                         arrived))
        return message

    async def _client_stream(self, method: Any, count: int, size: int, tl: Timeline) -> None:
        data = bytes(size)

        async def messages() -> AsyncIterator[bytes]:
            for seq in range(1, count + 1):
                wire = lab_pb2.Payload(seq=seq, sent_ns=now_ns(), data=data).SerializeToString()
                tl.bytes_out += len(wire) + _PREFIX
                yield wire
            tl.request_sent_ns = now_ns()

        call = method(messages(), timeout=self.options.timeout)
        reply: bytes = await call
        tl.first_byte_ns = tl.done_ns = now_ns()
        tl.bytes_in = len(reply) + _PREFIX
        tl.body(reply)
        summary = lab_pb2.StreamSummary.FromString(reply)
        if summary.messages != count or summary.bytes != count * size:
            raise ProtocolFailure("incomplete", f"server saw {summary.messages} messages, "
                                  f"{summary.bytes} bytes; sent {count} x {size}")
        await self._finish(call, tl)

    async def _bidi(self, method: Any, count: int, size: int, tl: Timeline) -> None:
        """Ping-pong: write one, read its echo, repeat; each round trip on the client clock."""
        call = method(timeout=self.options.timeout)
        data = bytes(size)
        for seq in range(1, count + 1):
            sent = now_ns()
            wire = lab_pb2.Payload(seq=seq, sent_ns=sent, data=data).SerializeToString()
            tl.bytes_out += len(wire) + _PREFIX
            await call.write(wire)
            tl.request_sent_ns = tl.request_sent_ns or now_ns()
            raw = await call.read()
            if raw is grpc.aio.EOF:
                raise ProtocolFailure("incomplete", f"stream ended after {seq - 1} replies")
            arrived = now_ns()
            reply = self._on_message(raw, arrived, tl)
            # The round trip is what ping-pong measures: client send -> client receive.
            tl.messages[-1] = MessageTiming(reply.seq, len(reply.data), sent, arrived)
        await call.done_writing()
        tl.done_ns = now_ns()
        await self._finish(call, tl)

    @staticmethod
    async def _finish(call: Any, tl: Timeline) -> None:
        code = await call.code()
        tl.status = code.value[0]
        if code is not grpc.StatusCode.OK:
            tl.fail(f"grpc_{code.name.lower()}", await call.details() or code.name)
        tl.done_ns = tl.done_ns or now_ns()


_BUILDERS = ("Unary", "ServerStream", "ClientStream", "Bidi", "Records")
_ALIASES = {"records": "Records"}  # the REST workload's path for the same call
