"""The statistics behind ``docs/metrics.md``: intervals, tests and curves on plain numbers.

Pure functions, no Django: the normal distribution comes from ``math.erfc`` /
``statistics.NormalDist``, Student's t and the chi-square distribution from ``scipy.special``.
The tests check every function against statsmodels, scipy.stats and lifelines to 1e-6.

A figure that cannot be computed is None, never 0: a proportion of nobody, the mean of an empty
arm, a test whose standard error is zero. Callers show None as "no figure yet".
"""

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

# The two-sided 95% normal quantile, Phi^-1(0.975) = 1.959963984540054 (statsmodels and scipy use
# the same value, norm.isf(0.025)).
Z95 = NormalDist().inv_cdf(0.975)
# A split whose chi-square p-value is below this is flagged as broken (docs/metrics.md, "Checks").
# So strict because the check runs on every offer every day: at 0.05 one offer in twenty would
# be flagged by chance.
SRM_ALPHA = 0.001


# --- Proportions ---------------------------------------------------------------------------------
def wilson(successes: int, n: int, *, z: float = Z95) -> tuple[float, float] | None:
    """Wilson's score interval for the proportion ``successes / n``; None when ``n`` is 0.

        (p + z²/2n ± z sqrt(p(1 - p)/n + z²/4n²)) / (1 + z²/n),   p = successes / n

    Wilson, E. B. (1927), JASA 22, 209-212; statsmodels' ``proportion_confint(method="wilson")``.
    At 0 of n the lower bound is exactly 0, and at n of n the upper bound exactly 1, as in exact
    arithmetic (rounding would otherwise leave them a hair inside).
    """
    _check_count(successes, n)
    if n == 0:
        return None
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


def newcombe(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float, float] | None:
    """``(p1 - p2, lo, hi)``: the difference of two independent proportions with Newcombe's hybrid
    score interval (his method 10, without continuity correction); None when an arm is empty.

    With (l1, u1) and (l2, u2) the Wilson intervals of p1 and p2,

        lo = d - sqrt((p1 - l1)² + (u2 - p2)²),   hi = d + sqrt((u1 - p1)² + (p2 - l2)²).

    Newcombe, R. G. (1998), Statistics in Medicine 17, 873-890; statsmodels'
    ``confint_proportions_2indep(method="newcomb")``.
    """
    interval1 = wilson(x1, n1)
    interval2 = wilson(x2, n2)
    if interval1 is None or interval2 is None:
        return None
    p1, p2 = x1 / n1, x2 / n2
    (l1, u1), (l2, u2) = interval1, interval2
    diff = p1 - p2
    return (
        diff,
        diff - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        diff + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    )


def two_proportion_p(x1: int, n1: int, x2: int, n2: int) -> float | None:
    """Two-sided p-value of the pooled z-test of p1 = p2; None when an arm is empty, or when both
    arms are all successes or all failures (the pooled standard error is 0 and no test exists).

        z = (p1 - p2) / sqrt(p (1 - p) (1/n1 + 1/n2)),   p = (x1 + x2) / (n1 + n2),
        p-value = 2 (1 - Phi(|z|)) = erfc(|z| / sqrt 2)

    statsmodels' ``proportions_ztest`` (pooled, two-sided).
    """
    _check_count(x1, n1)
    _check_count(x2, n2)
    if n1 == 0 or n2 == 0:
        return None
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        return None
    z = (x1 / n1 - x2 / n2) / math.sqrt(variance)
    return math.erfc(abs(z) / math.sqrt(2))


def per_claimer(diff: float | None, claim_rate: float | None) -> float | None:
    """The effect on those who claimed: ``diff / claim_rate``, the Wald (instrumental-variable)
    estimator with the offer as the instrument. The holdout cannot claim, so the difference in
    claim rates is the variant's own claim rate. None when either is unknown or nobody claimed.

    Angrist, Imbens and Rubin (1996), JASA 91, 444-455 (the "complier average causal effect").
    """
    if diff is None or claim_rate is None or claim_rate == 0:
        return None
    return diff / claim_rate


# --- Means ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Moments:
    """Sufficient statistics of a sample for its mean and variance: the count, the sum and the sum
    of squares. Moments of disjoint samples add up to the moments of their union, which is what
    lets a rollup store one row per key and a dashboard add rows instead of scanning purchases.

    With integers (money in minor units, purchase counts) or Decimals (what the database's SUM of
    a decimal column returns) the sums are exact, and so is the variance numerator below, up to
    one final rounding: a constant sample has a standard deviation of exactly 0. With floats the
    one-pass formula can lose digits when the mean is huge against the spread; the variance is
    then clamped at 0. ``mean`` and ``variance`` are always floats.
    """

    n: int = 0
    total: float = 0
    total_sq: float = 0

    @classmethod
    def of(cls, values: Sequence[float]) -> "Moments":
        return cls(n=len(values), total=sum(values), total_sq=sum(v * v for v in values))

    def __add__(self, other: "Moments") -> "Moments":
        if not isinstance(other, Moments):
            return NotImplemented
        return Moments(n=self.n + other.n, total=self.total + other.total, total_sq=self.total_sq + other.total_sq)

    @property
    def mean(self) -> float | None:
        """The sample mean; None for an empty sample."""
        return None if self.n == 0 else float(self.total / self.n)

    @property
    def variance(self) -> float | None:
        """The sample variance (n - 1 in the denominator); None below two observations.

        s² = (n Σx² - (Σx)²) / (n (n - 1)), with the numerator computed before any division.
        """
        if self.n < 2:
            return None
        numerator = self.n * self.total_sq - self.total * self.total
        return max(0.0, float(numerator / (self.n * (self.n - 1))))

    @property
    def sd(self) -> float | None:
        """The sample standard deviation; None below two observations."""
        variance = self.variance
        return None if variance is None else math.sqrt(variance)


@dataclass(frozen=True)
class WelchResult:
    """Welch's comparison of two means. ``diff`` is always there; ``ci95``, ``p_value`` and ``df``
    are None when the standard error is 0 (both samples constant): the data then show no
    spread to measure uncertainty by, and a zero-width interval or a p-value of 0 would claim
    a certainty the data do not give."""

    diff: float
    ci95: tuple[float, float] | None
    p_value: float | None
    df: float | None


def welch(a: Moments, b: Moments) -> WelchResult | None:
    """Welch's t-test and 95% interval for ``mean(a) - mean(b)``, without assuming equal variances.
    None when either sample has fewer than two observations (its variance is unknown).

        se² = s_a²/n_a + s_b²/n_b,   t = diff / se,
        df = se⁴ / ((s_a²/n_a)² / (n_a - 1) + (s_b²/n_b)² / (n_b - 1))   (Welch-Satterthwaite),
        ci95 = diff ± t_{0.975, df} se,   p-value = 2 P(T_df > |t|)

    Welch, B. L. (1947), Biometrika 34, 28-35; scipy's ``ttest_ind(equal_var=False)`` and its
    ``confidence_interval()``.
    """
    if a.n < 2 or b.n < 2:
        return None
    diff = a.mean - b.mean
    va, vb = a.variance / a.n, b.variance / b.n
    se2 = va + vb
    if se2 <= 0:
        return WelchResult(diff=diff, ci95=None, p_value=None, df=None)
    se = math.sqrt(se2)
    # Welch-Satterthwaite in shares of se², the same number without squaring tiny variances
    # into underflow.
    share_a, share_b = va / se2, vb / se2
    df = 1 / (share_a * share_a / (a.n - 1) + share_b * share_b / (b.n - 1))
    half = student_t_isf(0.025, df) * se
    p_value = min(1.0, 2 * student_t_sf(abs(diff) / se, df))
    return WelchResult(diff=diff, ci95=(diff - half, diff + half), p_value=p_value, df=df)


# --- Time to convert -----------------------------------------------------------------------------
def kaplan_meier(times: Sequence[float], events: Sequence[bool]) -> list[tuple[float, float]]:
    """The Kaplan-Meier survival curve as step points ``(t, S(t))``, one at each distinct time with
    at least one event, in increasing order; S is 1 before the first point.

        S(t) = Π_{t_i ≤ t} (1 - d_i / n_i),

    d_i the events at t_i and n_i those still at risk, i.e. with a time ≥ t_i. A censoring at
    the same time as an event counts as at risk then (events come first), the usual convention
    and lifelines' ``KaplanMeierFitter``. Kaplan, E. L. and Meier, P. (1958), JASA 53, 457-481.
    """
    if len(times) != len(events):
        raise ValueError("times and events must have the same length")
    tallies: dict[float, list[int]] = {}
    for t, event in zip(times, events, strict=True):
        tally = tallies.setdefault(t, [0, 0])
        tally[0 if event else 1] += 1
    return kaplan_meier_tallied((t, d, c) for t, (d, c) in tallies.items())


def kaplan_meier_tallied(tallies: Iterable[tuple[float, int, int]]) -> list[tuple[float, float]]:
    """:func:`kaplan_meier` from ``(time, events, censored)`` counts, one row per distinct time in
    any order: what ``GROUP BY duration`` returns, so the database need not ship one row per
    trial. The counts are sufficient statistics: the curve is the same as from the raw rows."""
    rows = sorted(tallies)
    if any(not math.isfinite(t) or t < 0 for t, _, _ in rows):
        raise ValueError("times must be finite and not negative")
    if any(d < 0 or c < 0 for _, d, c in rows):
        raise ValueError("counts of events and censorings cannot be negative")
    at_risk = sum(d + c for _, d, c in rows)
    survival = 1.0
    curve = []
    for t, deaths, censored in rows:
        if deaths:
            survival *= 1 - deaths / at_risk
            curve.append((t, survival))
        at_risk -= deaths + censored
    return curve


def km_survival_at(curve: Sequence[tuple[float, float]], t: float) -> float:
    """S(t) read off a :func:`kaplan_meier` curve: the value of the last step at or before ``t``.

    Past the last observed time the curve stays at its last value (no extrapolation), which is
    why a caller should only ask for times that were still observed.
    """
    index = bisect_right([time for time, _ in curve], t)
    return 1.0 if index == 0 else curve[index - 1][1]


def km_cumulative_at(curve: Sequence[tuple[float, float]], t: float) -> float:
    """The cumulative conversion F(t) = 1 - S(t) of ``docs/metrics.md`` ("km_cumulative")."""
    return 1.0 - km_survival_at(curve, t)


def quantiles(values: Sequence[float], probs: Sequence[float]) -> list[float | None]:
    """The ``probs`` quantiles of ``values``, by linear interpolation between order statistics:
    with the values sorted as x_0 ≤ … ≤ x_{n-1} and h = (n - 1) p,

        Q(p) = x_⌊h⌋ + (h - ⌊h⌋) (x_⌊h⌋+1 - x_⌊h⌋).

    This is numpy's default (``method="linear"``), Hyndman and Fan's (1996) type 7,
    ``statistics.quantiles(method="inclusive")`` and PostgreSQL's ``percentile_cont``, so the
    database may compute it instead. Every quantile is None for an empty sample.
    """
    if any(not 0 <= p <= 1 for p in probs):
        raise ValueError("each probability must be between 0 and 1")
    ordered = sorted(values)
    if not ordered:
        return [None] * len(probs)
    results: list[float | None] = []
    for p in probs:
        h = (len(ordered) - 1) * p
        low = math.floor(h)
        if low + 1 >= len(ordered):
            results.append(float(ordered[-1]))
        else:
            results.append(ordered[low] + (h - low) * (ordered[low + 1] - ordered[low]))
    return results


# --- Checks across arms and offers ---------------------------------------------------------------
def srm_p(counts: Sequence[int], weights: Sequence[float]) -> float | None:
    """p-value of Pearson's chi-square goodness-of-fit test of ``counts`` against the split that
    ``weights`` configure (any scale: 0.9/0.1 or 90/10). Flag the split when it is below
    :data:`SRM_ALPHA`.

        X² = Σ (o_i - e_i)² / e_i,   e_i = (Σ o) w_i / Σ w,   p = P(χ²_{k-1} > X²)

    scipy's ``chisquare(counts, expected)``. None with nothing assigned or fewer than two arms to
    compare. An arm weighted 0 drops out when it is empty; if it has assignments the split is
    certainly broken, and the p-value is 0.
    """
    if len(counts) != len(weights):
        raise ValueError("counts and weights must have the same length")
    if any(c < 0 for c in counts) or any(not w >= 0 for w in weights):
        raise ValueError("counts and weights cannot be negative")
    if any(c > 0 and w == 0 for c, w in zip(counts, weights, strict=True)):
        return 0.0
    pairs = [(c, float(w)) for c, w in zip(counts, weights, strict=True) if w > 0]
    total, weight = sum(c for c, _ in pairs), sum(w for _, w in pairs)
    if total == 0 or len(pairs) < 2:
        return None
    statistic = 0.0
    for count, w in pairs:
        expected = total * w / weight
        statistic += (count - expected) ** 2 / expected
    return chi_square_sf(statistic, len(pairs) - 1)


def benjamini_hochberg(p_values: Sequence[float | None]) -> list[float | None]:
    """Benjamini-Hochberg adjusted p-values (the false discovery rate "q-values"), in the order
    given; None stays None and does not count among the m tests.

        q_(i) = min_{j ≥ i} min(1, m p_(j) / j),   p_(1) ≤ … ≤ p_(m)

    Benjamini, Y. and Hochberg, Y. (1995), JRSS B 57, 289-300; statsmodels'
    ``multipletests(method="fdr_bh")``.
    """
    present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    if any(not 0 <= p <= 1 for p, _ in present):
        raise ValueError("p-values must be between 0 and 1")
    adjusted: list[float | None] = [None] * len(p_values)
    m = len(present)
    running = 1.0
    for rank in range(m, 0, -1):
        p, index = present[rank - 1]
        # p · (m / rank) rather than m · p / rank: the factor is ≥ 1 exactly, so rounding can
        # never leave q below p.
        running = min(running, p * (m / rank))
        adjusted[index] = running
    return adjusted


# --- Distributions -------------------------------------------------------------------------------
# Student's t and the chi-square tails come from scipy.special (the Cephes routines, a well-kept
# library) rather than our own incomplete beta and gamma functions. Only scipy.special is
# imported, and only when a test is computed: it loads in milliseconds, unlike scipy.stats.
def student_t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` (not necessarily whole) degrees of freedom."""
    from scipy.special import stdtr

    if not df > 0:
        raise ValueError("degrees of freedom must be above 0")
    return float(stdtr(df, -t))


def student_t_isf(q: float, df: float) -> float:
    """The t with P(T > t) = ``q``, for 0 < q < ½."""
    from scipy.special import stdtrit

    if not 0 < q < 0.5:
        raise ValueError("the tail probability must be between 0 and 0.5")
    return float(-stdtrit(df, q))


def chi_square_sf(x: float, df: int) -> float:
    """P(χ²_df > x)."""
    from scipy.special import chdtrc

    if not df > 0:
        raise ValueError("degrees of freedom must be above 0")
    if x <= 0:
        return 1.0
    return float(chdtrc(df, x))


def _check_count(successes: int, n: int) -> None:
    if n < 0 or not 0 <= successes <= n:
        raise ValueError("a count of successes must be between 0 and the number of trials")
