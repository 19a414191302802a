"""gRPC server (grpcio asyncio API) for the `protolab.Lab` service in protolab/proto/lab.proto.

Handlers take and return raw bytes and parse them here, so a malformed protobuf is
answered with INVALID_ARGUMENT and a reason (grpcio's own deserialiser would say
INTERNAL), and so handlers see exact message sizes. Limits are set deliberately
(GrpcSettings): a request message over `max_receive` gets RESOURCE_EXHAUSTED from
grpcio itself; a reply that would exceed `max_send`, or an argument over the
workload limits, gets INVALID_ARGUMENT with the limit in the details. Server
reflection is on, so generic tools can list and call the service.

grpcio opens its sockets in C with no hook to set TCP_CONGESTION, so gRPC runs with
the kernel's default congestion control (BBR on the lab machines), unlike the other
TCP servers (cubic by default). docs/ws-grpc.md says what that means for comparisons.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message
from grpc_reflection.v1alpha import reflection

from protolab.certs import CertBundle
from protolab.errors import ConfigError
from protolab.events import MAX_INTERVAL_MS
from protolab.proto import lab_pb2
from protolab.proto.convert import records_to_proto
from protolab.records import DEFAULT_SEED, make_records
from protolab.timing import now_ns
from protolab.workload import content_at
from servers.common import ServerConfig, log

SERVICE = "protolab.Lab"
_M = TypeVar("_M", bound=Message)
# Bytes a Payload adds around its data (tags, lengths, seq, sent_ns): kept free under
# max_send so a reply of `size` data bytes fits.
_ENVELOPE = 64


@dataclass
class RunningGrpc:
    server: grpc.aio.Server
    port: int

    async def stop(self) -> None:
        await self.server.stop(grace=None)


def _data(size: int) -> bytes:
    """`size` bytes of the /bytes/N pattern, so gRPC bodies are the HTTP bodies."""
    out = bytearray()
    while len(out) < size:
        out += content_at(len(out), min(size - len(out), 60_000))
    return bytes(out)


class _Lab:
    def __init__(self, config: ServerConfig) -> None:
        self._settings, self._limits = config.grpc, config.limits

    async def _parse(self, cls: type[_M], raw: bytes, context: grpc.aio.ServicerContext) -> _M:
        try:
            message: _M = cls.FromString(raw)
        except DecodeError as exc:
            log.info("grpc: malformed %s: %s", cls.__name__, exc)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"malformed protobuf ({cls.DESCRIPTOR.full_name}): {exc}")
            raise  # abort() raises; this line keeps type checkers honest
        return message

    async def _check(self, context: grpc.aio.ServicerContext, ok: bool, detail: str) -> None:
        if not ok:
            log.info("grpc: invalid argument: %s", detail)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, detail)

    async def unary(self, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        request = await self._parse(lab_pb2.SizeRequest, raw, context)
        limit = self._settings.max_send - _ENVELOPE
        await self._check(context, request.size <= limit,
                          f"size={request.size} is over the reply limit of {limit} bytes")
        data = request.body if request.body else _data(request.size)
        reply: bytes = lab_pb2.Payload(seq=1, sent_ns=now_ns(), data=data).SerializeToString()
        return reply

    async def server_stream(
        self, raw: bytes, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        request = await self._parse(lab_pb2.StreamRequest, raw, context)
        limit = self._settings.max_send - _ENVELOPE
        await self._check(context, request.size <= limit,
                          f"size={request.size} is over the message limit of {limit} bytes")
        await self._check(context, request.count <= self._limits.max_records,
                          f"count={request.count} is over the limit of {self._limits.max_records}")
        await self._check(context, request.interval_ms <= MAX_INTERVAL_MS,
                          f"interval_ms={request.interval_ms} is over {MAX_INTERVAL_MS}")
        data = _data(request.size)
        origin = now_ns()
        for seq in range(1, request.count + 1):
            delay = origin + (seq - 1) * request.interval_ms * 1_000_000 - now_ns()
            if delay > 0:
                await asyncio.sleep(delay / 1e9)
            yield lab_pb2.Payload(seq=seq, sent_ns=now_ns(), data=data).SerializeToString()

    async def client_stream(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> bytes:
        summary = lab_pb2.StreamSummary()
        async for raw in requests:
            message = await self._parse(lab_pb2.Payload, raw, context)
            t = now_ns()
            summary.first_ns = summary.first_ns or t
            summary.last_ns = t
            summary.messages += 1
            summary.bytes += len(message.data)
        reply: bytes = summary.SerializeToString()
        return reply

    async def bidi(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        async for raw in requests:
            message = await self._parse(lab_pb2.Payload, raw, context)
            yield lab_pb2.Payload(
                seq=message.seq, sent_ns=now_ns(), data=message.data).SerializeToString()

    async def records(self, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        request = await self._parse(lab_pb2.RecordsRequest, raw, context)
        await self._check(context, request.count <= self._limits.max_records,
                          f"count={request.count} is over the limit of {self._limits.max_records}")
        records = make_records(request.count, request.seed or DEFAULT_SEED)
        reply: bytes = records_to_proto(records).SerializeToString()
        await self._check(context, len(reply) <= self._settings.max_send,
                          f"{request.count} records are {len(reply)} bytes, over the reply "
                          f"limit of {self._settings.max_send}")
        return reply


def _handlers(lab: _Lab) -> grpc.GenericRpcHandler:
    # No (de)serialisers: handlers get and return bytes (see the module docstring).
    methods: dict[str, Any] = {
        "Unary": grpc.unary_unary_rpc_method_handler(lab.unary),
        "ServerStream": grpc.unary_stream_rpc_method_handler(lab.server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(lab.client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(lab.bidi),
        "Records": grpc.unary_unary_rpc_method_handler(lab.records),
    }
    handler: grpc.GenericRpcHandler = grpc.method_handlers_generic_handler(SERVICE, methods)
    return handler


def grpc_options(config: ServerConfig) -> list[tuple[str, Any]]:
    s = config.grpc
    return [
        ("grpc.max_receive_message_length", s.max_receive),
        ("grpc.max_send_message_length", s.max_send),
        ("grpc.so_reuseport", 0),  # a taken port is an error, not a shared listener
        ("grpc.max_connection_idle_ms", int(config.idle_timeout * 1000)),
    ]


async def start_grpc_server(
    config: ServerConfig, certs: CertBundle | None, port: int
) -> RunningGrpc:
    server = grpc.aio.server(options=grpc_options(config))
    server.add_generic_rpc_handlers((_handlers(_Lab(config)),))
    if config.grpc.reflection:
        reflection.enable_server_reflection((SERVICE, reflection.SERVICE_NAME), server)
    host = f"[{config.host}]" if ":" in config.host else config.host
    address = f"{host}:{port}"
    try:
        if certs is not None:
            credentials = grpc.ssl_server_credentials(
                [(certs.key_file.read_bytes(), certs.chain_file.read_bytes())]
            )
            bound = server.add_secure_port(address, credentials)
        else:
            bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        bound = 0
        reason = str(exc)
    else:
        reason = "address in use or not available"
    if not bound:
        raise ConfigError(f"cannot listen for gRPC on {address}: {reason}",
                          hint="choose another --port (0 picks free ones) or --host")
    await server.start()
    return RunningGrpc(server, bound)


# For tests and tools: which handler names exist (the proto's service, checked in tests).
METHODS: tuple[str, ...] = ("Unary", "ServerStream", "ClientStream", "Bidi", "Records")
