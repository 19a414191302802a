"""Run a suite: links up, servers in the server namespace, clients in the client namespace.

Order of work, so that machine drift hits every protocol alike (DESIGN.md):

    for each link point of the sweep:
        bring the link up and start one server process per distinct server setting
        for each repetition (warm-up first):
            for each variant, in an order rotated every repetition:
                run the workload once on the client side, store its raw records

A link with deterministic drop rules counts packets from its start, so such a link is
rebuilt (with its servers) for every variant and repetition: each sees the same drops.
So is every link when the run keeps captures (`capture_dir`): each cell repetition then
has a pcap of its own link, the TLS key log and, over QUIC, the client's qlog, so
Wireshark and qvis open exactly what was measured.

CPU time is measured for the client (its thread), the server (its process) and the
link's forwarder; a cell whose busiest part used more than `SATURATED` of the wall time
is flagged — its numbers measure Python, not the protocol. A failing cell is recorded
with its error and the run goes on; Ctrl-C stops cleanly, keeping what finished.

Who runs the repetitions is an `Executor`: `LocalExecutor` is the order above in this
process; another (protolab/distributed: Dask workers on other machines) gets the same
plan, runs each `RepTask` from its serialised description with a link and servers of its
own (`run_alone`), and hands back `RepResult`s as they finish, in whatever order.

What crosses those process boundaries — the task, the client's job and result, where a
repetition ran — is in `rep_values`; the client side itself (`run_client`, the open and
closed load loops) in `rep_client`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal, Protocol

from protolab import registry
from protolab.bench.rep_client import run_client
from protolab.bench.rep_values import (
    CellCapture,
    CellFailure,
    ClientJob,
    ClientResult,
    RanOn,
    RepResult,
    RepTask,
)
from protolab.bench.suite import Cell, Suite, expand
from protolab.core.record import RequestRecord, Target
from protolab.labserver import LabServer, start_in_namespace
from protolab.netem.link import EmulatedLink, LinkCounters
from protolab.store.manifest import host_description

# The repetition's values and its client side are re-exported: the distributed executor,
# reports, tests and benchmarks import them from the runner.
__all__ = [
    "SATURATED", "CellCapture", "CellFailure", "CellOutcome", "ClientJob", "ClientResult",
    "Executor", "LinkGroup", "LocalExecutor", "RanOn", "RepResult", "RepTask", "Reporter",
    "host_now", "namespace_cc", "plan", "run_alone", "run_cells", "run_client", "run_on",
]

SATURATED = 0.9  # CPU seconds per wall second above which a part counts as saturated


@dataclass
class CellOutcome:
    """What one cell accumulated over its repetitions."""

    cell: Cell
    records: list[tuple[int, bool, list[RequestRecord]]] = field(default_factory=list)
    failure: CellFailure | None = None
    wall_s: float = 0.0
    cpu: dict[str, float] = field(
        default_factory=lambda: {"client": 0.0, "server": 0.0, "forwarder": 0.0}
    )
    # Per measured repetition: packet counts and the forwarder's lateness (`_link_delta`).
    link: list[dict[str, int]] = field(default_factory=list)
    # Per repetition number: when its link came up (monotonic ns), a delivery trace's
    # time 0, so what the trace offered during the repetition can be read off it.
    link_epochs: dict[int, int] = field(default_factory=dict)
    # The default TCP congestion control the link's namespaces reported (side -> name), and
    # the one asked for: what sockets the lab cannot configure (grpcio's) used.
    namespace_cc: dict[str, str] = field(default_factory=dict)
    namespace_cc_asked: str = ""

    @property
    def status(self) -> Literal["ok", "failed", "timeout"]:
        return "ok" if self.failure is None else self.failure.kind

    @property
    def error(self) -> str | None:
        return None if self.failure is None else self.failure.message

    @property
    def saturated(self) -> list[str]:
        if self.wall_s <= 0:
            return []
        return [part for part, cpu in self.cpu.items() if cpu / self.wall_s > SATURATED]

    def measured(self) -> list[RequestRecord]:
        return [r for _, warm, recs in self.records if not warm for r in recs]

    def add(self, result: RepResult) -> None:
        """Fold one finished repetition in (they may arrive in any order)."""
        task = result.task
        if result.namespace_cc:
            self.namespace_cc = dict(result.namespace_cc)
            self.namespace_cc_asked = result.namespace_cc_asked
        if not task.warm:  # what crossed the link is the measured repetitions' alone
            self.link.append(dict(result.link))
            if result.link.get("epoch_ns"):
                self.link_epochs[task.rep] = result.link["epoch_ns"]
            self.wall_s += result.wall_s
            self.cpu["client"] += result.client.cpu_s
            self.cpu["server"] += result.server_cpu_s
            self.cpu["forwarder"] += result.forwarder_cpu_s
        self.records.append((task.rep, task.warm, list(result.client.records)))
        if result.client.failure is not None:
            self.failure = result.client.failure


@dataclass(frozen=True)
class LinkGroup:
    """The cells of one link point and their repetitions, in the order they are to run:
    repetitions in turn (warm-up first), variants rotated every repetition."""

    cells: tuple[Cell, ...]
    tasks: tuple[RepTask, ...]


def plan(suite: Suite, cells: list[Cell], reps: int) -> list[LinkGroup]:
    """Every cell repetition of `suite` as a task, grouped per link point, in run order."""
    points: dict[int, list[Cell]] = {}
    for cell in cells:
        points.setdefault(_point_key(suite, cell), []).append(cell)
    groups = []
    for group in points.values():
        tasks = [RepTask(cell, rep, rep < suite.warmup, suite.workload, suite.timeout_s)
                 for rep in range(suite.warmup + reps)
                 for cell in group[rep % len(group):] + group[: rep % len(group)]]
        groups.append(LinkGroup(tuple(group), tuple(tasks)))
    return groups


class Executor(Protocol):
    """Runs a plan's tasks and yields each one's result as it finishes (in any order).
    Closing the generator early (Ctrl-C, a failure) stops whatever is still running."""

    def run(self, groups: Sequence[LinkGroup], work_dir: Path,
            capture_dir: Path | None) -> Generator[RepResult, None, None]: ...


class Reporter:
    """Progress callbacks (the CLI shows a bar; tests pass none)."""

    def start(self, total: int) -> None: ...
    def step(self, description: str) -> None: ...


def run_cells(
    suite: Suite,
    work_dir: Path,
    *,
    repetitions: int | None = None,
    on_cell_rep: Callable[[CellOutcome, RepResult], None] | None = None,
    reporter: Reporter | None = None,
    capture_dir: Path | None = None,
    executor: Executor | None = None,
) -> list[CellOutcome]:
    """Run every cell of `suite` (in this process unless `executor` says otherwise);
    `on_cell_rep` sees each repetition's result as it lands (superseded attempts too);
    with `capture_dir`, every cell repetition's link, keys and qlog are kept there."""
    reps = suite.repetitions if repetitions is None else repetitions
    cells = expand(suite)
    outcomes = {cell.index: CellOutcome(cell) for cell in cells}
    reporter = reporter or Reporter()
    groups = plan(suite, cells, reps)
    reporter.start(sum(len(g.tasks) for g in groups))
    with contextlib.closing((executor or LocalExecutor()).run(
            groups, work_dir, capture_dir)) as results:
        for result in results:
            outcome = outcomes[result.task.cell.index]
            if not result.superseded:
                outcome.add(result)
            if on_cell_rep is not None:
                on_cell_rep(outcome, result)
            if not result.superseded:
                reporter.step(result.task.cell.variant.label)
    return [outcomes[cell.index] for cell in cells]


class LocalExecutor:
    """This process, in the plan's order: per link point one link and its servers for
    every repetition, except where the link must start afresh for each (drop lists count
    packets from the link's start; captures are per repetition)."""

    def run(self, groups: Sequence[LinkGroup], work_dir: Path,
            capture_dir: Path | None) -> Generator[RepResult, None, None]:
        cert_dir = work_dir / "certs"
        for group in groups:
            profile = group.cells[0].link
            if profile.up.drops or profile.down.drops or capture_dir is not None:
                for task in group.tasks:
                    capture = None if capture_dir is None else CellCapture.under(
                        capture_dir, task.cell, task.rep)
                    yield run_alone(task, cert_dir, capture=capture)
                continue
            with _link_and_servers(profile, list(group.cells), cert_dir) as (link, servers):
                for task in group.tasks:
                    yield run_on(link, servers, task)


def run_alone(task: RepTask, cert_dir: Path, *, worker: str = "local",
              capture: CellCapture | None = None) -> RepResult:
    """One repetition on a link and servers of its own, built and torn down around it
    (what a Dask worker runs; locally, cells whose link cannot be shared). Its span
    (`ran`) covers the building and the teardown: the time it held the machine."""
    started = time.time()
    with _link_and_servers(task.cell.link, [task.cell], cert_dir,
                           pcap=capture.pcap if capture else None) as (link, servers):
        result = run_on(link, servers, task, capture, worker=worker)
    return dataclasses.replace(result, ran=dataclasses.replace(
        result.ran, started=started, ended=time.time()))


def _point_key(suite: Suite, cell: Cell) -> int:
    return suite.link.points().index(cell.link_point)


@contextlib.contextmanager
def _link_and_servers(
    profile: Any, cells: list[Cell], cert_dir: Path, *, pcap: Path | None = None
) -> Iterator[tuple[EmulatedLink, dict[tuple[Any, ...], LabServer]]]:
    with EmulatedLink(profile, pcap=pcap, tcp_cc=namespace_cc(cells)) as link:
        servers: dict[tuple[Any, ...], LabServer] = {}
        try:
            for cell in cells:
                key = cell.variant.server_key()
                if key not in servers:
                    servers[key] = start_in_namespace(
                        link, registry.server_config(cell.variant.protocol, cell.variant.knobs(),
                                               link.server_addr, cert_dir))
            yield link, servers
        finally:
            for server in servers.values():
                server.stop()


def namespace_cc(cells: list[Cell]) -> str:
    """The congestion control a link's namespaces default to: the one the variants that
    cannot set their own (grpcio opens its sockets in C) ask for, else the lab's default
    (the registry refuses such a variant any other cc, so they agree)."""
    unset = {c.variant.cc for c in cells if not c.variant.spec.capabilities.sets_cc}
    return unset.pop() if len(unset) == 1 else str(registry.KNOB_DEFAULTS["cc"])


def run_on(
    link: EmulatedLink,
    servers: dict[tuple[Any, ...], LabServer],
    task: RepTask,
    capture: CellCapture | None = None,
    *,
    worker: str = "local",
) -> RepResult:
    """One repetition of `task`'s cell over a running link, against its server there."""
    variant = task.cell.variant
    server = servers[variant.server_key()]
    target = Target(host=link.server_addr, port=server.port(variant.protocol), tls=variant.tls,
                    ca_file=server.ca_file,
                    keylog_file=capture.keylog if capture else None)
    server_cpu = server.cpu_s()
    before = link.counters()
    wall_start = time.time()
    started = time.monotonic()
    job = ClientJob(variant, task.workload, task.timeout_s,
                    qlog_dir=capture.qlog_dir if capture else None,
                    client_addr_alt=link.client_addr_alt)
    result: ClientResult = link.call("client", run_client, job, target)
    wall = time.monotonic() - started
    after = link.counters()
    return RepResult(
        task, result, RanOn(worker, host_now(), wall_start, wall_start + wall), wall_s=wall,
        server_cpu_s=server.cpu_s() - server_cpu,
        forwarder_cpu_s=after.forwarder_cpu_s - before.forwarder_cpu_s,
        link={**_link_delta(before, after), "offloaded": len(link.offload)},
        namespace_cc=dict(link.namespace_cc),
        namespace_cc_asked=link.tcp_cc)


@cache
def host_now() -> dict[str, Any]:
    """This machine, described once per process (a git call and /proc reads)."""
    return host_description()


def _link_delta(before: LinkCounters, after: LinkCounters) -> dict[str, int]:
    """What crossed the link during one repetition, per direction; how late its scheduled
    deliveries left (`late_*`: the instrument's own error during the repetition); and
    when the link came up (`epoch_ns`: where a delivery trace's time 0 lies)."""
    late = after.lateness.since(before.lateness)
    out: dict[str, int] = {"epoch_ns": after.epoch_ns, "late_deliveries": late.deliveries,
                           "late_1ms": late.over_1ms, "late_worst_us": int(late.worst_us)}
    for name in ("up", "down"):
        b, a = getattr(before, name), getattr(after, name)
        out[f"{name}_packets"] = a.packets_in - b.packets_in
        out[f"{name}_bytes"] = a.bytes_in - b.bytes_in
        out[f"{name}_dropped_loss"] = a.dropped_loss - b.dropped_loss
        out[f"{name}_dropped_queue"] = a.dropped_queue - b.dropped_queue
        out[f"{name}_dropped_droplist"] = a.dropped_droplist - b.dropped_droplist
        out[f"{name}_unseen_drops"] = a.unseen_drops - b.unseen_drops
    return out

