"""The lab's server as a process of its own: one JSON document in, one JSON line out.

    python -m servers.process      (stdin: one line, a `ServerConfig.to_json()` document)

The process makes or reuses its certificates (`CertSpec.ensure`, as `protolab serve`
does), starts the servers, and prints exactly one line on stdout:

    {"ready": {"ports": {"h1": 40001, "h2": 40001, "h3": 40001}, "urls": {...},
               "ca_file": "/.../ca.pem", "pid": 4242}}

or `{"error": "what went wrong, one line"}` and exits non-zero (2 for a configuration
the lab refuses, such as a port in use; 1 for a bug, with its traceback on stderr).
It serves until SIGTERM or SIGINT, or until its stdin reaches EOF: the parent holds the
pipe's other end, so a server whose parent died — even by SIGKILL — stops on its own.
Logs go to stderr. protolab/labserver.py is the parent's side.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any

from protolab.errors import ConfigError, LabError
from servers.common import ServerConfig
from servers.run import RunningServers, start_servers


async def serve_until_stopped(
    config: ServerConfig,
    announce: Callable[[RunningServers], None],
    *,
    eof_fd: int | None = None,
) -> None:
    """Start the servers, `announce` them, and serve until SIGINT/SIGTERM — or until
    `eof_fd` (a pipe) reaches EOF, when one is given."""
    running = await start_servers(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if eof_fd is not None:
        loop.add_reader(eof_fd, _on_readable, eof_fd, stop)
    try:
        announce(running)
        await stop.wait()
    finally:
        if eof_fd is not None:
            loop.remove_reader(eof_fd)
        await running.close()


def _on_readable(fd: int, stop: asyncio.Event) -> None:
    try:
        data = os.read(fd, 4096)
    except OSError:
        data = b""
    if not data:  # EOF: the parent closed the pipe or died; anything else is ignored
        stop.set()


def ready_document(running: RunningServers) -> dict[str, Any]:
    """The one line a started server answers with (protolab/labserver.py reads it)."""
    certs = running.certs
    return {"ready": {"ports": dict(running.ports), "urls": running.urls(),
                      "ca_file": str(certs.ca_file) if certs is not None else None,
                      "pid": os.getpid()}}


def _say(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()


def _announce(running: RunningServers) -> None:
    _say(ready_document(running))
    # The parent reads one line and no more: anything printed later goes to stderr rather
    # than into a pipe nobody reads (which would block this process once it is full).
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())


def read_config(line: bytes) -> ServerConfig:
    if not line.strip():
        raise ConfigError("no configuration on stdin",
                          hint="send one line: a ServerConfig.to_json() document")
    try:
        document = json.loads(line)
    except ValueError as exc:
        raise ConfigError(f"the configuration on stdin is not JSON: {exc}") from None
    return ServerConfig.from_json(document)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    announced = False

    def announce(running: RunningServers) -> None:
        nonlocal announced
        _announce(running)
        announced = True

    try:
        config = read_config(sys.stdin.buffer.readline())
        asyncio.run(serve_until_stopped(config, announce, eof_fd=sys.stdin.fileno()))
    except LabError as exc:
        if announced:
            raise
        _say({"error": str(exc)})
        return 2
    except Exception as exc:
        if announced:
            raise
        traceback.print_exc()
        _say({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
