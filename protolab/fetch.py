"""Fetching URLs with the lab's clients: what `protolab get` and the demo run."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from protolab import registry
from protolab.certs import TlsVersion
from protolab.core.record import Request, RequestRecord, Target
from protolab.errors import ConfigError
from protolab.registry import make_client

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
    """
    split = urlsplit(url)
    if split.scheme not in SCHEMES or not split.hostname:
        raise ConfigError(f"not an http(s)://, ws(s):// or grpc(s):// URL: {url!r}")
    tls = split.scheme in registry.tls_schemes()
    try:
        port = split.port or (443 if tls else 80)
    except ValueError as exc:
        raise ConfigError(f"bad port in URL {url!r}") from exc
    path = (split.path or "/") + (f"?{split.query}" if split.query else "")
    target = Target(
        host=split.hostname, port=port, tls=tls, ca_file=ca_file,
        tls_version=tls_version, keylog_file=keylog_file,
    )
    return target, path


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
