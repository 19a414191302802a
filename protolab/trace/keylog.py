"""The NSS key log (SSLKEYLOGFILE) format Python's ssl and aioquic write, and Wireshark reads.

Each line: `LABEL CLIENT_RANDOM_HEX SECRET_HEX`. TLS 1.2 logs `CLIENT_RANDOM` (the master
secret); TLS 1.3 and QUIC log the traffic secrets (`CLIENT_HANDSHAKE_TRAFFIC_SECRET`, ...,
`CLIENT_EARLY_TRAFFIC_SECRET`). Lines that do not parse are counted, never fatal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from protolab.trace.errors import TraceInputError


@dataclass
class KeyLog:
    """Secrets by client random, then by label."""

    secrets: dict[bytes, dict[str, bytes]] = field(default_factory=dict)
    bad_lines: int = 0

    def get(self, client_random: bytes, label: str) -> bytes | None:
        return self.secrets.get(client_random, {}).get(label)

    def __len__(self) -> int:
        return len(self.secrets)


def parse_keylog(text: str) -> KeyLog:
    log = KeyLog()
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        try:
            if len(parts) != 3:
                raise ValueError(line)
            random, secret = bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
        except ValueError:
            log.bad_lines += 1
            continue
        log.secrets.setdefault(random, {})[parts[0]] = secret
    return log


def load_keylog(path: Path | None) -> KeyLog:
    if path is None:
        return KeyLog()
    try:
        return parse_keylog(path.read_text(errors="replace"))
    except OSError as exc:
        raise TraceInputError(f"cannot read the key log {path}: {exc.strerror}") from exc
