"""Thin command layer: each command parses options, calls the lab, and prints.

Errors of the `LabError` tree are printed as one line with their hint and exit
code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from protolab import registry
from protolab.certs import KEY_TYPES, KeyType, TlsVersion, default_cert_dir
from protolab.commands import bench as bench_cli
from protolab.commands import report as report_cli
from protolab.commands import results as results_cli
from protolab.commands import worker as worker_cli
from protolab.core.latency import phases
from protolab.core.record import RequestRecord, Target
from protolab.errors import ConfigError, LabError
from protolab.fetch import SCHEMES, check_files, fetch, fetch_resumed, target_from_url
from protolab.knobs import KNOB_DEFAULTS, MAX_WINDOW, knob_values
from protolab.netem import cli as netem_cli
from protolab.netem.validation import Bound
from protolab.report.records_view import (
    aggregate_line,
    answer_lines,
    message_lines,
    records_table,
    succeeded,
)
from protolab.terminal import make_console, print_error
from protolab.timing import now_ns
from protolab.trace import cli as trace_cli
from protolab.workload import DEFAULT_LIMITS
from servers.common import (
    CertSpec,
    GrpcSettings,
    H2Settings,
    H3Settings,
    Scheduling,
    ServerConfig,
    WsSettings,
)

app = typer.Typer(
    name="protolab",
    help="Compare HTTP/1.1, HTTP/2, HTTP/3, WebSocket and gRPC over an emulated network.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Help is text, as every message is (protolab/terminal.py): read as rich markup,
    # "fd00:77:0:X::1" showed an emoji for ":X:" and "[...]" vanished.
    rich_markup_mode=None,
)
console = make_console()
err_console = make_console(stderr=True)

# Sub-command groups register here (one line each).
app.add_typer(netem_cli.app, name="netem")
app.add_typer(results_cli.app, name="results")
app.command("trace", help=trace_cli.HELP)(trace_cli.trace_command)
app.command("report", help=report_cli.HELP)(report_cli.report)
app.command("worker", help=worker_cli.HELP)(worker_cli.worker_command)
for _fn, _options in bench_cli.COMMANDS:
    app.command(**_options)(_fn)

_L = DEFAULT_LIMITS
LIMITS_HELP = (
    f"Limits: /bytes/N up to {_L.max_bytes} bytes, /delay/MS up to {_L.max_delay_ms} ms, "
    f"/page/K up to {_L.max_page_objects} objects (else 400); request headers up to "
    f"{_L.max_header_bytes} bytes (else 431); request body up to {_L.max_body_bytes} "
    "bytes (else 413)."
)


def check_numbers(values: dict[str, int | float], bounds: dict[str, Bound]) -> None:
    """Every number a command was given, in its range, before anything starts: a NaN or
    an infinity, which every `<` lets through, is refused like any other bad value."""
    for name, bound in bounds.items():
        bound.check(values[name])


# The numbers `serve` takes that its settings (servers/common.py) do not bound above:
# a NaN idle timeout reached the TLS handshake timer and aioquic, a huge window the wire.
SERVE_NUMBERS = {
    "idle_timeout": Bound("--idle-timeout", 0.001, 86_400, unit=" s"),
    "h2_max_streams": Bound("--h2-max-streams", 1, 2**31 - 1, integer=True),
    "quic_max_data": Bound("--quic-max-data", 1024, MAX_WINDOW, integer=True, unit=" bytes"),
    "quic_stream_data": Bound("--quic-stream-data", 1024, MAX_WINDOW, integer=True,
                              unit=" bytes"),
    "ws_max_message": Bound("--ws-max-message", 125, 1 << 30, integer=True, unit=" bytes"),
    # grpcio's channel arguments are C ints
    "grpc_max_receive": Bound("--grpc-max-receive", 1024, 2**31 - 1, integer=True,
                              unit=" bytes"),
    "grpc_max_send": Bound("--grpc-max-send", 1024, 2**31 - 1, integer=True, unit=" bytes"),
}
# `get -n N` keeps every record until it prints them all: a billion requests grew past
# 600 MB before printing anything.
MAX_REQUESTS = 100_000
MAX_PARALLEL = 1000
GET_NUMBERS = {
    "n": Bound("-n", 1, MAX_REQUESTS, integer=True),
    "parallel": Bound("--parallel", 1, MAX_PARALLEL, integer=True),
}


def _protocols(raw: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    protos = tuple(p.strip() for p in raw.split(",") if p.strip())
    bad = [p for p in protos if p not in allowed]
    if bad or not protos:
        raise ConfigError(f"unknown protocol(s) {bad}; choose from {', '.join(allowed)}")
    return protos


@app.command(
    help="Serve the workload over HTTP/1.1, HTTP/2, HTTP/3, WebSocket and gRPC until Ctrl-C.\n\n"
    "Paths: /bytes/N, /delay/MS/bytes/N, /page/K?size=S, POST /echo, /health, "
    "/records?count=N[&gzip=1], /events/poll|long-poll|sse?after=SEQ. WebSocket (port+1): "
    "/echo, /push?count=M&size=S&interval_ms=I. gRPC (port+2): protolab.Lab "
    "(protolab/proto/lab.proto), with reflection.\n\n" + LIMITS_HELP
)
def serve(
    proto: Annotated[
        str | None, typer.Option(help="Comma-separated: h1,h2,h3,ws,grpc (default h1,h2,h3; "
                                      "h1,h2 with --no-tls).", show_default=False)
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="TCP port for h1/h2 and UDP port for h3; 0 = free.")
    ] = 8443,
    no_tls: Annotated[bool, typer.Option("--no-tls", help="Cleartext h1 and h2c (no h3).")] = False,
    tls_version: Annotated[str | None, typer.Option(
        help="TLS version for TCP: 1.2 or 1.3 (default 1.3; gRPC's grpcio negotiates its "
        "own).", show_default=False)] = None,
    cc: Annotated[str, typer.Option(help="TCP congestion control: cubic, reno, bbr.")] = "cubic",
    quic_cc: Annotated[str, typer.Option(help="QUIC congestion control: cubic or reno.")] = "cubic",
    cert_dir: Annotated[Path | None, typer.Option(help="Certificate directory.")] = None,
    key_type: Annotated[
        str, typer.Option(help=f"Leaf key: {', '.join(KEY_TYPES)}.")
    ] = "ecdsa-p256",
    intermediates: Annotated[int, typer.Option(help="Intermediate CAs in the chain.")] = 0,
    scheduling: Annotated[
        str, typer.Option(help="round-robin or sequential DATA.")
    ] = "round-robin",
    h2_window: Annotated[int, typer.Option(help="HTTP/2 initial stream window.")] = 4 << 20,
    h2_conn_window: Annotated[int, typer.Option(help="HTTP/2 connection window.")] = 16 << 20,
    h2_max_streams: Annotated[int, typer.Option(help="HTTP/2 max concurrent streams.")] = 256,
    h2_frame: Annotated[int, typer.Option(help="HTTP/2 max frame size.")] = 16_384,
    h2_data_frame: Annotated[
        int, typer.Option(help="HTTP/2 largest DATA frame sent (finer interleaving when small).")
    ] = 16_384,
    quic_max_data: Annotated[int, typer.Option(help="QUIC connection window.")] = 16 << 20,
    quic_stream_data: Annotated[int, typer.Option(help="QUIC stream window.")] = 4 << 20,
    qlog_dir: Annotated[Path | None, typer.Option(help="Write server qlog files here.")] = None,
    idle_timeout: Annotated[
        float, typer.Option(help="Seconds before closing idle clients (0.001..86400).")
    ] = 30.0,
    ws_compression: Annotated[
        bool, typer.Option("--ws-compression", help="WebSocket: permessage-deflate.")
    ] = False,
    ws_max_message: Annotated[
        int, typer.Option(help="WebSocket: largest message (else close 1009).")
    ] = 1 << 20,
    grpc_max_receive: Annotated[
        int, typer.Option(help="gRPC: largest request message (else RESOURCE_EXHAUSTED).")
    ] = 4 << 20,
    grpc_max_send: Annotated[int, typer.Option(help="gRPC: largest reply message.")] = 64 << 20,
) -> None:
    if tls_version not in (None, "1.2", "1.3"):
        raise ConfigError("--tls-version must be 1.2 or 1.3")
    if key_type not in KEY_TYPES:
        raise ConfigError(f"--key-type must be one of {', '.join(KEY_TYPES)}")
    check_numbers(locals(), SERVE_NUMBERS)
    protocols = _served_protocols(proto, tls=not no_tls)
    _check_ports(port, protocols)
    if tls_version is not None and not no_tls:
        _tls_version_notice(tls_version, protocols)
    certs = None if no_tls else CertSpec(
        cert_dir, key_type=_key_type(key_type), intermediates=intermediates, extra_names=(host,)
    )
    config = ServerConfig(
        host=host,
        port=port,
        protocols=protocols,
        certs=certs,
        tls_version=_tls(tls_version or KNOB_DEFAULTS["tls_version"]),
        cc=cc,
        idle_timeout=idle_timeout,
        scheduling=_scheduling(scheduling),
        h2=H2Settings(
            window=h2_window,
            connection_window=h2_conn_window,
            max_concurrent_streams=h2_max_streams,
            max_frame_size=h2_frame,
            data_frame=h2_data_frame,
        ),
        h3=H3Settings(
            cc=quic_cc,
            window=quic_stream_data,
            connection_window=quic_max_data,
            qlog_dir=qlog_dir,
        ),
        ws=WsSettings(compression=ws_compression, max_message=ws_max_message),
        grpc=GrpcSettings(max_receive=grpc_max_receive, max_send=grpc_max_send),
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    asyncio.run(_serve(config))


def _served_protocols(raw: str | None, *, tls: bool) -> tuple[str, ...]:
    """--proto as given, or the HTTP protocols the server can run with (or without) TLS:
    without TLS the default drops what needs it (HTTP/3), saying so on stderr; naming such
    a protocol with --no-tls is ServerConfig's error, which names the fix."""
    if raw is not None:
        return _protocols(raw, registry.NAMES)
    wanted = registry.group_protocols("http", tls=True)
    served = registry.group_protocols("http", tls=tls)
    dropped = [registry.get(p).title for p in wanted if p not in served]
    if dropped:
        err_console.print(f"--no-tls: not serving {', '.join(dropped)} (it needs TLS); "
                          f"serving {','.join(served)}", highlight=False, soft_wrap=True)
    return served


def _check_ports(port: int, protocols: tuple[str, ...]) -> None:
    """Protocols on a listener of their own take --port + its offset (servers/run.py
    LISTENERS): that number must be a port too, or the listener would overflow or bind
    a free port unannounced."""
    if port == 0:
        return
    from servers.run import LISTENERS

    offsets = {p: LISTENERS[registry.get(p).listener].offset for p in protocols}
    over = {p: o for p, o in offsets.items() if port + o > 65_535}
    if over:
        needs = ", ".join(f"{p} needs --port <= {65_535 - o} (it listens on --port+{o})"
                          for p, o in over.items())
        raise ConfigError(f"--port {port} is too high: {needs}", hint="or --port 0")


def _tls_version_notice(version: str, protocols: tuple[str, ...]) -> None:
    """One line on stderr when --tls-version does not hold for some served protocol."""
    specs = [registry.get(p) for p in protocols]
    unpinned = [s for s in specs if version not in s.capabilities.tls_versions]
    if not unpinned:
        return
    pinned = [s.name for s in specs if s not in unpinned]
    notes = "; ".join(f"{s.title}: {s.tls_note}" for s in unpinned)
    applies = f"--tls-version applies to {', '.join(pinned)}" if pinned else (
        "--tls-version applies to none of them")
    err_console.print(f"{notes}; {applies}", highlight=False, soft_wrap=True)


async def _serve(config: ServerConfig) -> None:
    from servers.process import serve_until_stopped
    from servers.run import LISTENERS, RunningServers

    started = False

    def banner(running: RunningServers) -> None:
        nonlocal started
        started = True
        for proto, url in running.urls().items():
            transport = LISTENERS[registry.get(proto).listener].transport
            console.print(f"{proto}: {url} ({transport})", highlight=False, soft_wrap=True)
        if running.certs is not None:
            console.print(f"CA: {running.certs.ca_file}", highlight=False, soft_wrap=True)
        console.print("ready", highlight=False)
        sys.stdout.flush()

    try:
        await serve_until_stopped(config, banner)
    finally:
        if started:
            console.print("stopped", highlight=False)


def _tls(value: str) -> TlsVersion:
    if value == "1.2":
        return "1.2"
    if value == "1.3":
        return "1.3"
    raise ConfigError("TLS version must be 1.2 or 1.3")


def _key_type(value: str) -> KeyType:
    return "rsa-2048" if value == "rsa-2048" else "ecdsa-p256"


def _scheduling(value: str) -> Scheduling:
    if value not in ("round-robin", "sequential"):
        raise ConfigError("--scheduling must be round-robin or sequential")
    return "round-robin" if value == "round-robin" else "sequential"


@app.command(help="Fetch a URL with the lab's own client and print each request's phases.")
def get(
    url: Annotated[str, typer.Argument(
        help="http(s):// URL; ws(s)://HOST:PORT/echo (--data is the message; ?count=K round "
        "trips) or /push?count=M&size=S&interval_ms=I; grpc(s)://HOST:PORT/METHOD?args "
        "(Unary?size=N, ServerStream?count=M&size=S, ClientStream, Bidi, Records?count=N).")],
    proto: Annotated[str, typer.Option(help="h1, h2 or h3 (ws/grpc follow the URL).")] = "h2",
    n: Annotated[int, typer.Option("-n", help="Number of requests (1..100000).")] = 1,
    parallel: Annotated[int, typer.Option(help="Requests in flight at once (1..1000).")] = 1,
    cacert: Annotated[
        Path | None, typer.Option(help="CA file to trust (default: the lab's CA).")
    ] = None,
    tls_version: Annotated[str | None, typer.Option(help="Pin TLS 1.2 or 1.3.")] = None,
    connections: Annotated[int, typer.Option(help="h1: pool size.")] = 6,
    pipeline: Annotated[int, typer.Option(help="h1: pipelining depth.")] = 1,
    no_keepalive: Annotated[
        bool, typer.Option("--no-keepalive", help="h1: a connection per request.")
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Second connection resumes the first's TLS session.")
    ] = False,
    zero_rtt: Annotated[
        bool, typer.Option("--zero-rtt", help="h3: resume and send early data.")
    ] = False,
    cc: Annotated[
        str, typer.Option(help="Congestion control (TCP: cubic/reno/bbr; QUIC: cubic/reno).")
    ] = "cubic",
    data: Annotated[str | None, typer.Option(help="POST this body (use with /echo).")] = None,
    keylog: Annotated[
        Path | None, typer.Option(help="Append TLS secrets (NSS key log) here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per request.")] = False,
) -> None:
    check_numbers(locals(), GET_NUMBERS)
    ca = cacert
    if ca is None and (default_cert_dir() / "ca.pem").exists():
        ca = default_cert_dir() / "ca.pem"
    # Everything the user gave is checked (the URL, then the files) before anything
    # connects or is created.
    target, path = target_from_url(
        url, ca_file=ca, tls_version=_tls(tls_version) if tls_version else None, keylog_file=keylog
    )
    check_files(ca_file=cacert, keylog_file=keylog)
    implied = SCHEMES.get(url.split("://", 1)[0].lower())
    protocol = implied or _protocols(proto, registry.by_capability(messages=False))[0]
    spec = registry.get(protocol)
    if keylog is not None and target.tls and not spec.capabilities.key_log:
        raise ConfigError(f"{protocol}: --keylog cannot be honoured: its client library "
                          "cannot export TLS secrets",
                          hint=f"capture {protocol} over cleartext instead "
                               f"({spec.schemes[1] or 'no cleartext scheme'}://)")
    # The options are knobs: checked by the catalogue as a suite's values are.
    given = {"connections": connections, "pipeline": pipeline, "keepalive": not no_keepalive,
             "cc": cc, "resume": resume, "zero_rtt": zero_rtt, "tls": target.tls}
    knobs = knob_values({**given, **({"tls_version": tls_version} if tls_version else {})},
                        "get")
    problems = spec.validate(knobs)
    if problems:
        raise ConfigError(problems[0])
    options = spec.client_options(knobs)
    started = now_ns()
    records = asyncio.run(
        _get(protocol, target, path, n, parallel, data, options, spec.primes(knobs))
    )
    wall_ns = now_ns() - started
    if as_json:
        for record in records:
            print(json.dumps({**record.to_json(), **phases(record)}))
    else:
        console.print(records_table(records, title=f"{protocol} {url}"))
        lines = [*message_lines(records), *answer_lines(records)]
        if len(records) > 1:
            lines.append(aggregate_line(records, wall_ns))
        for line in lines:
            console.print(line, highlight=False, soft_wrap=True)
    if not all(succeeded(r) for r in records):
        raise typer.Exit(1)


async def _get(
    protocol: str,
    target: Target,
    path: str,
    n: int,
    parallel: int,
    data: str | None,
    options: dict[str, object],
    resumed_pair: bool,
) -> list[RequestRecord]:
    body = data.encode() if data is not None else b""
    method = "POST" if data is not None else "GET"
    if resumed_pair:
        return await fetch_resumed(protocol, target, path, options=options)
    return await fetch(
        protocol,
        target,
        path,
        count=n,
        parallel=parallel,
        method=method,
        body=body,
        options=options,
    )


@app.command(help="Serve every protocol on loopback (no emulated link, no root needed), fetch "
             "from each with the lab's clients, and print the phase timings side by side.")
def loopback(
    cert_dir: Annotated[Path | None, typer.Option(help="Certificate directory.")] = None,
    out: Annotated[Path, typer.Option(help="Where the raw records go.")] = Path("results"),
) -> None:
    from protolab.loopback import run_loopback, summary_rows

    rows, path = run_loopback(cert_dir, out)
    table = Table(title="protolab loopback: TLS 1.3, no emulated link, times in ms",
                  caption=f"raw records: {path}")
    for column in ("proto", "connect", "tls", "ttfb", "100B", "1MB", "10KB p50", "10KB max",
                   "0rtt", "result"):
        table.add_column(column, justify="left" if column in ("proto", "result") else "right")
    for cells in summary_rows(rows):
        table.add_row(*cells)
    console.print(table)
    if any(cells[-1] != "ok" for cells in summary_rows(rows)):
        raise typer.Exit(1)


def main() -> None:
    try:
        app()
    except LabError as exc:
        print_error(err_console, str(exc))
        sys.exit(2)
