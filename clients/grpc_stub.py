"""gRPC through grpcio's generated stub (`protolab/proto/lab_pb2_grpc.py`), as a service calls it.

The lab's own gRPC client (grpc.py) sends and receives raw bytes, waits for the
channel to be READY before its first call and never parses a reply it does not need.
This one does what application code does — `LabStub(channel).Records(request)` — and
the lab only reads the clock around the call:

- `start_ns` is just before the call, `done_ns` just after it returned the parsed
  message (serialising the request and parsing the reply, in grpcio's C++ protobuf,
  are inside). `first_byte_ns` is `done_ns`: a unary stub shows nothing in between.
- The connection is made by the first call. `conn_start_ns` is the channel's creation
  and `handshake_ns` the moment a watcher saw it READY (TCP + TLS + HTTP/2 settings,
  which grpcio does not split). That moment is observed, not waited for: the first
  call's time includes the connection, as an application's does.
- Bytes: the request and the reply as protobuf (`ByteSize()`, computed after `done_ns`)
  plus gRPC's 5-byte prefix each. HTTP/2 headers and framing stay inside grpcio's C
  core and are not counted; neither is compression (knob `grpc_compression = "gzip"`:
  the channel compresses requests and the server its replies, sizes unseen).
- Unknown: TLS version and cipher, TCP_INFO, the socket's congestion control (grpcio
  opens its sockets in C: the namespace default).

Paths, the HTTP workload's vocabulary where one exists, so one suite sends both:

  /records?count=N[&seed=K][&gzip=1]   Records (REST's `GET /records`); gzip=1 calls with
  /Records?count=N[&seed=K][&gzip=1]   gzip message compression — of the request; the
                                       server's replies are gzip only with the knob
                                       grpc_compression = "gzip"
  /Unary?size=N                        Unary (the body, if any, is echoed instead)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # as clients/grpc.py: failures are records

import grpc  # noqa: E402 - after GRPC_VERBOSITY

from clients.base import check_request  # noqa: E402
from clients.grpc import GrpcOptions, query_int  # noqa: E402
from clients.tcp import open_tcp, tls_context_for  # noqa: E402
from protolab.core.record import Request, RequestRecord, Target, Timeline  # noqa: E402
from protolab.errors import ProtocolFailure  # noqa: E402
from protolab.proto import lab_pb2, lab_pb2_grpc  # noqa: E402
from protolab.tcpsock import DEFAULT_CC  # noqa: E402
from protolab.timing import now_ns  # noqa: E402
from protolab.tlsfiles import check_ca_file  # noqa: E402

_PREFIX = 5  # gRPC message prefix: compressed flag + 4-byte length


# The same options as the lab's own gRPC client: one place says what they mean.
GrpcStubOptions = GrpcOptions


class GrpcStubClient:
    name: ClassVar[str] = "grpc-stub"

    def __init__(self, target: Target, options: GrpcStubOptions | None = None) -> None:
        if target.tls and target.ca_file is not None:
            check_ca_file(target.ca_file)
        self.target, self.options = target, options or GrpcStubOptions()
        self._channel: grpc.aio.Channel | None = None
        self._stub: lab_pb2_grpc.LabStub | None = None
        self._opened_ns = 0
        self._ready_ns: int | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._numbers = 0
        self._calls = 0  # calls on the current channel

    async def request(self, request: Request) -> RequestRecord:
        tl = Timeline(self.name, request)
        try:
            check_request(request)
            await self._call(request, tl)
        except ProtocolFailure as exc:
            tl.fail(exc.kind, str(exc))
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            tl.status = code.value[0]
            if code is grpc.StatusCode.UNAVAILABLE and tl.new_connection:
                failure = await self._diagnose()
                if failure is not None:
                    tl.status = None
                    tl.fail(failure.kind, str(failure))
            kind = "timeout" if code is grpc.StatusCode.DEADLINE_EXCEEDED else \
                f"grpc_{code.name.lower()}"
            tl.fail(kind, exc.details() or code.name)
            await self.close()  # the next call starts over on a new channel
        self._stamp_connection(tl)
        if tl.error is None:
            tl.done_ns = tl.done_ns or now_ns()
        return tl.freeze()

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self._channel is not None:
            await self._channel.close()
        self._channel = self._stub = self._watcher = None
        self._ready_ns = None

    async def _diagnose(self) -> ProtocolFailure | None:
        """Why a first call found the server UNAVAILABLE, in the TCP clients' words
        (connect_refused, tls_verify, ...), from one connection of the lab's own opener
        made after the measured call failed; None when that one connects."""
        try:
            probe = await open_tcp(self.target, tls_context_for(self.target, ["h2"]),
                                   DEFAULT_CC, min(self.options.timeout, 5.0))
        except ProtocolFailure as failure:
            return failure
        probe.writer.close()
        await probe.wait_closed()
        return None

    def _open(self) -> lab_pb2_grpc.LabStub:
        if self._stub is not None:
            return self._stub
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", self.options.max_message),
            ("grpc.max_send_message_length", self.options.max_message),
            ("grpc.enable_retries", 0),  # a retried call would hide a failure's timing
        ]
        self._opened_ns = now_ns()
        if self.target.tls:
            roots = self.target.ca_file.read_bytes() if self.target.ca_file else None
            if self.target.server_name:
                options.append(("grpc.ssl_target_name_override", self.target.server_name))
            credentials = grpc.ssl_channel_credentials(root_certificates=roots)
            channel = grpc.aio.secure_channel(self.target.authority, credentials,
                                              options=options,
                                              compression=self.options.compression)
        else:
            channel = grpc.aio.insecure_channel(self.target.authority, options=options,
                                                compression=self.options.compression)
        self._numbers += 1
        self._calls = 0
        self._channel, self._stub = channel, lab_pb2_grpc.LabStub(channel)  # type: ignore[no-untyped-call]
        self._watcher = asyncio.create_task(self._watch(channel))
        return self._stub

    async def _watch(self, channel: grpc.aio.Channel) -> None:
        """Stamp when the channel first becomes READY (observed; nobody waits for it)."""
        state = channel.get_state(try_to_connect=False)
        while state is not grpc.ChannelConnectivity.READY:
            if state is grpc.ChannelConnectivity.SHUTDOWN:
                return
            await channel.wait_for_state_change(state)
            state = channel.get_state(try_to_connect=False)
        self._ready_ns = now_ns()

    def _stamp_connection(self, tl: Timeline) -> None:
        tl.connection_id = self._numbers
        tl.alpn = "h2"
        tl.tls_version = "TLS" if self.target.tls else None  # grpcio does not expose it
        if tl.new_connection:
            tl.conn_start_ns = self._opened_ns
            tl.handshake_ns = tl.upgraded_ns = self._ready_ns

    async def _call(self, request: Request, tl: Timeline) -> None:
        split = urlsplit(request.path)
        query = parse_qs(split.query)
        method = split.path.strip("/")
        compression = grpc.Compression.Gzip if query.get("gzip") == ["1"] else None
        stub = self._open()
        tl.new_connection = self._calls == 0
        self._calls += 1
        timeout = self.options.timeout
        if method in ("records", "Records"):
            records_request = lab_pb2.RecordsRequest(count=query_int(query, "count", 10),
                                                     seed=query_int(query, "seed", 0))
            tl.request_sent_ns = now_ns()
            records = await stub.Records(records_request, timeout=timeout,
                                         compression=compression)
            tl.first_byte_ns = tl.done_ns = now_ns()
            tl.bytes_out = records_request.ByteSize() + _PREFIX
            tl.body_bytes = records.ByteSize()
            tl.transport["records"] = len(records.records)
        elif method == "Unary":
            unary_request = lab_pb2.SizeRequest(size=query_int(query, "size", 0),
                                                body=request.body)
            tl.request_sent_ns = now_ns()
            payload = await stub.Unary(unary_request, timeout=timeout, compression=compression)
            tl.first_byte_ns = tl.done_ns = now_ns()
            tl.bytes_out = unary_request.ByteSize() + _PREFIX
            tl.body_bytes = payload.ByteSize()
        else:
            raise ProtocolFailure("bad_request", f"the stub client calls Records and Unary, "
                                  f"not {split.path!r}")
        tl.bytes_in = tl.body_bytes + _PREFIX
        tl.status = grpc.StatusCode.OK.value[0]
