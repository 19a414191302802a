"""`serve --proto ws,grpc` and `get` with ws(s):// and grpc(s):// URLs, as a user runs them."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.conftest import ServeProcess
from tests.test_cli import protolab


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "cleartext"])
def test_serve_ws_and_grpc_then_get_each(
    serve_process: Callable[..., ServeProcess], tls: bool
) -> None:
    server = serve_process("--proto", "h2,ws,grpc", *([] if tls else ["--no-tls"]))
    assert set(server.urls) == {"h2", "ws", "grpc"}
    ws, grpc = server.urls["ws"], server.urls["grpc"]
    assert ws.startswith("wss://" if tls else "ws://")
    assert grpc.startswith("grpcs://" if tls else "grpc://")
    ports = {url.rsplit(":", 1)[1] for url in server.urls.values()}
    assert len(ports) == 3  # each on its own port
    ca = ["--cacert", str(server.ca_file)] if server.ca_file else []

    echo = protolab("get", f"{ws}echo?count=3", "--data", "hello", "--json", *ca)
    assert echo.returncode == 0, echo.stderr
    (line,) = echo.stdout.splitlines()
    record = json.loads(line)
    assert record["protocol"] == "ws"
    assert record["status"] == 101
    assert [m["seq"] for m in record["messages"]] == [1, 2, 3]

    push = protolab("get", f"{ws}push?count=4&size=8&interval_ms=5", *ca)
    assert push.returncode == 0, push.stderr
    assert "4 messages, one-way ms" in push.stdout

    stream = protolab("get", f"{grpc}ServerStream?count=5&size=100", "--json", *ca)
    assert stream.returncode == 0, stream.stderr
    record = json.loads(stream.stdout)
    assert record["status"] == 0
    assert len(record["messages"]) == 5

    unknown = protolab("get", f"{grpc}NoSuchMethod", "--json", *ca)
    assert unknown.returncode == 1
    assert json.loads(unknown.stdout)["error"] == "grpc_unimplemented"
