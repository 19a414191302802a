"""Thin command layer: each command parses options, calls the lab, and prints.

Errors of the `LabError` tree are printed as one line with their hint and exit
code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from protolab.errors import LabError

app = typer.Typer(
    name="protolab",
    help="Compare HTTP/1.1, HTTP/2, HTTP/3, WebSocket and gRPC over an emulated network.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)

# Sub-command groups register here (one line each).


def main() -> None:
    try:
        app()
    except LabError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        sys.exit(2)
