"""A claim as a suite declares it: its sides, its relation and the bounds that relation
sets; and `parse_claim`, which reads one `[[claim]]` table and names the key of any
mistake (protolab/bench/claims.py describes the relations).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from protolab.bench.claim_metrics import METRICS
from protolab.errors import ConfigError

Relation = Literal["approx", "above", "below", "faster", "ratio_in", "slope", "ranks_differ"]
RELATIONS: tuple[Relation, ...] = ("approx", "above", "below", "faster", "ratio_in", "slope",
                                   "ranks_differ")
_AGAINST_VALUE = ("approx", "above", "below", "slope")


@dataclass(frozen=True)
class Side:
    """One side of a claim: a variant, on the links matching `where`."""

    variant: str
    where: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Claim:
    id: str
    text: str  # the claim as its source words it
    source: str  # where it comes from (RFC, paper, notes)
    metric: str  # a key of METRICS
    relation: Relation
    a: Side
    b: Side | None = None  # the other side (faster, ratio_in); None: against `value`
    value: float | None = None  # approx: the predicted value, in the metric's unit
    tolerance: float = 0.1  # approx: relative band around `value`
    by: float = 0.0  # faster: A's median at most (1 - by) x B's
    low: float | None = None  # ratio_in: A/B within [low, high]
    high: float | None = None
    where: Mapping[str, str] = field(default_factory=dict)  # conditions for both sides
    path: str | None = None  # only the requests of this path (the fast ones of a page)
    quantile: float = 0.99  # ranks_differ: the tail percentile set against the mean

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["where"] = dict(self.where)
        return data

    @property
    def unit(self) -> str:
        if self.relation == "slope":
            return "RTT"  # ms of the metric per ms of round trip
        return "x" if self.b is not None else METRICS[self.metric][0]

    def bounds(self) -> tuple[float, float]:
        """The interval the statistic must lie in for the claim to hold."""
        if self.relation in ("approx", "slope") and self.value is not None:
            return self.value * (1 - self.tolerance), self.value * (1 + self.tolerance)
        if self.relation == "above" and self.value is not None:
            return self.value, math.inf
        if self.relation == "below" and self.value is not None:
            return -math.inf, self.value
        if self.relation == "faster":
            return 0.0, 1.0 - self.by
        if self.relation == "ratio_in" and self.low is not None and self.high is not None:
            return self.low, self.high
        if self.relation == "ranks_differ":
            # The tail ratio, turned so that > 1 means "the side with the lower mean has
            # the higher tail" (see _ranks).
            return 1.0, math.inf
        raise ValueError(f"claim {self.id}: {self.relation} without its bounds")

    def prediction(self) -> str:
        if self.relation == "ranks_differ":
            return (f"mean and p{self.quantile * 100:g} of {self.metric} rank "
                    f"{self.a.variant} and {self.b.variant if self.b else '?'} differently")
        lo, hi = self.bounds()
        if self.relation == "approx":
            return f"{self.metric} ≈ {self.value:g} {self.unit} (±{self.tolerance:.0%})"
        if self.relation == "slope":
            return (f"{self.metric} grows {self.value:g} RTT per RTT "
                    f"(±{self.tolerance:.0%})")
        if self.relation in ("above", "below"):
            sign = "≥" if self.relation == "above" else "≤"
            return f"{self.metric} {sign} {self.value:g} {self.unit}"
        if self.relation == "faster":
            return (f"{self.a.variant} {self.metric} ≤ {hi:.2f} x "
                    f"{self.b.variant if self.b else '?'}")
        return f"{self.metric} {self.a.variant}/{self.b.variant if self.b else '?'} in " \
               f"[{lo:g}, {hi:g}]"


# --- parsing (a suite's [[claim]] tables) ---------------------------------------------------

_CLAIM_KEYS = {"id", "text", "source", "metric", "relation", "a", "b", "value", "tolerance",
               "by", "low", "high", "where", "a_where", "b_where", "path", "quantile"}


def parse_claim(table: Any, where: str, labels: Sequence[str]) -> Claim:
    """One [[claim]] table; every mistake is a ConfigError naming the key."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    unknown = sorted(set(table) - _CLAIM_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}",
                          hint=f"allowed: {sorted(_CLAIM_KEYS)}")

    def text(key: str, default: str | None = None) -> str:
        value = table.get(key, default)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: {key} must be a non-empty string")
        return value

    def number(key: str, default: float | None = None) -> float | None:
        value = table.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
                value):
            raise ConfigError(f"{where}: {key} must be a finite number, got {value!r}")
        return float(value)

    def link_filter(key: str) -> dict[str, str]:
        value = table.get(key, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {key} must be a table of link parameters")
        return {str(k): str(v) for k, v in value.items()}

    def side(key: str) -> Side | None:
        if key not in table:
            return None
        label = text(key)
        if label not in labels:
            raise ConfigError(f"{where}: {key} = {label!r} is not a variant of this suite",
                              hint=f"variants: {', '.join(labels)}")
        return Side(label, link_filter(f"{key}_where"))

    metric = text("metric")
    if metric not in METRICS:
        raise ConfigError(f"{where}: unknown metric {metric!r}",
                          hint=f"choose one of {', '.join(METRICS)}")
    relation = text("relation")
    if relation not in RELATIONS:
        raise ConfigError(f"{where}: unknown relation {relation!r}",
                          hint=f"choose one of {', '.join(RELATIONS)}")
    a = side("a")
    if a is None:
        raise ConfigError(f"{where}: a (the variant the claim is about) is required")
    b = side("b")
    claim = Claim(
        id=text("id"), text=text("text"), source=text("source"), metric=metric,
        relation=relation,  # checked against RELATIONS above
        a=a, b=b, value=number("value"), tolerance=number("tolerance", 0.1) or 0.0,
        by=number("by", 0.0) or 0.0, low=number("low"), high=number("high"),
        where=link_filter("where"),
        path=text("path") if "path" in table else None,
        quantile=number("quantile", 0.99) or 0.0,
    )
    if relation in _AGAINST_VALUE and (claim.value is None or b is not None):
        raise ConfigError(f"{where}: relation {relation} needs value (and no b)")
    if relation == "slope" and METRICS[metric][0] != "ms":
        raise ConfigError(f"{where}: a slope against RTT needs a metric in ms (ttfb, total)")
    if relation == "ranks_differ" and (b is None or not 0.5 < claim.quantile < 1):
        raise ConfigError(f"{where}: relation ranks_differ needs b (the other variant) and "
                          "a quantile in (0.5, 1), e.g. 0.99")
    if relation in ("faster", "ratio_in") and b is None:
        raise ConfigError(f"{where}: relation {relation} needs b (the other variant)")
    if relation == "ratio_in" and (claim.low is None or claim.high is None
                                   or claim.low > claim.high):
        raise ConfigError(f"{where}: relation ratio_in needs low <= high")
    if not 0 <= claim.tolerance < 1 or not 0 <= claim.by < 1:
        raise ConfigError(f"{where}: tolerance and by are fractions in [0, 1)")
    return claim
