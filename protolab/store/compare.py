"""Two stored runs side by side: median TTFB and total time of the cells they share, and
B / A with a bootstrap confidence interval.

Latencies come from `protolab.core.latency.phases`, as everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protolab.core.latency import phases
from protolab.core.record import RequestRecord
from protolab.core.stats import Ratio, median, median_ratio
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


def compare_runs(
    store: ResultsStore, run_a: int, run_b: int, *, rng_seed: int = 0
) -> list[CellComparison]:
    """Median TTFB and total time of cells with equal parameters (repetitions pooled).

    Only successful, non-warm-up samples count; ratios are B / A, so above 1 means
    run B was slower. Cells present in only one run are left out.
    """
    pooled_a = _pooled(store, run_a)
    pooled_b = _pooled(store, run_b)
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
        ))
    return result


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
