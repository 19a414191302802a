"""Start the configured servers together and stop them together, from one table.

`LISTENERS` says what listens: its transport, its port, and how it starts serving.
The protocol registry (protolab/registry.py) says, per protocol, which listener serves
it and its URL scheme with and without TLS. h1 and h2 share one TCP listener (ALPN or
the preface decides, servers/tcp.py); h3 is QUIC over UDP; both take --port, and with
--port 0 the TCP listener takes the UDP one's number when it is free. HTTP/1.1 and
HTTP/2 responses advertise HTTP/3 with Alt-Svc (RFC 7838) when it runs. WebSocket and
gRPC listen on ports of their own: the next two numbers after --port (ws = port+1,
grpc = port+2), webhook subscriptions the third (port+3), or free ones with --port 0.
Listeners start in table order, each seeing the ports of those started before it, and
stop in the reverse order.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from protolab import registry
from protolab.certs import CertBundle
from protolab.errors import ConfigError
from servers.common import ServerConfig
from servers.h3 import H3ServerStats, start_h3_server
from servers.tcp import listening_socket, start_tcp_server

Stop = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Listen:
    """What a listener's start function is given."""

    config: ServerConfig
    certs: CertBundle | None  # the files behind `config.certs` (None: cleartext)
    port: int  # the port number to bind (0: any free one)
    ports: Mapping[str, int]  # protocols already listening -> their ports
    stats: H3ServerStats


@dataclass(frozen=True)
class Listener:
    """One listening socket: its transport, its port, and how it starts serving."""

    transport: Literal["tcp", "udp"]
    offset: int  # its port is --port + offset; listeners of offset 0 share one number
    start: Callable[[Listen], Awaitable[tuple[int, Stop]]]  # -> (the port bound, stop)


async def _start_quic(listen: Listen) -> tuple[int, Stop]:
    try:
        quic = await start_h3_server(listen.config, listen.certs, listen.port, listen.stats)
    except OSError as exc:
        raise _cannot_listen("UDP", listen, exc) from exc

    async def stop() -> None:
        quic.close()

    port: int = quic.transport.get_extra_info("sockname")[1]
    return port, stop


class _Closable(Protocol):
    def close(self) -> None: ...


async def _serve_tcp(listen: Listen,
                     serve: Callable[[socket.socket], Awaitable[_Closable]]) -> tuple[int, Stop]:
    """Bind the listener's TCP socket and serve on it; closing it stops listening and
    drops its connections (a stopping lab does not wait on idle clients)."""
    sock = _bind_tcp(listen)
    port: int = sock.getsockname()[1]
    try:
        server = await serve(sock)
    except BaseException:
        sock.close()
        raise

    async def stop() -> None:
        server.close()

    return port, stop


async def _start_http(listen: Listen) -> tuple[int, Stop]:
    h3 = listen.ports.get("h3")
    alt_svc = f'h3=":{h3}"; ma=86400' if h3 else None
    return await _serve_tcp(listen, lambda sock: start_tcp_server(
        listen.config, listen.certs, sock, alt_svc))


async def _start_ws(listen: Listen) -> tuple[int, Stop]:
    from servers.ws import start_ws_server

    return await _serve_tcp(listen, lambda sock: start_ws_server(
        listen.config, listen.certs, sock))


async def _start_webhook(listen: Listen) -> tuple[int, Stop]:
    from servers.webhook import start_webhook_server

    return await _serve_tcp(listen, lambda sock: start_webhook_server(
        listen.config, listen.certs, sock))


async def _start_grpc(listen: Listen) -> tuple[int, Stop]:
    from servers.grpc import start_grpc_server

    running = await start_grpc_server(listen.config, listen.certs, listen.port)
    return running.port, running.stop


LISTENERS: Mapping[str, Listener] = {
    "quic": Listener("udp", 0, _start_quic),
    "http": Listener("tcp", 0, _start_http),  # after quic: its Alt-Svc names h3's port
    "ws": Listener("tcp", 1, _start_ws),
    "grpc": Listener("tcp", 2, _start_grpc),
    "webhook": Listener("tcp", 3, _start_webhook),  # POST /subscribe (servers/webhook.py)
}


def _listener(protocol: str) -> str:
    return registry.get(protocol).listener


@dataclass
class RunningServers:
    config: ServerConfig
    certs: CertBundle | None  # the files in use (None: cleartext)
    ports: dict[str, int] = field(default_factory=dict)  # protocol -> port
    h3_stats: H3ServerStats = field(default_factory=H3ServerStats)
    _stops: list[Stop] = field(default_factory=list)

    def port(self, protocol: str) -> int:
        try:
            return self.ports[protocol]
        except KeyError:
            raise ConfigError(f"{protocol} is not served here",
                              hint=f"serving {', '.join(self.ports) or 'nothing'}") from None

    def urls(self) -> dict[str, str]:
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        tls = self.certs is not None
        return {proto: f"{registry.get(proto).scheme(tls)}://{host}:{port}/"
                for proto, port in self.ports.items()}

    async def close(self) -> None:
        while self._stops:
            await self._stops.pop()()


async def start_servers(config: ServerConfig) -> RunningServers:
    for protocol in config.protocols:
        registry.get(protocol)  # an unknown name is a ConfigError listing the known ones
    certs = config.certs.ensure() if config.certs is not None else None
    running = RunningServers(config, certs)
    wanted = {_listener(p) for p in config.protocols}
    bound: dict[str, int] = {}  # listener -> port
    try:
        for name, listener in LISTENERS.items():
            if name not in wanted:
                continue
            shared = next((bound[n] for n in bound if LISTENERS[n].offset == 0), None)
            ports = {p: bound[_listener(p)] for p in config.protocols
                     if _listener(p) in bound}
            listen = Listen(config, certs, 0, ports, running.h3_stats)
            port, stop = await _start(listener, listen, shared)
            running._stops.append(stop)
            bound[name] = port
    except BaseException:
        await running.close()
        raise
    running.ports = {p: bound[_listener(p)] for p in config.protocols}
    return running


async def _start(listener: Listener, listen: Listen, shared: int | None) -> tuple[int, Stop]:
    config = listen.config
    if config.port != 0:
        return await listener.start(replace(listen, port=config.port + listener.offset))
    if listener.offset == 0 and shared is not None:
        try:
            return await listener.start(replace(listen, port=shared))
        except ConfigError:
            pass  # that number is taken on this transport: any free one will do
    return await listener.start(listen)


def _bind_tcp(listen: Listen) -> socket.socket:
    try:
        return listening_socket(listen.config.host, listen.port, listen.config.cc)
    except OSError as exc:
        raise _cannot_listen("TCP", listen, exc) from exc


def _cannot_listen(transport: str, listen: Listen, exc: OSError) -> ConfigError:
    return ConfigError(
        f"cannot listen on {transport} {listen.config.host}:{listen.port}: {exc.strerror}",
        hint="choose another --port (0 picks a free one) or --host",
    )
