"""The HTML report's data as JSON, embedded in the page for programs: what the page shows
(the raw samples are in the exports beside it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from protolab.core.stats import Summary
from protolab.report.html_data import Comparison, RunSection


def _summary_json(summary: Summary | None) -> dict[str, float] | None:
    if summary is None:
        return None
    return {"p50": summary.p50, "p90": summary.p90, "p99": summary.p99, "p999": summary.p999,
            "median_ci_low": summary.median_ci_low, "median_ci_high": summary.median_ci_high}


def report_json(sections: Sequence[RunSection],
                comparisons: Sequence[Comparison]) -> dict[str, Any]:
    """What the page shows, for programs (the raw samples are in the exports)."""
    return {
        "format": "protolab-report", "runs": [{
            "id": s.info.id, "suite": s.info.suite, "status": s.info.status,
            "manifest": s.info.manifest, "verdicts": s.verdicts, "exports": s.exports,
            "captures": s.captures, "charts": [c.title for c in s.charts],
            "distributed": s.distributed, "host_warning": s.host_warning,
            "cells": [{"index": c.index, "label": c.label, "link": c.link,
                       "status": c.status, "error": c.error, "ok": c.ok, "failed": c.failed,
                       "errors": c.errors, "ttfb_ms": _summary_json(c.ttfb),
                       "total_ms": _summary_json(c.total), "ttfb_rtts": c.ttfb_rtts,
                       "goodput_mbps": c.goodput_mbps, "cpu_s": c.cpu,
                       "cpu_saturated": c.saturated,
                       "cpu_saturated_parts": list(c.saturated_parts),
                       "hosts": c.hosts or None, "notes": list(c.notes)}
                      for c in s.cells]} for s in sections],
        "comparisons": [{"a": comp.a, "b": comp.b, "host_warning": comp.host_warning,
                         "cells": [{
            "params": row.params, "n_a": row.n_a, "n_b": row.n_b,
            "hosts_differ": list(row.hosts_differ),
            **{phase: {"a_ms": m.a_ms, "b_ms": m.b_ms,
                       "ratio": None if m.ratio is None else {
                           "value": m.ratio.value, "ci_low": m.ratio.ci_low,
                           "ci_high": m.ratio.ci_high}}
               for phase, m in (("ttfb", row.ttfb), ("total", row.total))}}
            for row in comp.rows]} for comp in comparisons],
    }
