"""`protolab results ...`: list, show, export and compare stored runs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from protolab.bench.stats import Ratio, summarize
from protolab.core.latency import phases
from protolab.core.record import RequestRecord
from protolab.errors import ConfigError
from protolab.store import (
    DEFAULT_DB,
    CellInfo,
    MedianComparison,
    ResultsStore,
    RunInfo,
    compare_runs,
    export_run,
)
from protolab.terminal import make_console, styled

app = typer.Typer(
    help="Stored benchmark runs: list them, show one, export it, compare two.",
    no_args_is_help=True,
)
console = make_console()

DbOpt = Annotated[Path, typer.Option("--db", help="Results database.")]
RunArg = Annotated[int, typer.Argument(help="Run id (see `protolab results list`).")]


def _open(db: Path) -> ResultsStore:
    return ResultsStore(db, create=False)


@app.command("list", help="Every run in the database, oldest first.")
def list_runs(db: DbOpt = DEFAULT_DB) -> None:
    with _open(db) as store:
        runs = store.runs()
    table = Table(title=f"runs in {db}")
    for column in ("run", "suite", "status", "started (UTC)", "duration", "cells ok",
                   "samples", "git"):
        table.add_column(column, justify="right" if column in ("run", "samples") else "left")
    for run in runs:
        table.add_row(
            str(run.id), run.suite, _status(run.status), _when(run),
            _duration(run.duration_s), f"{run.cells_ok}/{run.cells}", str(run.samples),
            _git(run.manifest),
        )
    console.print(table)
    if not runs:
        console.print("no runs yet: `protolab bench SUITE` records one", highlight=False)


@app.command(help="One run: its manifest and a row per cell with percentiles in ms.")
def show(run: RunArg, db: DbOpt = DEFAULT_DB) -> None:
    with _open(db) as store:
        info = store.run(run)
        cells = store.cells(run)
        rows = [(cell, store.samples(cell.id), store.metrics(cell.id)) for cell in cells]
    manifest = info.manifest
    packages = manifest.get("packages", {})
    versions = ", ".join(f"{k} {v}" for k, v in packages.items() if v and k != "protolab")
    lines = [
        f"run {info.id}: {info.suite}, {_status(info.status)}, started {_when(info)} UTC, "
        f"{_duration(info.duration_s)}",
        f"protolab {manifest.get('lab_version', '?')} ({_git(manifest)}), "
        f"Python {manifest.get('python', {}).get('version', '?')}",
        f"kernel {manifest.get('kernel', {}).get('release', '?')}, "
        f"CPU {manifest.get('cpu', {}).get('model', '?')} x{manifest.get('cpu', {}).get('count')}",
    ]
    if versions:
        lines.append(versions)
    if manifest.get("seeds"):
        lines.append(f"seeds: {_params(manifest['seeds'])}")
    console.print("\n".join(lines), highlight=False, soft_wrap=True)

    table = Table(title=f"cells of run {info.id} (times in ms; CI: 95% bootstrap of the median)")
    for column in ("#", "parameters", "status", "n", "ttfb p50", "ttfb CI", "ttfb p99",
                   "total p50", "total p99", "cpu s c/s/f", "notes"):
        table.add_column(column, justify="left" if column in (
            "parameters", "status", "notes", "ttfb CI") else "right")
    for cell, records, metrics in rows:
        ttfb = _summary(records, "ttfb_ms")
        total = _summary(records, "total_ms")
        notes = [f"{m.name}={m.value:g} {m.unit}" for m in metrics]
        if cell.cpu and cell.cpu.saturated:
            notes.insert(0, "CPU saturated")
        if cell.error:
            notes.append(cell.error)
        table.add_row(
            str(cell.index), _params(cell.params), _status(cell.status),
            str(sum(r.ok for r in records)),
            _fmt(ttfb, "p50"), _ci(ttfb), _fmt(ttfb, "p99"),
            _fmt(total, "p50"), _fmt(total, "p99"), _cpu(cell), "; ".join(notes),
        )
    console.print(table)


@app.command(help="Write a run's raw samples as CSV (a row per request) or JSON (nested).")
def export(
    run: RunArg,
    format: Annotated[str, typer.Option("--format", "-f", help="csv or json.")] = "csv",
    out: Annotated[Path | None, typer.Option(help="File to write (default: stdout).")] = None,
    db: DbOpt = DEFAULT_DB,
) -> None:
    if format not in ("csv", "json"):
        raise ConfigError(f"--format must be csv or json, not {format!r}")
    with _open(db) as store:
        store.run(run)
        if out is None:
            export_run(store, run, "csv" if format == "csv" else "json", sys.stdout)
        else:
            export_run(store, run, "csv" if format == "csv" else "json", out)
            console.print(f"wrote {out}", highlight=False, soft_wrap=True)


@app.command(help="Median TTFB and total time of the cells two runs share; ratio = B / A.")
def compare(run_a: RunArg, run_b: RunArg, db: DbOpt = DEFAULT_DB) -> None:
    with _open(db) as store:
        suite_a, suite_b = store.run(run_a).suite, store.run(run_b).suite
        comparison = compare_runs(store, run_a, run_b)
    table = Table(
        title=f"run {run_a} ({suite_a}) vs run {run_b} ({suite_b}): medians in ms",
        caption="ratio B/A with its 95% bootstrap CI; above 1: run B slower",
    )
    for column in ("parameters", "n A/B", "ttfb A", "ttfb B", "ttfb B/A",
                   "total A", "total B", "total B/A"):
        table.add_column(column, justify="left" if column == "parameters" else "right")
    for row in comparison:
        table.add_row(
            _params(row.params), f"{row.n_a}/{row.n_b}",
            *_compared(row.ttfb), *_compared(row.total),
        )
    console.print(table)
    if not comparison:
        console.print("the two runs share no cell parameters", highlight=False)


def _summary(records: list[RequestRecord], phase: str) -> dict[str, float] | None:
    values = [v for v in (phases(r)[phase] for r in records if r.ok) if v is not None]
    if not values:
        return None
    summary = summarize(values, rng_seed=0)
    return {"p50": summary.p50, "p99": summary.p99, "low": summary.median_ci_low,
            "high": summary.median_ci_high}


def _fmt(summary: dict[str, float] | None, key: str) -> str:
    return "-" if summary is None else f"{summary[key]:.2f}"


def _ci(summary: dict[str, float] | None) -> str:
    return "-" if summary is None else f"{summary['low']:.2f}–{summary['high']:.2f}"


def _compared(phase: MedianComparison) -> tuple[str, str, str]:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    return ms(phase.a_ms), ms(phase.b_ms), _ratio(phase.ratio)


def _ratio(ratio: Ratio | None) -> str:
    if ratio is None:
        return "-"
    return f"{ratio.value:.2f} [{ratio.ci_low:.2f}, {ratio.ci_high:.2f}]"


def _params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())


def _status(status: str) -> Text:
    colour = {"complete": "green", "ok": "green", "running": "cyan"}.get(status, "red")
    return styled(status, colour)


def _when(run: RunInfo) -> str:
    return run.started_at.strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


def _git(manifest: dict[str, Any]) -> str:
    git = manifest.get("git")
    if not git:
        return "-"
    if git.get("revision") is None:
        return str(git.get("note", "-"))
    return str(git.get("revision", "?"))[:10] + ("+dirty" if git.get("dirty") else "")


def _cpu(cell: CellInfo) -> str:
    if cell.cpu is None:
        return "-"
    parts = (cell.cpu.client, cell.cpu.server, cell.cpu.forwarder)
    return "/".join("-" if p is None else f"{p:.2f}" for p in parts)
