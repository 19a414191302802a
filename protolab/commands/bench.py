"""`protolab bench` and `protolab claims`: run suites over the emulated link, print what
they measured and how their claims fared. Registered by protolab/cli.py."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from protolab.bench.tables import MAX_REPETITIONS
from protolab.errors import ConfigError
from protolab.netem import userns
from protolab.netem.validation import Bound
from protolab.paths import check_output_dir
from protolab.terminal import make_console

console = make_console()
err_console = make_console(stderr=True)
COMMANDS: list[tuple[Callable[..., Any], dict[str, Any]]] = []
REPEAT = Bound("--repeat", 1, MAX_REPETITIONS, integer=True)
RETRIES = Bound("--retries", 0, 100, integer=True)


def command(**options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Collect a command for the CLI's app (which adds it with these options)."""
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        COMMANDS.append((fn, options))
        return fn

    return register


# The bundled suites' names, read from their folder (cheap: the CLI starts without
# importing the bench layer); protolab.bench.suite.BUNDLED orders the same set. Wrapped
# here, never inside a name ("app-hol"), and kept as wrapped ("\b": click's verbatim
# paragraph).
_SUITE_NAMES = "\n".join(textwrap.wrap(", ".join(sorted(
    p.stem for p in (Path(__file__).parents[1] / "bench" / "suites").glob("*.toml"))),
    width=76, break_on_hyphens=False, break_long_words=False))


@command(help="Run a benchmark suite over the emulated link: raw samples into the "
             "results database, a summary table, charts, the report. SUITE is a bundled "
             f"name or a TOML file.\n\n\b\nBundled suites:\n{_SUITE_NAMES}")
def bench(
    suite: Annotated[str, typer.Argument(help="Bundled suite name or path to a TOML file.")],
    db: Annotated[Path, typer.Option(help="Results database.")] = Path("results/protolab.db"),
    out: Annotated[Path, typer.Option(help="Where charts and run files go.")] = Path("results"),
    repeat: Annotated[
        int | None, typer.Option("--repeat", help="Repetitions (overrides the suite; "
                                 f"1..{MAX_REPETITIONS}, as in a suite file).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary.")] = False,
    capture: Annotated[bool, typer.Option(
        "--capture", help="Keep each cell's link pcap, TLS key log and QUIC qlog "
        "(OUT/run-N/captures; every cell then gets a link of its own).")] = False,
    scheduler: Annotated[str | None, typer.Option(
        help="Run the cells on the protolab workers of this Dask scheduler "
        "(tcp://HOST:PORT, docs/distributed.md) instead of here.")] = None,
    retries: Annotated[int, typer.Option(
        help="With --scheduler: run a repetition again, up to N times, when its worker "
        "is lost (each attempt is recorded; 0..100).")] = 0,
) -> None:
    import contextlib

    from protolab.bench.session import run_bench
    from protolab.bench.suite import expand, load_suite
    from protolab.report.progress import BenchProgress
    from protolab.store import ResultsStore

    if repeat is not None:
        REPEAT.check(repeat)
    RETRIES.check(retries)
    loaded = load_suite(suite)
    check_output_dir(out, "--out")
    if scheduler is None and userns.should_reexec():  # not root, but the unprivileged
        userns.reexec(sys.argv[1:])  # path can build the link (workers build it on Dask)
    remote: Any = contextlib.nullcontext(None)
    if scheduler is not None:  # Dask is imported on this path only
        from protolab.distributed.executor import DaskExecutor

        remote = DaskExecutor.connect(scheduler, retries=retries)  # captures come back
    elif retries:
        raise ConfigError("--retries needs --scheduler (a local run has no workers to lose)")
    with remote as executor, ResultsStore(db) as store:
        total = len(expand(loaded)) * ((repeat or loaded.repetitions) + loaded.warmup)
        with BenchProgress(err_console, loaded.name, total, quiet=as_json) as progress:
            result = run_bench(loaded, store, out, repetitions=repeat, reporter=progress,
                               capture=capture, executor=executor)
    if result.status == "complete" and result.out_dir is not None:
        from protolab.report.run_charts import draw_charts

        result.charts = draw_charts(loaded, result.cells, result.measured, result.out_dir)
    report = None
    if result.out_dir is not None:  # every run, finished or not: what it kept, in one file
        from protolab.commands.report import bench_report

        report = bench_report(db, result.run_id, result.out_dir, err_console)
    if as_json:
        print(json.dumps({"run": result.run_id, "status": result.status,
                          "cells": [s.to_json() for s in result.summaries],
                          "verdicts": [v.to_json() for v in result.verdicts],
                          "charts": [str(c) for c in result.charts],
                          "report": None if report is None else str(report)}, indent=1))
    else:
        from protolab.report.progress import summary_table, verdict_table

        console.print(summary_table(loaded, result))
        if result.verdicts:
            console.print(verdict_table(loaded, result.verdicts))
        if report is not None:
            console.print(f"report: {report}", highlight=False, soft_wrap=True)
    if result.status != "complete":
        err_console.print(f"run {result.run_id} {result.status}; finished cells are kept")
        raise typer.Exit(130 if result.status == "interrupted" else 1)


@command(help="Run the short version of every bundled experiment that declares claims "
             "and print one verdict table: each claim of the lab's sources, measured with "
             "its 95% CI, holds / refuted / inconclusive, and where (the link).")
def claims(
    suite: Annotated[list[str] | None, typer.Option(
        "--suite", help="Only these bundled suites (repeatable).")] = None,
    db: Annotated[Path, typer.Option(help="Results database.")] = Path("results/protolab.db"),
    out: Annotated[Path, typer.Option(help="Where charts and run files go.")] = Path("results"),
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable verdicts.")] = False,
) -> None:
    import time

    from protolab.bench.session import run_bench
    from protolab.bench.suite import BUNDLED, expand, load_suite
    from protolab.report.progress import BenchProgress, claims_table
    from protolab.store import ResultsStore

    names = suite or [n for n in BUNDLED if load_suite(n).claims and n != "demo"]
    unknown = [n for n in names if n not in BUNDLED]
    if unknown:
        raise ConfigError(f"unknown bundled suite(s) {unknown}", hint=f"choose from {BUNDLED}")
    suites = [load_suite(n, short=True) for n in names]
    check_output_dir(out, "--out")
    if not any(s.claims for s in suites):
        raise ConfigError(f"none of {names} declares claims")
    if userns.should_reexec():
        userns.reexec(sys.argv[1:])
    results = []
    with ResultsStore(db) as store:
        for loaded in suites:
            started = time.monotonic()
            total = len(expand(loaded)) * (loaded.repetitions + loaded.warmup)
            with BenchProgress(err_console, loaded.name, total, quiet=as_json) as progress:
                result = run_bench(loaded, store, out, reporter=progress)
            results.append((loaded, result, time.monotonic() - started))
            if result.status != "complete":
                break
    if as_json:
        print(json.dumps([{"suite": s.name, "run": r.run_id, "status": r.status,
                           "seconds": round(t, 1), "verdicts": [v.to_json() for v in r.verdicts]}
                          for s, r, t in results], indent=1))
    else:
        console.print(claims_table([(s, r.verdicts, t) for s, r, t in results]))
    stopped = [r for _, r, _ in results if r.status != "complete"]
    if stopped:
        err_console.print(f"run {stopped[0].run_id} {stopped[0].status}; finished cells are kept")
        raise typer.Exit(130 if stopped[0].status == "interrupted" else 1)
