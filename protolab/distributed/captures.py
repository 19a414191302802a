"""A cell repetition's capture, shipped from the worker that ran it to the submitting
process, which writes it where a local run would have (`runner.CellCapture`).

On the worker the capture lives in a private folder (mode 0700, removed after the task)
and travels back in the task's result as bytes — Dask pickles them out of band, no
base64 — bounded per task: a capture above the limit is not shipped at all (a partial
pcap, or a pcap without its key log, would only mislead the analysis) and the reason is
recorded with the repetition. On arrival every file is checked: a path that would leave
the repetition's folder, or more bytes than the limit, is a clear error, never a write.

Files keep the mode they had on the worker (at most rw-rw-rw-); the TLS key log holds
every session secret of the capture and is written 0600 whatever it says.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path, PurePosixPath
from typing import Any

from protolab.errors import LabError

LIMIT_BYTES = 64 * 1024 * 1024  # per task: link pcap + key log + qlog
SKIPPED_NOTE = "NOT-SHIPPED.txt"  # left in the folder of a capture that stayed behind
_SECRETS = frozenset({"keylog.txt"})  # runner.CellCapture.keylog's name
_SECRET_MODE = 0o600
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB" if n >= 100 * 1024 else f"{n} bytes"


def collect(directory: Path, limit: int = LIMIT_BYTES) -> dict[str, Any]:
    """The capture under `directory` as the result carries it: every regular file with
    its path (relative, POSIX), mode and bytes — or none, and why, above `limit`."""
    found = sorted(p for p in directory.rglob("*") if p.is_file() and not p.is_symlink())
    total = sum(p.stat().st_size for p in found)
    if total > limit:
        return {"files": [], "bytes": total,
                "skipped": f"captures not shipped: {_mib(total)} is above the "
                           f"{_mib(limit)} a task ships"}
    files = [{"path": p.relative_to(directory).as_posix(),
              "mode": stat.S_IMODE(p.stat().st_mode), "data": p.read_bytes()} for p in found]
    return {"files": files, "bytes": total, "skipped": None}


def _checked(shipped: Any, limit: int) -> tuple[list[tuple[PurePosixPath, int, bytes]],
                                                  str | None]:
    bad = LabError("a worker sent captures that do not decode",
                   hint="run the same protolab revision on every machine")
    if not isinstance(shipped, dict) or not isinstance(shipped.get("files"), list):
        raise bad
    skipped = shipped.get("skipped")
    if skipped is not None and not isinstance(skipped, str):
        raise bad
    files = []
    total = 0
    for item in shipped["files"]:
        if not isinstance(item, dict) or set(item) != {"path", "mode", "data"}:
            raise bad
        path, mode, data = item["path"], item["mode"], item["data"]
        if not isinstance(path, str) or type(mode) is not int or not isinstance(data, bytes):
            raise bad
        relative = PurePosixPath(path)
        if relative.is_absolute() or not relative.parts or not all(
                _PART.match(part) for part in relative.parts):
            raise LabError(f"a worker sent a capture file named {path!r}, outside its "
                           "repetition's folder; nothing of it was written")
        total += len(data)
        files.append((relative, mode & 0o666, data))
    if total > limit:
        raise LabError(f"a worker sent {_mib(total)} of captures for one task, above the "
                       f"{_mib(limit)} limit; nothing of it was written")
    return files, skipped


def write(directory: Path, shipped: Any, limit: int = LIMIT_BYTES) -> str | None:
    """Write what `collect` gathered on the worker under `directory` (the repetition's
    `CellCapture.of(...).directory` of this run); returns the reason it was not shipped,
    if it was not (also left in the folder as `SKIPPED_NOTE`)."""
    files, skipped = _checked(shipped, limit)
    directory.mkdir(parents=True, exist_ok=True)
    if skipped is not None:
        (directory / SKIPPED_NOTE).write_text(skipped + "\n")
        return skipped
    for relative, mode, data in files:
        target = directory.joinpath(*relative.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        if relative.name in _SECRETS:
            mode = _SECRET_MODE
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
        try:
            os.fchmod(fd, mode)  # exactly: neither the umask nor an older file's bits
            with os.fdopen(fd, "wb", closefd=False) as out:
                out.write(data)
        finally:
            os.close(fd)
    return None
