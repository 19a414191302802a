"""`protolab netem ...`: build, use, check and remove emulated links from a terminal."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from protolab.errors import ConfigError, LabError
from protolab.netem import state, userns
from protolab.netem.check import run_check
from protolab.netem.config import LinkProfile
from protolab.netem.link import EmulatedLink, LinkCounters, remove_link
from protolab.netem.profiles import PROFILES, Overrides, build_profile, describe
from protolab.netem.validation import Bound
from protolab.terminal import make_console, styled

app = typer.Typer(
    help="Emulated network link: two namespaces joined by a userspace forwarder "
    "(delay, jitter, loss, bursts, drop lists, rate, queue).",
    no_args_is_help=True,
    rich_markup_mode=None,  # help is text: "fd00:77:0:X::1" is an address, not ":X:" emoji
)
console = make_console()
err = make_console(stderr=True)


@app.callback()
def _netem_group() -> None:
    # Not root but user namespaces and /dev/net/tun are usable: take the unprivileged
    # path by re-running this very command inside a user namespace.
    if userns.should_reexec():
        userns.reexec(sys.argv[1:])

ProfileOpt = Annotated[str, typer.Option("--profile", "-p", help=f"One of {', '.join(PROFILES)}.")]
DelayOpt = Annotated[str | None, typer.Option(help="One-way delay, e.g. 50ms or 20ms/30ms.")]
JitterOpt = Annotated[str | None, typer.Option(help="Jitter ± around the delay, e.g. 5ms.")]
LossOpt = Annotated[str | None, typer.Option(help="Loss per direction in percent, e.g. 2%.")]
BurstOpt = Annotated[str | None, typer.Option(help="Mean loss-burst length in packets (GE).")]
RateOpt = Annotated[str | None, typer.Option(help="Bottleneck rate, e.g. 10mbit or 2mbit/10mbit.")]
QueueOpt = Annotated[str | None, typer.Option(help="Drop-tail queue: 25p (packets) or 64kb.")]
DropOpt = Annotated[
    list[str] | None,
    typer.Option(help="Drop packets N,M of a direction: down:12,13 or up:3:udp/443 (repeatable)."),
]
ReorderOpt = Annotated[
    bool | None, typer.Option("--reorder/--no-reorder", help="Let jitter reorder packets.")
]
SeedOpt = Annotated[int | None, typer.Option(help="Seed of the link's RNGs.")]
DistributionOpt = Annotated[
    str | None,
    typer.Option(help="Jitter's shape, as netem: uniform (±jitter), normal (jitter = sd), "
                 "pareto, paretonormal."),
]
CorrelationOpt = Annotated[
    str | None,
    typer.Option(help="How much each jitter draw leans on the last (netem's), e.g. 25%."),
]
IpOpt = Annotated[
    str | None,
    typer.Option("--ip", help="Address family of the link's traffic: 4 (10.77.X.1/.2) or 6 "
                 "(fd00:77:0:X::1/::2); both sides always have both."),
]
TraceUpOpt = Annotated[
    str | None,
    typer.Option("--trace-up", help="Up capacity from a mahimahi trace file (or a bundled "
                 "trace: cellular.up); replaces --rate."),
]
TraceDownOpt = Annotated[
    str | None,
    typer.Option("--trace-down", help="Down capacity from a mahimahi trace file (or "
                 "cellular.down)."),
]
# The commands' own numbers, checked in their bodies so that a refusal is one line
# (typer's min/max answer with a usage box) and NaN is refused too.
SERVER_WAIT = Bound("--server-wait", 1, 65535, integer=True)
PROBES = Bound("--probes", 10, 100_000, integer=True)
SECONDS = Bound("--seconds", 0.5, 60, unit=" s")
PcapOpt = Annotated[Path | None, typer.Option(help="Write what crossed the link to this pcap.")]


def profile_from_options(
    profile: str, delay: str | None, jitter: str | None, loss: str | None, burst: str | None,
    rate: str | None, queue: str | None, drop: list[str] | None, reorder: bool | None,
    seed: int | None, distribution: str | None = None, correlation: str | None = None,
    trace_up: str | None = None, trace_down: str | None = None, ip: str | None = None,
) -> LinkProfile:
    return build_profile(profile, Overrides(
        delay=delay, jitter=jitter, loss=loss, burst=burst, rate=rate, queue=queue,
        drop=tuple(drop or ()), reorder=reorder, seed=seed, distribution=distribution,
        correlation=correlation, trace_up=trace_up, trace_down=trace_down, ip=ip,
    ))


def _profile_table(profile: LinkProfile) -> Table:
    table = Table(title=f"profile {profile.name} (seed {profile.seed})")
    table.add_column("parameter")
    table.add_column("up (client→server)")
    table.add_column("down (server→client)")
    for row in describe(profile):
        table.add_row(*row)
    return table


def _counters_table(counters: LinkCounters) -> Table:
    table = Table(title="link counters")
    table.add_column("counter")
    table.add_column("up", justify="right")
    table.add_column("down", justify="right")
    for name in ("packets_in", "bytes_in", "delivered_packets", "delivered_bytes",
                 "dropped_loss", "dropped_queue", "dropped_droplist", "write_errors",
                 "tun_tx_dropped", "tun_rx_dropped"):
        table.add_row(name, str(getattr(counters.up, name)), str(getattr(counters.down, name)))
    return table


@app.command("profiles")
def profiles_command() -> None:
    """List the named profiles."""
    for profile in PROFILES.values():
        console.print(Text.assemble((profile.name, "bold"), f": {profile.description}"))


@app.command("up")
def up_command(
    profile: ProfileOpt = "loopback",
    name: Annotated[str | None, typer.Option(help="Link name (namespaces plab-NAME-c/-s).")] = None,
    delay: DelayOpt = None, jitter: JitterOpt = None, loss: LossOpt = None,
    burst: BurstOpt = None, rate: RateOpt = None, queue: QueueOpt = None, drop: DropOpt = None,
    reorder: ReorderOpt = None, seed: SeedOpt = None, pcap: PcapOpt = None,
    distribution: DistributionOpt = None, correlation: CorrelationOpt = None,
    trace_up: TraceUpOpt = None, trace_down: TraceDownOpt = None, ip: IpOpt = None,
) -> None:
    """Create a link and keep it until Ctrl-C; use it with `ip netns exec NS CMD`."""
    link_profile = profile_from_options(
        profile, delay, jitter, loss, burst, rate, queue, drop, reorder, seed,
        distribution, correlation, trace_up, trace_down, ip,
    )
    # A shell starting us in the background sets SIGINT to "ignore"; "until Ctrl-C" must hold.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with EmulatedLink(link_profile, name=name, pcap=pcap) as link:
        try:  # from the moment it is up: Ctrl-C while it is being described ends it too
            console.print(_profile_table(link_profile))
            console.print(f"link {link.name} is up (forwarder pid {link.forwarder_pid})")
            console.print(f"  client namespace {link.client_ns}  address {link.client_addr4}"
                          + (f" and {link.client_addr6}" if link.client_addr6 else ""))
            console.print(f"  server namespace {link.server_ns}  address {link.server_addr4}"
                          + (f" and {link.server_addr6}" if link.server_addr6 else ""))
            console.print(f"  TCP offload: {', '.join(link.offload) or 'none'} (docs/netem"
                          ".md#tcp-offload: directions that only delay, without a capture)")
            console.print(f"  e.g. ip netns exec {link.client_ns} ping {link.server_addr}")
            console.print("Ctrl-C to remove it.")
            while link.alive():
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        cut = not link.alive()
        if not cut:
            console.print(_counters_table(link.counters()))
    if cut:
        raise LabError("the forwarder died: the link was cut and has been removed")


@app.command("down")
def down_command(
    name: Annotated[str, typer.Argument(help="Name of the link to remove.")],
) -> None:
    """Remove a named link and the links of crashed runs (of this state directory)."""
    removed = remove_link(name)
    for item in removed:
        console.print(f"removed link {item}")
    foreign = state.foreign_namespaces()
    if foreign:
        err.print(f"not ours, left alone (no record in {state.state_dir()}): "
                  + ", ".join(foreign))
    if name not in removed:
        where = state.state_dir()
        if {f"{state.PREFIX}{name}-c", f"{state.PREFIX}{name}-s"} & set(foreign):
            err.print(f"link {name!r} has no record in {where}: it belongs to another lab "
                      f"(another ${state.STATE_DIR_ENV}); left alone", style="yellow")
        else:
            err.print(f"no link named {name!r} was found in {where}", style="yellow")
        raise typer.Exit(1)


def _expand(argv: list[str], link: EmulatedLink) -> list[str]:
    values = {"{server_addr}": link.server_addr, "{client_addr}": link.client_addr}
    out = []
    for arg in argv:
        for key, value in values.items():
            arg = arg.replace(key, value)
        out.append(arg)
    return out


def _wait_tcp(link: EmulatedLink, port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s

    def attempt() -> bool:
        with socket.socket() as s:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            return s.connect_ex((link.server_addr, port)) == 0

    while time.monotonic() < deadline:
        if link.call("client", attempt):
            return
        time.sleep(0.05)
    raise LabError(f"the server command did not listen on {link.server_addr}:{port} in time")


@app.command(
    "run", context_settings={"allow_interspersed_args": False},
)
def run_command(
    cmd: Annotated[list[str], typer.Argument(help="Command run in the client namespace.")],
    profile: ProfileOpt = "loopback",
    server_cmd: Annotated[
        str | None,
        typer.Option(help="Command for the server namespace (split like a shell, never run by "
                     "one); {server_addr} and {client_addr} are replaced."),
    ] = None,
    server_wait: Annotated[
        int | None,
        typer.Option(help="Wait until the server accepts TCP on this port (1..65535)."),
    ] = None,
    delay: DelayOpt = None, jitter: JitterOpt = None, loss: LossOpt = None,
    burst: BurstOpt = None, rate: RateOpt = None, queue: QueueOpt = None, drop: DropOpt = None,
    reorder: ReorderOpt = None, seed: SeedOpt = None, pcap: PcapOpt = None,
    distribution: DistributionOpt = None, correlation: CorrelationOpt = None,
    trace_up: TraceUpOpt = None, trace_down: TraceDownOpt = None, ip: IpOpt = None,
) -> None:
    """Run CMD in the client namespace of a fresh link (like a mahimahi shell)."""
    if server_wait is not None:
        SERVER_WAIT.check(server_wait)
    link_profile = profile_from_options(
        profile, delay, jitter, loss, burst, rate, queue, drop, reorder, seed,
        distribution, correlation, trace_up, trace_down, ip,
    )
    server_argv = shlex.split(server_cmd) if server_cmd else []
    if server_cmd is not None and not server_argv:
        raise ConfigError("--server-cmd is empty")
    with EmulatedLink(link_profile, pcap=pcap) as link:
        err.print(f"link {link.name}: client {link.client_addr} ({link.client_ns}), "
                  f"server {link.server_addr} ({link.server_ns})")
        env_note = {"PROTOLAB_SERVER_ADDR": link.server_addr,
                    "PROTOLAB_CLIENT_ADDR": link.client_addr}
        env = {**os.environ, **env_note}
        if server_argv:
            link.popen("server", _expand(server_argv, link), env=env)
            if server_wait is not None:
                _wait_tcp(link, server_wait, timeout_s=30.0)
        try:
            proc = link.run("client", _expand(cmd, link), env=env, check=False)
            code = proc.returncode
        except KeyboardInterrupt:
            code = 130
        err.print(_counters_table(link.counters()))
    raise typer.Exit(code)


@app.command("check")
def check_command(
    profile: ProfileOpt = "loopback",
    delay: DelayOpt = None, jitter: JitterOpt = None, loss: LossOpt = None,
    burst: BurstOpt = None, rate: RateOpt = None, queue: QueueOpt = None, drop: DropOpt = None,
    reorder: ReorderOpt = None, seed: SeedOpt = None, pcap: PcapOpt = None,
    distribution: DistributionOpt = None, correlation: CorrelationOpt = None,
    trace_up: TraceUpOpt = None, trace_down: TraceDownOpt = None, ip: IpOpt = None,
    probes: Annotated[int, typer.Option(help=f"UDP echo probes ({PROBES.range()}).")] = 300,
    seconds: Annotated[float, typer.Option(help=f"TCP goodput window ({SECONDS.range()}).")]
    = 3.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
    = False,
) -> None:
    """Build a link, measure RTT, loss and TCP goodput, and compare with the configuration."""
    PROBES.check(probes)
    SECONDS.check(seconds)
    link_profile = profile_from_options(
        profile, delay, jitter, loss, burst, rate, queue, drop, reorder, seed,
        distribution, correlation, trace_up, trace_down, ip,
    )
    with EmulatedLink(link_profile, pcap=pcap) as link:
        report = run_check(link, probes=probes, goodput_s=seconds)
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        console.print(_profile_table(link_profile))
        table = Table(title="configured vs measured")
        for column in ("metric", "configured", "measured", "verdict", "note"):
            table.add_column(column)
        for row in report.rows:
            verdict = {True: styled("ok", "green"), False: styled("OFF", "bold red"),
                       None: Text("-")}[row.ok]
            table.add_row(row.metric, row.configured, row.measured, verdict, row.note)
        console.print(table)
        console.print(_counters_table(report.counters))
    if not report.ok:
        err.print(styled("the link is not applied as configured", "bold red"))
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - `python -m protolab.netem.cli` for debugging
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

