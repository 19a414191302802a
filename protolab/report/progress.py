"""Terminal output of a bench run: a progress bar with ETA, then the summary table."""

from __future__ import annotations

from types import TracebackType

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from protolab.bench.claims import Claim, Verdict
from protolab.bench.runner import Reporter
from protolab.bench.session import BenchResult
from protolab.bench.suite import Suite


class BenchProgress(Reporter):
    """One bar for the whole run (cell repetitions done of all, with ETA)."""

    def __init__(self, console: Console, name: str, total: int, *, quiet: bool = False) -> None:
        self._progress = Progress(
            TextColumn("{task.description}", style="bold", markup=False), BarColumn(),
            MofNCompleteColumn(), TextColumn("eta"), TimeRemainingColumn(),
            TextColumn("{task.fields[current]}", markup=False),
            console=console, disable=quiet, transient=False,
        )
        self._task = self._progress.add_task(name, total=total, current="")

    def __enter__(self) -> BenchProgress:
        self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def start(self, total: int) -> None:
        self._progress.update(self._task, total=total)

    def step(self, description: str) -> None:
        self._progress.update(self._task, advance=1, current=description)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def summary_table(suite: Suite, result: BenchResult) -> Table:
    """One row per cell. What every cell shares (profile, fixed overrides) goes in the
    title; only the swept link parameters get columns."""
    swept = sorted({k for s in result.summaries for k, v in s.link.items()
                    if suite.link.overrides.get(k) != v})
    fixed = ", ".join(f"{k}={v}" for k, v in suite.link.overrides.items())
    title = f"{suite.name} (run {result.run_id}, {result.status})\nlink: {suite.link.profile}"
    title += f" {fixed}" if fixed else ""
    table = Table(title=title, caption=f"expected: {' '.join(suite.expected.split())}")
    numeric = ["n", "ttfb p50", "p99", "total p50", "p99 ", "RTTs"]
    if not suite.workload.fresh_connection:
        numeric.append("Mbit/s")
    for column in ["cell", *swept, *numeric, "notes"]:
        table.add_column(column.strip(), justify="right" if column in numeric else "left",
                         overflow="fold")
    for s in result.summaries:
        notes = []
        if s.failed:
            notes.append(f"{s.failed} failed")
        if s.late_sends:
            notes.append(f"{s.late_sends} sent late")
        if s.saturated:
            notes.append("CPU-bound: " + ",".join(s.saturated))
        if s.lateness.get("over_1ms"):  # the link's own error (results show has more)
            notes.append(f"link late ≥1 ms ×{s.lateness['over_1ms']}")
        if s.error:
            notes.append(s.error[:60])
        row = [s.label, *(s.link.get(k, "-") for k in swept), str(s.samples),
               _ms(s.ttfb.p50 if s.ttfb else None), _ms(s.ttfb.p99 if s.ttfb else None),
               _ms(s.total.p50 if s.total else None), _ms(s.total.p99 if s.total else None),
               f"{s.ttfb_rtts:.2f}" if s.ttfb_rtts is not None else "-"]
        if not suite.workload.fresh_connection:
            row.append(f"{s.goodput_mbps:.2f}" if s.goodput_mbps is not None else "-")
        row.append("; ".join(notes))
        table.add_row(*row)
    if result.charts:
        table.caption = (table.caption or "") + f"\ncharts: {result.out_dir}"
    return table


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if unit in ("x", "RTT") else f"{value:.4g}"


_VERDICT_COLOUR = {"holds": "green", "refuted": "red", "inconclusive": "yellow"}


def _verdict_columns(table: Table) -> None:
    for column in ("claim", "where", "predicted", "measured", "CI", "verdict"):
        table.add_column(column, overflow="fold",
                         justify="right" if column in ("measured", "CI") else "left",
                         no_wrap=column in ("measured", "CI", "verdict"))


def _verdict_rows(table: Table, suite: Suite, verdicts: list[Verdict],
                  *, where: bool = True) -> None:
    claims = {c.id: c for c in suite.claims}
    for v in verdicts:
        claim = claims.get(v.claim)
        ci = ("-" if v.ci_low is None or v.ci_high is None
              else f"{_number(v.ci_low, v.unit)}–{_number(v.ci_high, v.unit)}")
        table.add_row(v.claim, where_words(v.conditions) if where else "",
                      _short_prediction(claim) if claim else "-",
                      f"{_number(v.value, v.unit)} {v.unit}", ci,
                      Text(v.verdict, style=_VERDICT_COLOUR[v.verdict]))


def verdict_table(suite: Suite, verdicts: list[Verdict]) -> Table:
    """One row per claim and link: where, what was predicted, what was measured (95% CI),
    the verdict. Fits 80 columns: the claims' words and sources are in the suite file
    (and in `results show --json`); the caption points there."""
    table = Table(title=f"claims of {suite.name}", box=box.SIMPLE_HEAD, pad_edge=False,
                  caption=Text(f"each claim's words and source: the [[claim]] tables of "
                               f"the {suite.name} suite; CI: 95%"))  # Text: no markup
    _verdict_columns(table)
    _verdict_rows(table, suite, verdicts)
    return table


def where_words(conditions: dict[str, str]) -> str:
    """The link a verdict was measured on, each value with its key: `delay 25ms loss 1%`;
    a key naming its unit puts the unit last (a slope's RTTs: `rtt 10, 20 ms`)."""
    words = []
    for key, value in conditions.items():
        name, _, unit = key.rpartition("_")
        if name and unit in ("ms", "s", "mbps", "pct"):
            words.append(f"{name} {value} {_UNIT_WORDS[unit]}")
        else:
            words.append(f"{key} {value}")
    # A value that is a list (`10, 20`) would run into the next key: then `;` between them.
    return ("; " if any("," in str(v) for v in conditions.values()) else " ").join(words) or "-"


_UNIT_WORDS = {"ms": "ms", "s": "s", "mbps": "Mbit/s", "pct": "%"}


def _short_prediction(claim: Claim) -> str:
    """What the claim predicts, in a few characters: `≈ 3 RTT/RTT`, `≤ 0.60x`, `in 0.7–0.8`."""
    low, high = claim.bounds()
    if claim.relation in ("approx", "slope"):
        per = "/RTT" if claim.relation == "slope" else ""
        return f"≈ {claim.value:g} {claim.unit}{per}"
    if claim.relation == "above":
        return f"≥ {low:g} {claim.unit}"
    if claim.relation == "below":
        return f"≤ {high:g} {claim.unit}"
    if claim.relation == "faster":
        return f"≤ {high:.2f}x"
    if claim.relation == "ranks_differ":
        return f"mean, p{claim.quantile * 100:g} rank apart"
    return f"in {low:g}–{high:g}x"


def claims_table(runs: list[tuple[Suite, list[Verdict], float]]) -> Table:
    """Every suite's verdicts in one table (what `protolab claims` prints), a section per
    suite headed by its name and how long it ran; the rows as after `bench` (80 columns:
    each claim's words and source are in its suite file, `--json` and the report)."""
    table = Table(title="claims of the lab's sources, judged from raw samples",
                  box=box.SIMPLE_HEAD, pad_edge=False,
                  caption=Text("each claim's words and source: the [[claim]] tables of its "
                               "suite (protolab/bench/suites/), --json, the report; CI: 95%"))
    _verdict_columns(table)
    for suite, verdicts, seconds in runs:
        # A suite whose claims were all judged on one link names it once, in its heading.
        links = {tuple(v.conditions.items()) for v in verdicts}
        one = where_words(verdicts[0].conditions) if len(links) == 1 else None
        heading = f"{suite.name} ({seconds:.0f} s)" + (f", {one}" if one else "")
        table.add_row(Text(heading, style="bold"), end_section=False)
        _verdict_rows(table, suite, verdicts, where=one is None)
        table.add_section()
    return table
