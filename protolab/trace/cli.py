"""`protolab trace`: capture and decode a handshake, or decode a capture the user brings."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from protolab.errors import ConfigError
from protolab.netem import userns
from protolab.netem.cli import (
    BurstOpt,
    CorrelationOpt,
    DelayOpt,
    DistributionOpt,
    DropOpt,
    IpOpt,
    JitterOpt,
    LossOpt,
    ProfileOpt,
    QueueOpt,
    RateOpt,
    ReorderOpt,
    SeedOpt,
    TraceDownOpt,
    TraceUpOpt,
    profile_from_options,
)
from protolab.netem.config import MAX_DELAY_NS, Bound, LinkProfile
from protolab.paths import check_output_dir
from protolab.terminal import make_console
from protolab.trace.capture import capture, load_capture
from protolab.trace.decode import Decoded, LinkTiming, decode_capture
from protolab.trace.errors import TraceInputError
from protolab.trace.keylog import load_keylog
from protolab.trace.kinds import KINDS, get_kind
from protolab.trace.render import compare_rows, json_report, ladder, text_report
from protolab.trace.svg import render_svg

console = make_console(soft_wrap=True)
# A round trip is two one-way delays, each at most the link's maximum.
RTT_BOUND = Bound("--rtt", 0.001, 2 * MAX_DELAY_NS / 1e6, unit=" ms")

HELP = (
    "Run one connection of KIND through the emulated link (needs root) and show its "
    "handshake step by step with the round trips it cost; or decode a capture you bring "
    "with --pcap FILE [--keylog FILE]; or --compare A B (two kinds side by side). "
    f"KIND: {', '.join(KINDS)}. The pcap, key log, qlog and an SVG diagram stay in --out."
)


def trace_command(
    kind: Annotated[str | None, typer.Argument(help="What to trace (see above).")] = None,
    pcap: Annotated[Path | None, typer.Option(help="Decode this pcap/pcapng instead.")] = None,
    keylog: Annotated[
        Path | None, typer.Option(help="NSS key log (SSLKEYLOGFILE) for --pcap.")
    ] = None,
    rtt: Annotated[
        float | None, typer.Option(help="--pcap: the link RTT in ms (else estimated).")
    ] = None,
    compare: Annotated[
        tuple[str, str] | None, typer.Option(help="Trace two kinds and put them side by side.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Where the pcap, key log, qlog go.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Every step and field as JSON.")] = False,
    profile: ProfileOpt = "loopback", delay: DelayOpt = None, jitter: JitterOpt = None,
    loss: LossOpt = None, burst: BurstOpt = None, rate: RateOpt = None, queue: QueueOpt = None,
    drop: DropOpt = None, reorder: ReorderOpt = None, seed: SeedOpt = None,
    distribution: DistributionOpt = None, correlation: CorrelationOpt = None,
    trace_up: TraceUpOpt = None, trace_down: TraceDownOpt = None, ip: IpOpt = None,
) -> None:
    if sum(x is not None for x in (kind, pcap, compare)) != 1:
        raise ConfigError("give one of: KIND (capture now), --pcap FILE, --compare A B",
                          hint=f"kinds: {', '.join(KINDS)}")
    if rtt is not None:
        RTT_BOUND.check(rtt)
    if pcap is not None:
        decoded, files = _brought(pcap, keylog, rtt)
        _print(decoded, files, as_json)
        return
    # The link options are netem's own (protolab/netem/cli.py), built the same way.
    link = profile_from_options(
        profile, delay, jitter, loss, burst, rate, queue, drop, reorder, seed,
        distribution, correlation, trace_up, trace_down, ip,
    )
    if userns.should_reexec():  # not root, but the unprivileged path can build the link
        userns.reexec(sys.argv[1:])
    if out is not None:
        check_output_dir(out, "--out")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if compare is not None:
        for name in compare:
            get_kind(name)
        root = out or Path("results") / "traces" / f"{compare[0]}-vs-{compare[1]}-{stamp}"
        pair = [_captured(name, link, root / name, quiet=as_json) for name in compare]
        _print_compare(pair, as_json)
        return
    assert kind is not None  # exactly one of the three was given
    directory = out or Path("results") / "traces" / f"{kind}-{stamp}"
    decoded, files = _captured(kind, link, directory, quiet=as_json)
    _print(decoded, files, as_json)


def _captured(
    kind: str, link: LinkProfile, directory: Path, *, quiet: bool
) -> tuple[Decoded, dict[str, str]]:
    trace_kind = get_kind(kind)
    if not quiet:
        console.print(f"capturing {kind} ({trace_kind.description}) into {directory} ...")
    captured = capture(trace_kind, link, directory)
    decoded = decode_capture(
        captured.pcap.read_bytes(), load_keylog(captured.keylog),
        LinkTiming(captured.rtt_ns, captured.up_delay_ns, captured.down_delay_ns,
                   captured.dropped_up, captured.dropped_down))
    for trace in decoded.traces:
        trace.kind = kind
    decoded.problems += [f"client: {e}" for e in captured.errors]
    files = {k: str(v) for k, v in (("pcap", captured.pcap), ("keylog", captured.keylog),
                                    ("qlog", captured.qlog_dir)) if v is not None}
    if decoded.main is not None:
        svg = directory / "ladder.svg"
        svg.write_text(render_svg(decoded.main))
        files["svg"] = str(svg)
    (directory / "trace.json").write_text(json.dumps(json_report(decoded, files), indent=1,
                                                     default=str))
    return decoded, files


def _print(decoded: Decoded, files: dict[str, str], as_json: bool) -> None:
    if as_json:
        print(json.dumps(json_report(decoded, files), indent=1, default=str))
    else:
        for line in text_report(decoded, files):
            console.print(line)
    if decoded.main is None:
        raise typer.Exit(1)


def _print_compare(pair: list[tuple[Decoded, dict[str, str]]], as_json: bool) -> None:
    (a, fa), (b, fb) = pair
    if as_json:
        print(json.dumps({"a": json_report(a, fa), "b": json_report(b, fb)}, indent=1,
                         default=str))
    elif a.main is not None and b.main is not None:
        table = Table(title="handshake comparison (times from the client's first packet)")
        for column in ("", a.main.kind or "A", b.main.kind or "B"):
            table.add_column(column)
        for row in compare_rows(a.main, b.main):
            table.add_row(*row)
        for decoded, files in pair:
            assert decoded.main is not None
            console.print(f"{decoded.main.kind}: {files.get('svg', '')}")
            for line in ladder(decoded.main, notes=False):
                console.print(line)
        console.print(table)
    if a.main is None or b.main is None:
        for decoded, files in pair:
            _print(decoded, files, as_json)


def _brought(
    pcap: Path, keylog: Path | None, rtt_ms: float | None
) -> tuple[Decoded, dict[str, str]]:
    try:
        data = pcap.read_bytes()
    except OSError as exc:
        raise TraceInputError(f"cannot read the capture {pcap}: {exc.strerror}") from exc
    timing = LinkTiming(int(rtt_ms * 1e6) if rtt_ms else None)
    if (pcap.parent / "capture.json").exists():
        # One of protolab's own captures: its link's delays are known.
        try:
            own = load_capture(pcap.parent)
            timing = LinkTiming(timing.rtt_ns or own.rtt_ns, own.up_delay_ns, own.down_delay_ns,
                                own.dropped_up, own.dropped_down)
        except (ValueError, KeyError, TypeError):
            pass
    decoded = decode_capture(data, load_keylog(keylog), timing)
    files = {"pcap": str(pcap)} | ({"keylog": str(keylog)} if keylog else {})
    return decoded, files
