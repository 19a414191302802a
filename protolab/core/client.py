"""The one client interface every protocol implements (clients/ hold the implementations).

The runner, `protolab get`, the tracer and loopback drive every protocol through this:
`request()` returns a `RequestRecord` and never raises for a failed request — the failure
is a typed `error` in the record — and `close()` ends every connection.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from protolab.core.record import Request, RequestRecord


class ProtocolClient(Protocol):
    """One client per protocol: the runner sees only this."""

    name: ClassVar[str]

    async def request(self, request: Request) -> RequestRecord:
        """Send one request (opening a connection if needed) and return its raw record."""
        ...

    async def close(self) -> None:
        """Close every connection; pending requests end with error "closed"."""
        ...
