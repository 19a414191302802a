"""Fetching URLs with the lab's clients: what `protolab get` and the demo run."""

from __future__ import annotations

import asyncio
import ipaddress
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from protolab import registry
from protolab.certs import TlsVersion
from protolab.core.record import Request, RequestRecord, Target
from protolab.errors import ConfigError
from protolab.registry import make_client
from protolab.tlsfiles import check_ca_file, check_keylog_path

# URL scheme -> the protocol it implies (None: any HTTP version, chosen with --proto).
SCHEMES: dict[str, str | None] = registry.scheme_protocols()


def target_from_url(
    url: str,
    *,
    ca_file: Path | None = None,
    tls_version: TlsVersion | None = None,
    keylog_file: Path | None = None,
) -> tuple[Target, str]:
    """The connection target and the request path of an http(s), ws(s) or grpc(s) URL.

    grpc:// (plaintext) and grpcs:// (TLS) are the lab's own schemes: gRPC has none.
    Everything a client would trip over later (no host, a port outside 1..65535, a host
    that no resolver accepts, a space in the path) is a ConfigError here, naming the URL.
    """
    try:
        split = urlsplit(url)
        port_given = split.port
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range 0-65535", ...
        raise ConfigError(f"malformed URL {url!r}: {exc}") from None
    if split.scheme not in SCHEMES:
        raise ConfigError(f"not an http(s)://, ws(s):// or grpc(s):// URL: {url!r}")
    host = split.hostname
    if not host:
        raise ConfigError(f"URL {url!r} names no host")
    _check_host(host, url)
    if split.username is not None or split.password is not None:
        raise ConfigError(f"URL {url!r} carries credentials; the lab's clients send none")
    if port_given == 0:
        raise ConfigError(f"URL {url!r}: port 0 cannot be connected to; give 1..65535")
    tls = split.scheme in registry.tls_schemes()
    port = port_given or (443 if tls else 80)
    path = (split.path or "/") + (f"?{split.query}" if split.query else "")
    # A request target is visible ASCII (RFC 9112 §3.2, RFC 3986 §2): h11 would raise on
    # anything else mid-request, and h2/h3 would send bytes the server must refuse.
    bad = next((c for c in path if not "!" <= c <= "~"), None)
    if bad is not None:
        raise ConfigError(f"URL {url!r}: its path holds {bad!r}; percent-encode it "
                          f"({quote(bad)})")
    target = Target(
        host=host, port=port, tls=tls, ca_file=ca_file,
        tls_version=tls_version, keylog_file=keylog_file,
    )
    return target, path


# A DNS name as resolvers take it (RFC 1123 labels; "_" as real-world names use it).
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")


def _check_host(host: str, url: str) -> None:
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        ascii_host = ""
    labels = ascii_host.rstrip(".").split(".")
    if not ascii_host or len(ascii_host) > 253 or not all(_LABEL.match(x) for x in labels):
        raise ConfigError(f"URL {url!r}: {host!r} is not a host name or IP address")
    if labels[-1].isdigit():  # "256.1.1.1", "1.2.3": no name ends in digits (RFC 3696 §2)
        raise ConfigError(f"URL {url!r}: {host!r} is not a valid IPv4 address")


def check_files(
    *, ca_file: Path | None = None, keylog_file: Path | None = None,
    ca_option: str = "--cacert", keylog_option: str = "--keylog",
) -> None:
    """The files a fetch would use, checked before anything connects or is created."""
    if ca_file is not None:
        check_ca_file(ca_file, ca_option)
    if keylog_file is not None:
        check_keylog_path(keylog_file, keylog_option)


async def fetch(
    protocol: str,
    target: Target,
    path: str,
    *,
    count: int = 1,
    parallel: int = 1,
    method: str = "GET",
    body: bytes = b"",
    options: dict[str, Any] | None = None,
) -> list[RequestRecord]:
    """`count` requests, at most `parallel` in flight, on one client; records in send order."""
    if count < 1 or parallel < 1:
        raise ConfigError("request count and parallelism must be at least 1")
    client = make_client(protocol, target, **(options or {}))
    request = Request(method=method, path=path, body=body)
    slots = asyncio.Semaphore(parallel)

    async def one() -> RequestRecord:
        async with slots:
            return await client.request(request)

    try:
        return list(await asyncio.gather(*(one() for _ in range(count))))
    finally:
        await client.close()


async def fetch_resumed(
    protocol: str, target: Target, path: str, *, options: dict[str, Any] | None = None
) -> list[RequestRecord]:
    """Two requests on two connections of one client, so the second can resume the first's
    session (and, for h3 with zero_rtt, send its request as early data)."""
    client = make_client(protocol, target, **(options or {}))
    try:
        first = await client.request(Request(path=path))
        await client.close()
        second = await client.request(Request(path=path))
    finally:
        await client.close()
    return [first, second]
