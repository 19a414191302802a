"""Run one connection of a chosen kind through the emulated link and keep what it left.

The files land in one directory so Wireshark and qvis open them side by side:
`trace.pcap` (what crossed the link), `keylog.txt` (NSS key log: Python's ssl for TCP,
aioquic's secrets log for QUIC), `qlog/` (the client's qlog, QUIC only) and
`capture.json` (kind, addresses, the link's round-trip time).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from protolab import registry
from protolab.core.record import RequestRecord, Target
from protolab.errors import ConfigError
from protolab.fetch import fetch, fetch_resumed
from protolab.labserver import start_in_namespace
from protolab.netem.config import LinkProfile
from protolab.netem.link import EmulatedLink
from protolab.trace.kinds import TraceKind


@dataclass(frozen=True)
class CaptureFiles:
    """Where one capture's files are, and what the tracer needs to know about the link."""

    kind: str
    pcap: Path
    keylog: Path | None
    qlog_dir: Path | None
    client_addr: str
    server_addr: str
    server_port: int
    rtt_ns: int  # the link's configured round-trip propagation delay
    up_delay_ns: int = 0  # client->server one-way delay (the pcap stamps at delivery)
    down_delay_ns: int = 0
    errors: tuple[str, ...] = ()  # client-side failures, if the request did not complete
    dropped_up: int = 0  # packets the link dropped (loss, queue, drop rules), client->server
    dropped_down: int = 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("pcap", "keylog", "qlog_dir"):
            data[key] = None if data[key] is None else str(data[key])
        data["errors"] = list(self.errors)
        return data


def link_rtt_ns(profile: LinkProfile) -> int:
    return profile.up.delay_ns + profile.down.delay_ns


def capture(kind: TraceKind, profile: LinkProfile, out_dir: Path) -> CaptureFiles:
    """Bring the link up, start the lab's server, run `kind`'s client once; needs root."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the capture folder {out_dir}: {exc.strerror}",
                          hint="choose another --out") from None
    pcap = out_dir / "trace.pcap"
    keylog = out_dir / "keylog.txt" if kind.tls_version else None
    if keylog is not None:
        keylog.write_text("")  # the clients append; one capture, one key log
    qlog_dir = out_dir / "qlog" if kind.over_quic else None
    if qlog_dir is not None:
        qlog_dir.mkdir(exist_ok=True)
    tls = kind.tls_version is not None
    knobs = {**registry.KNOB_DEFAULTS, "tls": tls, "tls_version": kind.tls_version or "1.3"}
    with EmulatedLink(profile, pcap=pcap) as link:
        # Only the traced protocol listens: the capture holds its handshake and nothing else.
        config = dataclasses.replace(
            registry.server_config(kind.protocol, knobs, link.server_addr,
                                   out_dir / "certs"), protocols=(kind.protocol,))
        server = start_in_namespace(link, config)
        try:
            port = server.port(kind.protocol)
            target = Target(host=link.server_addr, port=port, tls=tls,
                            ca_file=server.ca_file,
                            tls_version="1.2" if kind.tls_version == "1.2" else None,
                            keylog_file=keylog)
            records = link.call("client", _run_client, kind, target, qlog_dir)
        finally:
            server.stop()
        counters = link.counters()
        files = CaptureFiles(
            kind=kind.name, pcap=pcap, keylog=keylog, qlog_dir=qlog_dir,
            client_addr=link.client_addr, server_addr=link.server_addr, server_port=port,
            rtt_ns=link_rtt_ns(profile), up_delay_ns=profile.up.delay_ns,
            down_delay_ns=profile.down.delay_ns,
            errors=tuple(f"{r.error}: {r.error_detail}" for r in records if not r.ok),
            dropped_up=counters.up.dropped, dropped_down=counters.down.dropped,
        )
    (out_dir / "capture.json").write_text(json.dumps(files.to_json(), indent=1))
    return files


def _options(kind: TraceKind, qlog_dir: Path | None) -> dict[str, Any]:
    """One connection (h1's pool of one), resumed the way the protocol resumes."""
    spec = registry.get(kind.protocol)
    caps = spec.capabilities
    knobs = {**registry.KNOB_DEFAULTS, "connections": 1, "tls": kind.tls_version is not None,
             "resume": kind.resumed and caps.tls_resumption,
             "zero_rtt": kind.resumed and caps.early_data}
    return spec.client_options(knobs, **({"qlog_dir": qlog_dir} if caps.over_quic else {}))


def _run_client(kind: TraceKind, target: Target, qlog_dir: Path | None) -> list[RequestRecord]:
    """Runs on a thread in the client namespace: the protocol's tiny probe request (the
    handshake, not the transfer, is what is traced)."""
    spec = registry.get(kind.protocol)
    options = _options(kind, qlog_dir)
    if kind.resumed:
        return asyncio.run(fetch_resumed(kind.protocol, target, spec.probe_path,
                                         options=options))
    return asyncio.run(fetch(kind.protocol, target, spec.probe_path, options=options,
                             body=spec.probe_body))


def load_capture(out_dir: Path) -> CaptureFiles:
    """The `capture.json` a previous capture left in `out_dir`."""
    data = json.loads((out_dir / "capture.json").read_text())
    return CaptureFiles(
        kind=data["kind"], pcap=Path(data["pcap"]),
        keylog=Path(data["keylog"]) if data["keylog"] else None,
        qlog_dir=Path(data["qlog_dir"]) if data["qlog_dir"] else None,
        client_addr=data["client_addr"], server_addr=data["server_addr"],
        server_port=data["server_port"], rtt_ns=data["rtt_ns"],
        up_delay_ns=data.get("up_delay_ns", 0), down_delay_ns=data.get("down_delay_ns", 0),
        errors=tuple(data["errors"]), dropped_up=data.get("dropped_up", 0),
        dropped_down=data.get("dropped_down", 0),
    )
