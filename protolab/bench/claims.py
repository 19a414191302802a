"""Claims, declared as data beside a suite's workload, and their verdicts from raw samples.

A claim names what the textbook (or RFC, or paper) predicts: a metric of one variant on
some links, and a relation to a number or to another variant — "≈ 3 RTT", "A faster than
B by at least 20 %", "A/B in [0.9, 1.1]". After a run the lab computes the metric from
the stored raw samples of each side, with a bootstrap confidence interval, and says:

- **holds** — the whole CI lies where the claim says;
- **refuted** — the whole CI lies on the other side;
- **inconclusive** — the CI straddles the line: these samples cannot decide.

A fourth relation, `slope`, fits the metric against the link's RTT over every cell of
the variant (the handshake claims: TTFB grows by k RTT per RTT, whatever the processing
cost in the intercept). A fifth, `ranks_differ`, asks whether the mean and a tail
percentile (`quantile`, p99 by default) of A and B rank them in opposite orders — the
"P99 matters more than the mean" claim — from bootstrap CIs of both ratios.

Nothing here runs a protocol or reads a database: `evaluate` takes the suite's claims,
its cells and their records, and is pure (seeded resampling), so it is tested on made-up
samples.

The parts, each importable from here as the rest of the lab does:
`claim_metrics.py` (`CellView`, `METRICS`: what a claim measures of a cell),
`claim_model.py` (`Claim`, `Side`, `RELATIONS`, `parse_claim`: a claim as a suite
declares it) and `claim_verdicts.py` (`Verdict`, `evaluate`, `decide`, `rank_verdict`:
judging it on the samples).
"""

from __future__ import annotations

from protolab.bench.claim_metrics import METRICS, MIGRATION_MOVED, CellView, MetricFn
from protolab.bench.claim_model import RELATIONS, Claim, Relation, Side, parse_claim
from protolab.bench.claim_verdicts import (
    Verdict,
    VerdictWord,
    decide,
    evaluate,
    rank_verdict,
)
from protolab.bench.claim_verdicts import (
    _matches as _matches,  # tests/bench/test_suite.py matches a claim's sides to cells
)

__all__ = [
    "METRICS", "MIGRATION_MOVED", "RELATIONS", "CellView", "Claim", "MetricFn", "Relation",
    "Side", "Verdict", "VerdictWord", "decide", "evaluate", "parse_claim", "rank_verdict",
]
