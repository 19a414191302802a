"""The knob catalogue: every setting a suite variant can give, declared once.

A knob is a field of `Knobs`: its typed default, and in its metadata (`KnobInfo`) the
values it allows (a range, choices, or a check), whether the server process takes it,
whether the clients take it, and one line of doc. The rest is derived from the fields:
`KNOB_DEFAULTS`, `SERVER_KNOBS`, `CLIENT_KNOBS`, the value check a suite file is held to
(`knob_values`) and the knobs a protocol's client would silently drop (`untaken`).

Which knobs each protocol takes is the registry's (`ProtocolSpec.knobs`), by the same
names as its client's options and its server's settings.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from protolab.compression import check_accept_encoding
from protolab.errors import ConfigError
from protolab.qpack import DEFAULT_TABLE, MAX_TABLE

TCP_CC = ("cubic", "reno", "bbr")  # every cc a variant can name; QUIC's are fewer
GRPC_COMPRESSION = ("identity", "gzip")
MIGRATE_TO = ("port", "address")
MAX_MIGRATE_AFTER = 1 << 30  # migrate_after_bytes: the workload's largest body
MAX_WINDOW = 2**31 - 1  # RFC 9113 §6.9.1, RFC 9000 §4: flow-control windows fit 31 bits

_T = TypeVar("_T")


@dataclass(frozen=True)
class KnobInfo:
    """What the catalogue says of one knob besides its default."""

    doc: str
    server: bool  # the server process takes it: variants that differ in it get their own
    client: bool  # a client option of the same name, in its protocols' `knobs`
    low: int | None = None  # an integer knob's range, both ends allowed
    high: int | None = None
    choices: tuple[object, ...] = ()  # or the values it may take
    check: Callable[[str], str | None] | None = None  # or why a free-form value is wrong
    refusal: str = ""  # why a client that does not take it refuses it (else: who does)

    def allowed(self) -> str:
        """The values this knob allows, in the words of a suite file."""
        if self.low is not None and self.high is not None:
            return f"an integer in {self.low}..{self.high}"
        if self.choices == (False, True):
            return "true or false"
        if self.choices:
            return "one of " + ", ".join(str(c) for c in self.choices)
        return "a string"


def knob(default: _T, doc: str, *, server: bool = False, client: bool = False,
         low: int | None = None, high: int | None = None, choices: tuple[object, ...] = (),
         check: Callable[[str], str | None] | None = None, refusal: str = "") -> _T:
    """A `Knobs` field: `default`, with its `KnobInfo` as the field's metadata."""
    if isinstance(default, bool) and not choices:
        choices = (False, True)
    info = KnobInfo(doc, server, client, low, high, choices, check, refusal)
    return field(default=default, metadata={"knob": info})


@dataclass(frozen=True, kw_only=True)
class Knobs:
    """Every knob of a suite variant, at its default; each protocol takes a subset."""

    tls: bool = knob(True, "TLS on; false runs cleartext where the protocol has it",
                     server=True)
    tls_version: str = knob("1.3", "the TLS version both sides pin", server=True,
                            choices=("1.2", "1.3"))
    cc: str = knob(
        "cubic", "TCP congestion control, or aioquic's for QUIC", server=True, client=True,
        choices=TCP_CC, refusal="the lab cannot set this client's congestion control: it "
        "opens its sockets itself; leave cc unset")
    scheduling: str = knob("round-robin", "server DATA scheduling (multiplexed protocols)",
                           server=True, choices=("round-robin", "sequential"))
    connections: int = knob(6, "HTTP/1.1 pool size", client=True, low=1, high=256)
    pipeline: int = knob(1, "HTTP/1.1 pipelining depth", client=True, low=1, high=64)
    keepalive: bool = knob(True, "reuse a connection for the next request", client=True)
    resume: bool = knob(False, "resume the TLS session of a priming connection", client=True)
    zero_rtt: bool = knob(False, "resume with a ticket and send the request as 0-RTT data",
                          client=True)
    window: int = knob(4 << 20, "stream flow-control window (both sides)", server=True,
                       client=True, low=65_535, high=MAX_WINDOW)
    connection_window: int = knob(16 << 20, "connection flow-control window (both sides)",
                                  server=True, client=True, low=65_535, high=MAX_WINDOW)
    data_frame: int = knob(16_384, "largest HTTP/2 DATA frame the server sends", server=True,
                           low=1, high=16_777_215)
    accept_encoding: str = knob(
        "", "HTTP clients: the Accept-Encoding sent (empty: the request's own)", client=True,
        check=check_accept_encoding,
        refusal="set an accept-encoding in [workload.headers] instead")
    gzip_level: int = knob(6, "server: gzip level of coded responses (compression.py)",
                           server=True, low=1, high=9)
    brotli_quality: int = knob(5, "server: brotli quality of coded responses", server=True,
                               low=0, high=11)
    grpc_compression: str = knob(
        "identity", "gRPC, both sides: message compression", server=True, client=True,
        choices=GRPC_COMPRESSION, refusal="grpc_compression is for the gRPC protocols")
    migrate_after_bytes: int = knob(
        0, "leave the local address once a body passes this many bytes (0: never; "
        "clients/migration.py)", client=True, low=0, high=MAX_MIGRATE_AFTER,
        refusal="it cannot move mid-transfer; the clients of h1, h2 and h3 can")
    migrate_resume: bool = knob(
        True, "after a move, ask only for the rest of the body (Range: bytes=K-)",
        client=True, refusal="migrate_resume is for the TCP clients, h1 and h2, which send "
        "the request again after a move")
    migrate_to: str = knob(
        "port", "where a QUIC move goes: a new local port, or the link's second client "
        "address too (RFC 9000 §9)", client=True, choices=MIGRATE_TO,
        refusal="migrate_to is for h3: a QUIC connection moves, a TCP one is opened again "
        "wherever it comes from")
    qpack_table: int = knob(
        DEFAULT_TABLE, "the QPACK dynamic table each HTTP/3 decoder offers, in bytes (0: "
        "static table only; qpack.py)", server=True, client=True, low=0, high=MAX_TABLE,
        refusal="qpack_table is HTTP/3's QPACK table; HTTP/2's HPACK table is not a knob "
        "here")

    def knobs(self) -> dict[str, Any]:
        """Every knob's value, by name, in catalogue order."""
        return {name: getattr(self, name) for name in KNOB_DEFAULTS}


KNOBS: Mapping[str, KnobInfo] = {f.name: f.metadata["knob"] for f in fields(Knobs)}
KNOB_DEFAULTS: Mapping[str, Any] = {f.name: f.default for f in fields(Knobs)}
# Knobs that configure the server process; variants equal in these (and in the server
# group) share one server.
SERVER_KNOBS: tuple[str, ...] = tuple(name for name, info in KNOBS.items() if info.server)
CLIENT_KNOBS: tuple[str, ...] = tuple(name for name, info in KNOBS.items() if info.client)


def value_problem(name: str, value: object) -> str | None:
    """Why `value` is not a value of knob `name` (None: it is)."""
    info, default = KNOBS[name], KNOB_DEFAULTS[name]
    kind = type(default)
    # bool is an int to Python, not to a suite file: `connections = true` is a mistake.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        return (f"{name} has the wrong type ({type(value).__name__}: {value!r}); it must be "
                f"{info.allowed()}")
    if info.low is not None and info.high is not None and isinstance(value, int) and not (
            info.low <= value <= info.high):
        return f"{name} must be {info.allowed()}, got {value!r}"
    if info.choices and value not in info.choices:
        return f"{name} must be {info.allowed()}, got {value!r}"
    if info.check is not None and isinstance(value, str):
        return info.check(value)
    return None


def knob_values(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Every knob's value from a suite's table (the default where it names none); a value
    the catalogue does not allow is one ConfigError naming what it allows."""
    for name in KNOBS:
        if name in table and (why := value_problem(name, table[name])) is not None:
            raise ConfigError(f"{where}: {why}")
    return {name: table.get(name, default) for name, default in KNOB_DEFAULTS.items()}


def untaken(knobs: Mapping[str, Any], taken: Collection[str]) -> list[str]:
    """The client knobs set away from their defaults that a client taking only `taken`
    would drop; a knob at its default is never one."""
    return [name for name in CLIENT_KNOBS
            if name not in taken and knobs.get(name, KNOB_DEFAULTS[name]) != KNOB_DEFAULTS[name]]
