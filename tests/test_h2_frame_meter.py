"""The HTTP/2 client's per-stream byte counts (`bytes_in`/`bytes_out` of every h2 record)
come from `FrameMeter`: RFC 9113 §4.1 frames, a 9-byte header each, counted to the stream
the header names, however the socket splits them; the client's 24-byte preface (§3.4)
belongs to no stream. In memory, on frames h2 itself writes."""

from __future__ import annotations

import h2.config
import h2.connection

from clients.h2 import FrameMeter  # where it was before clients/h2_connection.py held it


def _client_bytes() -> tuple[bytes, int, int]:
    """A client connection's first bytes (preface, SETTINGS) then one request on stream 1
    with a 5-byte body; the sizes of the preface+SETTINGS part and of stream 1's frames."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    opening = conn.data_to_send()
    conn.send_headers(1, [(":method", "POST"), (":scheme", "http"),
                          (":authority", "lab"), (":path", "/")])
    headers = conn.data_to_send()
    conn.send_data(1, b"hello", end_stream=True)
    data = conn.data_to_send()
    assert len(data) == 9 + 5
    return opening + headers + data, len(opening), len(headers) + len(data)


def test_frames_are_counted_per_stream_however_the_bytes_are_split() -> None:
    wire, opening, stream_1 = _client_bytes()
    for chunk in (1, 5, 9, 10, 24, 25, len(wire)):
        meter = FrameMeter(skip=24)
        for at in range(0, len(wire), chunk):
            meter.feed(wire[at:at + chunk])
        assert meter.per_stream[1] == stream_1, chunk
        assert meter.per_stream[0] == opening - 24, chunk  # SETTINGS: stream 0, no preface
        assert sum(meter.per_stream.values()) == len(wire) - 24

