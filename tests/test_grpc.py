"""gRPC: the lab's client against the lab's server (TLS and plaintext), records identical to
the JSON ones, bad input, reflection, and generated code that matches lab.proto."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from protolab.core.record import Request, RequestRecord
from protolab.proto import generate
from protolab.proto.convert import records_from_proto
from protolab.records import make_records, records_from_json
from protolab.registry import make_client
from servers.common import GrpcSettings
from servers.run import RunningServers
from tests.conftest import ServerFactory
from tests.helpers import target_for

TLS = pytest.mark.parametrize("tls", [True, False], ids=["tls", "plaintext"])


def test_generated_code_matches_the_proto(tmp_path: Path) -> None:
    fresh = generate.generate(tmp_path)
    for path in fresh:
        committed = generate.HERE / path.name
        assert committed.read_text() == path.read_text(), (
            f"{committed} is stale: run `python -m protolab.proto.generate`")


async def calls(running: RunningServers, *requests: Request) -> list[RequestRecord]:
    client = make_client("grpc", target_for(running, "grpc", server_name="localhost"))
    try:
        return [await client.request(r) for r in requests]
    finally:
        await client.close()


def grpc_server(
    lab_server: ServerFactory, tls: bool, **overrides: Any
) -> AbstractAsyncContextManager[RunningServers]:
    return lab_server(protocols=("grpc",), **({} if tls else {"certs": None}), **overrides)


@pytest.mark.asyncio
@TLS
async def test_every_call_type(lab_server: ServerFactory, tls: bool) -> None:
    async with grpc_server(lab_server, tls) as running:
        unary, server_stream, client_stream, bidi, records = await calls(
            running,
            Request(path="/Unary?size=5000"),
            Request(path="/protolab.Lab/ServerStream?count=50&size=1000&interval_ms=1"),
            Request(path="/ClientStream?count=20&size=300"),
            Request(path="/Bidi?count=10&size=64"),
            Request(path="/Records?count=25", keep_body=True),
        )
    for record in (unary, server_stream, client_stream, bidi, records):
        assert record.ok, (record.path, record.error, record.error_detail)
        assert record.status == 0  # grpc.StatusCode.OK
    # The channel-ready timeline belongs to the first call; the rest reuse the channel.
    assert unary.new_connection
    assert not records.new_connection
    stamps = [unary.conn_start_ns, unary.upgraded_ns, unary.request_sent_ns, unary.done_ns]
    assert all(s is not None for s in stamps)
    assert stamps == sorted(stamps)  # type: ignore[type-var]
    assert unary.body_bytes > 5000
    assert unary.messages[0].size == 5000
    assert [m.seq for m in server_stream.messages] == list(range(1, 51))
    assert all(m.size == 1000 for m in server_stream.messages)
    assert all(m.sent_ns is not None and m.sent_ns < m.received_ns
               for m in server_stream.messages)
    assert server_stream.bytes_in >= 50 * 1005
    assert client_stream.bytes_out >= 20 * 305
    assert [m.seq for m in bidi.messages] == list(range(1, 11))
    assert records_from_proto(records.content or b"") == make_records(25)


@pytest.mark.asyncio
@pytest.mark.parametrize("count", [1, 1000])
async def test_records_same_over_grpc_and_json(lab_server: ServerFactory, count: int) -> None:
    async with lab_server(protocols=("h2", "grpc")) as running:
        (proto,) = await calls(running, Request(path=f"/Records?count={count}&seed=7",
                                                keep_body=True))
        client = make_client("h2", target_for(running, "h2"))
        try:
            json_record = await client.request(Request(path=f"/records?count={count}&seed=7",
                                                       keep_body=True))
        finally:
            await client.close()
    assert proto.ok, proto.error_detail
    assert json_record.ok, json_record.error_detail
    from_grpc = records_from_proto(proto.content or b"")
    assert from_grpc == records_from_json(json_record.content or b"")
    assert len(from_grpc) == count
    assert proto.body_bytes < json_record.body_bytes  # protobuf is the smaller encoding


@pytest.mark.asyncio
async def test_bad_input_gets_proper_status_and_server_goes_on(
    lab_server: ServerFactory,
) -> None:
    limits = GrpcSettings(max_receive=4096, max_send=1 << 20)
    async with grpc_server(lab_server, True, grpc=limits) as running:
        malformed, oversized, unknown, too_big_reply, too_many, fine = await calls(
            running,
            Request(path="/Unary?raw=1", body=b"\x0a\xff\xff\xff"),  # truncated length field
            Request(path="/Unary", body=b"x" * 5000),
            Request(path="/protolab.Lab/NoSuchMethod?raw=1", body=b""),
            Request(path="/Unary?size=2000000"),
            Request(path="/Records?count=100001"),
            Request(path="/Unary?size=10"),
        )
    assert malformed.error == "grpc_invalid_argument"
    assert "malformed protobuf" in (malformed.error_detail or "")
    assert oversized.error == "grpc_resource_exhausted"
    assert unknown.error == "grpc_unimplemented"
    assert too_big_reply.error == "grpc_invalid_argument"
    assert "over the reply limit" in (too_big_reply.error_detail or "")
    assert too_many.error == "grpc_invalid_argument"
    assert "count=100001" in (too_many.error_detail or "")
    assert fine.ok, fine.error_detail


@pytest.mark.asyncio
async def test_unreachable_server_is_a_typed_failure(lab_server: ServerFactory) -> None:
    async with grpc_server(lab_server, False) as running:
        target = target_for(running, "grpc")
    client = make_client("grpc", target, timeout=1.0)  # the port it listened on, now closed
    try:
        record = await client.request(Request(path="/Unary?size=1"))
    finally:
        await client.close()
    assert record.error == "connect_refused"


@pytest.mark.asyncio
async def test_reflection_lists_and_describes_the_service(lab_server: ServerFactory) -> None:
    async with grpc_server(lab_server, False) as running:

        def describe() -> tuple[list[str], list[str]]:
            with grpc.insecure_channel(f"127.0.0.1:{running.port('grpc')}") as channel:
                database = ProtoReflectionDescriptorDatabase(channel)
                services = list(database.get_services())
                from google.protobuf.descriptor_pool import DescriptorPool

                pool = DescriptorPool(database)
                lab = pool.FindServiceByName("protolab.Lab")
                return services, [m.name for m in lab.methods]

        services, methods = await asyncio.to_thread(describe)
    assert "protolab.Lab" in services
    assert methods == ["Unary", "ServerStream", "ClientStream", "Bidi", "Records"]
