"""Where the lab writes what a user asked for: checked at the edge, before anything runs.

A capture, a key log, a chart folder: a path that cannot be written is one clear line
naming the option, before a link is built or a server started — not a traceback from a
subprocess minutes later. Nothing is created here; at most one missing level of a folder
is, later, by whoever writes into it.
"""

from __future__ import annotations

import os
from pathlib import Path

from protolab.errors import ConfigError


def check_output_file(path: Path, what: str) -> None:
    """Raise a ConfigError naming `what` unless a file can be written at `path`."""
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a directory; give a file name")
    parent = path.parent
    if not parent.exists():
        raise ConfigError(f"{what} {path}: directory {parent} does not exist")
    if not parent.is_dir():
        raise ConfigError(f"{what} {path}: {parent} is not a directory")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise ConfigError(f"{what} {path} is not writable")
    elif not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {path}: directory {parent} is not writable")


def check_output_dir(path: Path, what: str) -> None:
    """Raise a ConfigError naming `what` unless files can be written under `path`: an
    existing writable folder, or a missing one whose parent exists and is writable."""
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"{what} {path} is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(f"{what} {path} is not writable")
        return
    parent = path.parent
    if not parent.is_dir():
        raise ConfigError(f"{what} {path}: directory {parent} does not exist",
                          hint="create it first, or choose another folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {path}: directory {parent} is not writable")
