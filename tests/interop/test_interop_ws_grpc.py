"""Interop with JavaScript peers (tests/interop/node: grpc-js and ws from the npm registry,
installed by ./run): the lab's gRPC and WebSocket servers serve them, and the lab's
clients call their servers. Nothing in those packages shares code with grpcio or websockets.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from protolab.certs import CertBundle
from protolab.core.record import Request, Target
from protolab.proto.generate import HERE as PROTO_DIR
from protolab.records import make_records
from protolab.registry import make_client
from tests.conftest import ServerFactory
from tests.helpers import TIMEOUT, stop_process, target_for

pytestmark = pytest.mark.interop

NODE_DIR = Path(__file__).parent / "node"
PROTO = str(PROTO_DIR / "lab.proto")


def node() -> str:
    binary = shutil.which("node")
    if binary is None:
        pytest.skip("node not installed (apt-get install nodejs; ./run installs the peers)")
    for package in ("@grpc/grpc-js", "@grpc/proto-loader", "ws"):
        if not (NODE_DIR / "node_modules" / package / "package.json").exists():
            pytest.skip(f"npm package {package} missing: run `npm ci` in {NODE_DIR} (./run does)")
    return binary


def run_node(*args: str) -> dict[str, object]:
    done = subprocess.run([node(), *args], capture_output=True, text=True, timeout=TIMEOUT,
                          cwd=NODE_DIR, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


@contextmanager
def node_server(*args: str) -> Iterator[int]:
    """Start a node peer server; yields its port once it printed "port N" (its readiness)."""
    proc = subprocess.Popen([node(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=NODE_DIR)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("port "), f"peer did not start: {line!r} {proc.stderr}"
        yield int(line.split()[1])
    finally:
        stop_process(proc)


TLS = pytest.mark.parametrize("tls", [True, False], ids=["tls", "plaintext"])


@pytest.mark.asyncio
@TLS
async def test_grpc_js_client_calls_the_lab_server(
    lab_server: ServerFactory, certs: CertBundle, tls: bool
) -> None:
    node()
    async with lab_server(protocols=("grpc",), **({} if tls else {"certs": None})) as running:
        result = await asyncio.to_thread(
            run_node, "grpc_peer.js", "client", PROTO, f"127.0.0.1:{running.port('grpc')}",
            *([str(certs.ca_file)] if tls else []))
    assert result["unary"] == {"size": 1000, "first": 0, "last": 999 % 251}
    assert result["server_stream"] == {"seqs": [1, 2, 3, 4, 5], "sizes": [10] * 5}
    assert result["client_stream"] == {"messages": 3, "bytes": 300}
    assert result["bidi"] == {"seqs": [1, 2, 3]}
    expected = make_records(3, seed=7)
    records = result["records"]
    assert isinstance(records, list)
    assert [r["name"] for r in records] == [r.name for r in expected]
    assert [r["score"] for r in records] == [r.score for r in expected]  # doubles, exact
    assert [int(r["created_seconds"]) for r in records] == [r.created_ms // 1000
                                                           for r in expected]
    assert [r["tags"] for r in records] == [list(r.tags) for r in expected]
    too_big = result["too_big"]
    assert isinstance(too_big, dict)
    assert too_big["code"] == 3  # INVALID_ARGUMENT
    assert "over the reply limit" in too_big["details"]


@pytest.mark.asyncio
@TLS
async def test_lab_grpc_client_calls_a_grpc_js_server(certs: CertBundle, tls: bool) -> None:
    args = [str(certs.chain_file), str(certs.key_file)] if tls else []
    with node_server("grpc_peer.js", "server", PROTO, *args) as port:
        target = Target("127.0.0.1", port, tls=tls, ca_file=certs.ca_file if tls else None,
                        server_name="localhost")
        client = make_client("grpc", target)
        try:
            unary, stream, client_stream, bidi, records = [
                await client.request(Request(path=p)) for p in (
                    "/Unary?size=2000", "/ServerStream?count=7&size=33",
                    "/ClientStream?count=4&size=50", "/Bidi?count=5&size=8", "/Records?count=2")
            ]
        finally:
            await client.close()
    for record in (unary, stream, client_stream, bidi):
        assert record.ok, (record.path, record.error, record.error_detail)
    assert unary.messages[0].size == 2000
    assert [m.seq for m in stream.messages] == list(range(1, 8))
    assert [m.seq for m in bidi.messages] == [1, 2, 3, 4, 5]
    assert records.error == "grpc_unimplemented"
    assert "protolab only" in (records.error_detail or "")


@pytest.mark.asyncio
@TLS
async def test_node_ws_client_talks_to_the_lab_server(
    lab_server: ServerFactory, certs: CertBundle, tls: bool
) -> None:
    node()
    async with lab_server(protocols=("ws",), **({} if tls else {"certs": None})) as running:
        url = f"{'wss' if tls else 'ws'}://127.0.0.1:{running.port('ws')}"
        result = await asyncio.to_thread(
            run_node, "ws_peer.js", "client", url, *([str(certs.ca_file)] if tls else []))
        after = make_client("ws", target_for(running, "ws"))
        try:
            still = await after.request(Request("POST", "/echo", b"after node"))
        finally:
            await after.close()
    assert result["echo"] == ["one", "two", "three"]
    assert result["push"] == {"seqs": [1, 2, 3, 4, 5], "code": 1000}
    assert result["too_big"] == {"code": 1009}  # 2 MiB over the 1 MiB default limit
    assert still.ok, still.error_detail


@pytest.mark.asyncio
async def test_lab_ws_client_talks_to_a_node_server() -> None:
    with node_server("ws_peer.js", "server") as port:
        client = make_client("ws", Target("127.0.0.1", port, tls=False))
        try:
            echo = await client.request(Request("POST", "/echo?count=4", b"\x00\x01binary"))
            push = await client.request(Request(path="/push?count=6"))
        finally:
            await client.close()
    assert echo.ok, echo.error_detail
    assert [m.seq for m in echo.messages] == [1, 2, 3, 4]
    assert push.ok, push.error_detail
    assert [m.seq for m in push.messages] == [1, 2, 3, 4, 5, 6]
