"""RFC 9113 §6.8: a server's GOAWAY ends a connection gracefully. Streams at or below its
last stream id complete normally; streams above it were not processed and the client
sends them again on a new connection, and says so (`retried_after_goaway`); requests
made after the GOAWAY go to a new connection.

The server here is a few lines of the `h2` library on a real socket (port 0) that does
what nginx does at `keepalive_requests`: on the Nth request of a connection it sends
GOAWAY(last stream = that request's), answers every request up to it, ignores the rest
and closes once the answers are out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import pytest
from hyperframe.frame import GoAwayFrame

from clients.h2 import RETRIED
from protolab.core.record import Target
from protolab.fetch import fetch
from protolab.workload import Body

N = 7  # requests per connection; not a multiple of the client's batches of 10


@dataclass
class GoawayServer:
    port: int
    per_connection: int
    connections: int = 0
    goaways: int = 0
    answered: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


async def _serve_one(server: GoawayServer, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
    server.connections += 1
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    seen = 0
    last: int | None = None  # the GOAWAY's last stream id, once sent
    try:
        while data := await reader.read(65_536):
            answer: list[tuple[int, int]] = []  # (stream, size) requested in this read
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    if last is not None and event.stream_id > last:
                        continue  # not processed, as the GOAWAY said
                    seen += 1
                    headers = dict(event.headers or [])
                    size = int(headers[b":path"].rsplit(b"/", 1)[1])
                    answer.append((event.stream_id, size))
                    if seen == server.per_connection:
                        # GOAWAY goes out *before* the answers it promises: the client
                        # must read on after it (h2 alone would reject these frames).
                        last = event.stream_id
                        server.goaways += 1
                        writer.write(conn.data_to_send() + GoAwayFrame(
                            0, last_stream_id=last, error_code=0).serialize())
            for stream_id, size in answer:
                conn.send_headers(stream_id, [(b":status", b"200"),
                                              (b"content-length", str(size).encode())])
                for chunk in Body(size).chunks():
                    conn.send_data(stream_id, bytes(chunk))
                conn.end_stream(stream_id)
                server.answered += 1
            writer.write(conn.data_to_send())
            await writer.drain()
            if last is not None and not _pending_at_or_below(conn, last):
                break
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def _pending_at_or_below(conn: h2.connection.H2Connection, last: int) -> bool:
    """A stream the GOAWAY promised that is not answered completely yet."""
    return any(sid <= last and not stream.closed for sid, stream in conn.streams.items())


@contextlib.asynccontextmanager
async def goaway_server(per_connection: int) -> AsyncIterator[GoawayServer]:
    state = GoawayServer(port=0, per_connection=per_connection)

    def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(_serve_one(state, reader, writer))
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        for task in list(state.tasks):
            task.cancel()
        await asyncio.gather(*state.tasks, return_exceptions=True)
        await server.wait_closed()


@pytest.mark.asyncio
async def test_rfc9113_6_8_goaway_completes_promised_streams_and_retries_the_rest() -> None:
    async with goaway_server(N) as server:
        target = Target("127.0.0.1", server.port, tls=False)
        records = await fetch("h2", target, "/bytes/3000", count=3 * N, parallel=10)
    assert all(r.ok for r in records), [(r.error, r.error_detail) for r in records if not r.ok]
    assert all(r.body_verified for r in records)
    assert server.goaways >= 3  # every connection reached its limit
    assert server.connections >= 3
    retried = [r for r in records if r.transport.get(RETRIED)]
    assert retried, "no request was above a GOAWAY's last stream id"
    # Exactly one answer per request: only what the server did not process was sent again.
    assert server.answered == 3 * N
    assert all(r.transport[RETRIED] >= 1 for r in retried)
    assert all(RETRIED not in r.transport for r in records if r not in retried)
    # Each connection answered at most N requests: new ones went to new connections.
    per_connection: dict[int, int] = {}
    for record in records:
        per_connection[record.connection_id] = per_connection.get(record.connection_id, 0) + 1
    assert max(per_connection.values()) <= N
