"""The one registry of protocols: everything the lab knows about h1, h2, h3, ws and grpc.

Callers — the runner, the tracer, the CLI, `protolab loopback`, suite validation — ask
this registry and never compare protocol names themselves. An entry says how a protocol
travels (transport, URL schemes, which server listener serves it), what it can do
(capabilities), which of a suite variant's knobs its client takes, what it refuses
(validation), and how a client is made. Knobs have one name on every side: a variant's
`window` is the client's `window` option and the server's `window` setting.

Adding a protocol is a client module, a server module and one entry in `PROTOCOLS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protolab.compression import check_accept_encoding
from protolab.core.client import ProtocolClient
from protolab.core.record import Target
from protolab.errors import ConfigError
from protolab.qpack import check_table

if TYPE_CHECKING:
    from servers.common import ServerConfig

# Every knob a suite variant can set, with its default; each protocol takes a subset.
KNOB_DEFAULTS: Mapping[str, Any] = {
    "tls": True,
    "tls_version": "1.3",
    "cc": "cubic",  # TCP congestion control, or aioquic's for QUIC
    "scheduling": "round-robin",  # server DATA scheduling (multiplexed protocols)
    "connections": 6,  # HTTP/1.1 pool size
    "pipeline": 1,  # HTTP/1.1 pipelining depth
    "keepalive": True,
    "resume": False,  # resume the TLS session of a priming connection
    "zero_rtt": False,  # resume with a ticket and send the request as 0-RTT early data
    "window": 4 << 20,  # stream flow-control window (both sides)
    "connection_window": 16 << 20,
    "data_frame": 16_384,  # largest HTTP/2 DATA frame the server sends
    "accept_encoding": "",  # HTTP clients: the Accept-Encoding sent ("": the request's own)
    "gzip_level": 6,  # server: gzip level of coded responses (protolab/compression.py)
    "brotli_quality": 5,  # server: brotli quality of coded responses
    "grpc_compression": "identity",  # gRPC, both sides: "gzip" message compression
    # h1/h2/h3 clients: leave the local address once a response's body passes this many
    # bytes (0: never); QUIC migrates, TCP reconnects and retries (clients/migration.py).
    "migrate_after_bytes": 0,
    # h1/h2 clients: after a move, ask only for the rest of the body (Range: bytes=K-);
    # False: fetch it again whole.
    "migrate_resume": True,
    # h3 client: where the move goes, a new local UDP "port" or a new local "address"
    # too (the link's second client address; RFC 9000 §9).
    "migrate_to": "port",
    # h3, both sides: the QPACK dynamic table each decoder offers its peer, in bytes
    # (0: static table only; protolab/qpack.py). aioquic's default is 4096.
    "qpack_table": 4096,
}
# Knobs that configure the server process; variants equal in these (and in the server
# group) share one server.
SERVER_KNOBS = ("tls", "tls_version", "cc", "scheduling", "window", "connection_window",
                "data_frame", "gzip_level", "brotli_quality", "grpc_compression",
                "qpack_table")
GRPC_COMPRESSION = ("identity", "gzip")
TCP_CC = ("cubic", "reno", "bbr")
QUIC_CC = ("cubic", "reno")
MAX_MIGRATE_AFTER = 1 << 30  # migrate_after_bytes: the workload's largest body
MIGRATE_TO = ("port", "address")


@dataclass(frozen=True)
class Capabilities:
    """What a protocol can do; callers branch on these, never on its name."""

    multiplexed: bool  # many requests in flight on one connection, interleaved
    over_quic: bool  # UDP/QUIC transport: qlog, QUIC secrets instead of a TLS key log
    early_data: bool  # can send a request in the first flight (0-RTT)
    pipelining: bool  # requests in flight in order, without interleaving
    tls_resumption: bool  # a new TCP+TLS connection can resume a session (h1, h2)
    sets_cc: bool  # the lab sets its socket's congestion control (grpcio opens its own)
    cleartext: bool  # can run without TLS
    messages: bool  # message-oriented (records carry per-message timings)


@dataclass(frozen=True)
class ProtocolSpec:
    """One protocol, as the lab's layers need to know it."""

    name: str  # registry key, also `RequestRecord.protocol`
    title: str
    transport: str  # "tcp" or "udp"
    schemes: tuple[str, str | None]  # URL scheme with TLS, without (None: no cleartext)
    implied_by_scheme: bool  # its schemes name it alone (ws://, grpc://), not "any HTTP"
    server_group: str  # which server process serves it: "http" (h1, h2, h3 together), or
    # its own (one with the HTTP protocols beside it)
    listener: str  # which of the server's listeners (servers/run.py LISTENERS) serves it
    capabilities: Capabilities
    client: str  # "module:Class" of the client, imported when first made
    options: str  # "module:Class" of the client's options dataclass
    knobs: tuple[str, ...]  # variant knobs its client takes (same names as its options)
    probe_path: str  # a tiny request, for traces and first looks
    probe_body: bytes = b""
    cc_choices: tuple[str, ...] = TCP_CC

    def scheme(self, tls: bool) -> str:
        scheme = self.schemes[0] if tls else self.schemes[1]
        if scheme is None:
            raise ConfigError(f"{self.title} has no cleartext mode", hint="keep TLS on")
        return scheme

    def validate(self, knobs: Mapping[str, Any]) -> list[str]:
        """What is wrong with these knob values for this protocol (empty: nothing)."""
        caps = self.capabilities
        problems = []
        if not knobs["tls"] and not caps.cleartext:
            problems.append(f"{self.name} needs tls = true")
        if knobs["cc"] not in self.cc_choices:
            problems.append(f"{self.name}: cc must be one of {', '.join(self.cc_choices)}")
        if not caps.sets_cc and knobs["cc"] != KNOB_DEFAULTS["cc"]:
            problems.append(f"{self.name}: the lab cannot set this client's congestion "
                            "control (it opens its sockets itself); leave cc unset")
        if knobs["zero_rtt"] and not caps.early_data:
            problems.append(f"{self.name}: zero_rtt needs a protocol with early data (h3; "
                            "Python's ssl cannot send TLS 1.3 early data)")
        if knobs["resume"] and not (caps.tls_resumption and knobs["tls"]):
            problems.append(f"{self.name}: resume is for TCP+TLS session resumption "
                            "(h1, h2 over TLS; h3 uses zero_rtt)")
        accept = knobs.get("accept_encoding", "")
        if accept and "accept_encoding" not in self.knobs:
            problems.append(f"{self.name}: its client does not take accept_encoding (set "
                            "an accept-encoding in [workload.headers] instead)")
        if (why := check_accept_encoding(accept)) is not None:
            problems.append(f"{self.name}: {why}")
        grpc_coding = knobs.get("grpc_compression", "identity")
        if grpc_coding not in GRPC_COMPRESSION:
            problems.append(f"{self.name}: grpc_compression must be one of "
                            f"{', '.join(GRPC_COMPRESSION)}")
        elif grpc_coding != "identity" and "grpc_compression" not in self.knobs:
            problems.append(f"{self.name}: grpc_compression is for the gRPC protocols")
        move = knobs.get("migrate_after_bytes", 0)
        if isinstance(move, bool) or not isinstance(move, int) or not (
                0 <= move <= MAX_MIGRATE_AFTER):
            problems.append(f"{self.name}: migrate_after_bytes must be an integer in "
                            f"0..{MAX_MIGRATE_AFTER} (0: never move), got {move!r}")
        elif move and "migrate_after_bytes" not in self.knobs:
            problems.append(f"{self.name}: its client cannot move mid-transfer "
                            "(migrate_after_bytes is for h1, h2 and h3)")
        resume = knobs.get("migrate_resume", True)
        if not isinstance(resume, bool):
            problems.append(f"{self.name}: migrate_resume must be true or false")
        elif not resume and "migrate_resume" not in self.knobs:
            problems.append(f"{self.name}: migrate_resume is for the TCP clients (h1, h2), "
                            "which send the request again after a move")
        where = knobs.get("migrate_to", "port")
        if where not in MIGRATE_TO:
            problems.append(f"{self.name}: migrate_to must be one of {', '.join(MIGRATE_TO)}, "
                            f"got {where!r}")
        elif where != "port" and "migrate_to" not in self.knobs:
            problems.append(f"{self.name}: migrate_to is for h3 (a QUIC connection moves; "
                            "a TCP one is opened again wherever it comes from)")
        table = knobs.get("qpack_table", KNOB_DEFAULTS["qpack_table"])
        if (why := check_table(table)) is not None:
            problems.append(f"{self.name}: {why}")
        elif table != KNOB_DEFAULTS["qpack_table"] and "qpack_table" not in self.knobs:
            problems.append(f"{self.name}: qpack_table is HTTP/3's (QPACK); HTTP/2's HPACK "
                            "table is not a knob here")
        return problems

    def client_options(self, knobs: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
        """The client's options from knob values: the knobs it takes, by the same name."""
        return {**{k: knobs[k] for k in self.knobs if k in knobs}, **extra}

    def make_client(self, target: Target, **options: Any) -> ProtocolClient:
        """A client for `target`; an option it does not take is a ConfigError."""
        client_cls, options_cls = _load(self.client), _load(self.options)
        known = {f.name for f in fields(options_cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"{self.name}: unknown client option(s) {unknown}",
                              hint=f"{self.name} takes {', '.join(sorted(known))}")
        try:
            opts = options_cls(**options)
        except TypeError as exc:
            raise ConfigError(f"{self.name}: {exc}") from None
        client: ProtocolClient = client_cls(target, opts)
        return client

    def primes(self, knobs: Mapping[str, Any]) -> bool:
        """Whether the measured connection resumes a session a priming one earned."""
        caps = self.capabilities
        return bool((knobs["resume"] and caps.tls_resumption)
                    or (knobs["zero_rtt"] and caps.early_data))


def _load(ref: str) -> Any:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


PROTOCOLS: Mapping[str, ProtocolSpec] = {
    spec.name: spec
    for spec in (
        ProtocolSpec(
            name="h1", title="HTTP/1.1", transport="tcp", schemes=("https", "http"),
            implied_by_scheme=False, server_group="http", listener="http",
            probe_path="/bytes/100",
            capabilities=Capabilities(
                multiplexed=False, over_quic=False, early_data=False, pipelining=True,
                tls_resumption=True, sets_cc=True, cleartext=True, messages=False),
            client="clients.h1:H1Client", options="clients.h1:H1Options",
            knobs=("connections", "pipeline", "keepalive", "cc", "resume", "accept_encoding",
                   "migrate_after_bytes", "migrate_resume"),
        ),
        ProtocolSpec(
            name="h2", title="HTTP/2", transport="tcp", schemes=("https", "http"),
            implied_by_scheme=False, server_group="http", listener="http",
            probe_path="/bytes/100",
            capabilities=Capabilities(
                multiplexed=True, over_quic=False, early_data=False, pipelining=False,
                tls_resumption=True, sets_cc=True, cleartext=True, messages=False),
            client="clients.h2:H2Client", options="clients.h2:H2Options",
            knobs=("cc", "resume", "window", "connection_window", "accept_encoding",
                   "migrate_after_bytes", "migrate_resume"),
        ),
        ProtocolSpec(
            name="h3", title="HTTP/3", transport="udp", schemes=("https", None),
            implied_by_scheme=False, server_group="http", listener="quic",
            probe_path="/bytes/100",
            capabilities=Capabilities(
                multiplexed=True, over_quic=True, early_data=True, pipelining=False,
                tls_resumption=False, sets_cc=True, cleartext=False, messages=False),
            client="clients.h3:H3Client", options="clients.h3:H3Options",
            knobs=("cc", "zero_rtt", "window", "connection_window", "accept_encoding",
                   "migrate_after_bytes", "migrate_to", "qpack_table"),
            cc_choices=QUIC_CC,
        ),
        ProtocolSpec(
            name="ws", title="WebSocket", transport="tcp", schemes=("wss", "ws"),
            implied_by_scheme=True, server_group="ws", listener="ws", probe_path="/echo",
            probe_body=b"hello, trace",
            capabilities=Capabilities(
                multiplexed=False, over_quic=False, early_data=False, pipelining=False,
                tls_resumption=False, sets_cc=True, cleartext=True, messages=True),
            client="clients.ws:WsClient", options="clients.ws:WsOptions", knobs=("cc",),
        ),
        ProtocolSpec(
            # grpc:// and grpcs:// are the lab's own schemes: gRPC has none.
            name="grpc", title="gRPC", transport="tcp", schemes=("grpcs", "grpc"),
            implied_by_scheme=True, server_group="grpc", listener="grpc",
            probe_path="/Unary?size=100",
            capabilities=Capabilities(
                multiplexed=True, over_quic=False, early_data=False, pipelining=False,
                tls_resumption=False, sets_cc=False, cleartext=True, messages=True),
            client="clients.grpc:GrpcClient", options="clients.grpc:GrpcOptions",
            knobs=("grpc_compression",),
        ),
        # Clients of the servers above, each with a server of its own (server_group: its
        # name), so that `server_config` names it among the served protocols and a
        # runner finds its port; the server is the same code as h1/h2's or gRPC's.
        ProtocolSpec(
            name="httpx", title="HTTP/1.1 (httpx)", transport="tcp", schemes=("https", "http"),
            implied_by_scheme=False, server_group="httpx", listener="http",
            probe_path="/bytes/100",
            capabilities=Capabilities(
                multiplexed=False, over_quic=False, early_data=False, pipelining=False,
                tls_resumption=False, sets_cc=True, cleartext=True, messages=False),
            client="clients.rest_httpx:HttpxClient", options="clients.rest_httpx:HttpxOptions",
            knobs=("keepalive", "cc", "accept_encoding"),
        ),
        ProtocolSpec(
            name="httpx-h2", title="HTTP/2 (httpx)", transport="tcp",
            schemes=("https", "http"), implied_by_scheme=False, server_group="httpx-h2",
            listener="http", probe_path="/bytes/100",
            capabilities=Capabilities(
                multiplexed=True, over_quic=False, early_data=False, pipelining=False,
                tls_resumption=False, sets_cc=True, cleartext=True, messages=False),
            client="clients.rest_httpx:HttpxH2Client",
            options="clients.rest_httpx:HttpxH2Options",
            knobs=("keepalive", "cc", "accept_encoding"),
        ),
        ProtocolSpec(
            # Not implied by grpc:// (that stays the lab's client): choose it by name.
            name="grpc-stub", title="gRPC (generated stub)", transport="tcp",
            schemes=("grpcs", "grpc"), implied_by_scheme=False, server_group="grpc-stub",
            listener="grpc", probe_path="/Unary?size=100",
            capabilities=Capabilities(
                multiplexed=True, over_quic=False, early_data=False, pipelining=False,
                tls_resumption=False, sets_cc=False, cleartext=True, messages=True),
            client="clients.grpc_stub:GrpcStubClient",
            options="clients.grpc_stub:GrpcStubOptions", knobs=("grpc_compression",),
        ),
        *(ProtocolSpec(
            name=name, title=title, transport="tcp", schemes=("https", "http"),
            implied_by_scheme=False, server_group=name, listener="http",
            probe_path="/push?count=2&size=16&interval_ms=10",
            capabilities=Capabilities(
                multiplexed=False, over_quic=False, early_data=False, pipelining=False,
                tls_resumption=False, sets_cc=True, cleartext=True, messages=True),
            client=f"clients.http_push:{cls}", options="clients.http_push:HttpPushOptions",
            knobs=("keepalive", "cc"),
        ) for name, title, cls in (
            ("http-poll", "HTTP short polling", "ShortPollClient"),
            ("http-long-poll", "HTTP long polling", "LongPollClient"),
            ("http-sse", "server-sent events", "SseClient"),
        )),
        ProtocolSpec(
            # The server calls the client's own HTTP endpoint (servers/webhook.py): the
            # client subscribes on the webhook listener and serves the callbacks itself.
            name="http-webhook", title="webhooks", transport="tcp", schemes=("https", "http"),
            implied_by_scheme=False, server_group="http-webhook", listener="webhook",
            probe_path="/push?count=2&size=16&interval_ms=10",
            capabilities=Capabilities(
                multiplexed=False, over_quic=False, early_data=False, pipelining=False,
                tls_resumption=False, sets_cc=True, cleartext=True, messages=True),
            client="clients.webhook:WebhookClient", options="clients.webhook:WebhookOptions",
            knobs=("keepalive", "cc"),
        ),
    )
}
NAMES: tuple[str, ...] = tuple(PROTOCOLS)


def get(name: str) -> ProtocolSpec:
    """The entry for `name`, or a ConfigError listing the protocols there are."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ConfigError(f"unknown protocol {name!r}",
                          hint=f"choose one of {', '.join(NAMES)}") from None


def make_client(protocol: str, target: Target, **options: Any) -> ProtocolClient:
    return get(protocol).make_client(target, **options)


def scheme_protocols() -> dict[str, str | None]:
    """URL scheme -> the protocol it implies (None: any HTTP version, chosen with --proto)."""
    out: dict[str, str | None] = {}
    for spec in PROTOCOLS.values():
        for scheme in spec.schemes:
            if scheme is not None:
                out[scheme] = spec.name if spec.implied_by_scheme else out.get(scheme)
    return out


def tls_schemes() -> frozenset[str]:
    return frozenset(spec.schemes[0] for spec in PROTOCOLS.values())


def group_protocols(group: str, tls: bool) -> tuple[str, ...]:
    """The protocols one server of `group` serves: those of the group that can run with
    (or without) TLS as asked."""
    return tuple(spec.name for spec in PROTOCOLS.values()
                 if spec.server_group == group and (tls or spec.capabilities.cleartext))


def by_capability(**wanted: bool) -> tuple[str, ...]:
    """Names of the protocols whose capabilities match every `name=value` given."""
    return tuple(spec.name for spec in PROTOCOLS.values()
                 if all(getattr(spec.capabilities, k) == v for k, v in wanted.items()))


def server_config(protocol: str, knobs: Mapping[str, Any], host: str,
                  cert_dir: Path) -> ServerConfig:
    """The server a variant of `protocol` needs: the HTTP protocols (h1 and h2; h3 too over
    TLS) and `protocol` beside them on a port of its own when it is not one of those, set
    from the variant's knobs (the server's settings bear the same names)."""
    protocols = group_protocols("http", bool(knobs["tls"]))
    if protocol not in protocols:
        protocols += (protocol,)
    # Named, not imported: servers/ reads this registry, so the registry reaches the
    # servers' configuration the way it reaches the clients, when one is asked for.
    config_cls = _load("servers.common:ServerConfig")
    config: ServerConfig = config_cls.for_knobs(protocols, knobs, host, cert_dir)
    return config
