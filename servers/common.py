"""What every server shares: its settings, the neutral request handler, and logging.

Each protocol module translates its wire events into a `WorkloadRequest`, awaits
`respond()`, and writes the `WorkloadResponse` back in its own framing — one
handler for HTTP/1.1, HTTP/2 and HTTP/3 (as hypercorn does), so the bytes served
are the same whatever the protocol.

Settings are named as a suite variant names its knobs (`cc`, `tls_version`,
`scheduling`, `window`, `connection_window`, `data_frame`), so one name means one
thing on the client, the server and in a suite file. A `ServerConfig` crosses a
process boundary as one JSON document (`to_json` / `from_json`, servers/process.py).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from protolab.certs import CertBundle, KeyType, TlsVersion, ensure_certs
from protolab.compression import DEFAULT_COMPRESSION, CompressionSettings, encode_response
from protolab.errors import ConfigError
from protolab.push import resolve_push
from protolab.qpack import DEFAULT_TABLE, check_table
from protolab.tcpsock import CC_ALGORITHMS, DEFAULT_CC
from protolab.workload import (
    DEFAULT_LIMITS,
    Limits,
    WorkloadRequest,
    WorkloadResponse,
    plan,
    select_range,
)
from servers.jsonconfig import from_document, to_document

log = logging.getLogger("protolab.server")

Scheduling = Literal["round-robin", "sequential"]
QUIC_CC = ("reno", "cubic")


@dataclass(frozen=True)
class H2Settings:
    """HTTP/2 knobs the experiments vary (RFC 9113 §6.5.2)."""

    window: int = 4 << 20  # initial stream window: >= 2x BDP of the slowest default link
    connection_window: int = 16 << 20
    max_concurrent_streams: int = 256
    max_frame_size: int = 16_384  # the largest frame we accept (our SETTINGS)
    # The largest DATA frame we send. Smaller frames interleave streams more finely under
    # round-robin (one packet per turn at ~1400); framing is an experiment parameter, not
    # an accident of the library (DESIGN.md, framing artefacts).
    data_frame: int = 16_384

    def __post_init__(self) -> None:
        if not 65_535 <= self.window <= 2**31 - 1:
            raise ConfigError("HTTP/2 initial window must be 65535..2^31-1 bytes")
        if not 65_535 <= self.connection_window <= 2**31 - 1:
            raise ConfigError("HTTP/2 connection window must be 65535..2^31-1 bytes")
        if not 16_384 <= self.max_frame_size <= 16_777_215:
            raise ConfigError("HTTP/2 max frame size must be 16384..16777215 (RFC 9113 §6.5.2)")
        if not 1 <= self.data_frame <= 16_777_215:
            raise ConfigError("HTTP/2 DATA frame size must be 1..16777215 bytes")
        if self.max_concurrent_streams < 1:
            raise ConfigError("HTTP/2 max concurrent streams must be at least 1")


@dataclass(frozen=True)
class H3Settings:
    """HTTP/3 (aioquic) knobs: QUIC's own congestion control and flow-control windows."""

    cc: str = "cubic"  # aioquic's congestion_control_algorithm
    window: int = 4 << 20  # per-stream flow-control window (max_stream_data)
    connection_window: int = 16 << 20  # connection flow-control window (max_data)
    qlog_dir: Path | None = None
    secrets_log: Path | None = None  # written mode 0600: it decrypts every connection
    session_tickets: int = 1000  # tickets kept for resumption/0-RTT; the oldest go first
    # QPACK dynamic table offered to clients (their request headers), bytes; 0: static
    # table only (protolab/qpack.py). Suite knob `qpack_table`.
    qpack_table: int = DEFAULT_TABLE

    def __post_init__(self) -> None:
        if self.session_tickets < 1:
            raise ConfigError("HTTP/3 must keep at least 1 session ticket")
        if self.cc not in QUIC_CC:
            raise ConfigError(
                f"aioquic has no congestion control {self.cc!r}",
                hint=f"choose one of {', '.join(QUIC_CC)}",
            )
        if self.window < 1024 or self.connection_window < 1024:
            raise ConfigError("QUIC flow-control windows must be at least 1024 bytes")
        if (why := check_table(self.qpack_table)) is not None:
            raise ConfigError(why)


@dataclass(frozen=True)
class WsSettings:
    """WebSocket server knobs (servers/ws.py)."""

    compression: bool = False  # permessage-deflate (RFC 7692): changes the bytes, so explicit
    max_message: int = 1 << 20  # a larger incoming message closes with 1009 (RFC 6455 §7.4.1)
    ping_interval: float | None = None  # keepalive pings add bytes to measurements: off

    def __post_init__(self) -> None:
        if self.max_message < 125:
            raise ConfigError("WebSocket max message size must be at least 125 bytes")
        if self.ping_interval is not None and not 0 < self.ping_interval <= 86_400:
            raise ConfigError("WebSocket ping interval must be a number of seconds in "
                              f"(0, 86400], got {self.ping_interval}")


@dataclass(frozen=True)
class GrpcSettings:
    """gRPC server knobs (servers/grpc.py): message limits are deliberate, not defaults."""

    max_receive: int = 4 << 20  # larger request message -> RESOURCE_EXHAUSTED
    max_send: int = 64 << 20  # larger reply -> refused with INVALID_ARGUMENT before sending
    reflection: bool = True  # so generic tools (grpcurl, grpc-js reflection) can call it
    # Replies compressed with grpcio's message compression (grpc-encoding: gzip) for
    # clients that accept it; "identity": never. Suite knob `grpc_compression`.
    compression: Literal["identity", "gzip"] = "identity"

    def __post_init__(self) -> None:
        if self.max_receive < 1024 or self.max_send < 1024:
            raise ConfigError("gRPC message limits must be at least 1024 bytes")
        if self.compression not in ("identity", "gzip"):
            raise ConfigError("gRPC compression must be identity or gzip")


@dataclass(frozen=True)
class CertSpec:
    """Which certificates to serve with: what `ensure_certs` needs to find or make them.

    A spec, not the files, so a configuration is a value that crosses a process boundary;
    the process that serves calls `ensure()` (files are reused when still valid)."""

    cert_dir: Path | None = None  # None: the lab's state directory (protolab.certs)
    key_type: KeyType = "ecdsa-p256"
    intermediates: int = 0  # intermediate CAs between the CA and the leaf
    extra_names: tuple[str, ...] = ()  # leaf names besides localhost, 127.0.0.1 and ::1

    def ensure(self) -> CertBundle:
        return ensure_certs(self.cert_dir, key_type=self.key_type,
                            intermediates=self.intermediates, extra_names=self.extra_names)


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8443  # TCP for h1/h2 and UDP for h3 (0 = pick free ports)
    protocols: tuple[str, ...] = ("h1", "h2", "h3")
    # TLS with the lab's certificates, as `protolab serve`; None = cleartext (h1 and h2c)
    certs: CertSpec | None = CertSpec()
    tls_version: TlsVersion = "1.3"
    cc: str = DEFAULT_CC  # TCP congestion control of every listener the lab opens
    limits: Limits = DEFAULT_LIMITS
    idle_timeout: float = 30.0  # seconds a connection may sit without a request
    scheduling: Scheduling = "round-robin"  # which response's DATA goes next (h2 and h3)
    h2: H2Settings = field(default_factory=H2Settings)
    h3: H3Settings = field(default_factory=H3Settings)
    ws: WsSettings = field(default_factory=WsSettings)
    grpc: GrpcSettings = field(default_factory=GrpcSettings)
    # HTTP content codings (protolab/compression.py): levels, and what is worth coding
    compression: CompressionSettings = DEFAULT_COMPRESSION

    @classmethod
    def for_knobs(cls, protocols: tuple[str, ...], knobs: Mapping[str, Any], host: str,
                  cert_dir: Path) -> ServerConfig:
        """A suite variant's server: its knobs (protolab/registry.py KNOB_DEFAULTS) are
        these settings under the same names."""
        quic_cc = knobs["cc"] if knobs["cc"] in QUIC_CC else "cubic"  # aioquic has no BBR
        return cls(
            host=host, port=0, protocols=protocols,
            certs=CertSpec(cert_dir, extra_names=(host,)) if knobs["tls"] else None,
            tls_version=knobs["tls_version"], cc=knobs["cc"], scheduling=knobs["scheduling"],
            h2=H2Settings(window=knobs["window"], connection_window=knobs["connection_window"],
                          data_frame=knobs["data_frame"]),
            h3=H3Settings(cc=quic_cc, window=knobs["window"],
                          connection_window=knobs["connection_window"],
                          qpack_table=knobs["qpack_table"]),
            grpc=GrpcSettings(compression=knobs["grpc_compression"]),
            compression=CompressionSettings(gzip_level=knobs["gzip_level"],
                                            brotli_quality=knobs["brotli_quality"]),
        )

    def __post_init__(self) -> None:
        if not self.protocols:
            raise ConfigError("a server needs at least one protocol")
        if "h3" in self.protocols and self.certs is None:
            raise ConfigError("HTTP/3 needs TLS (QUIC has no cleartext mode)",
                              hint="drop --no-tls, or leave h3 out of --proto")
        if self.cc not in CC_ALGORITHMS:
            raise ConfigError(f"TCP congestion control must be one of {', '.join(CC_ALGORITHMS)}")
        if not 0 <= self.port <= 65_535:
            raise ConfigError(f"port {self.port} out of range 0..65535")
        if self.tls_version not in ("1.2", "1.3"):
            raise ConfigError("TLS version must be 1.2 or 1.3")
        if self.scheduling not in ("round-robin", "sequential"):
            raise ConfigError("scheduling must be round-robin or sequential")
        # Written so that NaN fails too: a JSON document reaches here without the CLI.
        if not 0 < self.idle_timeout <= 86_400:
            raise ConfigError(f"idle timeout must be in (0, 86400] s, got {self.idle_timeout}")

    def to_json(self) -> dict[str, Any]:
        """The whole configuration as a JSON object; `from_json` gives it back equal."""
        document: dict[str, Any] = to_document(self)
        return document

    @classmethod
    def from_json(cls, document: object) -> ServerConfig:
        """A configuration from `to_json`'s form; a key that is unknown, of the wrong type,
        or out of range is a ConfigError naming it. Keys left out take their defaults."""
        return from_document(cls, document, "server config")


class StreamTasks:
    """The tasks a connection runs for its streams (answers, streamed bodies): kept, so
    none is garbage-collected while it runs, and cancelled together with the connection."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def running(self) -> int:
        """How many are still running (an answer in think time, a streamed body)."""
        return len(self._tasks)


async def respond(request: WorkloadRequest, limits: Limits,
                  compression: CompressionSettings = DEFAULT_COMPRESSION) -> WorkloadResponse:
    """The one handler: plan the response, spend the server think time, resolve push
    endpoints (which depend on when they are asked), and code the body as the request's
    Accept-Encoding asks, then cut the part a Range asks for (206/416, from the coded
    body: the representation sent) — once, here, whatever protocol carries it."""
    response = plan(request, limits)
    if response.delay_ms:
        await asyncio.sleep(response.delay_ms / 1000)
    if response.push is not None:
        response = await resolve_push(response.push)
    return select_range(encode_response(response, request.accept_encoding, compression),
                        request.range)


def peer_name(peer: object) -> str:
    """A peer address as log lines name it: host:port, [v6 host]:port."""
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = str(peer[0])
        return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
    return "unknown peer" if peer is None else str(peer)


_BYTES_REPR = re.compile(r"""(?:bytearray\()?b('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\)?""")
_PREFIX = 32  # characters of a peer's bytes a log line may quote


def printable(text: str, limit: int = 200) -> str:
    """`text` fit for one log line: the peer's bytes that libraries quote in their messages
    (h11 puts whole request lines in as bytearray reprs) cut to a short escaped prefix, no
    control characters, at most `limit` characters."""

    def prefix(match: re.Match[str]) -> str:
        quoted = match.group(1)[1:-1]  # already escaped by the library's repr
        return f"'{quoted[:_PREFIX]}{'...' if len(quoted) > _PREFIX else ''}'"

    text = _BYTES_REPR.sub(prefix, text)
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


async def drain(writer: asyncio.StreamWriter) -> None:
    """`writer.drain()` that stops at the first sign of a lost connection.

    When a send fails, asyncio drops every later write and logs "socket.send() raised
    exception." for each from the fifth on; over TLS, drain() notices the loss only after
    it has climbed two protocol layers, so a writer that never yields wrote on a dead
    connection thousands of times (1,238 lines for one pipelining client that left).
    Yielding once lets the loss arrive; then this raises ConnectionResetError and the
    writer stops after a write or two, below asyncio's threshold."""
    await writer.drain()
    await asyncio.sleep(0)
    if writer.is_closing():
        raise ConnectionResetError("the client closed the connection")
