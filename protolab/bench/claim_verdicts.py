"""A claim's verdicts from the raw samples of the cells it names: the statistic of each
side with a bootstrap confidence interval (seeded, so the same samples give the same
verdict), and where that interval lies against the claim's bounds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from protolab.bench.claim_metrics import METRICS, CellView
from protolab.bench.claim_model import Claim
from protolab.core.stats import fit_line, median, median_ci, median_ratio

VerdictWord = Literal["holds", "refuted", "inconclusive"]


@dataclass(frozen=True)
class Verdict:
    claim: str  # claim id
    conditions: dict[str, str]  # the link parameters this verdict was measured on
    verdict: VerdictWord
    value: float | None  # the statistic: median (approx) or ratio of medians A/B
    ci_low: float | None
    ci_high: float | None
    unit: str
    n_a: int
    n_b: int
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"claim": self.claim, "conditions": self.conditions, "verdict": self.verdict,
                "value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "unit": self.unit, "n_a": self.n_a, "n_b": self.n_b, "note": self.note}


def decide(ci_low: float, ci_high: float, low: float, high: float) -> VerdictWord:
    """holds: the CI inside [low, high]; refuted: outside it; inconclusive: across an edge."""
    if low <= ci_low and ci_high <= high:
        return "holds"
    if ci_high < low or ci_low > high:
        return "refuted"
    return "inconclusive"


def _matches(link: Mapping[str, str], where: Mapping[str, str]) -> bool:
    return all(link.get(k) == v for k, v in where.items())


def evaluate(claims: Sequence[Claim], cells: Sequence[CellView], *, seed: int = 0,
             ) -> list[Verdict]:
    """A verdict per claim and per link the claim applies to (one per matching pair)."""
    verdicts: list[Verdict] = []
    for claim in claims:
        verdicts += _evaluate_one(claim, cells, seed)
    return verdicts


def _evaluate_one(claim: Claim, cells: Sequence[CellView], seed: int) -> list[Verdict]:
    if claim.path is not None:
        cells = [dataclasses.replace(c, records=[r for r in c.records if r.path == claim.path])
                 for c in cells]
    where_a = {**claim.where, **claim.a.where}
    sides_a = [c for c in cells if c.label == claim.a.variant and _matches(c.link, where_a)]
    if not sides_a:
        return [Verdict(claim.id, dict(where_a), "inconclusive", None, None, None, claim.unit,
                        0, 0, note=f"no cell of {claim.a.variant} matches {where_a or 'any'}")]
    if claim.relation == "slope":
        return [_with_link_error(_slope(claim, sides_a, dict(where_a)), sides_a)]
    out = []
    for cell_a in sides_a:
        conditions = dict(cell_a.link)
        if claim.b is None:
            out.append(_with_link_error(_against_value(claim, cell_a, conditions, seed),
                                        [cell_a]))
            continue
        # B on the same link as A, unless B names its own link (A unaffected by B's loss).
        where_b = ({**claim.where, **claim.b.where} if claim.b.where
                   else {**cell_a.link, **claim.where})
        matching = [c for c in cells if c.label == claim.b.variant and _matches(c.link, where_b)]
        if not matching:
            out.append(Verdict(claim.id, conditions, "inconclusive", None, None, None,
                               claim.unit, 0, 0,
                               note=f"no cell of {claim.b.variant} matches {where_b}"))
            continue
        out.append(_with_link_error(_against_other(claim, cell_a, matching[0], seed),
                                    [cell_a, matching[0]]))
    return out


def _with_link_error(verdict: Verdict, used: Sequence[CellView]) -> Verdict:
    """The verdict, its note saying so when the link left deliveries ≥ 1 ms late in the
    cells it was measured on (a machine stall: docs/netem.md#timing). A median-based
    verdict rarely moves for a few; a tail-based one may."""
    late = sum(c.link_late_1ms for c in used)
    if not late:
        return verdict
    said = f"the link left {late} deliveries ≥ 1 ms late in these cells"
    return dataclasses.replace(verdict, note=f"{verdict.note}; {said}" if verdict.note else said)


def _against_value(claim: Claim, cell: CellView, conditions: dict[str, str],
                   seed: int) -> Verdict:
    values = METRICS[claim.metric][1](cell)
    if len(values) < 2:
        return Verdict(claim.id, conditions, "inconclusive", None, None, None, claim.unit,
                       len(values), 0, note="fewer than 2 samples")
    ci_low, ci_high = median_ci(values, rng=seed)
    low, high = claim.bounds()
    return Verdict(claim.id, conditions, decide(ci_low, ci_high, low, high), median(values),
                   ci_low, ci_high, claim.unit, len(values), 0)


def _slope(claim: Claim, cells: Sequence[CellView], conditions: dict[str, str]) -> Verdict:
    fn = METRICS[claim.metric][1]
    xs: list[float] = []
    ys: list[float] = []
    for cell in cells:
        values = fn(cell)
        xs += [cell.rtt_ms] * len(values)
        ys += values
    rtts = sorted({c.rtt_ms for c in cells})
    conditions = {**conditions, "rtt_ms": ", ".join(f"{r:g}" for r in rtts)}
    if len(rtts) < 2 or len(xs) < 3:
        return Verdict(claim.id, conditions, "inconclusive", None, None, None, claim.unit,
                       len(xs), 0, note="a slope needs samples at two RTTs or more")
    fit = fit_line(xs, ys)
    if fit.slope_ci_low is None or fit.slope_ci_high is None:
        return Verdict(claim.id, conditions, "inconclusive", fit.slope, None, None,
                       claim.unit, len(xs), 0, note="no residual degrees of freedom")
    low, high = claim.bounds()
    return Verdict(claim.id, conditions, decide(fit.slope_ci_low, fit.slope_ci_high, low, high),
                   fit.slope, fit.slope_ci_low, fit.slope_ci_high, claim.unit, len(xs), 0,
                   note=f"intercept {fit.intercept:.1f} ms (processing), r² {fit.r2:.3f}")


def _against_other(claim: Claim, cell_a: CellView, cell_b: CellView, seed: int) -> Verdict:
    fn = METRICS[claim.metric][1]
    a, b = fn(cell_a), fn(cell_b)
    conditions = dict(cell_a.link)
    if cell_b.link != cell_a.link:
        conditions = {**conditions, **{f"{claim.b.variant if claim.b else 'b'} {k}": v
                                       for k, v in cell_b.link.items()
                                       if cell_a.link.get(k) != v}}
    if claim.relation == "ranks_differ":
        return _ranks(claim, a, b, conditions, seed)
    if len(a) < 2 or len(b) < 2 or median(b) == 0:
        return Verdict(claim.id, conditions, "inconclusive", None, None, None, claim.unit,
                       len(a), len(b), note="too few samples (or B's median is 0)")
    ratio = median_ratio(a, b, rng=seed)
    low, high = claim.bounds()
    return Verdict(claim.id, conditions, decide(ratio.ci_low, ratio.ci_high, low, high),
                   ratio.value, ratio.ci_low, ratio.ci_high, claim.unit, len(a), len(b))


_RESAMPLES = 1000
_CHUNK = 100  # resamples drawn at once (memory: _CHUNK x samples floats)


def _mean_and_tail(values: Sequence[float], q: float, rng: np.random.Generator,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap means and q-quantiles of `values`, from the same resamples."""
    data = np.asarray(values, dtype=float)
    means, tails = [], []
    for _ in range(_RESAMPLES // _CHUNK):
        picked = data[rng.integers(0, len(data), size=(_CHUNK, len(data)))]
        means.append(picked.mean(axis=1))
        tails.append(np.quantile(picked, q, axis=1))
    return np.concatenate(means), np.concatenate(tails)


def _ratio_ci(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(b > 0, a / np.where(b > 0, b, 1), np.inf)
    low, high = np.quantile(ratios, [0.025, 0.975])
    return float(low), float(high)


def rank_verdict(mean_ci: tuple[float, float], tail_ci: tuple[float, float],
                 ) -> tuple[VerdictWord, tuple[float, float]]:
    """Whether the mean and the tail rank A and B differently, from the 95% CIs of A/B's
    mean ratio and tail ratio; with the tail ratio's CI turned so that > 1 means "the
    side with the lower mean has the higher tail". holds: the mean ranks them one way
    and the tail the other; refuted: both rank them the same way; inconclusive: either
    cannot tell them apart."""
    (m_low, m_high), (t_low, t_high) = mean_ci, tail_ci
    if m_high < 1:  # A has the lower mean: ranks differ if A's tail is the higher
        turned = (t_low, t_high)
    elif m_low > 1:  # B has the lower mean: ranks differ if B's tail is the higher
        turned = (1 / t_high if t_high > 0 else math.inf, 1 / t_low if t_low > 0 else math.inf)
    else:
        return "inconclusive", (t_low, t_high)
    return decide(turned[0], turned[1], 1.0, math.inf), turned


def _ranks(claim: Claim, a: Sequence[float], b: Sequence[float], conditions: dict[str, str],
           seed: int) -> Verdict:
    q = claim.quantile
    if len(a) < 2 or len(b) < 2 or float(np.mean(b)) == 0 or float(np.quantile(b, q)) == 0:
        return Verdict(claim.id, conditions, "inconclusive", None, None, None, claim.unit,
                       len(a), len(b), note="too few samples (or B's mean or tail is 0)")
    rng = np.random.default_rng(seed)
    means_a, tails_a = _mean_and_tail(a, q, rng)
    means_b, tails_b = _mean_and_tail(b, q, rng)
    mean_ratio = float(np.mean(a)) / float(np.mean(b))
    tail_ratio = float(np.quantile(a, q)) / float(np.quantile(b, q))
    mean_ci, tail_ci = _ratio_ci(means_a, means_b), _ratio_ci(tails_a, tails_b)
    verdict, (low, high) = rank_verdict(mean_ci, tail_ci)
    turned = tail_ratio if mean_ratio <= 1 else 1 / tail_ratio
    pq = f"p{q * 100:g}"
    note = (f"{claim.a.variant}/{claim.b.variant if claim.b else 'b'}: mean {mean_ratio:.3g} "
            f"[{mean_ci[0]:.3g}-{mean_ci[1]:.3g}], {pq} {tail_ratio:.3g} "
            f"[{tail_ci[0]:.3g}-{tail_ci[1]:.3g}]; value: the {pq} ratio of the side with "
            "the lower mean to the other (> 1: the ranks differ)")
    return Verdict(claim.id, conditions, verdict, turned, low, high, claim.unit, len(a), len(b),
                   note=note)
