"""`protolab trace`: capture and decode a handshake, or decode a capture the user brings."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from protolab.errors import ConfigError
from protolab.netem.cli import (
    BurstOpt,
    DelayOpt,
    DropOpt,
    JitterOpt,
    LossOpt,
    ProfileOpt,
    QueueOpt,
    RateOpt,
    ReorderOpt,
    SeedOpt,
    _profile,
)
from protolab.trace.capture import capture, load_capture
from protolab.trace.decode import Decoded, LinkTiming, decode_capture
from protolab.trace.errors import TraceInputError
from protolab.trace.keylog import load_keylog
from protolab.trace.kinds import KINDS, get_kind
from protolab.trace.render import json_report, text_report

console = Console(highlight=False, soft_wrap=True)

HELP = (
    "Run one connection of KIND through the emulated link (needs root) and show its "
    "handshake step by step with the round trips it cost; or decode a capture you bring "
    f"with --pcap FILE [--keylog FILE]. KIND: {', '.join(KINDS)}."
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
    out: Annotated[Path | None, typer.Option(help="Where the pcap, key log, qlog go.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Every step and field as JSON.")] = False,
    profile: ProfileOpt = "loopback", delay: DelayOpt = None, jitter: JitterOpt = None,
    loss: LossOpt = None, burst: BurstOpt = None, rate: RateOpt = None, queue: QueueOpt = None,
    drop: DropOpt = None, reorder: ReorderOpt = None, seed: SeedOpt = None,
) -> None:
    if pcap is not None:
        if kind is not None:
            raise ConfigError("give either KIND (capture now) or --pcap (decode a capture)")
        decoded, files = _brought(pcap, keylog, rtt)
    else:
        if kind is None:
            raise ConfigError("give a KIND to trace or --pcap FILE",
                              hint=f"kinds: {', '.join(KINDS)}")
        trace_kind = get_kind(kind)
        link_profile = _profile(profile, delay, jitter, loss, burst, rate, queue, drop,
                                reorder, seed)
        directory = out or Path("results") / "traces" / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
        if not as_json:
            console.print(f"capturing {kind} ({trace_kind.description}) into {directory} ...")
        captured = capture(trace_kind, link_profile, directory)
        keylog_data = load_keylog(captured.keylog)
        decoded = decode_capture(
            captured.pcap.read_bytes(), keylog_data,
            LinkTiming(captured.rtt_ns, link_profile.up.delay_ns, link_profile.down.delay_ns))
        for trace in decoded.traces:
            trace.kind = kind
        decoded.problems += [f"client: {e}" for e in captured.errors]
        files = {k: str(v) for k, v in (("pcap", captured.pcap), ("keylog", captured.keylog),
                                        ("qlog", captured.qlog_dir)) if v is not None}
    if as_json:
        print(json.dumps(json_report(decoded, files), indent=1, default=str))
    else:
        for line in text_report(decoded, files):
            console.print(escape(line))
    if decoded.main is None:
        raise typer.Exit(1)


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
            timing = LinkTiming(timing.rtt_ns or own.rtt_ns, own.up_delay_ns, own.down_delay_ns)
        except (ValueError, KeyError, TypeError):
            pass
    decoded = decode_capture(data, load_keylog(keylog), timing)
    files = {"pcap": str(pcap)} | ({"keylog": str(keylog)} if keylog else {})
    return decoded, files
