"""Start the configured servers together and stop them together.

h1 and h2 share one TCP port (ALPN or preface decides), h3 listens on the same
port number over UDP when it is free; HTTP/1.1 and HTTP/2 responses advertise
HTTP/3 with Alt-Svc (RFC 7838) when it runs. WebSocket and gRPC listen on ports of
their own: the next two numbers after --port (ws = port+1, grpc = port+2), or free
ones with --port 0.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from typing import Any

from protolab.errors import ConfigError
from servers.common import ServerConfig
from servers.h3 import H3ServerStats, start_h3_server
from servers.tcp import listening_socket, start_tcp_server


@dataclass
class RunningServers:
    config: ServerConfig
    tcp_port: int | None = None
    udp_port: int | None = None
    h3_stats: H3ServerStats = field(default_factory=H3ServerStats)
    ws_port: int | None = None
    grpc_port: int | None = None
    _tcp: asyncio.Server | None = None
    _udp: asyncio.DatagramTransport | None = None
    _ws: Any = None  # websockets.asyncio.server.Server
    _grpc: Any = None  # servers.grpc.RunningGrpc

    def urls(self) -> dict[str, str]:
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        tls = self.config.certs is not None
        out: dict[str, str] = {}
        for proto in self.config.protocols:
            if proto == "ws":
                out[proto] = f"{'wss' if tls else 'ws'}://{host}:{self.ws_port}/"
            elif proto == "grpc":
                # The lab's own schemes (gRPC has none): grpcs:// with TLS, grpc:// without.
                out[proto] = f"{'grpcs' if tls else 'grpc'}://{host}:{self.grpc_port}/"
            else:
                port = self.udp_port if proto == "h3" else self.tcp_port
                out[proto] = f"{'https' if tls else 'http'}://{host}:{port}/"
        return out

    async def close(self) -> None:
        if self._ws is not None:
            self._ws.close(close_connections=True)
        if self._grpc is not None:
            await self._grpc.stop()
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            # Connections still open are closed with the loop; do not wait on idle clients.
            self._tcp.close_clients() if hasattr(self._tcp, "close_clients") else None


async def start_servers(config: ServerConfig) -> RunningServers:
    running = RunningServers(config)
    tcp_protos = [p for p in config.protocols if p in ("h1", "h2")]
    tcp_sock: socket.socket | None = None
    try:
        if tcp_protos:
            tcp_sock = _bind_tcp(config)
            running.tcp_port = tcp_sock.getsockname()[1]
        if "h3" in config.protocols:
            running._udp = await _bind_udp_near(config, running.tcp_port, running.h3_stats)
            running.udp_port = running._udp.get_extra_info("sockname")[1]
        if tcp_sock is not None:
            alt_svc = f'h3=":{running.udp_port}"; ma=86400' if running.udp_port else None
            running._tcp = await start_tcp_server(config, tcp_sock, alt_svc)
        if "ws" in config.protocols:
            from servers.ws import start_ws_server

            ws_sock = _bind_tcp(config, _own_port(config, 1))
            running.ws_port = ws_sock.getsockname()[1]
            try:
                running._ws = await start_ws_server(config, ws_sock)
            except BaseException:
                ws_sock.close()
                raise
        if "grpc" in config.protocols:
            from servers.grpc import start_grpc_server

            running._grpc = await start_grpc_server(config, _own_port(config, 2))
            running.grpc_port = running._grpc.port
    except BaseException:
        if tcp_sock is not None and running._tcp is None:
            tcp_sock.close()
        await running.close()
        raise
    return running


async def _bind_udp_near(
    config: ServerConfig, tcp_port: int | None, stats: H3ServerStats
) -> asyncio.DatagramTransport:
    """UDP on the TCP port's number when free; with --port 0 any free port will do (Alt-Svc
    tells clients where HTTP/3 is)."""
    wanted = tcp_port if tcp_port is not None else config.port
    try:
        return await _bind_udp(config, wanted, stats)
    except ConfigError:
        if config.port != 0:
            raise
        return await _bind_udp(config, 0, stats)


def _own_port(config: ServerConfig, offset: int) -> int:
    return 0 if config.port == 0 else config.port + offset


def _bind_tcp(config: ServerConfig, port: int | None = None) -> socket.socket:
    port = config.port if port is None else port
    try:
        return listening_socket(config.host, port, config.tcp_cc)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on TCP {config.host}:{port}: {exc.strerror}",
            hint="choose another --port (0 picks a free one) or --host",
        ) from exc


async def _bind_udp(
    config: ServerConfig, port: int, stats: H3ServerStats
) -> asyncio.DatagramTransport:
    try:
        return await start_h3_server(config, port, stats)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on UDP {config.host}:{port}: {exc.strerror}",
            hint="choose another --port (0 picks a free one) or --host",
        ) from exc
