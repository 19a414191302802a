"""Statistics over raw samples: pure functions, randomness passed in, no sockets, no clocks.

Units. Every function works in the caller's unit (the lab passes milliseconds, or
link RTTs for TTFB/RTT). Histograms count integers, so values are recorded scaled by
`SCALE` (1000: milliseconds become integer microseconds) with 3 significant digits:
a percentile is exact to within 0.1% of its value or 1/SCALE, whichever is larger.
The largest recordable value is `MAX_VALUE` (one hour in milliseconds); larger or
negative values raise `ValueError` rather than being clipped silently.

Percentiles follow HDR's nearest-rank rule (the smallest recorded value with at least
p% of the samples at or below it) and are reported as the middle of their bucket.
Mean, sd, min and max are computed exactly from the values, not from the histogram.

Empty input raises `ValueError`: a cell with no successful sample has no summary, and
the caller says so rather than printing NaNs.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from hdrh.histogram import HdrHistogram

SCALE = 1000  # histogram counts value * SCALE as an integer (ms -> µs)
SIGNIFICANT_DIGITS = 3
MAX_VALUE = 3_600_000.0  # one hour, in milliseconds
_MAX_SCALED = int(MAX_VALUE * SCALE)

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95

class Histogram:
    """A mergeable HDR histogram of non-negative values (see the module doc for units)."""

    def __init__(self) -> None:
        self._hdr = HdrHistogram(1, _MAX_SCALED, SIGNIFICANT_DIGITS)

    @classmethod
    def of(cls, values: Iterable[float]) -> Histogram:
        histogram = cls()
        for value in values:
            histogram.record(value)
        return histogram

    def record(self, value: float, count: int = 1) -> None:
        if not math.isfinite(value) or value < 0 or value > MAX_VALUE:
            raise ValueError(f"cannot record {value!r}: values must be within 0..{MAX_VALUE:g}")
        self._hdr.record_value(round(value * SCALE), count)

    def merge(self, other: Histogram) -> None:
        """Add `other`'s counts to this histogram (e.g. repetitions of one cell)."""
        self._hdr.add(other._hdr)

    @classmethod
    def merged(cls, histograms: Iterable[Histogram]) -> Histogram:
        total = cls()
        for histogram in histograms:
            total.merge(histogram)
        return total

    @property
    def count(self) -> int:
        return int(self._hdr.get_total_count())

    def percentile(self, p: float) -> float:
        if not 0 <= p <= 100:
            raise ValueError(f"percentile must be within 0..100, not {p}")
        if self.count == 0:
            raise ValueError("percentile of an empty histogram")
        # HDR answers with its bucket's upper edge; the bucket's middle halves the error.
        value = int(self._hdr.get_value_at_percentile(p))
        low = int(self._hdr.get_lowest_equivalent_value(value))
        return (low + value) / 2 / SCALE

    def encode(self) -> str:
        """A compact text form (HDR's compressed encoding, base64) for storing or sending."""
        raw: bytes = self._hdr.encode()
        return base64.b64encode(raw).decode("ascii")

    @classmethod
    def decode(cls, text: str) -> Histogram:
        histogram = cls()
        histogram._hdr = HdrHistogram.decode(base64.b64decode(text))
        return histogram


@dataclass(frozen=True)
class Summary:
    """What a set of samples looks like, in the unit of the values given to `summarize`."""

    n: int
    mean: float
    sd: float  # sample standard deviation (n - 1); 0.0 when n == 1
    p50: float
    p90: float
    p99: float
    p999: float
    min: float
    max: float
    median_ci_low: float  # bootstrap percentile interval of the median (95% by default)
    median_ci_high: float

    def to_json(self) -> dict[str, float | int]:
        return asdict(self)


def summarize(
    values: Sequence[float],
    *,
    rng_seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Summary:
    """Percentiles (HDR), exact mean/sd/min/max and a bootstrap CI of the median."""
    data = _as_array(values, "summarize")
    histogram = Histogram.of(data.tolist())
    low, high = median_ci(data, rng=rng_seed, resamples=resamples, confidence=confidence)
    return Summary(
        n=int(data.size),
        mean=float(data.mean()),
        sd=float(data.std(ddof=1)) if data.size > 1 else 0.0,
        p50=histogram.percentile(50),
        p90=histogram.percentile(90),
        p99=histogram.percentile(99),
        p999=histogram.percentile(99.9),
        min=float(data.min()),
        max=float(data.max()),
        median_ci_low=low,
        median_ci_high=high,
    )


def median(values: Sequence[float]) -> float:
    return float(np.median(_as_array(values, "median")))


def bootstrap_medians(
    values: Sequence[float] | np.ndarray, *, rng: np.random.Generator | int, resamples: int
) -> np.ndarray:
    """`resamples` medians of resamples (with replacement, size n) of `values`.

    Drawn exactly but without materialising the resamples: resampled indices are
    ceil(n * U) for uniform U, which is monotone in U, so the k-th smallest resampled
    value is sorted[ceil(n * U_(k)) - 1], and the k-th order statistic of n uniforms
    is Beta(k, n - k + 1). The next one is U_(k) + (1 - U_(k)) * Beta(1, n - k).
    O(resamples) whatever n is, so a 100k-sample cell costs the same as a 100-sample one.
    """
    data = np.sort(_as_array(values, "bootstrap"))
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    n = data.size
    k = (n + 1) // 2  # the lower middle order statistic (1-based)
    u_k = generator.beta(k, n - k + 1, size=resamples)
    lower: np.ndarray = data[_order_index(u_k, n)]
    if n % 2:
        return lower
    u_next = u_k + (1.0 - u_k) * generator.beta(1, n - k, size=resamples)
    upper = data[_order_index(u_next, n)]
    result: np.ndarray = (lower + upper) / 2.0
    return result


def _order_index(u: np.ndarray, n: int) -> np.ndarray:
    index: np.ndarray = np.clip(np.ceil(u * n).astype(np.int64) - 1, 0, n - 1)
    return index


def median_ci(
    values: Sequence[float] | np.ndarray,
    *,
    rng: np.random.Generator | int = 0,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
) -> tuple[float, float]:
    """Bootstrap percentile-method confidence interval for the median."""
    _check_confidence(confidence)
    medians = bootstrap_medians(values, rng=rng, resamples=resamples)
    return _interval(medians, confidence)


def quantile_ci(
    values: Sequence[float], q: float, *, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float, bool]:
    """A distribution-free confidence interval for the q-quantile (0 < q < 1): the order
    statistics x_(l) and x_(u) with P(x_(l) <= true quantile <= x_(u)) >= `confidence`,
    since the count of samples below the quantile is Binomial(n, q). The third value
    says whether the upper end is a bound; False when the sample is too small for one
    (100 samples cannot bound a p99 at 95%: the interval reaches past the maximum, which
    is then given instead). Exact binomial tails, no normal approximation."""
    _check_confidence(confidence)
    if not 0 < q < 1:
        raise ValueError(f"q {q} is not in (0, 1)")
    data = sorted(_as_array(values, "quantile_ci").tolist())
    n = len(data)
    tail = (1 - confidence) / 2
    # cdf[j] = P(B <= j) for B ~ Binomial(n, q), from log-pmfs (no overflow at large n).
    log_q, log_p = math.log(q), math.log1p(-q)
    cdf, total = [], 0.0
    for j in range(n + 1):
        total += math.exp(math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1)
                          + j * log_q + (n - j) * log_p)
        cdf.append(min(total, 1.0))
    # Lower rank l (1-based): the largest with P(B < l) <= tail; upper u: the smallest
    # with P(B >= u) <= tail, i.e. cdf[u - 1] >= 1 - tail.
    lower = max([j for j in range(1, n + 1) if cdf[j - 1] <= tail], default=1)
    upper = next((u for u in range(1, n + 1) if cdf[u - 1] >= 1 - tail), None)
    bounded = upper is not None
    return data[lower - 1], data[(upper or n) - 1], bounded


@dataclass(frozen=True)
class Ratio:
    """median(a) / median(b) with a bootstrap confidence interval."""

    value: float
    ci_low: float
    ci_high: float

    def to_json(self) -> dict[str, float]:
        return asdict(self)


def median_ratio(
    a: Sequence[float],
    b: Sequence[float],
    *,
    rng: np.random.Generator | int = 0,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Ratio:
    """How many times larger a's median is than b's (protocol A vs B), resampling each."""
    _check_confidence(confidence)
    generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    base = median(b)
    if base == 0:
        raise ValueError("ratio against a sample whose median is 0")
    medians_b = bootstrap_medians(b, rng=generator, resamples=resamples)
    medians_a = bootstrap_medians(a, rng=generator, resamples=resamples)
    # Resampled medians of b can be 0 when many samples are 0; such ratios are infinite.
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(medians_b > 0, medians_a / np.where(medians_b > 0, medians_b, 1), np.inf)
    low, high = _interval(ratios, confidence)
    return Ratio(value=median(a) / base, ci_low=low, ci_high=high)


def in_rtts(value: float, rtt: float) -> float:
    """A duration expressed in link round trips (both in the same unit)."""
    if not rtt > 0:
        raise ValueError(f"RTT must be positive to express times in RTTs, not {rtt}")
    return value / rtt


@dataclass(frozen=True)
class LineFit:
    """Least-squares y = slope * x + intercept; the slope CI uses Student's t (n - 2 df)."""

    n: int
    slope: float
    intercept: float
    r2: float
    slope_ci_low: float | None  # None with only two points (no residual degrees of freedom)
    slope_ci_high: float | None

    def predict(self, x: float) -> float:
        return self.slope * x + self.intercept

    def to_json(self) -> dict[str, float | int | None]:
        return asdict(self)


def fit_line(
    x: Sequence[float], y: Sequence[float], *, confidence: float = DEFAULT_CONFIDENCE
) -> LineFit:
    """Fit TTFB against RTT (or any y against x); the slope is then TTFB in RTTs."""
    _check_confidence(confidence)
    xs = _as_array(x, "fit_line x", allow_negative=True)
    ys = _as_array(y, "fit_line y", allow_negative=True)
    if xs.size != ys.size:
        raise ValueError(f"fit_line needs as many x as y ({xs.size} vs {ys.size})")
    if xs.size < 2 or np.ptp(xs) == 0:
        raise ValueError("fit_line needs at least two distinct x values")
    n = int(xs.size)
    x_mean, y_mean = xs.mean(), ys.mean()
    sxx = float(((xs - x_mean) ** 2).sum())
    sxy = float(((xs - x_mean) * (ys - y_mean)).sum())
    syy = float(((ys - y_mean) ** 2).sum())
    slope = sxy / sxx
    intercept = float(y_mean - slope * x_mean)
    residuals = ys - (slope * xs + intercept)
    sse = float((residuals**2).sum())
    # A constant y is fitted perfectly by a flat line: call that r² = 1, not 0/0.
    r2 = 1.0 if syy == 0 else max(0.0, 1.0 - sse / syy)
    low = high = None
    if n > 2:
        half = t_quantile(confidence, n - 2) * math.sqrt(sse / (n - 2) / sxx)
        low, high = slope - half, slope + half
    return LineFit(n=n, slope=slope, intercept=intercept, r2=r2, slope_ci_low=low,
                   slope_ci_high=high)


def t_quantile(confidence: float, df: int) -> float:
    """Two-sided Student t critical value: P(|T| <= t) = confidence, integer df >= 1.

    Bisection on the closed-form CDF for integer degrees of freedom
    (Abramowitz & Stegun 26.7.3-4), so no SciPy is needed.
    """
    _check_confidence(confidence)
    if df < 1:
        raise ValueError("degrees of freedom must be at least 1")
    low, high = 0.0, 1.0
    while _t_central(high, df) < confidence:
        high *= 2
    for _ in range(200):
        mid = (low + high) / 2
        if _t_central(mid, df) < confidence:
            low = mid
        else:
            high = mid
        if high - low < 1e-12 * high:
            break
    return (low + high) / 2


def _t_central(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with integer df."""
    theta = math.atan(t / math.sqrt(df))
    c, s = math.cos(theta), math.sin(theta)
    if df % 2:
        term, total = c, c if df > 1 else 0.0
        for k in range(3, df - 1, 2):  # c + (2/3)c³ + (2·4)/(3·5)c⁵ + ... up to c^(df-2)
            term *= (k - 1) / k * c * c
            total += term
        return 2 / math.pi * (theta + s * total)
    term, total = 1.0, 1.0
    for k in range(2, df - 1, 2):  # 1 + (1/2)c² + (1·3)/(2·4)c⁴ + ... up to c^(df-2)
        term *= (k - 1) / k * c * c
        total += term
    return s * total


def _interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be within (0, 1), not {confidence}")


def _as_array(
    values: Sequence[float] | np.ndarray, what: str, *, allow_negative: bool = False
) -> np.ndarray:
    data = np.asarray(values, dtype=np.float64)
    if data.ndim != 1:
        raise ValueError(f"{what} needs a flat sequence of numbers")
    if data.size == 0:
        raise ValueError(f"{what} of no samples: nothing to summarise")
    if not np.isfinite(data).all():
        raise ValueError(f"{what}: values must be finite (no NaN or infinity)")
    if not allow_negative and (data < 0).any():
        raise ValueError(f"{what}: values must not be negative")
    return data
