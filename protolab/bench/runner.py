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
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal, Protocol

from protolab import registry
from protolab.bench.suite import Cell, Suite, Variant, Workload, expand
from protolab.core.client import ProtocolClient
from protolab.core.record import Request, RequestRecord, Target
from protolab.errors import ConfigError
from protolab.labserver import LabServer, start_in_namespace
from protolab.netem.link import EmulatedLink, LinkCounters
from protolab.registry import make_client
from protolab.store.manifest import host_description
from protolab.timing import now_ns
from protolab.workload import Body

SATURATED = 0.9  # CPU seconds per wall second above which a part counts as saturated


@dataclass(frozen=True)
class CellFailure:
    """Why a repetition of a cell did not complete, typed until it is stored."""

    kind: Literal["timeout", "failed"]  # the cell outlived its timeout / raised
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class ClientJob:
    """One repetition's client side: all it needs, nothing else of the suite (serialisable:
    `to_json`, so it can run in another process or on another machine)."""

    variant: Variant
    workload: Workload
    timeout_s: float
    qlog_dir: Path | None = None  # QUIC clients write their qlog here (captures)
    # The client namespace's second address (EmulatedLink.client_addr_alt): where a
    # variant with migrate_to = "address" moves to.
    client_addr_alt: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"variant": self.variant.to_json(), "workload": self.workload.to_json(),
                "timeout_s": self.timeout_s,
                "qlog_dir": None if self.qlog_dir is None else str(self.qlog_dir),
                "client_addr_alt": self.client_addr_alt}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClientJob:
        qlog = data.get("qlog_dir")
        return cls(Variant.from_json(data["variant"]), Workload.from_json(data["workload"]),
                   float(data["timeout_s"]), None if qlog is None else Path(qlog),
                   str(data.get("client_addr_alt", "")))


@dataclass(frozen=True)
class CellCapture:
    """Where one cell repetition's capture goes: the link's pcap, the TLS key log (all
    the secrets Wireshark needs, QUIC's included) and the QUIC client's qlog."""

    directory: Path
    tls: bool
    over_quic: bool

    @classmethod
    def of(cls, root: Path, cell: Cell, rep: int) -> CellCapture:
        """Where `cell`'s repetition `rep` keeps (or kept) its capture; creates nothing."""
        directory = root / f"cell-{cell.index}-{cell.variant.label}-rep-{rep}"
        return cls(directory, cell.variant.tls, cell.variant.spec.capabilities.over_quic)

    @classmethod
    def under(cls, root: Path, cell: Cell, rep: int) -> CellCapture:
        """`of`, with its folders made, for a repetition about to run."""
        capture = cls.of(root, cell, rep)
        capture.directory.mkdir(parents=True, exist_ok=True)
        if capture.qlog_dir is not None:
            capture.qlog_dir.mkdir(exist_ok=True)
        return capture

    @property
    def pcap(self) -> Path:
        return self.directory / "link.pcap"

    @property
    def keylog(self) -> Path | None:
        return self.directory / "keylog.txt" if self.tls else None

    @property
    def qlog_dir(self) -> Path | None:
        return self.directory / "qlog" if self.over_quic else None


@dataclass(frozen=True)
class ClientResult:
    """What the client side of one repetition hands back across the namespace thread."""

    records: tuple[RequestRecord, ...] = ()
    cpu_s: float = 0.0
    failure: CellFailure | None = None


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
    link: list[dict[str, int]] = field(default_factory=list)  # per repetition: packet counts
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
        self.link.append(dict(result.link))
        if not task.warm:
            self.wall_s += result.wall_s
            self.cpu["client"] += result.client.cpu_s
            self.cpu["server"] += result.server_cpu_s
            self.cpu["forwarder"] += result.forwarder_cpu_s
        self.records.append((task.rep, task.warm, list(result.client.records)))
        if result.client.failure is not None:
            self.failure = result.client.failure


@dataclass(frozen=True)
class RepTask:
    """One repetition of one cell: the unit an executor runs. Self-contained (the cell
    carries its built link) and serialisable, so it can run on another machine."""

    cell: Cell
    rep: int
    warm: bool
    workload: Workload
    timeout_s: float
    attempt: int = 0  # 0: the first; each retry after a lost worker counts one up

    def to_json(self) -> dict[str, Any]:
        return {"cell": self.cell.to_json(), "rep": self.rep, "warm": self.warm,
                "workload": self.workload.to_json(), "timeout_s": self.timeout_s,
                "attempt": self.attempt}

    @classmethod
    def from_json(cls, data: Any) -> RepTask:
        """A task another process serialised; validated like a suite file."""
        keys = {"cell", "rep", "warm", "workload", "timeout_s", "attempt"}
        if not isinstance(data, dict) or set(data) != keys:
            raise ConfigError(f"a cell repetition is {{{', '.join(sorted(keys))}}}")
        rep, attempt, timeout = data["rep"], data["attempt"], data["timeout_s"]
        if not all(type(v) is int and v >= 0 for v in (rep, attempt)):
            raise ConfigError("rep and attempt must be non-negative integers")
        if type(data["warm"]) is not bool:
            raise ConfigError("warm must be true or false")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not (
                0 < timeout <= 3600):
            raise ConfigError(f"timeout_s must be in (0, 3600], got {timeout!r}")
        return cls(Cell.from_json(data["cell"]), rep, data["warm"],
                   Workload.from_json(data["workload"]), float(timeout), attempt)


@dataclass(frozen=True)
class RanOn:
    """Where and when one repetition ran."""

    worker: str  # "local", or the address of the Dask worker that ran it
    host: dict[str, Any]  # the machine: `store.manifest.host_description()`
    started: float  # wall clock, epoch seconds: the client's run on a shared link, else
    # from building its own link to tearing it down (the time it held the machine)
    ended: float


@dataclass(frozen=True)
class RepResult:
    """What running one `RepTask` gave: the client's records (or its typed failure), CPU
    of each part, what crossed the link, and where and when it ran."""

    task: RepTask
    client: ClientResult
    ran: RanOn
    wall_s: float = 0.0
    server_cpu_s: float = 0.0
    forwarder_cpu_s: float = 0.0
    link: dict[str, int] = field(default_factory=dict)  # packet counts (`_link_delta`)
    namespace_cc: dict[str, str] = field(default_factory=dict)
    namespace_cc_asked: str = ""
    lost: bool = False  # its worker was lost while running it (`client.failure` says so)
    # A retry of this repetition follows (its worker was lost and `--retries` allows
    # one): the attempt is recorded, its outcome is not the cell's.
    superseded: bool = False
    # What it could not keep, recorded with it (a worker's capture above the size
    # limit that workers ship: protolab/distributed/captures.py).
    note: str | None = None


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
        link=_link_delta(before, after), namespace_cc=dict(link.namespace_cc),
        namespace_cc_asked=link.tcp_cc)


@cache
def host_now() -> dict[str, Any]:
    """This machine, described once per process (a git call and /proc reads)."""
    return host_description()


async def _open_load(
    client: ProtocolClient, requests: list[Request], rate: float
) -> list[RequestRecord]:
    """Constant arrival rate: request i is due at start + i / rate, sent then (or as soon
    as the client can), and its record keeps when it was due (`intended_ns`)."""
    start = now_ns()
    interval_ns = 1e9 / rate

    async def due(i: int, request: Request) -> RequestRecord:
        intended = start + round(i * interval_ns)
        wait = (intended - now_ns()) / 1e9
        if wait > 0:
            await asyncio.sleep(wait)
        record = await client.request(request)
        return dataclasses.replace(record, intended_ns=intended)

    return list(await asyncio.gather(*(due(i, r) for i, r in enumerate(requests))))


def _link_delta(before: LinkCounters, after: LinkCounters) -> dict[str, int]:
    """What crossed the link during one repetition, per direction."""
    out: dict[str, int] = {}
    for name in ("up", "down"):
        b, a = getattr(before, name), getattr(after, name)
        out[f"{name}_packets"] = a.packets_in - b.packets_in
        out[f"{name}_bytes"] = a.bytes_in - b.bytes_in
        out[f"{name}_dropped_loss"] = a.dropped_loss - b.dropped_loss
        out[f"{name}_dropped_queue"] = a.dropped_queue - b.dropped_queue
        out[f"{name}_dropped_droplist"] = a.dropped_droplist - b.dropped_droplist
        out[f"{name}_unseen_drops"] = a.unseen_drops - b.unseen_drops
    return out


def run_client(job: ClientJob, target: Target) -> ClientResult:
    """One repetition of the workload against `target`; runs on a thread inside the client
    namespace. Never raises: a failure is typed in the result."""
    cpu0 = time.thread_time()
    # No collection while the client is timed, as timeit does: a full one stopped every
    # stream of a measured HTTP/3 client for 30-60 ms in a large process (docs/hol.md).
    # What the cell makes is collected after it; the runner's long-lived objects are
    # frozen out of the collector's sight meanwhile (docs/netem.md#timing).
    collecting = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        records = asyncio.run(
            asyncio.wait_for(_workload(job, target), job.timeout_s)
        )
    except TimeoutError:
        failure = CellFailure("timeout", f"timeout: the cell took over {job.timeout_s} s")
    except Exception as exc:  # noqa: BLE001 - a failing cell is recorded, the run goes on
        failure = CellFailure("failed", f"{type(exc).__name__}: {exc}")
    else:
        return ClientResult(tuple(records), time.thread_time() - cpu0)
    finally:
        if collecting:
            gc.enable()
        gc.unfreeze()
    return ClientResult((), time.thread_time() - cpu0, failure)


async def _workload(job: ClientJob, target: Target) -> list[RequestRecord]:
    work, variant = job.workload, job.variant
    body = b"".join(bytes(chunk) for chunk in Body(work.body_bytes).chunks())
    requests = [Request(method="POST" if body else "GET", path=work.paths[i % len(work.paths)],
                        body=body, headers=work.headers, record_arrivals=work.record_arrivals)
                for i in range(work.count)]
    extra: dict[str, Any] = {"qlog_dir": job.qlog_dir} if job.qlog_dir is not None else {}
    if variant.migrate_to == "address":  # the registry allows it only where a client moves
        extra["migrate_address"] = job.client_addr_alt
    client = make_client(variant.protocol, target, **variant.client_options(), **extra)
    try:
        if variant.primes:
            # Earn a session ticket; the measured requests then resume it.
            await client.request(Request(path="/bytes/1"))
            await client.close()
        if work.load == "open":
            return await _open_load(client, requests, work.rate)
        if work.fresh_connection:
            records = []
            for request in requests:
                records.append(await client.request(request))
                await client.close()
            return records
        slots = asyncio.Semaphore(work.concurrency)

        async def one(request: Request) -> RequestRecord:
            async with slots:
                return await client.request(request)

        tasks = [asyncio.create_task(one(r)) for r in requests]
        return list(await asyncio.gather(*tasks))
    finally:
        await client.close()

