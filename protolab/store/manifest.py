"""The run manifest: what a run needs to be understood later (DESIGN.md, "Outputs"): the
versions that change what it measures, the git revision, the machine, settings and seeds."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from protolab.netem.forwarder import DEFAULT_TIMING

# Packages whose versions change what a run measures.
MANIFEST_PACKAGES = (
    "protolab", "aioquic", "h2", "h11", "hpack", "cryptography", "grpcio", "protobuf",
    "websockets", "hdrhistogram", "numpy",
)


def manifest(
    settings: Mapping[str, Any] | None = None, seeds: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """What a run needs to be understood later: versions, machine, settings, seeds."""
    uname = platform.uname()
    return {
        "lab_version": _package_version("protolab"),
        "git": _git_revision(),
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "packages": {name: _package_version(name) for name in MANIFEST_PACKAGES},
        "kernel": {"system": uname.system, "release": uname.release, "version": uname.version,
                   "machine": uname.machine},
        "host": socket.gethostname(),
        "cpu": {"model": _cpu_model(), "count": os.cpu_count()},
        "settings": dict(settings or {}),
        "seeds": dict(seeds or {}),
        # How the link's forwarder asked for punctual wake-ups (docs/netem.md#timing); a
        # refused setting is logged by the link when it comes up.
        "link_timing": DEFAULT_TIMING.to_json(),
        # Which link directions hand the forwarder TCP super-packets (docs/netem.md#tcp-
        # offload); each cell's metric `link_offloaded_directions` says what it got.
        "link_offload": "TCP, for directions that only delay; none where a capture is taken",
    }


def host_description() -> dict[str, Any]:
    """The machine a cell repetition ran on, as the store keeps it per repetition: what
    could change a measurement (kernel, CPU, Python, the packages, protolab's revision)
    and the host's name (which alone does not)."""
    uname = platform.uname()
    return {
        "hostname": socket.gethostname(),
        "kernel": {"release": uname.release, "version": uname.version,
                   "machine": uname.machine},
        "cpu": {"model": _cpu_model(), "count": os.cpu_count()},
        "python": platform.python_version(),
        "packages": {name: _package_version(name) for name in MANIFEST_PACKAGES},
        "git": _git_revision(),
    }


# What makes two hosts' measurements comparable (the hostname does not matter): the part
# of a host description `results compare` holds equal, and the words for each part.
COMPARABLE = {"kernel": "kernel", "cpu": "CPU", "python": "Python", "packages": "packages",
              "git": "git revision"}


def host_differences(hosts: list[dict[str, Any]]) -> list[str]:
    """What differs between these host descriptions, in words (`CPU`, `packages (aioquic)`);
    empty when they are alike in everything that can change a measurement."""
    out = []
    for key, words in COMPARABLE.items():
        values = [h.get(key) for h in hosts]
        if all(v == values[0] for v in values):
            continue
        if key == "packages":
            names = sorted({name for v in values if isinstance(v, dict) for name in v
                            if len({str((w or {}).get(name)) for w in values}) > 1})
            words = f"packages ({', '.join(names)})" if names else words
        out.append(words)
    return out


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git_revision(root: Path | None = None) -> dict[str, Any]:
    """HEAD of the checkout protolab runs from, and whether it has local changes; where that
    cannot be known (no git, an unpacked archive) the reason instead of a revision.

    The checkout must be protolab's own (`root`: the folder holding this package's
    pyproject.toml): a copy inside another project's checkout would report that one's HEAD.
    """
    repo = root if root is not None else Path(__file__).resolve().parents[2]
    outside = {"revision": None, "dirty": None, "note": "not a git checkout"}
    if not (repo / "pyproject.toml").is_file():
        return outside  # installed as a package: no checkout of its own

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()

    try:
        top = git("rev-parse", "--show-toplevel")
        if Path(top).resolve() != repo.resolve():
            return outside
        head = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except FileNotFoundError:
        return {"revision": None, "dirty": None, "note": "git is not installed"}
    except (OSError, subprocess.SubprocessError):
        return outside
    return {"revision": head, "dirty": bool(dirty)}


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None
