"""The QPACK dynamic table an HTTP/3 endpoint offers its peer (RFC 9204 §3.2.3, §5).

Each side's *decoder* announces SETTINGS_QPACK_MAX_TABLE_CAPACITY; the peer's encoder
may then insert fields into a dynamic table of up to that many bytes and refer to them
by index. A capacity of 0 forbids the dynamic table: the peer encodes every field from
the static table or as a literal. So the server's setting decides how request headers
are compressed, the client's how response headers are.

This module is the knob's limits, free of aioquic (the registry imports it);
protolab/qpack_h3.py applies it to aioquic's `H3Connection`.
"""

from __future__ import annotations

DEFAULT_TABLE = 4096  # aioquic's own, and what a variant gets unless it says otherwise
MAX_TABLE = 1 << 20  # bytes; a lab's upper bound, far above any header set of the suites


def check_table(capacity: object) -> str | None:
    """Why `capacity` is not a usable QPACK table capacity (None: it is)."""
    if isinstance(capacity, bool) or not isinstance(capacity, int) or not (
            0 <= capacity <= MAX_TABLE):
        return (f"qpack_table must be an integer in 0..{MAX_TABLE} bytes (0: static table "
                f"only), got {capacity!r}")
    return None
