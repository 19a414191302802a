"""One `protolab bench` run: the runner's records into the store, then summaries.

Raw first: every repetition's records are written to the store as soon as they exist
(one transaction each), and a cell is finished (status, end time, CPU) as soon as its
last repetition is stored, so a run stopped at any point keeps every finished cell
finished. Summaries are computed afterwards from what the store holds, read back once;
the same records go to the charts and the report (drawn by `protolab.report`, which
the bench layer never imports).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from protolab.bench.claims import CellView, Verdict, evaluate
from protolab.bench.hol_cells import analyse_cell
from protolab.bench.runner import CellOutcome, Executor, Reporter, RepResult, run_cells
from protolab.bench.suite import Cell, Suite, expand
from protolab.bench.summary import CellSummary, summarize_cell
from protolab.core.record import RequestRecord
from protolab.hol.model import StreamHol
from protolab.store import CpuTimes, ResultsStore, TaskRun, manifest


@dataclass
class BenchResult:
    run_id: int
    status: str  # complete, interrupted, failed
    summaries: list[CellSummary] = field(default_factory=list)
    out_dir: Path | None = None
    cells: list[Cell] = field(default_factory=list)
    # Each cell's stored records (warm-up left out), by cell index: what charts draw.
    measured: dict[int, list[RequestRecord]] = field(default_factory=dict)
    charts: list[Path] = field(default_factory=list)  # filled in by whoever draws them
    verdicts: list[Verdict] = field(default_factory=list)  # the suite's claims, judged


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: the run stops cleanly and is marked interrupted."""


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def raise_terminated(signum: int, frame: FrameType | None) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def out_dir_for(out_root: Path, run_id: int) -> Path:
    """`OUT/run-N`, or `OUT/run-N.2`, … when another database's run N already wrote there:
    two runs never share a folder."""
    out_root.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        candidate = out_root / (f"run-{run_id}" if attempt == 1 else f"run-{run_id}.{attempt}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"{out_root}: no free run-{run_id} folder")


def run_bench(
    suite: Suite,
    store: ResultsStore,
    out_root: Path,
    *,
    repetitions: int | None = None,
    reporter: Reporter | None = None,
    capture: bool = False,
    executor: Executor | None = None,
) -> BenchResult:
    """Run `suite` into `store`; with `capture`, every cell repetition keeps its link's
    pcap, key log and qlog under the run's folder (`captures/`). The repetitions run in
    this process unless `executor` runs them elsewhere (protolab/distributed); either way
    only this process writes the store."""
    reps = repetitions or suite.repetitions
    capture = capture or suite.capture
    settings = {"suite": suite.name, "variants": [v.to_json() for v in suite.variants],
                "link": {"profile": suite.link.profile, "points": suite.link.points()},
                "workload": suite.workload.__dict__, "repetitions": reps,
                "warmup": suite.warmup, "timeout_s": suite.timeout_s,
                "executor": getattr(executor, "description", "local")}
    run_id = store.begin_run(suite.name, manifest(settings, {"link_seed": suite.seed}))
    out_dir = out_dir_for(out_root, run_id)
    cells = expand(suite)
    cell_ids = {cell.index: store.add_cell(run_id, cell.index, cell.params(suite))
                for cell in cells}
    per_cell = suite.warmup + reps
    stored: dict[int, int] = {}  # cell index -> repetitions stored (they land in any order)

    def on_rep(outcome: CellOutcome, result: RepResult) -> None:
        index, task = outcome.cell.index, result.task
        ran = task_run(result)
        if result.superseded:  # a lost attempt that is retried: only where it ran is kept
            store.add_task(cell_ids[index], ran)
            return
        store.add_samples(cell_ids[index], list(result.client.records), task.rep, task.warm,
                          ran)
        stored[index] = stored.get(index, 0) + 1
        if stored[index] == per_cell:
            _finish_cell(store, cell_ids[index], outcome)

    result = BenchResult(run_id, "failed", out_dir=out_dir, cells=cells)
    try:
        with _sigterm_interrupts():
            outcomes = run_cells(suite, out_dir, repetitions=repetitions, on_cell_rep=on_rep,
                                 reporter=reporter,
                                 capture_dir=out_dir / "captures" if capture else None,
                                 executor=executor)
    except KeyboardInterrupt:
        store.finish_run(run_id, "interrupted")
        result.status = "interrupted"
        return result
    except BaseException:
        store.finish_run(run_id, "failed")
        raise
    hol: dict[int, tuple[StreamHol, ...]] = {}
    for outcome in outcomes:
        cell_id = cell_ids[outcome.cell.index]
        by_rep: dict[int, list[RequestRecord]] = {}
        for sample in store.stored_samples(cell_id):
            by_rep.setdefault(sample.repetition, []).append(sample.record)
        result.measured[outcome.cell.index] = [r for rep in by_rep.values() for r in rep]
        summary = summarize_cell(suite, outcome.cell, by_rep,
                                 saturated=tuple(outcome.saturated), status=outcome.status,
                                 error=outcome.error, link_epochs=outcome.link_epochs,
                                 link_counts=outcome.link)
        result.summaries.append(summary)
        _store_metrics(store, suite, cell_id, summary, outcome)
        if capture:  # per-stream HOL delay from the captures (protolab/hol)
            hol[outcome.cell.index] = analyse_cell(store, cell_id, outcome.cell,
                                                   out_dir / "captures", by_rep)
    late = {o.cell.index: s.lateness.get("over_1ms", 0)
            for o, s in zip(outcomes, result.summaries, strict=True)}
    result.verdicts = judge(suite, cells, result.measured, hol, late)
    store.add_verdicts(run_id, [
        {**v.to_json(), "claim_json": claim.to_json()}
        for v in result.verdicts for claim in suite.claims if claim.id == v.claim])
    store.finish_run(run_id, "complete")
    result.status = "complete"
    return result


def judge(suite: Suite, cells: list[Cell], measured: dict[int, list[RequestRecord]],
          hol: dict[int, tuple[StreamHol, ...]] | None = None,
          link_late: dict[int, int] | None = None) -> list[Verdict]:
    """The suite's claims against the stored records of its cells (and their HOL, and
    how many deliveries each one's link left ≥ 1 ms late)."""
    hol = hol or {}
    link_late = link_late or {}
    views = [CellView(c.variant.label, c.link_point, c.rtt_ms, measured.get(c.index, []),
                      hol.get(c.index, ()), link_late.get(c.index, 0)) for c in cells]
    return evaluate(suite.claims, views, seed=suite.seed)


def task_run(result: RepResult) -> TaskRun:
    """Where and when one repetition ran and how it ended, as the store keeps it (an ok
    one's note, e.g. why its capture stayed on its worker, as its error)."""
    failure = result.client.failure
    status = "lost" if result.lost else "ok" if failure is None else failure.kind
    return TaskRun(result.task.rep, result.task.attempt, result.ran.worker,
                   result.ran.host or None, result.ran.started, result.ran.ended, status,
                   result.note if failure is None else failure.message)


def _finish_cell(store: ResultsStore, cell_id: int, outcome: CellOutcome) -> None:
    store.finish_cell(cell_id, outcome.status, outcome.error, CpuTimes(
        client=outcome.cpu["client"], server=outcome.cpu["server"],
        forwarder=outcome.cpu["forwarder"], saturated=bool(outcome.saturated),
        saturated_parts=tuple(outcome.saturated)))


def _store_metrics(
    store: ResultsStore, suite: Suite, cell_id: int, summary: CellSummary, outcome: CellOutcome
) -> None:
    if summary.ttfb is not None:
        for name in ("p50", "p90", "p99", "p999"):
            store.add_metric(cell_id, f"ttfb_{name}", getattr(summary.ttfb, name), "ms")
    if summary.total is not None:
        for name in ("p50", "p90", "p99", "p999"):
            store.add_metric(cell_id, f"total_{name}", getattr(summary.total, name), "ms")
    if summary.ttfb_rtts is not None:
        store.add_metric(cell_id, "ttfb_rtts", summary.ttfb_rtts, "RTT")
    if suite.workload.load == "open":
        store.add_metric(cell_id, "late_sends", summary.late_sends, "requests")
    if summary.goodput_mbps is not None:
        store.add_metric(cell_id, "goodput", summary.goodput_mbps, "Mbit/s")
    for direction, capacity in summary.link_capacity.items():
        if "offered" in capacity:  # what a delivery trace offered during the cell
            store.add_metric(cell_id, f"offered_{direction}", capacity["offered"], "Mbit/s")
    for key in ("down_dropped_loss", "down_dropped_queue", "down_dropped_droplist",
                "up_dropped_loss", "down_unseen_drops", "up_unseen_drops"):
        total = sum(rep.get(key, 0) for rep in outcome.link)
        store.add_metric(cell_id, f"link_{key}", total, "packets")
    if outcome.link:  # how many of its directions moved TCP super-packets (offload)
        store.add_metric(cell_id, "link_offloaded_directions",
                         max(rep.get("offloaded", 0) for rep in outcome.link), "directions")
    if summary.lateness:  # the link's own error during the cell (docs/netem.md#timing)
        store.add_metric(cell_id, "link_late_deliveries", summary.lateness["deliveries"],
                         "packets")
        store.add_metric(cell_id, "link_late_1ms", summary.lateness["over_1ms"], "packets")
        store.add_metric(cell_id, "link_late_worst_us", summary.lateness["worst_us"], "us")
    if outcome.namespace_cc:
        # Namespaces whose TCP default is not the asked one (the kernel refused the
        # change): grpcio's sockets there ran another congestion control.
        off = sum(cc != outcome.namespace_cc_asked for cc in outcome.namespace_cc.values())
        store.add_metric(cell_id, "namespace_cc_mismatch", off, "namespaces")
