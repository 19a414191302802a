"""HTTP/3 close paths: an in-process server and its clients stopped with requests in
flight, in every order, leave nothing behind when their event loop ends.

aioquic arms a timer per connection (loss detection, idle, draining) and our server
answers from tasks; closing only the UDP socket left both running, and a timer that
fired afterwards sent on a closed socket: "'NoneType' object has no attribute
'call_exception_handler'" from asyncio's transport, or a task destroyed while pending
when the loop ended. Each round runs in a fresh loop in asyncio's debug mode, with
every warning an error, and checks what the loop and logging report."""

from __future__ import annotations

import asyncio
import gc
import logging
import warnings
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from clients.h3 import H3Client, H3Options
from protolab.core.record import Request, Target
from servers.common import ServerConfig
from servers.run import start_servers
from tests.helpers import TIMEOUT, target_for

ROUNDS = 12
# What is in flight when the close comes: a long body (data, ACKs, loss timers busy), a
# response still in the server's think time (a pending answer task), a small one.
PATHS = ("/bytes/4000000", "/delay/5000/bytes/10", "/bytes/100")
ORDERS = ("server_first", "clients_first", "server_only")


class _Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.lines.append(f"{record.name}: {record.getMessage()}")


@pytest.fixture
def captured() -> Iterator[_Captured]:
    handler = _Captured()
    loggers = [logging.getLogger(n) for n in ("asyncio", "quic", "protolab", "")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


async def _round(config: ServerConfig, order: str, index: int) -> list[str]:
    loop = asyncio.get_running_loop()
    problems: list[str] = []

    def on_exception(_: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        problems.append(f"{context.get('message')}: {exc!r}")

    loop.set_exception_handler(on_exception)
    running = await start_servers(config)
    clients: list[H3Client] = []
    tasks: list[asyncio.Task[Any]] = []
    try:
        target: Target = target_for(running, "h3")
        for _ in range(2):
            client = H3Client(target, H3Options(timeout=TIMEOUT))
            clients.append(client)
            # The connection is up (a first answer came back) before the rest go out.
            first = await client.request(Request("GET", "/bytes/100"))
            assert first.error is None, first.error_detail
            tasks += [asyncio.create_task(client.request(Request("GET", p))) for p in PATHS]
        # Let the transfers get going: a few loop turns, more in later rounds, so the
        # close meets them in different states (none of this is waited on for timing).
        for _ in range(1 + index * 7):
            await asyncio.sleep(0)
        assert not all(t.done() for t in tasks[:1]), "the long body finished before close"
    finally:
        if order == "clients_first":
            for client in clients:
                await client.close()
        await running.close()
        if order == "server_first":
            for client in clients:
                await client.close()
    # The requests end (the closed connection's failure, or a refused new one) - none
    # hangs. server_only: the clients were not closed; their requests end when the
    # server's CONNECTION_CLOSE arrives. A request that had not started when its client
    # closed opens a new connection (to a server that is gone): closed here as well.
    _, pending = await asyncio.wait(tasks, timeout=TIMEOUT)
    problems += [f"request still pending after close: {t!r}" for t in pending]
    for task in pending:
        task.cancel()
    for client in clients:
        await client.close()
    return problems


def test_h3_server_and_clients_close_cleanly_with_connections_in_flight(
        base_config: ServerConfig, captured: _Captured) -> None:
    config = replace(base_config, protocols=("h3",))
    problems: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for index in range(ROUNDS):
            order = ORDERS[index % len(ORDERS)]
            problems += [f"round {index} ({order}): {p}"
                         for p in asyncio.run(_round(config, order, index), debug=True)]
            gc.collect()  # an unclosed transport's ResourceWarning comes from __del__
    assert problems == []
    assert captured.lines == []
