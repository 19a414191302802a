"""`protolab worker`: this machine as one lab slot of a Dask cluster (docs/distributed.md).
Registered by protolab/cli.py."""

from __future__ import annotations

from typing import Annotated

import typer

from protolab.terminal import make_console

console = make_console()

HELP = ("Run this machine's lab slot for sweeps on Dask: check it can run cells (root, "
        "/dev/net/tun, iproute2), then serve one cell repetition at a time to the "
        "scheduler until Ctrl-C or SIGTERM. Listens on loopback unless --host says "
        "otherwise.")


def worker_command(
    scheduler: Annotated[str, typer.Option(
        help="The Dask scheduler: tcp://HOST:PORT (tls://HOST:PORT with Dask's TLS "
        "configured, docs/distributed.md).")],
    name: Annotated[str | None, typer.Option(
        help="This worker's name at the scheduler (default: its address).")] = None,
    host: Annotated[str, typer.Option(
        "--host", "--listen-address",
        help="Address to listen on; the scheduler and the submitting machine must reach "
        "it (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on; 0 = any free one.")] = 0,
    timeout: Annotated[float, typer.Option(
        help="Seconds to reach the scheduler (at start, and again if it goes away) "
        "before giving up.")] = 10.0,
) -> None:
    from protolab.distributed import worker
    from protolab.errors import ConfigError

    if not 0 <= port < 65536:
        raise ConfigError(f"--port must be in 0..65535, got {port}")
    if not 0 < timeout <= 3600:
        raise ConfigError(f"--timeout must be in (0, 3600] seconds, got {timeout:g}")
    worker.require()

    def ready(address: str) -> None:
        console.print(f"protolab worker {address}: ready, 1 lab slot, scheduler {scheduler}",
                      highlight=False, soft_wrap=True)

    worker.serve(scheduler, name=name, host=host, port=port, timeout_s=timeout, on_ready=ready)
