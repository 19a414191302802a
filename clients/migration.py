"""The client moving mid-transfer: when a response's body passes `migrate_after_bytes`,
the client leaves its local address — what a phone does when it walks from Wi-Fi to
cellular — and each protocol lives with the consequence its transport dictates.

- QUIC (RFC 9000 §9): the connection moves to a new local UDP port, under a new
  connection ID (§9.5); the server validates the new path (PATH_CHALLENGE/RESPONSE,
  §8.2) and the transfer goes on where it was. Nothing is fetched again.
- TCP: the connection is its 4-tuple; with the address gone, the old socket is closed so
  nothing more arrives on it, the client reconnects (TCP and TLS handshakes again) and
  sends the request again. With `resume` (the default, what a careful client does) it
  asks only for what it lacks, `Range: bytes=K-` (RFC 9110 §14.2), when the first
  response allowed it (a GET's 200 with `accept-ranges: bytes`, a Content-Length and no
  content coding); the 206 must say `content-range: bytes K-(N-1)/N`, and its body
  continues the first one's at offset K, verified there. A server that answers the
  Range with a 200 sends the whole body again, which the client takes from offset 0
  (then it was fetched again after all). Without `resume`, or when the first response
  did not allow it, the request goes again whole and the bytes received before the move
  are fetched again.

`Move` is one request's account of it. The record has no field for a move, so what
happened goes into its `transport` counters (integers, as the rest of them), under
`migration_*` keys: the raw moments on the one clock, from which the claims compute
recovery times.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from protolab.compression import header_value
from protolab.core.record import Timeline
from protolab.errors import ConfigError
from protolab.registry import MAX_MIGRATE_AFTER
from protolab.timing import now_ns

PREFIX = "migration_"
MOVED = PREFIX + "moved_ns"  # when the client left its address
AT_BYTES = PREFIX + "at_bytes"  # response body bytes the request had received then
RECOVERED = PREFIX + "recovered_ns"  # first response byte after the move (new path / conn)
REFETCHED = PREFIX + "refetched_bytes"  # body bytes asked for again (TCP: all received)
RECONNECT_START = PREFIX + "reconnect_start_ns"  # TCP: the new connection's first SYN
RECONNECTED = PREFIX + "reconnected_ns"  # TCP: the new connection's handshakes done
PATH = PREFIX + "path_ns"  # QUIC: first datagram that arrived on the new port
CHALLENGED = PREFIX + "challenged_ns"  # QUIC: the server's PATH_CHALLENGE on the new path
OLD_PORT = PREFIX + "old_port"  # QUIC: local UDP port before and after
NEW_PORT = PREFIX + "new_port"
NEW_ADDRESS = PREFIX + "new_address"  # QUIC: 1 when the local address changed too, else 0
RESUMED_FROM = PREFIX + "resumed_from"  # TCP with resume: the retry's Range began here
RESUME_STATUS = PREFIX + "resume_status"  # ... and the status that answered it (206)


def check_migrate_after(value: int, protocol: str) -> None:
    """The knob's one range check (clients' options and the registry say it the same way)."""
    if isinstance(value, bool) or not isinstance(value, int) or not (
            0 <= value <= MAX_MIGRATE_AFTER):
        raise ConfigError(
            f"{protocol}: migrate_after_bytes must be an integer in 0..{MAX_MIGRATE_AFTER} "
            f"(0: never move), got {value!r}")


# The phases a retry on a new connection overwrites; the record keeps the first
# connection's, and the move keeps the new one's.
_PHASES = ("new_connection", "conn_start_ns", "connected_ns", "handshake_ns", "connection_id",
           "stream_id", "request_sent_ns")


Headers = list[tuple[bytes, bytes]]
_CONTENT_RANGE = re.compile(r"bytes ([0-9]{1,18})-([0-9]{1,18})/([0-9]{1,18})")


@dataclass
class Move:
    """One request's move: due once its body passes `after_bytes` (0: never). With
    `resume`, a TCP retry asks only for the bytes it lacks when the first response let it."""

    after_bytes: int
    resume: bool = False
    moved_ns: int | None = None
    at_bytes: int = 0
    refetched: int = 0
    recovered_ns: int | None = None
    retrying: bool = False  # TCP: the request is being sent again on a new connection
    resume_from: int | None = None  # the retry asks for the body from this offset on
    resume_status: int | None = None  # ... and this status answered it
    _length: int | None = None  # the first response's body length, when it can be resumed
    _saved: dict[str, object] = field(default_factory=dict)
    _reconnect: tuple[int | None, int | None] = (None, None)

    def due(self, tl: Timeline) -> bool:
        return 0 < self.after_bytes <= tl.body_bytes and self.moved_ns is None

    @property
    def moved(self) -> bool:
        return self.moved_ns is not None

    def head(self, tl: Timeline, status: int, headers: Headers) -> None:
        """A response head arrived: set the record's status. The first response says
        whether a retry could resume (a GET's 200 with `accept-ranges: bytes`, a length,
        no content coding, and no Range of the request's own); the retry's says whether
        it did: a 206 for exactly the bytes asked continues the body; a 200 (the server
        ignored the Range) starts it over; anything else fails the request."""
        if self.resume_from is None or not self.retrying:
            tl.status = status
            if self.resume and self.after_bytes and not self.retrying:
                self._length = _resumable_length(tl, status, headers)
            return
        self.resume_status = status
        if status == 200:  # the whole body again: verified from offset 0
            self.refetched, self.resume_from = self.at_bytes, None
            _restart_body(tl)
            return
        wanted = self.resume_from
        found = _CONTENT_RANGE.fullmatch(header_value(headers, b"content-range") or "")
        if status == 206 and found is not None and self._length is not None and (
                int(found.group(1)), int(found.group(2)), int(found.group(3))) == (
                wanted, self._length - 1, self._length):
            return  # the record keeps the first response's 200: the body is one body
        tl.status = status
        tl.fail("resume_failed", f"asked for bytes {wanted}- of {self._length} after the "
                f"move, got {status} (content-range "
                f"{header_value(headers, b'content-range')!r})")

    def leave(self, tl: Timeline, *, refetch: bool) -> None:
        """The client left its address while this request was under way (once). `refetch`:
        the request goes again on a new connection (TCP), asking only for the rest when it
        can resume."""
        if self.moved_ns is not None:
            return
        self.moved_ns, self.at_bytes = now_ns(), tl.body_bytes
        if refetch and self._length is not None and 0 < tl.body_bytes < self._length:
            self.resume_from = tl.body_bytes
        elif refetch:
            self.refetched = tl.body_bytes

    def request_headers(self) -> tuple[tuple[str, str], ...]:
        """What the retry adds to the request's headers: the Range of the rest, if any."""
        if self.retrying and self.resume_from is not None:
            return (("range", f"bytes={self.resume_from}-"),)
        return ()

    def answered(self) -> None:
        """A response byte arrived; the first after the move ends the recovery."""
        if self.moved_ns is not None and self.recovered_ns is None:
            self.recovered_ns = now_ns()

    def retry(self, tl: Timeline) -> None:
        """Before the request is sent again on a new connection: the body starts over
        (verified from offset 0 again), unless the retry resumes it; the first
        connection's phases are kept aside."""
        if not self.retrying:
            self._saved = {name: getattr(tl, name) for name in _PHASES}
        self.retrying = True
        if self.resume_from is None:
            _restart_body(tl)
            tl.status = None

    def finish(self, tl: Timeline) -> None:
        """After the last try: the record keeps its first connection's phases and says in
        its counters what the move cost."""
        if self.retrying:
            self._reconnect = (tl.conn_start_ns, tl.handshake_ns or tl.connected_ns)
            for name, value in self._saved.items():
                setattr(tl, name, value)
        tl.transport.update(self.counters())

    def counters(self) -> dict[str, int]:
        if self.moved_ns is None:
            return {}
        out = {MOVED: self.moved_ns, AT_BYTES: self.at_bytes, REFETCHED: self.refetched}
        if self.resume_from is not None:
            out[RESUMED_FROM] = self.resume_from
        if self.resume_status is not None:
            out[RESUME_STATUS] = self.resume_status
        if self.recovered_ns is not None:
            out[RECOVERED] = self.recovered_ns
        start, done = self._reconnect
        if start is not None:
            out[RECONNECT_START] = start
        if done is not None:
            out[RECONNECTED] = done
        return out


def _resumable_length(tl: Timeline, status: int, headers: Headers) -> int | None:
    """The body length a retry could resume, or None when a Range retry is not safe."""
    length = header_value(headers, b"content-length")
    coding = (header_value(headers, b"content-encoding") or "identity").strip().lower()
    ranges = (header_value(headers, b"accept-ranges") or "").lower()
    if (status != 200 or tl.request.method != "GET" or coding != "identity"
            or "bytes" not in (r.strip() for r in ranges.split(","))
            or any(name == "range" for name, _ in tl.request.headers)
            or length is None or not length.isdigit() or len(length) > 18):
        return None
    return int(length)


def _restart_body(tl: Timeline) -> None:
    tl.body_bytes, tl.body_ok = 0, True
    if tl.content is not None:
        tl.content = bytearray()
