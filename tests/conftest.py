"""Shared fixtures: certificates, in-process servers, and a `protolab serve` subprocess.

Servers bind port 0 and announce readiness (in-process: when `start_servers` returns;
subprocess: the "ready" line), so no test guesses a port or sleeps to wait.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from protolab.certs import CertBundle
from protolab.labserver import read_banner
from servers.common import CertSpec, ServerConfig
from servers.run import RunningServers, start_servers
from tests.helpers import stop_process


@pytest.fixture(scope="session")
def cert_spec(tmp_path_factory: pytest.TempPathFactory) -> CertSpec:
    return CertSpec(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def certs(cert_spec: CertSpec) -> CertBundle:
    """The files behind `cert_spec`, made once a session (servers reuse them)."""
    return cert_spec.ensure()


@pytest.fixture
def base_config(cert_spec: CertSpec, certs: CertBundle) -> ServerConfig:
    return ServerConfig(host="127.0.0.1", port=0, certs=cert_spec)


ServerFactory = Callable[..., AbstractAsyncContextManager[RunningServers]]


@pytest_asyncio.fixture
async def lab_server(base_config: ServerConfig) -> AsyncIterator[ServerFactory]:
    """`async with lab_server(**overrides) as running:` starts servers in this event loop."""

    @asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[RunningServers]:
        running = await start_servers(replace(base_config, **overrides))
        try:
            yield running
        finally:
            await running.close()

    yield factory


@dataclass
class ServeProcess:
    urls: dict[str, str]
    ca_file: Path | None
    process: subprocess.Popen[str]
    log: Path  # the server's stderr (one line per rejected client)

    @property
    def port(self) -> int:
        return int(self.urls["h1" if "h1" in self.urls else "h2"].rsplit(":", 1)[1].strip("/"))


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[Callable[..., ServeProcess]]:
    """Start `protolab serve --port 0 ARGS...` and wait for its "ready" line."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> ServeProcess:
        env = {**os.environ, "PROTOLAB_STATE_DIR": str(tmp_path / "state")}
        log = tmp_path / f"serve-{len(started)}.log"
        with log.open("w") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "protolab", "serve", "--port", "0", *args],
                stdout=subprocess.PIPE, stderr=log_file, text=True, env=env,
            )
        started.append(proc)
        banner = read_banner(proc.stdout or ())
        if banner is None:
            raise AssertionError(f"protolab serve did not become ready: {log.read_text()}")
        return ServeProcess(banner.urls, banner.ca_file, proc, log)

    yield start
    for proc in started:
        stop_process(proc)
