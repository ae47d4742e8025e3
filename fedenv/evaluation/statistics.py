"""Statistics that match a paired design: per-seed differences to a reference, with honest verdicts.

Every run of a comparison meets the same world and the same episode seeds (common random
numbers), so two mechanisms are compared through their *paired* per-seed differences
``d_s = metric(mechanism, s) - metric(reference, s)``, never through two unpaired means.

Which interval, which test (and why):

- **Interval of a mean** (:func:`mean_interval`): the 95% Student-t interval
  ``mean ± t(0.975, n-1) · sd / √n``.  When ``n >= 10`` *and* the values are skewed
  (``|sample skewness| > 1``), the BCa bootstrap interval (``scipy.stats.bootstrap``, 9,999
  resamples, seeded) is used instead: the t-interval assumes a roughly symmetric sampling
  distribution of the mean, which a skewed sample at moderate n does not give.  Below 10 values
  the bootstrap is *not* used even for skewed data: with n = 5 there are only 126 distinct
  resamples and percentile/BCa intervals under-cover badly, so the t-interval (wider, and exact
  for normal data) is the honest choice.  One value has no interval.
- **Paired test** (:func:`paired_test`): the paired t-test (``scipy.stats.ttest_1samp`` on the
  differences) whenever the interval is a t-interval, so a difference is significant exactly
  when its interval excludes zero; the Wilcoxon signed-rank test when the interval is a
  bootstrap one (skewed differences, n >= 10).  Wilcoxon is never used below 6 pairs: its
  smallest two-sided p-value with 5 pairs is 0.0625, so it could never detect anything.
- **Holm correction** (:func:`holm`): the p-values of one metric's comparisons (every mechanism
  against the reference) are Holm-Bonferroni adjusted; a difference is *detected* when its
  adjusted p-value is below 0.05 (which implies that its 95% interval excludes zero).
- **Seeds needed** (:func:`seeds_needed`): the smallest number of seeds at which a paired
  t-test at alpha = 0.05 (two-sided) detects a true difference of the observed mean with 80%
  power, given the observed standard deviation of the differences (noncentral t; effect size
  ``d = mean / sd``).  A planning figure: the observed effect is itself uncertain.

:func:`compare_paired` applies all of this to one metric; :mod:`fedenv.evaluation.report` turns
the comparisons into the verdict, the tables and the plots.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05
POWER = 0.8
BOOTSTRAP_MIN_N = 10
SKEWNESS_LIMIT = 1.0
BOOTSTRAP_RESAMPLES = 9_999
MAX_SEEDS = 100_000
FLOAT_NOISE = 1e-9  # relative size under which a paired difference is float rounding, i.e. 0


@dataclass(frozen=True)
class Interval:
    """A mean and its 95% confidence interval (``low``/``high`` are NaN for a single value)."""

    mean: float
    low: float
    high: float
    n: int
    method: str  # "t", "bootstrap" (BCa), or "none" (one value)
    std: float = 0.0  # sample standard deviation (ddof=1); 0 for one value

    @property
    def half_width(self) -> float:
        """Half the interval's width (NaN without an interval)."""
        return (self.high - self.low) / 2

    def excludes_zero(self) -> bool:
        return self.n > 1 and (self.low > 0 or self.high < 0)


def _skewness(x: np.ndarray) -> float:
    from scipy import stats

    if np.ptp(x) <= FLOAT_NOISE * max(1.0, float(np.abs(x).max())):
        return 0.0
    return float(stats.skew(x, bias=False))


def interval_method(values: Sequence[float]) -> str:
    """``"t"`` or ``"bootstrap"``: which interval :func:`mean_interval` uses for ``values``."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        return "none"
    if x.size >= BOOTSTRAP_MIN_N and abs(_skewness(x)) > SKEWNESS_LIMIT:
        return "bootstrap"
    return "t"


def mean_interval(values: Sequence[float], *, confidence: float = 0.95, seed: int = 0) -> Interval:
    """The mean of ``values`` with its confidence interval (see the module doc for which)."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no values: a mean needs at least one")
    if not np.isfinite(x).all():
        raise ValueError(f"values must be finite, got {x.tolist()}")
    mean = float(x.mean())
    method = interval_method(x)
    if method == "none":
        return Interval(mean, math.nan, math.nan, 1, "none")
    std = float(x.std(ddof=1))
    if method == "bootstrap":
        result = stats.bootstrap(
            (x,),
            np.mean,
            confidence_level=confidence,
            n_resamples=BOOTSTRAP_RESAMPLES,
            method="BCa",
            random_state=np.random.default_rng(seed),
        )
        low, high = result.confidence_interval
        return Interval(mean, float(low), float(high), int(x.size), method, std)
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1)) * std / math.sqrt(x.size)
    return Interval(mean, mean - half, mean + half, int(x.size), method, std)


def paired_test(differences: Sequence[float]) -> tuple[str, float]:
    """``(test name, two-sided p-value)`` for "the mean difference is 0" (module doc: which)."""
    from scipy import stats

    d = np.asarray(differences, dtype=np.float64)
    if d.size < 2:
        return "none", math.nan
    if np.all(d == 0):
        return ("wilcoxon" if interval_method(d) == "bootstrap" else "t"), 1.0
    if interval_method(d) == "bootstrap":
        return "wilcoxon", float(stats.wilcoxon(d).pvalue)
    if np.ptp(d) <= FLOAT_NOISE * np.abs(d).max():  # the same difference on every seed
        return "t", 0.0
    return "t", float(stats.ttest_1samp(d, 0.0).pvalue)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN and does not count as a test)."""
    p = np.asarray(p_values, dtype=np.float64)
    valid = np.flatnonzero(~np.isnan(p))
    adjusted = np.full(p.shape, np.nan)
    order = valid[np.argsort(p[valid], kind="stable")]
    m, running = len(order), 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def seeds_needed(mean: float, std: float, *, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """Seeds for a paired t-test to detect a true difference ``mean`` with ``power``, when the
    differences have standard deviation ``std``; ``None`` when ``mean`` is 0 (never) or more
    than 100,000 would be needed."""
    from scipy import stats

    if mean == 0 or not math.isfinite(mean):
        return None
    if std == 0:
        return 2
    effect = abs(mean) / std

    def achieved(n: int) -> float:
        df, noncentrality = n - 1, effect * math.sqrt(n)
        critical = stats.t.ppf(1 - alpha / 2, df)
        return float(
            stats.nct.sf(critical, df, noncentrality) + stats.nct.cdf(-critical, df, noncentrality)
        )

    if achieved(2) >= power:
        return 2
    high = 4
    while achieved(high) < power:  # power grows with n: double, then bisect
        if high > MAX_SEEDS:
            return None
        high *= 2
    low = high // 2  # achieved(low) < power <= achieved(high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if achieved(middle) >= power else (middle, high)
    return high


@dataclass(frozen=True)
class PairedComparison:
    """One mechanism against the reference on one metric, over the seeds where both apply."""

    metric: str
    mechanism: str
    reference: str
    seeds: tuple[int, ...]
    difference: Interval | None  # of mechanism - reference; None without a common seed
    test: str
    p_value: float
    p_holm: float
    seeds_needed: int | None

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def detected(self) -> bool:
        """A difference at alpha = 0.05 after Holm's correction (its interval excludes zero)."""
        return (
            self.difference is not None
            and self.p_holm < ALPHA
            and self.difference.excludes_zero()
        )


def compare_paired(
    metric: str,
    values: Mapping[str, Mapping[int, float | None]],
    reference: str,
) -> list[PairedComparison]:
    """Each mechanism of ``values`` (``{mechanism: {seed: value}}``) other than ``reference``
    against it, paired by seed; Holm-corrected across these comparisons.  A seed counts when
    both have a value (``None``: the metric did not apply)."""
    if reference not in values:
        raise ValueError(f"reference {reference!r} is not among {', '.join(values)}")
    base = {s: v for s, v in values[reference].items() if v is not None}
    rows = []
    for mechanism, per_seed in values.items():
        if mechanism == reference:
            continue
        seeds = tuple(s for s, v in per_seed.items() if v is not None and s in base)
        d = np.array([per_seed[s] - base[s] for s in seeds], dtype=np.float64)
        scale = max([1.0, *(abs(base[s]) for s in seeds)])
        d[np.abs(d) <= FLOAT_NOISE * scale] = 0.0  # sums in another order: not a difference
        if d.size == 0:
            rows.append((mechanism, seeds, None, "none", math.nan, None))
            continue
        interval = mean_interval(d)
        test, p = paired_test(d)
        needed = seeds_needed(interval.mean, interval.std) if d.size > 1 else None
        rows.append((mechanism, seeds, interval, test, p, needed))
    adjusted = holm([row[4] for row in rows])
    return [
        PairedComparison(metric, m, reference, seeds, interval, test, p, p_adj, needed)
        for (m, seeds, interval, test, p, needed), p_adj in zip(rows, adjusted)
    ]
