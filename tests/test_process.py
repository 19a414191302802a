"""The lab's server process: one JSON document configures it, one JSON line says it is
ready (or why not), and it stops on SIGTERM, on EOF of its stdin, or when its parent dies."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from protolab import registry
from protolab.core.procfs import process_state
from protolab.core.record import Target
from protolab.errors import ConfigError, LabError
from protolab.fetch import fetch
from protolab.labserver import parse_ready, start_local
from protolab.workload import Limits
from servers.common import (
    CertSpec,
    GrpcSettings,
    H2Settings,
    H3Settings,
    ServerConfig,
    WsSettings,
)
from servers.run import LISTENERS
from tests.helpers import TIMEOUT


def round_trip(config: ServerConfig) -> ServerConfig:
    return ServerConfig.from_json(json.loads(json.dumps(config.to_json())))


def test_the_document_round_trips_exactly(tmp_path: Path) -> None:
    assert round_trip(ServerConfig()) == ServerConfig()
    varied = ServerConfig(
        host="::1", port=0, protocols=("h2", "h3", "ws"),
        certs=CertSpec(tmp_path / "certs", "rsa-2048", 1, ("lab.test", "10.0.0.2")),
        tls_version="1.2", cc="reno", limits=Limits(max_body_bytes=1000), idle_timeout=2.5,
        scheduling="sequential",
        h2=H2Settings(window=1 << 20, connection_window=1 << 22, max_concurrent_streams=10,
                      max_frame_size=32_768, data_frame=1400),
        h3=H3Settings(cc="reno", window=1 << 21, connection_window=1 << 23,
                      qlog_dir=tmp_path / "qlog", secrets_log=tmp_path / "keys"),
        ws=WsSettings(compression=True, max_message=1000, ping_interval=5.0),
        grpc=GrpcSettings(max_receive=2048, max_send=4096, reflection=False),
    )
    assert round_trip(varied) == varied
    assert round_trip(ServerConfig(certs=None, protocols=("h1",))).certs is None


def test_knobs_have_the_suites_names() -> None:
    document = ServerConfig().to_json()
    assert {"cc", "tls_version", "scheduling"} <= set(document)
    assert {"window", "connection_window", "data_frame"} <= set(document["h2"])
    assert {"cc", "window", "connection_window"} <= set(document["h3"])


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ({"colour": "blue"}, "unknown key(s) ['colour']"),
        ({"h2": {"window": "big"}}, "key 'h2.window' must be an integer, got 'big'"),
        ({"port": True}, "key 'port' must be an integer, got True"),
        ({"idle_timeout": "1"}, "key 'idle_timeout' must be a number"),
        ({"protocols": "h1"}, "key 'protocols' must be a list"),
        ({"protocols": ["h1", 2]}, "key 'protocols[1]' must be a string"),
        ({"scheduling": "random"}, "key 'scheduling' must be one of 'round-robin', 'sequential'"),
        ({"certs": {"key_type": "dsa"}}, "key 'certs.key_type' must be one of"),
        ({"h3": {"cc": "bbr"}}, "key 'h3': aioquic has no congestion control 'bbr'"),
        ({"h2": {"data_frame": 0}}, "key 'h2': HTTP/2 DATA frame size must be 1..16777215"),
        ({"certs": None}, "HTTP/3 needs TLS"),
        ({"limits": []}, "key 'limits' must be a JSON object"),
        (["h1"], "server config must be a JSON object"),
    ],
)
def test_a_bad_document_is_a_config_error_naming_the_key(document: Any, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ServerConfig.from_json(document)
    assert words in str(caught.value)


def test_every_protocol_has_a_listener_and_url_schemes() -> None:
    specs = [registry.get(p) for p in registry.NAMES]
    assert {spec.listener for spec in specs} == set(LISTENERS)
    assert registry.get("h1").listener == registry.get("h2").listener  # one port, ALPN


def test_ready_line_gives_each_protocols_port_and_the_server_answers(
    cert_spec: CertSpec,
) -> None:
    config = ServerConfig(port=0, protocols=registry.NAMES, certs=cert_spec)
    with start_local(config) as server:
        ports = {p: server.port(p) for p in registry.NAMES}
        assert ports["h1"] == ports["h2"]
        assert len({ports["h2"], ports["ws"], ports["grpc"]}) == 3
        assert server.urls["h3"] == f"https://127.0.0.1:{ports['h3']}/"
        assert server.urls["grpc"] == f"grpcs://127.0.0.1:{ports['grpc']}/"
        assert server.ca_file is not None
        assert server.ca_file.exists()
        assert server.pid == server.process.pid
        target = Target(host="127.0.0.1", port=ports["h2"], ca_file=server.ca_file)
        (record,) = asyncio.run(fetch("h2", target, "/bytes/1000"))
        assert record.ok, record.error_detail
        assert server.cpu_s() > 0
        with pytest.raises(LabError, match="does not serve h9"):
            server.port("h9")
    assert server.process.returncode == 0  # stopped by EOF on its stdin, cleanly


def serve_raw(document: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "servers.process"], input=document,
                          capture_output=True, timeout=TIMEOUT, check=False)


def test_a_port_in_use_is_one_error_line_and_a_nonzero_exit() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = ServerConfig(port=port, protocols=("h1",), certs=None)
        result = serve_raw(json.dumps(config.to_json()).encode() + b"\n")
        with pytest.raises(LabError, match=f"cannot listen on TCP 127.0.0.1:{port}"):
            start_local(config)
    assert result.returncode == 2
    (line,) = result.stdout.splitlines()
    assert f"cannot listen on TCP 127.0.0.1:{port}" in json.loads(line)["error"]


@pytest.mark.parametrize(
    ("stdin", "words"),
    [(b"", "no configuration on stdin"), (b"{nope\n", "is not JSON"),
     (b'{"port": -1}\n', "port -1 out of range")],
)
def test_a_bad_configuration_is_one_error_line(stdin: bytes, words: str) -> None:
    result = serve_raw(stdin)
    assert result.returncode == 2
    (line,) = result.stdout.splitlines()
    assert words in json.loads(line)["error"]


def test_parse_ready_refuses_what_is_not_a_ready_line() -> None:
    with pytest.raises(LabError, match="not a ready line"):
        parse_ready(b'{"ready": {"ports": {"h1": "80"}, "urls": {}, "ca_file": null, "pid": 1}}')
    with pytest.raises(LabError, match="boom"):
        parse_ready('{"error": "boom"}')
    ready = parse_ready('{"ready": {"ports": {"h1": 80}, "urls": {}, "ca_file": null, "pid": 7}}')
    assert (ready.ports, ready.ca_file, ready.pid) == ({"h1": 80}, None, 7)


def test_sigterm_stops_the_server_cleanly() -> None:
    server = start_local(ServerConfig(port=0, protocols=("h1",), certs=None))
    try:
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(TIMEOUT) == 0
    finally:
        server.stop()


_PARENT = """
import sys, time
from protolab.labserver import start_local
from servers.common import ServerConfig
server = start_local(ServerConfig(port=0, protocols=("h1",), certs=None))
print(server.pid, flush=True)
time.sleep(600)
"""


def test_a_server_whose_parent_is_killed_stops_on_its_own() -> None:
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True)
    pid = 0
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        parent.send_signal(signal.SIGKILL)  # no finally, no atexit: only the pipe's EOF
        parent.wait(TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while process_state(pid) not in (None, "Z") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process_state(pid) in (None, "Z")  # gone, or exited and not yet reaped
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
        if pid and process_state(pid) not in (None, "Z"):
            os.kill(pid, signal.SIGKILL)  # the failure is reported above; leave nothing behind


def test_the_collector_never_runs_while_a_cells_client_is_timed(cert_spec: CertSpec) -> None:
    """A full collection stops every stream of the measured client (30-60 ms seen in a large
    process): the runner keeps the collector off while the client runs, as timeit does,
    and gives it back as it found it."""
    import gc

    from protolab.bench.runner import ClientJob, run_client
    from protolab.bench.suite import Variant, Workload

    config = ServerConfig(port=0, protocols=("h1", "h2", "h3"), certs=cert_spec)
    threshold = gc.get_threshold()
    gc.set_threshold(1)  # left on, the collector would run on every allocation or two
    try:
        with start_local(config) as server:
            target = Target(host="127.0.0.1", port=server.port("h3"), ca_file=server.ca_file)
            job = ClientJob(Variant(label="h3", protocol="h3"),
                            Workload(paths=("/bytes/100000",), count=5), 30.0)
            before = sum(s["collections"] for s in gc.get_stats())
            result = run_client(job, target)
            after = sum(s["collections"] for s in gc.get_stats())
        assert result.failure is None
        assert len(result.records) == 5
        assert all(r.ok for r in result.records)
        # At most the one or two allocations on each side of the window, where a client run
        # left to the collector at this threshold makes thousands of collections.
        assert after - before <= 4
        assert gc.isenabled()
    finally:
        gc.set_threshold(*threshold)
