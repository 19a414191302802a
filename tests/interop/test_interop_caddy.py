"""The lab's clients fetch from caddy (Go: crypto/tls, x/net/http2, quic-go) over
HTTP/1.1, HTTP/2 and HTTP/3, verifying caddy's certificate against the lab's CA.

Caddy serves files at /bytes/N holding the lab's /bytes/N content, so the clients'
own body verification applies unchanged.
"""

from __future__ import annotations

import asyncio

import pytest

from protolab.certs import CertBundle
from protolab.core.record import Request, Target
from protolab.registry import make_client
from tests.helpers import TIMEOUT
from tests.interop.peers import CADDY_SIZES, CaddyServer

ALPN = {"h1": "http/1.1", "h2": "h2", "h3": "h3"}
CONCURRENT = 10


@pytest.mark.interop
@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", ["h1", "h2", "h3"])
async def test_lab_client_fetches_from_caddy(
    caddy: CaddyServer, certs: CertBundle, protocol: str
) -> None:
    target = Target(host=caddy.host, port=caddy.port, tls=True, ca_file=certs.ca_file)
    client = make_client(protocol, target, timeout=TIMEOUT)
    small, large = CADDY_SIZES
    try:
        big = await client.request(Request(path=f"/bytes/{large}"))
        # Then several at once: multiplexed on h2/h3, spread over the pool on h1.
        many = await asyncio.gather(
            *(client.request(Request(path=f"/bytes/{small}")) for _ in range(CONCURRENT))
        )
    finally:
        await client.close()
    for record, size in [(big, large), *((r, small) for r in many)]:
        assert record.error is None, f"{record.error}: {record.error_detail}"
        assert record.status == 200
        assert record.alpn == ALPN[protocol]
        assert record.body_bytes == size
        assert record.body_verified is True
    if protocol != "h1":
        assert len({r.connection_id for r in (big, *many)}) == 1  # one connection, multiplexed
