"""The one registry of protocols: everything the lab knows about h1, h2, h3, ws and grpc.

Callers — the runner, the tracer, the CLI, `protolab loopback`, suite validation — ask
this registry and never compare protocol names themselves. An entry says how a protocol
travels (transport, URL schemes, which server listener serves it), what it can do
(capabilities), which of a suite variant's knobs its client takes, what it refuses
(validation), and how a client is made. Knobs have one name on every side: a variant's
`window` is the client's `window` option and the server's `window` setting; the knobs
themselves (defaults, allowed values, which side takes them) are protolab/knobs.py's.

Adding a protocol is a client module, a server module and one entry in `PROTOCOLS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protolab.core.client import ProtocolClient
from protolab.core.record import Target
from protolab.errors import ConfigError

# The knob catalogue is protolab/knobs.py's; these names stay importable from here.
from protolab.knobs import GRPC_COMPRESSION as GRPC_COMPRESSION
from protolab.knobs import KNOB_DEFAULTS as KNOB_DEFAULTS
from protolab.knobs import KNOBS, untaken
from protolab.knobs import MAX_MIGRATE_AFTER as MAX_MIGRATE_AFTER
from protolab.knobs import MIGRATE_TO as MIGRATE_TO
from protolab.knobs import SERVER_KNOBS as SERVER_KNOBS
from protolab.knobs import TCP_CC as TCP_CC

if TYPE_CHECKING:
    from servers.common import ServerConfig

QUIC_CC = ("cubic", "reno")  # aioquic's; a TCP protocol takes any of knobs.TCP_CC
# grpcio's Python API (ssl_server_credentials, ssl_channel_credentials) has no TLS
# version setting: its own TLS stack offers 1.2 and 1.3 and the peers pick.
GRPCIO_TLS = "grpcio negotiates TLS 1.2-1.3 itself"


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
    # The TLS versions the lab can make it use (`tls_version`; the server's --tls-version).
    # None pinnable: its library negotiates the version itself (ProtocolSpec.tls_note).
    tls_versions: tuple[str, ...] = ("1.2", "1.3")
    # Its client can write a TLS key log (for Wireshark/tshark, `--keylog`, `bench
    # --capture`); grpcio cannot export TLS secrets.
    key_log: bool = True


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
    tls_note: str = ""  # why only `capabilities.tls_versions` can be pinned, when not all

    def scheme(self, tls: bool) -> str:
        scheme = self.schemes[0] if tls else self.schemes[1]
        if scheme is None:
            raise ConfigError(f"{self.title} has no cleartext mode", hint="keep TLS on")
        return scheme

    def validate(self, knobs: Mapping[str, Any]) -> list[str]:
        """What is wrong with these knob values for this protocol (empty: nothing), one
        problem per knob. Each value is one the catalogue allows (`knobs.knob_values`
        checks a suite's); what is checked here is what this protocol makes of it."""
        caps = self.capabilities
        refused: dict[str, str] = {}
        if not knobs["tls"] and not caps.cleartext:
            refused["tls"] = f"{self.name} needs tls = true"
        version = knobs["tls_version"]
        if (knobs["tls"] and version != KNOB_DEFAULTS["tls_version"]
                and version not in caps.tls_versions):
            refused["tls_version"] = (f"{self.name}: tls_version {version} cannot be pinned "
                                      f"({self.tls_note}); leave it unset")
        if knobs["cc"] not in self.cc_choices:
            refused["cc"] = f"{self.name}: cc must be one of {', '.join(self.cc_choices)}"
        if knobs["zero_rtt"] and not caps.early_data:
            refused["zero_rtt"] = (f"{self.name}: zero_rtt needs a protocol with early data "
                                   "(h3; Python's ssl cannot send TLS 1.3 early data)")
        if knobs["resume"] and not (caps.tls_resumption and knobs["tls"]):
            refused["resume"] = (f"{self.name}: resume is for TCP+TLS session resumption "
                                 "(h1, h2 over TLS; h3 uses zero_rtt)")
        # Any other knob set for a client that does not take it would be dropped unseen.
        for name in untaken(knobs, self.knobs):
            takers = ", ".join(s.name for s in PROTOCOLS.values() if name in s.knobs)
            why = KNOBS[name].refusal or f"the clients of {takers} do"
            refused.setdefault(name, f"{self.name}: its client does not take {name} ({why})")
        return list(refused.values())

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
                tls_resumption=False, sets_cc=True, cleartext=False, messages=False,
                tls_versions=("1.3",)),
            client="clients.h3:H3Client", options="clients.h3:H3Options",
            knobs=("cc", "zero_rtt", "window", "connection_window", "accept_encoding",
                   "migrate_after_bytes", "migrate_to", "qpack_table"),
            cc_choices=QUIC_CC, tls_note="QUIC always uses TLS 1.3, RFC 9001",
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
                tls_resumption=False, sets_cc=False, cleartext=True, messages=True,
                tls_versions=(), key_log=False),
            client="clients.grpc:GrpcClient", options="clients.grpc:GrpcOptions",
            knobs=("grpc_compression",), tls_note=GRPCIO_TLS,
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
                tls_resumption=False, sets_cc=False, cleartext=True, messages=True,
                tls_versions=(), key_log=False),
            client="clients.grpc_stub:GrpcStubClient",
            options="clients.grpc_stub:GrpcStubOptions", knobs=("grpc_compression",),
            tls_note=GRPCIO_TLS,
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
