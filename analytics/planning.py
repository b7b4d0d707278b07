"""How many customers an offer needs before its holdout can show an effect.

The offer form shows these figures next to the holdout field, so a marketer sees what a holdout
of a given size can and cannot detect before the offer goes live. Pure functions on plain
numbers, standard library only.

The method is the one statsmodels uses for two proportions: the effect is Cohen's h, the
difference of the arcsine-transformed rates,

    h = 2 asin(sqrt(target)) - 2 asin(sqrt(baseline)),

and the power is that of a two-sided z-test on h with n = n1 n2 / (n1 + n2) effective customers:

    power = Phi(|h| sqrt(n) - z) + Phi(-|h| sqrt(n) - z),   z = Phi^-1(1 - alpha/2),

where Phi is the standard normal distribution function. This is statsmodels'
``NormalIndPower().solve_power(effect_size=proportion_effectsize(target, baseline), ...)``. Both
rejection regions count, as in statsmodels, so the answer is found by bisection rather than by
the textbook closed form n1 = (z + Phi^-1(power))^2 (1 + 1/ratio) / h^2, which drops the far
region and asks for slightly more customers (2,940.565 rather than 2,940.558 for 20% → 23%).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

_NORMAL = NormalDist()
# More eligible customers a week than any shop has, and small enough that the arm sizes stay
# exact integers and their products stay finite floats.
MAX_WEEKLY_ELIGIBLE = 10_000_000


@dataclass(frozen=True)
class PlanningRow:
    """What an offer can detect after ``weeks`` weeks, holdout against everyone else.

    ``mde_absolute`` is in rate points (0.03 is 3 percentage points) and ``mde_relative`` is that
    rise as a share of the baseline; both are None when no rise can be detected (no holdout yet,
    or too few customers for any rate up to 100%).
    """

    weeks: int
    n_treatment: int
    n_control: int
    mde_absolute: float | None
    mde_relative: float | None


def sample_size_per_arm(
    *, baseline: float, target: float, alpha: float = 0.05, power: float = 0.8, ratio: float = 1.0
) -> int:
    """Customers needed in the treatment arm to tell ``target`` from ``baseline`` with a
    two-sided test at level ``alpha`` with the given ``power``; the control arm needs ``ratio``
    times as many (statsmodels' ``ratio = nobs2 / nobs1``).

    Cohen's h with the arcsine transform, solved as ``NormalIndPower().solve_power`` does (see the
    module docstring), rounded up to a whole customer. 20% → 23% at 80% power and alpha 0.05 takes
    2,941 per arm.
    """
    _check_rate(baseline, "baseline")
    _check_rate(target, "target")
    if target == baseline:
        raise ValueError("the target rate must differ from the baseline")
    _check_test(alpha=alpha, power=power)
    if not ratio > 0:
        raise ValueError("the ratio of control to treatment customers must be above 0")
    h = _cohens_h(baseline=baseline, target=target)
    effective = (_standardized_effect(alpha=alpha, power=power) / h) ** 2
    # effective = n₁·n₂ / (n₁ + n₂) with n₂ = ratio·n₁, so n₁ = effective · (1 + ratio) / ratio.
    return math.ceil(effective * (1 + ratio) / ratio)


def minimum_detectable_effect(
    *, baseline: float, n_treatment: int, n_control: int, alpha: float = 0.05, power: float = 0.8
) -> float | None:
    """The smallest rise above ``baseline`` (in rate points) that arms of these sizes detect with
    the given power: the inverse of :func:`sample_size_per_arm`, by the same method.

    None when an arm has no customers, or when even a rate of 100% would not be detected.
    """
    _check_rate(baseline, "baseline")
    _check_test(alpha=alpha, power=power)
    if n_treatment < 0 or n_control < 0:
        raise ValueError("the number of customers in an arm cannot be negative")
    if n_treatment == 0 or n_control == 0:
        return None
    effective = n_treatment * n_control / (n_treatment + n_control)
    h = _standardized_effect(alpha=alpha, power=power) / math.sqrt(effective)
    angle = math.asin(math.sqrt(baseline)) + h / 2
    if angle >= math.pi / 2:
        return None
    return math.sin(angle) ** 2 - baseline


def planning_table(
    *,
    weekly_eligible: int,
    baseline: float,
    holdout_percent: float,
    weeks: Sequence[int] = (4, 8, 12),
    alpha: float = 0.05,
    power: float = 0.8,
) -> list[PlanningRow]:
    """The minimum detectable effect after each of ``weeks`` weeks, for ``weekly_eligible`` new
    customers a week split between the holdout and the rest (all variants together).

    The arm sizes are the expected ones: the holdout's share of everyone eligible by then,
    rounded to a whole customer.
    """
    if weekly_eligible < 0:
        raise ValueError("the number of eligible customers a week cannot be negative")
    if weekly_eligible > MAX_WEEKLY_ELIGIBLE:
        raise ValueError(f"the number of eligible customers a week is at most {MAX_WEEKLY_ELIGIBLE:,}")
    _check_rate(baseline, "baseline")
    if not 0 <= holdout_percent < 100:
        raise ValueError("the holdout must be at least 0% and below 100%")
    if any(not 1 <= week <= 520 for week in weeks):
        raise ValueError("each planning horizon must be at least one week and at most 520")
    rows = []
    for week in weeks:
        eligible = weekly_eligible * week
        n_control = round(eligible * holdout_percent / 100)
        n_treatment = eligible - n_control
        mde = minimum_detectable_effect(
            baseline=baseline, n_treatment=n_treatment, n_control=n_control, alpha=alpha, power=power
        )
        rows.append(
            PlanningRow(
                weeks=week,
                n_treatment=n_treatment,
                n_control=n_control,
                mde_absolute=mde,
                mde_relative=None if mde is None else mde / baseline,
            )
        )
    return rows


def _cohens_h(*, baseline: float, target: float) -> float:
    return abs(2 * math.asin(math.sqrt(target)) - 2 * math.asin(math.sqrt(baseline)))


def _standardized_effect(*, alpha: float, power: float) -> float:
    """The x = |h| sqrt(n) at which the two-sided test reaches ``power``:
    Phi(x - z) + Phi(-x - z) = power, with z = Phi^-1(1 - alpha/2)."""
    z = _NORMAL.inv_cdf(1 - alpha / 2)

    def power_at(x: float) -> float:
        return _NORMAL.cdf(x - z) + _NORMAL.cdf(-x - z)

    # power_at(0) = alpha < power, and at the closed-form answer the near region alone gives power.
    low, high = 0.0, z + _NORMAL.inv_cdf(power)
    for _ in range(200):
        middle = (low + high) / 2
        if middle in (low, high):
            break
        if power_at(middle) < power:
            low = middle
        else:
            high = middle
    return high


def _check_rate(rate: float, name: str) -> None:
    if not 0 < rate < 1:
        raise ValueError(f"the {name} rate must be between 0 and 1 (exclusive), as a fraction such as 0.2")


def _check_test(*, alpha: float, power: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError("alpha must be between 0 and 1")
    if not alpha < power < 1:
        raise ValueError("power must be above alpha and below 1")
