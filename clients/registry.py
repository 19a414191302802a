"""Protocol name -> client class: a new protocol is a new module and one entry here."""

from __future__ import annotations

from typing import Any

from clients.base import ProtocolClient
from clients.grpc import GrpcClient, GrpcOptions
from clients.h1 import H1Client, H1Options
from clients.h2 import H2Client, H2Options
from clients.h3 import H3Client, H3Options
from clients.ws import WsClient, WsOptions
from protolab.core.record import Target
from protolab.errors import ConfigError

CLIENTS: dict[str, tuple[type[Any], type[Any]]] = {
    "h1": (H1Client, H1Options),
    "h2": (H2Client, H2Options),
    "h3": (H3Client, H3Options),
    "ws": (WsClient, WsOptions),
    "grpc": (GrpcClient, GrpcOptions),
}


def make_client(protocol: str, target: Target, **options: Any) -> ProtocolClient:
    """A client for `protocol`; options are that protocol's option fields (unknown -> error)."""
    try:
        client_cls, options_cls = CLIENTS[protocol]
    except KeyError:
        raise ConfigError(
            f"unknown protocol {protocol!r}; choose one of {', '.join(CLIENTS)}"
        ) from None
    try:
        opts = options_cls(**options)
    except TypeError as exc:
        raise ConfigError(f"{protocol}: {exc}") from None
    client: ProtocolClient = client_cls(target, opts)
    return client
