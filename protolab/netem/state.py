"""Link records on disk, so leftovers of a crashed run are recognised and removed.

A record is written *before* anything is created and removed *after* everything is
gone, so every `plab-*` namespace this state directory made has a record here until it
is gone. Cleanup touches only what is provably dead *and ours*: a link whose record is
in this directory and whose owner process is provably dead (pid gone, pid reused — the
kernel start time differs — or a zombie). Namespaces without a record here belong to
another lab (another `$PROTOLAB_NETEM_STATE`, another user namespace's /run) or to
someone's hand: they are listed, never removed. Live owners' links are never touched,
except by `netem down NAME`, which removes the named link of this directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from protolab.core.procfs import alive, process_start, process_state
from protolab.errors import PrivilegeError
from protolab.netem import namespaces as ns

STATE_DIR_ENV = "PROTOLAB_NETEM_STATE"
DEFAULT_STATE_DIR = "/run/protolab/links"
PREFIX = "plab-"
_NETNS_RE = re.compile(rf"^{PREFIX}(?P<name>[a-z0-9]+)-[cs]$")
_NAME_RE = re.compile(r"^[a-z0-9]{1,24}$")


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

    def valid(self) -> bool:
        """Names exactly the namespaces protolab gives its link, with integer pids: a
        record that names anything else is not acted on (it could name any namespace)."""
        ints = all(isinstance(getattr(self, f.name), int | None) for f in fields(self)
                   if f.name not in ("name", "client_ns", "server_ns"))
        return (ints and isinstance(self.name, str) and bool(_NAME_RE.match(self.name))
                and self.client_ns == f"{PREFIX}{self.name}-c"
                and self.server_ns == f"{PREFIX}{self.name}-s"
                and isinstance(self.owner_pid, int) and self.owner_pid > 0)


def state_dir() -> Path:
    return Path(os.environ.get(STATE_DIR_ENV, DEFAULT_STATE_DIR))


def _unusable(directory: Path, exc: OSError) -> PrivilegeError:
    return PrivilegeError(
        f"cannot use the link state directory {directory}: {exc.strerror or exc}",
        hint=f"netem needs root (sudo) or the unprivileged path (docs/netem.md#privileges); "
        f"or point ${STATE_DIR_ENV} at a directory this user may write",
    )


@contextlib.contextmanager
def locked() -> Iterator[Path]:
    """Serialise allocation and cleanup between concurrent protolab processes."""
    directory = state_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        lock = open(directory / ".lock", "w")  # closed by the with below
    except OSError as exc:
        raise _unusable(directory, exc) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield directory
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write(record: LinkRecord, directory: Path | None = None) -> None:
    path = (directory or state_dir()) / f"{record.name}.json"
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(asdict(record)))
        tmp.replace(path)
    except OSError as exc:
        raise _unusable(path.parent, exc) from None


def remove(name: str, directory: Path | None = None) -> None:
    directory = directory or state_dir()
    try:
        (directory / f"{name}.json").unlink(missing_ok=True)
    except OSError as exc:
        raise _unusable(directory, exc) from None


def load_all() -> list[LinkRecord]:
    """The valid records of this state directory; anything else there is left alone."""
    records = []
    directory = state_dir()
    if not directory.is_dir():
        return []
    for path in sorted(directory.glob("*.json")):
        try:
            record = LinkRecord(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue  # unreadable or not a record: not ours to judge, nor to delete
        if record.valid() and path.stem == record.name:
            records.append(record)
    return records


def owner_dead(record: LinkRecord) -> bool:
    """The record's owner is provably dead: its pid is gone, reused by a process that
    started at another time, or a zombie. A pid that exists but cannot be read (another
    user's, under hidepid) is not proof of anything, so it counts as alive."""
    start = process_start(record.owner_pid)
    if start is None:
        try:
            os.kill(record.owner_pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
        return False
    if start != record.owner_start:
        return True
    return process_state(record.owner_pid) == "Z"


def teardown(record: LinkRecord, directory: Path | None = None) -> None:
    """Remove everything a record names; safe to call twice and on half-built links.
    `directory` is where the record lives (default: the current state directory)."""
    if alive(record.forwarder_pid, record.forwarder_start) and record.forwarder_pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.forwarder_pid, signal.SIGKILL)
    ns.delete_netns(record.client_ns)
    ns.delete_netns(record.server_ns)
    remove(record.name, directory)


def cleanup_leftovers(only: str | None = None) -> list[str]:
    """Tear down this directory's links whose owner is provably dead; returns their names.

    With `only`, remove that one link of this directory whatever its owner's state (for
    `netem down NAME`). Namespaces without a record here are never touched (see
    `foreign_namespaces`). Call with the lock held.
    """
    removed = []
    for record in load_all():
        if record.name == only or (only is None and owner_dead(record)):
            teardown(record)
            removed.append(record.name)
    return sorted(set(removed))


def foreign_namespaces() -> list[str]:
    """`plab-*` namespaces with no record in this state directory: another lab's, left alone."""
    known: set[str] = set()
    for record in load_all():
        known.update((record.client_ns, record.server_ns))
    return [n for n in ns.list_netns() if _NETNS_RE.match(n) and n not in known]
