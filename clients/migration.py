"""The client moving mid-transfer: when a response's body passes `migrate_after_bytes`,
the client leaves its local address — what a phone does when it walks from Wi-Fi to
cellular — and each protocol lives with the consequence its transport dictates.

- QUIC (RFC 9000 §9): the connection moves to a new local UDP port, under a new
  connection ID (§9.5); the server validates the new path (PATH_CHALLENGE/RESPONSE,
  §8.2) and the transfer goes on where it was. Nothing is fetched again.
- TCP: the connection is its 4-tuple; with the address gone, the old socket is closed so
  nothing more arrives on it, the client reconnects (TCP and TLS handshakes again) and
  sends the request again, whole: the lab's server has no Range requests, so the bytes
  received before the move are fetched again.

`Move` is one request's account of it. The record has no field for a move, so what
happened goes into its `transport` counters (integers, as the rest of them), under
`migration_*` keys: the raw moments on the one clock, from which the claims compute
recovery times.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass
class Move:
    """One request's move: due once its body passes `after_bytes` (0: never)."""

    after_bytes: int
    moved_ns: int | None = None
    at_bytes: int = 0
    refetched: int = 0
    recovered_ns: int | None = None
    retrying: bool = False  # TCP: the request is being sent again on a new connection
    _saved: dict[str, object] = field(default_factory=dict)
    _reconnect: tuple[int | None, int | None] = (None, None)

    def due(self, tl: Timeline) -> bool:
        return 0 < self.after_bytes <= tl.body_bytes and self.moved_ns is None

    @property
    def moved(self) -> bool:
        return self.moved_ns is not None

    def leave(self, tl: Timeline, *, refetch: bool) -> None:
        """The client left its address while this request was under way (once)."""
        if self.moved_ns is not None:
            return
        self.moved_ns, self.at_bytes = now_ns(), tl.body_bytes
        self.refetched = tl.body_bytes if refetch else 0

    def answered(self) -> None:
        """A response byte arrived; the first after the move ends the recovery."""
        if self.moved_ns is not None and self.recovered_ns is None:
            self.recovered_ns = now_ns()

    def retry(self, tl: Timeline) -> None:
        """Before the request is sent again on a new connection: the body starts over (it
        is verified from offset 0 again); the first connection's phases are kept aside."""
        if not self.retrying:
            self._saved = {name: getattr(tl, name) for name in _PHASES}
        self.retrying = True
        tl.body_bytes, tl.body_ok, tl.status = 0, True, None
        if tl.content is not None:
            tl.content = bytearray()

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
        if self.recovered_ns is not None:
            out[RECOVERED] = self.recovered_ns
        start, done = self._reconnect
        if start is not None:
            out[RECONNECT_START] = start
        if done is not None:
            out[RECONNECTED] = done
        return out
