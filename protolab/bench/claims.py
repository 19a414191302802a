"""Claims, declared as data beside a suite's workload, and their verdicts from raw samples.

A claim names what the textbook (or RFC, or paper) predicts: a metric of one variant on
some links, and a relation to a number or to another variant — "≈ 3 RTT", "A faster than
B by at least 20 %", "A/B in [0.9, 1.1]". After a run the lab computes the metric from
the stored raw samples of each side, with a bootstrap confidence interval, and says:

A fourth relation, `slope`, fits the metric against the link's RTT over every cell of
the variant (the handshake claims: TTFB grows by k RTT per RTT, whatever the processing
cost in the intercept). A fifth, `ranks_differ`, asks whether the mean and a tail
percentile (`quantile`, p99 by default) of A and B rank them in opposite orders — the
"P99 matters more than the mean" claim — from bootstrap CIs of both ratios.

- **holds** — the whole CI lies where the claim says;
- **refuted** — the whole CI lies on the other side;
- **inconclusive** — the CI straddles the line: these samples cannot decide.

Nothing here runs a protocol or reads a database: `evaluate` takes the suite's claims,
its cells and their records, and is pure (seeded resampling), so it is tested on made-up
samples.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from protolab.core.latency import phases, total_ms, ttfb_ms
from protolab.core.record import MessageTiming, RequestRecord
from protolab.core.stats import fit_line, median, median_ci, median_ratio
from protolab.errors import ConfigError
from protolab.hol.model import StreamHol, others_ms, own_ms

Relation = Literal["approx", "above", "below", "faster", "ratio_in", "slope", "ranks_differ"]
VerdictWord = Literal["holds", "refuted", "inconclusive"]
RELATIONS: tuple[Relation, ...] = ("approx", "above", "below", "faster", "ratio_in", "slope",
                                   "ranks_differ")
_AGAINST_VALUE = ("approx", "above", "below", "slope")


@dataclass(frozen=True)
class CellView:
    """What a claim needs of a cell: its variant, its link's words and RTT, its records."""

    label: str
    link: Mapping[str, str]
    rtt_ms: float
    records: Sequence[RequestRecord]  # measured (no warm-up)
    hol: tuple[StreamHol, ...] = ()  # per stream and repetition, from the cell's captures


# metric name -> (unit, one value per sample of a cell)
MetricFn = Callable[[CellView], list[float]]


def _per_request(value: Callable[[RequestRecord], float | None]) -> MetricFn:
    def values(cell: CellView) -> list[float]:
        return [v for r in cell.records if r.ok and (v := value(r)) is not None]

    return values


def _in_rtts(value: Callable[[RequestRecord], float | None]) -> MetricFn:
    def values(cell: CellView) -> list[float]:
        if cell.rtt_ms <= 0:
            return []
        return [v / cell.rtt_ms for r in cell.records if r.ok and (v := value(r)) is not None]

    return values


def _phase(name: str) -> Callable[[RequestRecord], float | None]:
    return lambda record: phases(record)[name]


def _setup_ms(record: RequestRecord) -> float | None:
    """Connection setup: transport and TLS/QUIC handshakes, until the request can leave."""
    if record.handshake_ns is None or record.conn_start_ns is None:
        return None
    return (record.handshake_ns - record.conn_start_ns) / 1e6


def _per_message(value: Callable[[MessageTiming], int | None]) -> MetricFn:
    """One value per message of every ok record (push events, echo round trips), in ms."""
    def values(cell: CellView) -> list[float]:
        return [v / 1e6 for r in cell.records if r.ok for m in r.messages
                if (v := value(m)) is not None]

    return values


def _born_to_received(m: MessageTiming) -> int | None:
    """Push: from when the server produced the event to its arrival (one host, one clock)."""
    return None if m.born_ns is None else m.received_ns - m.born_ns


def _sent_to_received(m: MessageTiming) -> int | None:
    """Echo: the round trip on the client's clock; push: from when it left the server."""
    return None if m.sent_ns is None else m.received_ns - m.sent_ns


def _bytes_per_message(record: RequestRecord) -> float | None:
    """Everything the exchange cost on the wire (both ways, framing and headers, the
    upgrade or every poll), shared out over the messages it delivered."""
    if not record.messages:
        return None
    return (record.bytes_in + record.bytes_out) / len(record.messages)


def _transport_ms(counter: str) -> Callable[[RequestRecord], float | None]:
    """A microsecond counter of the record's `transport`, in ms (None when absent)."""
    def value(record: RequestRecord) -> float | None:
        us = record.transport.get(counter)
        return None if us is None else us / 1000

    return value


# A client's move mid-transfer (clients/migration.py) is kept in the record's transport
# counters under these keys, as moments on the one clock.
MIGRATION_MOVED = "migration_moved_ns"


def _since_move(key: str) -> Callable[[RequestRecord], float | None]:
    """ms from the client's move to `key` (recovered: the first response byte after it;
    path: the first datagram on the new port; reconnected: TCP+TLS done again)."""
    def value(record: RequestRecord) -> float | None:
        moved, then = record.transport.get(MIGRATION_MOVED), record.transport.get(key)
        return None if moved is None or then is None else (then - moved) / 1e6

    return value


def _refetched(record: RequestRecord) -> float | None:
    """Body bytes asked for again after the move (None: the request did not move)."""
    if MIGRATION_MOVED not in record.transport:
        return None
    return float(record.transport.get("migration_refetched_bytes", 0))


def _goodput(record: RequestRecord) -> float | None:
    ms = total_ms(record)
    return None if ms is None or ms <= 0 else record.body_bytes * 8 / (ms * 1000)


def _bursts(records: Sequence[RequestRecord]) -> list[float]:
    """ms from start to end of each burst: requests whose lifetimes overlap, chained (a
    closed-load repetition with every request issued at once is one burst). A burst with
    a failed request has no value: its end is not the page's."""
    out: list[float] = []
    ordered = sorted(records, key=lambda r: r.start_ns)
    i = 0
    while i < len(ordered):
        start, end, ok = ordered[i].start_ns, ordered[i].done_ns, ordered[i].ok
        j = i + 1
        while j < len(ordered) and end is not None and ordered[j].start_ns <= end:
            done = ordered[j].done_ns
            end = None if done is None else max(end, done)
            ok = ok and ordered[j].ok
            j += 1
        if ok and end is not None:
            out.append((end - start) / 1e6)
        i = j
    return out


def _hol(values: Callable[[Sequence[StreamHol]], list[float]], *, rtts: bool = False,
         ) -> MetricFn:
    def fn(cell: CellView) -> list[float]:
        if rtts and cell.rtt_ms <= 0:
            return []
        return [v / cell.rtt_ms if rtts else v for v in values(cell.hol)]

    return fn


METRICS: dict[str, tuple[str, MetricFn]] = {
    "ttfb": ("ms", _per_request(ttfb_ms)),
    "setup": ("ms", _per_request(_setup_ms)),
    "tls": ("ms", _per_request(_phase("tls_ms"))),
    "total": ("ms", _per_request(total_ms)),
    "ttfb_rtts": ("RTT", _in_rtts(ttfb_ms)),
    "total_rtts": ("RTT", _in_rtts(total_ms)),
    "bytes_in": ("bytes", _per_request(lambda r: float(r.bytes_in))),
    "bytes_out": ("bytes", _per_request(lambda r: float(r.bytes_out))),
    "bytes": ("bytes", _per_request(lambda r: float(r.bytes_in + r.bytes_out))),
    # Head-of-line delay per stream, measured from captures (protolab/hol): from another
    # stream's loss (streams it could stall), from its own (streams that lost data).
    "hol_others": ("ms", _hol(others_ms)),
    "hol_own": ("ms", _hol(own_ms)),
    "hol_others_rtts": ("RTT", _hol(others_ms, rtts=True)),
    "hol_own_rtts": ("RTT", _hol(own_ms, rtts=True)),
    # On a connection already open: what a call costs once its setup is paid (the
    # setup itself is `setup`, and the conn-per-request suite's subject).
    "total_reused": ("ms", _per_request(lambda r: None if r.new_connection else total_ms(r))),
    "body_bytes": ("bytes", _per_request(lambda r: float(r.body_bytes))),
    "event_latency": ("ms", _per_message(_born_to_received)),
    "message_latency": ("ms", _per_message(_sent_to_received)),
    "event_bytes": ("bytes", _per_request(_bytes_per_message)),
    # One value per burst of requests in flight together (a page's objects fetched at
    # once): from the first one's start to the last one's end.
    "page_total": ("ms", lambda cell: _bursts(cell.records)),
    # Body bits over the request's whole time (handshakes included, as the QUIC interop
    # runner's goodput case counts them).
    "goodput": ("Mbit/s", _per_request(_goodput)),
    # The client moved mid-transfer (migrate_after_bytes): how long until the response
    # came again, and what had to be fetched again. Requests that did not move have none.
    "migration_recovery": ("ms", _per_request(_since_move("migration_recovered_ns"))),
    "migration_recovery_rtts": ("RTT", _in_rtts(_since_move("migration_recovered_ns"))),
    "migration_path_rtts": ("RTT", _in_rtts(_since_move("migration_path_ns"))),
    "migration_reconnect_rtts": ("RTT", _in_rtts(_since_move("migration_reconnected_ns"))),
    "migration_refetched_bytes": ("bytes", _per_request(_refetched)),
    # Content coding (protolab/compression.py; body_bytes is the coded body on the wire):
    # the body after decoding, the server's encode time (its Server-Timing `enc`), and the
    # client's CPU time in the decoder. An uncoded body is its own decoded size.
    "decoded_bytes": ("bytes", _per_request(
        lambda r: float(r.transport.get("decoded_bytes", r.body_bytes)))),
    "server_encode_ms": ("ms", _per_request(_transport_ms("server_encode_us"))),
    "decode_ms": ("ms", _per_request(_transport_ms("decode_us"))),
}


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
        return [_slope(claim, sides_a, dict(where_a))]
    out = []
    for cell_a in sides_a:
        conditions = dict(cell_a.link)
        if claim.b is None:
            out.append(_against_value(claim, cell_a, conditions, seed))
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
        out.append(_against_other(claim, cell_a, matching[0], seed))
    return out


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
