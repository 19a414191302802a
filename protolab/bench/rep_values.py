"""The values of one cell repetition that cross process boundaries.

A repetition's plan (`RepTask`), its client side's job and result (`ClientJob`,
`ClientResult`, a typed `CellFailure`), where it ran (`RanOn`) and all it gave
(`RepResult`): the bench runner (protolab.bench.runner) makes and folds them in this
process; the Dask executor (protolab/distributed/) serialises them to run a repetition on
another machine and bring its result back. `CellCapture` says where a repetition's
pcap, TLS key log and qlog go, on whichever machine runs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from protolab.bench.suite import Cell, Variant, Workload
from protolab.core.record import RequestRecord
from protolab.errors import ConfigError


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
    tls: bool  # and its client can write a key log (grpcio's cannot)
    over_quic: bool

    @classmethod
    def of(cls, root: Path, cell: Cell, rep: int) -> CellCapture:
        """Where `cell`'s repetition `rep` keeps (or kept) its capture; creates nothing."""
        directory = root / f"cell-{cell.index}-{cell.variant.label}-rep-{rep}"
        caps = cell.variant.spec.capabilities
        return cls(directory, cell.variant.tls and caps.key_log, caps.over_quic)

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
    link: dict[str, int] = field(default_factory=dict)  # packet counts (`runner._link_delta`)
    namespace_cc: dict[str, str] = field(default_factory=dict)
    namespace_cc_asked: str = ""
    lost: bool = False  # its worker was lost while running it (`client.failure` says so)
    # A retry of this repetition follows (its worker was lost and `--retries` allows
    # one): the attempt is recorded, its outcome is not the cell's.
    superseded: bool = False
    # What it could not keep, recorded with it (a worker's capture above the size
    # limit that workers ship: protolab/distributed/captures.py).
    note: str | None = None

