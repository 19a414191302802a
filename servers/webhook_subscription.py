"""A webhook subscription: what POST /subscribe asks for, validated before anything is sent.

A server that calls URLs it is given is an SSRF hazard (OWASP SSRF Prevention Cheat
Sheet), so a callback is only http:// or https://, with no user info or fragment, and its
host must be an IP literal equal to the address the subscribing connection came from (no
names, so no DNS rebinding), never the listener itself. Another host is one 403 naming
both addresses; a malformed URL or stream parameter is a 400 with the reason.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from protolab.events import StreamSpec, parse_spec
from protolab.workload import WorkloadResponse, error


@dataclass(frozen=True)
class Callback:
    """Where the events go: a validated http(s) URL on the subscriber's own address."""

    scheme: str  # "http" or "https"
    host: str  # an IP literal, the subscriber's address
    port: int
    target: str  # path and query, as the request line carries them

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.target}"


@dataclass(frozen=True)
class Subscription:
    callback: Callback
    spec: StreamSpec


def _same_address(a: ipaddress.IPv4Address | ipaddress.IPv6Address,
                  b: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    def plain(x: ipaddress.IPv4Address | ipaddress.IPv6Address
              ) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        mapped = getattr(x, "ipv4_mapped", None)
        return mapped if mapped is not None else x

    return plain(a) == plain(b)


def parse_callback(raw: str, peer_host: str, own: tuple[str, int] | None = None,
                   ) -> Callback | WorkloadResponse:
    """The callback URL, if the subscriber at `peer_host` may be called there; else the
    400 (malformed) or 403 (not the subscriber's own address) to answer. `own` is this
    listener's address: a callback to it would make the server call itself."""
    split = urlsplit(raw)
    if split.scheme not in ("http", "https"):
        return error(400, f"callback must be an http:// or https:// URL, got {raw[:80]!r}")
    if split.username is not None or split.password is not None or split.fragment:
        return error(400, "callback must not carry user info or a fragment")
    if not split.hostname:
        return error(400, "callback has no host")
    try:
        given = split.port
    except ValueError:
        return error(400, "callback port must be a number in 1..65535")
    port = (443 if split.scheme == "https" else 80) if given is None else given
    if port == 0:
        return error(400, "callback port must be a number in 1..65535")
    target = split.path or "/"
    if split.query:
        target += "?" + split.query
    if not target.startswith("/") or not all("!" <= c <= "~" for c in target):
        return error(400, "callback path must be visible ASCII (percent-encode the rest)")
    try:
        peer = ipaddress.ip_address(peer_host)
    except ValueError:
        return error(403, "this server calls back only the subscriber's own address, and "
                          "cannot tell what that is here")
    try:
        host = ipaddress.ip_address(split.hostname)
    except ValueError:
        host = None
    if host is None or not _same_address(host, peer):
        return error(403, f"callback host {split.hostname!r} is not your address {peer}: "
                          "this server calls back only the address that subscribed")
    if own is not None and port == own[1] and _same_address(host, ipaddress.ip_address(own[0])):
        return error(403, "callback points at this server itself")
    return Callback(split.scheme, str(host), port, target)


def parse_subscription(target: str, peer_host: str, own: tuple[str, int] | None = None,
                       ) -> Subscription | WorkloadResponse:
    """POST /subscribe's query as a subscription, or the 4xx answer saying what is wrong."""
    query = parse_qs(urlsplit(target).query, keep_blank_values=True)
    callbacks = query.pop("callback", [])
    if len(callbacks) != 1:
        return error(400, "give exactly one callback=URL (percent-encoded)")
    spec = parse_spec(query)
    if isinstance(spec, str):
        return error(400, spec)
    callback = parse_callback(callbacks[0], peer_host, own)
    if isinstance(callback, WorkloadResponse):
        return callback
    return Subscription(callback, spec)
