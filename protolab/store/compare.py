"""Two stored runs side by side: median TTFB and total time of the cells they share, and
B / A with a bootstrap confidence interval.

Latencies come from `protolab.core.latency.phases`, as everywhere else. A comparison is
only as fair as its machines are alike: `host_warning` says, in one line, when the
compared cells ran on different hardware or software (each repetition's host is stored
since schema 6; an older run's cells count as run on the machine its manifest names).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protolab.core.latency import phases
from protolab.core.record import RequestRecord
from protolab.core.stats import Ratio, median, median_ratio
from protolab.store.manifest import host_differences
from protolab.store.results import ResultsStore
from protolab.store.schema import dumps


@dataclass(frozen=True)
class MedianComparison:
    """One phase of one matched cell: medians in ms, and B / A with a bootstrap CI."""

    a_ms: float | None
    b_ms: float | None
    ratio: Ratio | None  # None when either side has no successful sample


@dataclass(frozen=True)
class CellComparison:
    params: dict[str, Any]  # the cell parameters both runs share (repetition removed)
    n_a: int
    n_b: int
    ttfb: MedianComparison
    total: MedianComparison
    # What differs between the machines that ran this cell in A and in B (`CPU`,
    # `packages (aioquic)`, as `host_warning` words it); empty when they are alike.
    hosts_differ: tuple[str, ...] = ()


def compare_runs(
    store: ResultsStore, run_a: int, run_b: int, *, rng_seed: int = 0
) -> list[CellComparison]:
    """Median TTFB and total time of cells with equal parameters (repetitions pooled).

    Only successful, non-warm-up samples count; ratios are B / A, so above 1 means
    run B was slower. Cells present in only one run are left out.
    """
    pooled_a = _pooled(store, run_a)
    pooled_b = _pooled(store, run_b)
    hosts_a, hosts_b = _hosts(store, run_a), _hosts(store, run_b)
    result = []
    for key, (params, records_a) in pooled_a.items():
        if key not in pooled_b:
            continue
        records_b = pooled_b[key][1]
        result.append(CellComparison(
            params=params,
            n_a=len(records_a),
            n_b=len(records_b),
            ttfb=_compare(records_a, records_b, "ttfb_ms", rng_seed),
            total=_compare(records_a, records_b, "total_ms", rng_seed),
            hosts_differ=tuple(host_differences([*hosts_a[key], *hosts_b[key]])),
        ))
    return result


def host_warning(store: ResultsStore, run_a: int, run_b: int) -> str | None:
    """One line when the cells the two runs share ran on machines that differ in what
    can change a measurement (kernel, CPU, Python, packages, git revision); else None.
    With `run_a == run_b`, whether the run's own cells did."""
    hosts_a, hosts_b = _hosts(store, run_a), _hosts(store, run_b)
    hosts: dict[str, dict[str, Any]] = {}
    names: set[str] = set()
    for key in set(hosts_a) & set(hosts_b):
        for host in (*hosts_a[key], *hosts_b[key]):
            hosts.setdefault(dumps(host), host)
            names.add(str(host.get("hostname", "?")))
    differences = host_differences(list(hosts.values()))
    if not differences:
        return None
    which = "the compared cells" if run_a != run_b else f"the cells of run {run_a}"
    then = ("ratios may measure the machines" if run_a != run_b
            else "comparisons between its cells may measure the machines")
    return (f"warning: {which} ran on different hardware or versions "
            f"({', '.join(differences)} differ; hosts {', '.join(sorted(names))}): "
            f"{then}, not the protocols")


def host_of_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """A run manifest's machine in the shape of `manifest.host_description()`."""
    kernel = manifest.get("kernel") or {}
    python = manifest.get("python") or {}
    return {
        "hostname": manifest.get("host"),
        "kernel": {k: kernel.get(k) for k in ("release", "version", "machine")},
        "cpu": manifest.get("cpu"),
        "python": python.get("version") if isinstance(python, dict) else python,
        "packages": manifest.get("packages"),
        "git": manifest.get("git"),
    }


def _hosts(store: ResultsStore, run_id: int) -> dict[str, list[dict[str, Any]]]:
    """Cell parameters (repetition removed) -> the machines that ran those cells' attempts;
    a cell stored before schema 6 counts as run on the machine its run's manifest names."""
    fallback = host_of_manifest(store.run(run_id).manifest)
    out = {}
    for key, cell_ids in _keys(store, run_id).items():
        described = [t.host for cell_id in cell_ids for t in store.cell_tasks(cell_id)
                     if t.host is not None]
        out[key] = described or [fallback]
    return out


def _keys(store: ResultsStore, run_id: int) -> dict[str, list[int]]:
    """Cell parameters (repetition removed) -> cell ids, as `compare_runs` matches them."""
    out: dict[str, list[int]] = {}
    for cell in store.cells(run_id):
        key = dumps({k: v for k, v in cell.params.items() if k != "repetition"})
        out.setdefault(key, []).append(cell.id)
    return out


def _pooled(
    store: ResultsStore, run_id: int
) -> dict[str, tuple[dict[str, Any], list[RequestRecord]]]:
    pooled: dict[str, tuple[dict[str, Any], list[RequestRecord]]] = {}
    for cell in store.cells(run_id):
        params = {k: v for k, v in cell.params.items() if k != "repetition"}
        _, records = pooled.setdefault(dumps(params), (params, []))
        records.extend(r for r in store.samples(cell.id) if r.ok)
    return pooled


def _compare(
    a: list[RequestRecord], b: list[RequestRecord], phase: str, rng_seed: int
) -> MedianComparison:
    values_a = [v for v in (phases(r)[phase] for r in a) if v is not None]
    values_b = [v for v in (phases(r)[phase] for r in b) if v is not None]
    if not values_a or not values_b:
        return MedianComparison(
            a_ms=median(values_a) if values_a else None,
            b_ms=median(values_b) if values_b else None,
            ratio=None,
        )
    a_ms, b_ms = median(values_a), median(values_b)
    ratio = median_ratio(values_b, values_a, rng=rng_seed) if a_ms > 0 else None
    return MedianComparison(a_ms=a_ms, b_ms=b_ms, ratio=ratio)
