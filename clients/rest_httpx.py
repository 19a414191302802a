"""REST through httpx — the library a Python service would call — behind the lab's interface.

The lab's own HTTP clients (h1.py, h2.py) time every phase because they own the socket.
httpx owns its sockets (through httpcore), so this client sees only what httpx lets a
caller see, and the record says no more than that:

- **Connection and TLS phases** come from httpcore's per-request trace extension
  (`extensions={"trace": callback}`): `connection.connect_tcp.started/complete` give
  `conn_start_ns` / `connected_ns`, `connection.start_tls.complete` gives
  `handshake_ns`, `*.send_request_body.complete` gives `request_sent_ns` and
  `*.receive_response_headers.complete` gives `first_byte_ns`. Each stamp is taken
  when httpcore calls back, after its own await returned: a few microseconds late,
  never early. The first *byte* of the response is not visible: httpcore reports the
  headers once parsed, so on HTTP/2 `first_byte_ns` is the end of the HEADERS frame.
- **Bytes** are counted by a network backend that wraps httpcore's own (AnyIO) streams:
  every HTTP/1.1 or HTTP/2 byte written and read on the connection, TLS records not
  included — the lab clients' rule. A record gets the bytes that crossed while it ran, so
  the counts are exact with one request at a time per client (the suites here) and
  shared out arbitrarily when several requests interleave on one connection.
- **What the application gets**: a JSON response is decoded (gzip) and parsed, as
  `response.json()` does, before `done_ns`; the parse time is the transport counter
  `json_decode_us` and the decoded size `decoded_bytes`. `body_bytes` is the body as
  it crossed the wire (compressed when it was), like the lab's clients'.
- **Unknown**: TCP_INFO (httpcore does not expose the socket), the TLS session (no
  resumption: `resume` is not a knob of this client), HTTP/2 frame-level timings and
  stream ids, and when the request's bytes actually left (httpcore's "sent" is when its
  write returned).

`httpx` speaks HTTP/1.1; `httpx-h2` speaks HTTP/2 only (ALPN h2 over TLS, prior
knowledge over cleartext). Knobs: `keepalive` (False: a connection per request,
`Connection: close` on HTTP/1.1) and `cc` (set with socket options, as the lab's
clients do).
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpcore
import httpx

from clients.base import timed_exchange
from clients.tcp import tls_context_for
from protolab.compression import check_accept_encoding, with_accept_encoding
from protolab.core.record import Request, RequestRecord, Target, Timeline
from protolab.errors import ConfigError, ProtocolFailure
from protolab.tcpsock import DEFAULT_CC
from protolab.timing import now_ns


@dataclass(frozen=True)
class HttpxOptions:
    keepalive: bool = True  # False: a new connection per request
    cc: str = DEFAULT_CC  # TCP congestion control, set through httpcore's socket options
    timeout: float = 60.0  # per request, seconds
    http2: bool = False  # HTTP/2 only (httpx-h2); False: HTTP/1.1 only
    # Accept-Encoding to send; "": the request's own, else identity — not httpx's default,
    # which depends on what is installed (br with brotli, zstd with zstandard).
    accept_encoding: str = ""

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ConfigError("httpx timeout must be positive")
        if (why := check_accept_encoding(self.accept_encoding)) is not None:
            raise ConfigError(why)


@dataclass(frozen=True)
class HttpxH2Options(HttpxOptions):
    http2: bool = True


@dataclass
class _Meter:
    """Bytes through every connection of one client, HTTP framing level."""

    bytes_in: int = 0
    bytes_out: int = 0
    connections: int = 0


# The `timeout` parameters below are httpcore's network-backend interface (ASYNC109).
class _CountingStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream, meter: _Meter) -> None:
        self._inner, self._meter = inner, meter

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        data = await self._inner.read(max_bytes, timeout)
        self._meter.bytes_in += len(data)
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._inner.write(buffer, timeout)
        self._meter.bytes_out += len(buffer)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None,  # noqa: ASYNC109
                        ) -> httpcore.AsyncNetworkStream:
        # The TLS stream reads the raw socket itself: handshake and record bytes are not
        # counted, only what HTTP reads and writes through it.
        tls = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        return _CountingStream(tls, self._meter)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _CountingBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, meter: _Meter) -> None:
        self._inner, self._meter = httpcore.AnyIOBackend(), meter

    async def connect_tcp(self, host: str, port: int,
                          timeout: float | None = None,  # noqa: ASYNC109
                          local_address: str | None = None,
                          socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address,
                                               socket_options)
        self._meter.connections += 1
        return _CountingStream(stream, self._meter)

    async def connect_unix_socket(self, path: str,
                                  timeout: float | None = None,  # noqa: ASYNC109
                                  socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        raise ConfigError("the lab's httpx client connects over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@dataclass
class _Trace:
    """httpcore's trace callbacks for one request, stamped on the lab's clock."""

    tl: Timeline
    meter: _Meter
    events: dict[str, int] = field(default_factory=dict)

    async def __call__(self, name: str, info: Mapping[str, Any]) -> None:
        t = now_ns()
        self.events.setdefault(name, t)
        tl = self.tl
        if name == "connection.connect_tcp.started":
            tl.new_connection, tl.conn_start_ns = True, t
        elif name == "connection.connect_tcp.complete":
            tl.connected_ns = t
            tl.connection_id = self.meter.connections
        elif name == "connection.start_tls.complete":
            tl.handshake_ns = t
            ssl_object = info["return_value"].get_extra_info("ssl_object")
            if ssl_object is not None:
                tl.alpn = ssl_object.selected_alpn_protocol()
                tl.tls_version = ssl_object.version()
                cipher = ssl_object.cipher()
                tl.cipher = cipher[0] if cipher else None
        elif name.endswith(".send_request_body.complete"):
            tl.request_sent_ns = t
        elif name.endswith(".receive_response_headers.complete"):
            tl.first_byte_ns = tl.first_byte_ns or t


class HttpxClient:
    name: ClassVar[str] = "httpx"

    def __init__(self, target: Target, options: HttpxOptions | None = None) -> None:
        self.target, self.options = target, options or HttpxOptions()
        self._tls = tls_context_for(target, ["h2"] if self.options.http2 else ["http/1.1"])
        self._meter = _Meter()
        self._client: httpx.AsyncClient | None = None

    def _new_client(self) -> httpx.AsyncClient:
        opts = self.options
        sock_opts: list[tuple[int, int, int] | tuple[int, int, bytes]] = [
            (socket.IPPROTO_TCP, socket.TCP_CONGESTION, opts.cc.encode()),
            (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        limits = httpx.Limits(max_connections=None if opts.http2 else 1,
                              max_keepalive_connections=None if opts.keepalive else 0)
        transport = httpx.AsyncHTTPTransport(
            verify=self._tls if self._tls is not None else True, http1=not opts.http2,
            http2=opts.http2, limits=limits)
        # httpx has no knob for the network backend: the pool is rebuilt with the same
        # settings and a counting backend (httpx 0.28 keeps it in `_pool`).
        if not isinstance(getattr(transport, "_pool", None), httpcore.AsyncConnectionPool):
            raise ConfigError("this httpx version keeps no connection pool where the lab "
                              "expects it (AsyncHTTPTransport._pool)")
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=self._tls, max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            http1=not opts.http2, http2=opts.http2,
            network_backend=_CountingBackend(self._meter), socket_options=sock_opts)
        return httpx.AsyncClient(transport=transport, timeout=opts.timeout,
                                 headers={"user-agent": "protolab-httpx"})

    async def request(self, request: Request) -> RequestRecord:
        return await timed_exchange(self.name, request, self._exchange, self.options.timeout)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def _exchange(self, request: Request, tl: Timeline) -> None:
        if self._client is None:
            self._client = self._new_client()
        scheme = "https" if self.target.tls else "http"
        url = f"{scheme}://{self.target.authority}{request.path}"
        headers = dict(with_accept_encoding(request.headers, self.options.accept_encoding))
        headers.setdefault("accept-encoding", "identity")
        if not self.options.keepalive and not self.options.http2:
            headers["connection"] = "close"
        trace = _Trace(tl, self._meter)
        in0, out0 = self._meter.bytes_in, self._meter.bytes_out
        tl.connection_id = self._meter.connections
        try:
            async with self._client.stream(
                    request.method, url, content=request.body or None, headers=headers,
                    extensions={"trace": trace}) as response:
                tl.status = response.status_code
                tl.first_byte()
                tl.alpn = tl.alpn or ("h2" if response.http_version == "HTTP/2" else None)
                decoded = bytearray()
                async for chunk in response.aiter_bytes():
                    decoded += chunk
                    tl.body(chunk)
                tl.body_bytes = response.num_bytes_downloaded  # as it crossed the wire
                if len(decoded) != tl.body_bytes:
                    tl.transport["decoded_bytes"] = len(decoded)
                if response.headers.get("content-type", "").startswith("application/json"):
                    started = now_ns()
                    json.loads(decoded)  # what response.json() does with the decoded body
                    tl.transport["json_decode_us"] = (now_ns() - started) // 1000
                tl.done_ns = now_ns()
        except httpx.TimeoutException as exc:
            raise ProtocolFailure("timeout", f"httpx: {exc!r}") from exc
        except httpx.ConnectError as exc:
            raise ProtocolFailure(_connect_kind(exc),
                                  f"httpx, {self.target.authority}: {exc}") from exc
        except (httpx.HTTPError, ValueError) as exc:
            raise ProtocolFailure("httpx_error", f"httpx: {type(exc).__name__}: {exc}") from exc
        finally:
            tl.bytes_in = self._meter.bytes_in - in0
            tl.bytes_out = self._meter.bytes_out - out0
        if not tl.new_connection:
            tl.conn_start_ns = tl.connected_ns = tl.handshake_ns = None


def _connect_kind(exc: httpx.ConnectError) -> str:
    """The lab's failure vocabulary, from what httpx wraps (ConnectError hides the errno)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connect_refused"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return "tls_verify"
        if isinstance(cause, ssl.SSLError):
            return "tls_failed"
        cause = cause.__cause__ or cause.__context__
    text = str(exc).lower()
    if "refused" in text:
        return "connect_refused"
    if "certificate" in text:
        return "tls_verify"
    return "connect_failed"


class HttpxH2Client(HttpxClient):
    name: ClassVar[str] = "httpx-h2"

    def __init__(self, target: Target, options: HttpxOptions | None = None) -> None:
        super().__init__(target, options or HttpxH2Options())
