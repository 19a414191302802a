"""gRPC server (grpcio asyncio API) for the `protolab.Lab` service in protolab/proto/lab.proto.

Handlers take and return raw bytes and parse them here, so a malformed protobuf is
answered with INVALID_ARGUMENT and a reason (grpcio's own deserialiser would say
INTERNAL), and so handlers see exact message sizes. Limits are set deliberately
(GrpcSettings): a request message over `max_receive` gets RESOURCE_EXHAUSTED from
grpcio itself; a reply that would exceed `max_send`, or an argument over the
workload limits, gets INVALID_ARGUMENT with the limit in the details. Server
reflection is on, so generic tools can list and call the service: v1alpha (what
grpcio-reflection ships) and v1 (grpc.reflection.v1.ServerReflection, what grpcurl and
current clients ask first; the same messages under another package name).

The server binds exactly the asked host. grpcio's C core binds the IPv4 wildcard as a
dual-stack [::] socket (IPv6 too, where the other listeners take IPv4 only) and has no
switch for it, so for 0.0.0.0 it binds every IPv4 address this host has, one by one.
grpcio does its TLS in C with no hook for a failed handshake: its own log line says
neither peer nor a usable reason, so C-core logs only errors (GRPC_VERBOSITY=ERROR
unless set) and a failed gRPC handshake is not logged.

grpcio opens its sockets in C with no hook to set TCP_CONGESTION, so gRPC runs with
the kernel's default congestion control (BBR on the lab machines), unlike the other
TCP servers (cubic by default). docs/ws-grpc.md says what that means for comparisons.

With `GrpcSettings.compression = "gzip"` (suite knob `grpc_compression`) every reply
message is gzip-compressed by grpcio (`grpc-encoding: gzip`, zlib's default level in
C-core) for clients that accept it — grpcio's clients do by default; "identity" (the
default) never compresses. grpcio compresses in C and reports no sizes, so the lab
cannot count a compressed message's bytes per call (docs/compression.md).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

# Read once, when grpc is first imported (clients/grpc.py says the same for the client).
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import grpc  # noqa: E402 - after GRPC_VERBOSITY
from google.protobuf import descriptor_pb2, descriptor_pool  # noqa: E402
from google.protobuf.message import DecodeError, Message  # noqa: E402
from grpc_reflection.v1alpha import reflection, reflection_pb2  # noqa: E402

from protolab.certs import CertBundle  # noqa: E402
from protolab.errors import ConfigError  # noqa: E402
from protolab.events import MAX_INTERVAL_MS  # noqa: E402
from protolab.proto import lab_pb2  # noqa: E402
from protolab.proto.convert import records_to_proto  # noqa: E402
from protolab.records import DEFAULT_SEED, make_records  # noqa: E402
from protolab.timing import now_ns  # noqa: E402
from protolab.workload import content_at  # noqa: E402
from servers.common import ServerConfig, log, printable  # noqa: E402

SERVICE = "protolab.Lab"
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
_BIND_ATTEMPTS = 5  # port 0 on several addresses: the first's free port may be taken on another
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
            log.info("grpc %s: malformed %s, answered INVALID_ARGUMENT: %s",
                     _peer(context), cls.__name__, printable(str(exc)))
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"malformed protobuf ({cls.DESCRIPTOR.full_name}): {exc}")
            raise  # abort() raises; this line keeps type checkers honest
        return message

    async def _check(self, context: grpc.aio.ServicerContext, ok: bool, detail: str) -> None:
        if not ok:
            log.info("grpc %s: answered INVALID_ARGUMENT: %s", _peer(context), detail)
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
    addresses = bind_addresses(config.host)
    credentials = None
    if certs is not None:
        credentials = grpc.ssl_server_credentials(
            [(certs.key_file.read_bytes(), certs.chain_file.read_bytes())])
    for _ in range(_BIND_ATTEMPTS if port == 0 else 1):
        server = _new_server(config)
        bound, why = _bind(server, addresses, port, credentials)
        if bound:
            await server.start()
            return RunningGrpc(server, bound)
        await server.stop(grace=None)
    shown = addresses[0] if len(addresses) == 1 else f"{config.host} ({', '.join(addresses)})"
    raise ConfigError(f"cannot listen for gRPC on {shown} port {port}: {why}",
                      hint="choose another --port (0 picks free ones) or --host")


def grpc_compression(name: str) -> grpc.Compression:
    """grpcio's compression for a `grpc_compression` knob value (identity or gzip)."""
    return grpc.Compression.Gzip if name == "gzip" else grpc.Compression.NoCompression


def _new_server(config: ServerConfig) -> grpc.aio.Server:
    server = grpc.aio.server(options=grpc_options(config),
                             compression=grpc_compression(config.grpc.compression))
    server.add_generic_rpc_handlers((_handlers(_Lab(config)),))
    if config.grpc.reflection:
        _enable_reflection(server)
    return server


def _bind(server: grpc.aio.Server, addresses: list[str], port: int,
          credentials: grpc.ServerCredentials | None) -> tuple[int, str]:
    """(the port bound on every address, "") or (0, why not)."""
    for address in addresses:
        target = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        try:
            if credentials is not None:
                bound = server.add_secure_port(target, credentials)
            else:
                bound = server.add_insecure_port(target)
        except RuntimeError as exc:
            return 0, printable(str(exc))
        if not bound:
            return 0, f"{target}: address in use or not available"
        port = bound  # the next addresses take the same number
    return port, ""


def bind_addresses(host: str) -> list[str]:
    """What to bind for `host`: itself, or for 0.0.0.0 every IPv4 address of this host
    (see the module docstring: grpcio would make the IPv4 wildcard dual-stack)."""
    if host != "0.0.0.0":
        return [host]
    addresses = local_ipv4_addresses()
    if not addresses:
        raise ConfigError("cannot list this host's IPv4 addresses to serve gRPC on 0.0.0.0",
                          hint="choose an address with --host (or :: for IPv4 and IPv6)")
    return addresses


def local_ipv4_addresses(fib_trie: Path = Path("/proc/net/fib_trie")) -> list[str]:
    """This network namespace's own IPv4 addresses: the kernel's local routes of one host
    ("/32 host LOCAL" in /proc/net/fib_trie), loopback first."""
    try:
        lines = fib_trie.read_text().splitlines()
    except OSError:
        return []
    found: dict[str, None] = {}
    last = ""
    for line in lines:
        text = line.strip()
        if text.startswith("|--"):
            last = text[3:].strip()
        elif text.startswith("/32 host LOCAL") and last:
            found[last] = None
    return sorted(found, key=lambda a: (not ipaddress.IPv4Address(a).is_loopback,
                                        ipaddress.IPv4Address(a)))


def _enable_reflection(server: grpc.aio.Server) -> None:
    """Server reflection v1alpha and v1 from one servicer: v1 is v1alpha's protocol under
    the package name grpc.reflection.v1 (same messages, same field numbers), so v1alpha's
    message classes read and write its bytes."""
    _register_reflection_v1()
    servicer = reflection.aio.ReflectionServicer(
        (SERVICE, reflection.SERVICE_NAME, REFLECTION_V1))
    server.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler(reflection.SERVICE_NAME, _reflection_methods(
            servicer)),
        grpc.method_handlers_generic_handler(REFLECTION_V1, _reflection_methods(servicer)),
    ))


def _reflection_methods(servicer: Any) -> dict[str, grpc.RpcMethodHandler]:
    return {"ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )}


def _register_reflection_v1() -> None:
    """Put grpc/reflection/v1/reflection.proto in the default descriptor pool (made from
    v1alpha's file, renamed), so reflection can describe its own v1 service too."""
    pool = descriptor_pool.Default()
    try:
        pool.FindServiceByName(REFLECTION_V1)
        return
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    old, new = ".grpc.reflection.v1alpha.", ".grpc.reflection.v1."
    proto.name, proto.package = "grpc_reflection/v1/reflection.proto", "grpc.reflection.v1"
    proto.ClearField("options")
    for message in proto.message_type:
        for message_field in message.field:
            if message_field.type_name:  # set only on message fields (assigning sets it)
                message_field.type_name = message_field.type_name.replace(old, new)
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old, new)
            method.output_type = method.output_type.replace(old, new)
    pool.AddSerializedFile(proto.SerializeToString())


def _peer(context: grpc.aio.ServicerContext) -> str:
    """grpc's "ipv4:127.0.0.1:5000" / "ipv6:[::1]:5000" as the other servers name peers."""
    peer = str(context.peer() or "unknown peer")
    return peer.split(":", 1)[1] if peer.startswith(("ipv4:", "ipv6:")) else peer


# For tests and tools: which handler names exist (the proto's service, checked in tests).
METHODS: tuple[str, ...] = ("Unary", "ServerStream", "ClientStream", "Bidi", "Records")
