"""HTTP/2 frame headers read as the bytes arrive, so a frame is judged before its payload.

The h2 library checks a frame's length against SETTINGS_MAX_FRAME_SIZE only once the
whole frame is in its buffer: a peer announcing a 16 MiB frame made the server hold
16 MiB per connection before it said no. RFC 9113 §4.2 lets a receiver refuse from the
9-byte header alone (FRAME_SIZE_ERROR); this sans-IO reader does that, and names the
second connection preface (RFC 9113 §3.4: sent once) for what it is instead of reading
"PRI * H" as the header of a 5 MB frame. Everything else about a frame is h2's to judge.

It keeps at most 8 bytes (a header split across reads) and a count of payload bytes to
skip; the bytes themselves go on to h2 unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from h2.errors import ErrorCodes

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADER = 9  # length (24 bits), type, flags, reserved bit + stream id (31 bits)
FRAME_NAMES = {0x0: "DATA", 0x1: "HEADERS", 0x2: "PRIORITY", 0x3: "RST_STREAM",
               0x4: "SETTINGS", 0x5: "PUSH_PROMISE", 0x6: "PING", 0x7: "GOAWAY",
               0x8: "WINDOW_UPDATE", 0x9: "CONTINUATION"}


@dataclass(frozen=True)
class FrameRefusal:
    """A frame refused from its header: a connection error to send as GOAWAY."""

    code: ErrorCodes
    reason: str  # for the log line and the GOAWAY's debug data
    offset: int  # where the refused frame's header starts in the data just fed (may be < 0)


class FrameHeaderCheck:
    """Follows frame boundaries in the bytes a client sends, after its preface."""

    def __init__(self, max_frame_size: int, *, preface_seen: bool = False) -> None:
        self.max_frame_size = max_frame_size  # the SETTINGS_MAX_FRAME_SIZE we advertise
        self._skip = 0 if preface_seen else len(PREFACE)  # bytes before the next header
        self._header = bytearray()  # a header split across reads, so far

    def feed(self, data: bytes | memoryview) -> FrameRefusal | None:
        """Check the frame headers completed by `data`; the first refusal, or None."""
        view, pos = memoryview(data), 0
        while pos < len(view):
            if self._skip:
                step = min(self._skip, len(view) - pos)
                self._skip -= step
                pos += step
                continue
            start = pos - len(self._header)
            take = HEADER - len(self._header)
            self._header += view[pos:pos + take]
            pos += min(take, len(view) - pos)
            if len(self._header) < HEADER:
                break
            header, self._header = bytes(self._header), bytearray()
            refusal = self._judge(header, start)
            if refusal is not None:
                return refusal
            self._skip = int.from_bytes(header[:3], "big")
        return None

    def _judge(self, header: bytes, start: int) -> FrameRefusal | None:
        if header == PREFACE[:HEADER]:
            return FrameRefusal(ErrorCodes.PROTOCOL_ERROR,
                                "the connection preface again (RFC 9113 §3.4)", start)
        length = int.from_bytes(header[:3], "big")
        if length > self.max_frame_size:
            name = FRAME_NAMES.get(header[3], f"type 0x{header[3]:02x}")
            return FrameRefusal(
                ErrorCodes.FRAME_SIZE_ERROR,
                f"a {name} frame of {length} bytes, over the {self.max_frame_size}-byte "
                "SETTINGS_MAX_FRAME_SIZE (RFC 9113 §4.2)", start)
        return None
