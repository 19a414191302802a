"""Link records on disk, so leftovers of a crashed run are recognised and removed.

A record is written *before* anything is created and removed *after* everything is
gone, so every `plab-*` namespace either has a record or is a leftover. A record
whose owner process is dead (pid gone, or reused: the kernel start time differs)
is a leftover too; live owners' links are never touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from protolab.core.procfs import alive
from protolab.netem import namespaces as ns

STATE_DIR_ENV = "PROTOLAB_NETEM_STATE"
DEFAULT_STATE_DIR = "/run/protolab/links"
PREFIX = "plab-"
_NETNS_RE = re.compile(rf"^{PREFIX}(?P<name>[a-z0-9]+)-[cs]$")


@dataclass(frozen=True)
class LinkRecord:
    name: str
    client_ns: str
    server_ns: str
    subnet: int  # third octet of 10.77.X.0/24
    owner_pid: int
    owner_start: int  # /proc/PID/stat start time, guards against pid reuse
    forwarder_pid: int | None = None
    forwarder_start: int | None = None


def state_dir() -> Path:
    return Path(os.environ.get(STATE_DIR_ENV, DEFAULT_STATE_DIR))


@contextlib.contextmanager
def locked() -> Iterator[Path]:
    """Serialise allocation and cleanup between concurrent protolab processes."""
    directory = state_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield directory
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write(record: LinkRecord) -> None:
    path = state_dir() / f"{record.name}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record)))
    tmp.replace(path)


def remove(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        (state_dir() / f"{name}.json").unlink()


def load_all() -> list[LinkRecord]:
    records = []
    directory = state_dir()
    if not directory.is_dir():
        return []
    for path in sorted(directory.glob("*.json")):
        try:
            records.append(LinkRecord(**json.loads(path.read_text())))
        except (ValueError, TypeError):
            path.unlink()  # a torn or foreign file: nothing can be recovered from it
    return records


def teardown(record: LinkRecord) -> None:
    """Remove everything a record names; safe to call twice and on half-built links."""
    if alive(record.forwarder_pid, record.forwarder_start) and record.forwarder_pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.forwarder_pid, signal.SIGKILL)
    ns.delete_netns(record.client_ns)
    ns.delete_netns(record.server_ns)
    remove(record.name)


def cleanup_leftovers(only: str | None = None) -> list[str]:
    """Tear down links whose owner died, and orphan namespaces; returns what was removed.

    With `only`, remove that one link whatever its owner's state (for `netem down N`).
    Call with the lock held.
    """
    removed = []
    records = load_all()
    known: set[str] = set()
    for record in records:
        known.update((record.client_ns, record.server_ns))
        owner_dead = not alive(record.owner_pid, record.owner_start)
        if (only is None and owner_dead) or record.name == only:
            teardown(record)
            removed.append(record.name)
    for netns in ns.list_netns():
        m = _NETNS_RE.match(netns)
        if m and netns not in known and (only is None or m.group("name") == only):
            ns.delete_netns(netns)
            removed.append(m.group("name"))
    return sorted(set(removed))

