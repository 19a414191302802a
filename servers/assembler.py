"""One request assembler for HTTP/2 and HTTP/3: a stream's header list and DATA in, a
`WorkloadRequest` or an early error response out.

Sans-IO, as hypercorn's one request handler behind three wire protocols: each protocol
module feeds it what its framing layer decoded (h2's RequestReceived, DataReceived and
StreamEnded; aioquic's HeadersReceived and DataReceived with `stream_ended`) and writes
back, in its own framing, what it returns. The checks are the ones HTTP/1.1 makes too
(protolab.workload): the header list, sized as HPACK and QPACK size it, over the limit
gets 431; a body declared or received over the limit gets 413. Once a stream has been
answered early, its later DATA is dropped and its end asks for nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protolab.compression import header_value
from protolab.workload import (
    DEFAULT_LIMITS,
    Limits,
    WorkloadRequest,
    WorkloadResponse,
    body_too_large,
    check_head,
    declared_length,
    head_size,
)

Headers = list[tuple[bytes, bytes]]


@dataclass
class RequestAssembler:
    """One request stream, from its HEADERS to its end."""

    limits: Limits = DEFAULT_LIMITS
    method: str = ""  # from :method ("" when absent)
    path: str = ""  # from :path, with its query
    accept_encoding: str | None = None  # its fields joined (None: absent)
    range: str | None = None  # its Range fields joined (None: absent)
    rejected: bool = False  # answered early (431/413): later DATA is dropped
    _body: bytearray = field(default_factory=bytearray)

    def headers(self, headers: Headers) -> WorkloadResponse | None:
        """The request's header list; a 431/413 to send at once, or None."""
        pseudo = {name: value for name, value in headers if name.startswith(b":")}
        self.method = pseudo.get(b":method", b"").decode("ascii", "replace")
        self.path = pseudo.get(b":path", b"").decode("ascii", "replace")
        self.accept_encoding = header_value(headers, b"accept-encoding")
        self.range = header_value(headers, b"range")
        return self._checked(check_head(head_size(headers), declared_length(headers),
                                        self.limits))

    def data(self, data: bytes) -> WorkloadResponse | None:
        """A piece of the request body; a 413 to send at once, or None."""
        if self.rejected:
            return None
        self._body += data
        return self._checked(body_too_large(len(self._body), self.limits))

    def end(self) -> WorkloadRequest | None:
        """The whole request once the stream has ended; None if it was answered early."""
        if self.rejected:
            return None
        request = WorkloadRequest(self.method, self.path, bytes(self._body),
                                  accept_encoding=self.accept_encoding, range=self.range)
        self._body = bytearray()
        return request

    def _checked(self, rejection: WorkloadResponse | None) -> WorkloadResponse | None:
        if rejection is not None:
            self.rejected = True
            self._body = bytearray()
        return rejection


def response_headers(response: WorkloadResponse, alt_svc: str | None = None) -> Headers:
    """The response's header list for HEADERS: :status, then the neutral headers."""
    headers = [(b":status", str(response.status).encode())]
    headers += [(name.encode(), value.encode()) for name, value in response.headers(alt_svc)]
    return headers
