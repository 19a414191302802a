"""Delay variation shaped as Linux netem shapes it: uniform, normal, pareto, paretonormal.

netem (`tc qdisc ... netem delay MU SIGMA [CORR] distribution NAME`, kernel
net/sched/sch_netem.c `tabledist()`) draws a uniform random element, looks it up in a
table of 4096 signed 16-bit entries (the distribution's inverse CDF, scaled by
NETEM_DIST_SCALE = 8192, so entries span about ±4) and adds `sigma * entry / 8192` to
MU; without a table it adds a uniform offset in [-SIGMA, +SIGMA]. The tables come from
iproute2's generators (netem/normal.c, pareto.c, paretonormal.c); this module rebuilds
them from the same formulas:

- normal: entry j is the standard normal quantile at (4j + 0.5) / 16384 (-3.84..+3.84);
- pareto: X = u^(-1/3) with u = 1 - j/4096 (Pareto, shape 3, scale 1: mean 1.5, sd
  sqrt(3)/2), entry = (X - 1.5) * 4/3, capped at 32767/8192 (a right tail to +4 SIGMA,
  a floor at -2/3 SIGMA);
- paretonormal: (normal + 3 * pareto) / 4 at the same j (integer division, as C does).

Correlation is netem's "next random element depending C% on the last one": the uniform
u_n = (1 - C) * fresh + C * u_(n-1), an AR(1) whose lag-1 autocorrelation is C. That is
not a true correlation of the delays ("an approximation", netem's own documentation):
the blended uniform narrows around 0.5, so the spread shrinks as C grows (for uniform
jitter the sd is multiplied by sqrt((1 - C) / (1 + C))) and a skewed table's mean moves.
Unlike the kernel, which takes the blended 32-bit value modulo the table size (so its low
bits, and the correlation with them, are all but lost), the blend here is mapped through
the table's whole range, so correlated delays really are correlated.
"""

from __future__ import annotations

import math
import random
from statistics import NormalDist

from protolab.netem.config import Distribution

TABLE_SIZE = 4096
DIST_SCALE = 8192  # NETEM_DIST_SCALE
_SHORT_MIN, _SHORT_MAX = -32768, 32767


def _clip(value: float) -> int:
    return max(_SHORT_MIN, min(_SHORT_MAX, int(round(value))))


def _normal_entry(j: int) -> int:
    return _clip(NormalDist().inv_cdf((4 * j + 0.5) / 16384) * DIST_SCALE)


def _pareto_entry(j: int) -> int:
    u = 1.0 - j / TABLE_SIZE  # 1 .. 1/4096: X grows with j, like every other table
    x = u ** (-1.0 / 3.0)
    return _clip(min((x - 1.5) * (4.0 / 3.0) * DIST_SCALE, _SHORT_MAX))


def _paretonormal_entry(j: int) -> int:
    total = _normal_entry(j) + 3 * _pareto_entry(j)
    return _clip(int(total / 4))  # C's division truncates toward zero


def table(distribution: Distribution) -> tuple[int, ...]:
    """netem's table for a shape (entries in units of SIGMA / 8192, ascending)."""
    entry = {Distribution.NORMAL: _normal_entry, Distribution.PARETO: _pareto_entry,
             Distribution.PARETONORMAL: _paretonormal_entry}[distribution]
    return tuple(entry(j) for j in range(TABLE_SIZE))


_TABLES: dict[Distribution, tuple[int, ...]] = {}


def _table(distribution: Distribution) -> tuple[int, ...]:
    if distribution not in _TABLES:
        _TABLES[distribution] = table(distribution)
    return _TABLES[distribution]


def table_moments(distribution: Distribution) -> tuple[float, float]:
    """(mean, sd) of a shape's offsets in units of SIGMA, uncorrelated: what the tests
    and the docs hold draws against. Uniform: the continuous [-1, 1] (sd 1/sqrt(3))."""
    if distribution is Distribution.UNIFORM:
        return 0.0, 1 / math.sqrt(3)
    values = [v / DIST_SCALE for v in _table(distribution)]
    mean = math.fsum(values) / len(values)
    var = math.fsum((v - mean) ** 2 for v in values) / len(values)
    return mean, math.sqrt(var)


class JitterSource:
    """Offsets (ns) to add to a packet's delay, one `draw()` per delivered packet."""

    __slots__ = ("_correlation", "_last", "_rng", "_sigma", "_table")

    def __init__(self, distribution: Distribution, correlation: float, sigma_ns: int,
                 rng: random.Random) -> None:
        self._table = None if distribution is Distribution.UNIFORM else _table(distribution)
        self._correlation = correlation
        self._sigma = sigma_ns
        self._rng = rng
        self._last = rng.random()  # netem seeds `last` with a random value too

    def uniform(self) -> float:
        """The (correlated) random element in [0, 1)."""
        fresh = self._rng.random()
        if self._correlation:
            fresh = (1.0 - self._correlation) * fresh + self._correlation * self._last
            self._last = fresh
        return fresh

    def draw(self) -> int:
        u = self.uniform()
        if self._table is None:
            return round(self._sigma * (2.0 * u - 1.0))
        entry = self._table[min(int(u * TABLE_SIZE), TABLE_SIZE - 1)]
        return round(self._sigma * entry / DIST_SCALE)
