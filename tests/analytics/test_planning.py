"""The planning figures on the offer form: how many customers an offer needs, and what a holdout
of a given size can detect. statsmodels is the oracle (a test-only dependency)."""

import math

import pytest
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from analytics.planning import PlanningRow, minimum_detectable_effect, planning_table, sample_size_per_arm


def statsmodels_sample_size(*, baseline, target, alpha=0.05, power=0.8, ratio=1.0):
    effect = proportion_effectsize(target, baseline)
    return NormalIndPower().solve_power(effect_size=abs(effect), power=power, alpha=alpha, ratio=ratio)


def statsmodels_mde(*, baseline, n_treatment, n_control, alpha=0.05, power=0.8):
    h = NormalIndPower().solve_power(
        effect_size=None, nobs1=n_treatment, ratio=n_control / n_treatment, power=power, alpha=alpha
    )
    return math.sin(math.asin(math.sqrt(baseline)) + h / 2) ** 2 - baseline


# --- Sample size -----------------------------------------------------------------------------
def test_a_repeat_rate_rising_from_20_to_23_percent_takes_about_2941_customers_per_arm():
    assert abs(sample_size_per_arm(baseline=0.20, target=0.23) - 2941) <= 1


def test_a_fall_needs_as_many_customers_as_the_rise_to_the_mirror_rate():
    # Cohen's h is symmetric: 23% → 20% is as hard to detect as 20% → 23%.
    assert sample_size_per_arm(baseline=0.23, target=0.20) == sample_size_per_arm(baseline=0.20, target=0.23)


def test_a_smaller_control_arm_needs_a_larger_treatment_arm():
    equal = sample_size_per_arm(baseline=0.20, target=0.23)
    with_a_small_holdout = sample_size_per_arm(baseline=0.20, target=0.23, ratio=1 / 9)

    assert with_a_small_holdout > equal
    assert with_a_small_holdout / 9 < equal


@pytest.mark.parametrize("baseline", [0.02, 0.1, 0.2, 0.5, 0.75])
@pytest.mark.parametrize("relative_change", [0.05, 0.1, 0.25, -0.1])
@pytest.mark.parametrize(("alpha", "power", "ratio"), [(0.05, 0.8, 1.0), (0.05, 0.9, 1 / 9), (0.01, 0.8, 0.25)])
def test_sample_size_agrees_with_statsmodels(baseline, relative_change, alpha, power, ratio):
    target = baseline * (1 + relative_change)
    ours = sample_size_per_arm(baseline=baseline, target=target, alpha=alpha, power=power, ratio=ratio)
    oracle = statsmodels_sample_size(baseline=baseline, target=target, alpha=alpha, power=power, ratio=ratio)

    assert ours - 1 < oracle <= ours + 1e-6


# --- Minimum detectable effect ---------------------------------------------------------------
@pytest.mark.parametrize(("baseline", "target"), [(0.20, 0.23), (0.05, 0.06), (0.5, 0.52), (0.9, 0.93)])
def test_the_detectable_effect_inverts_the_sample_size(baseline, target):
    n = sample_size_per_arm(baseline=baseline, target=target)

    assert minimum_detectable_effect(baseline=baseline, n_treatment=n, n_control=n) <= target - baseline
    assert minimum_detectable_effect(baseline=baseline, n_treatment=n - 1, n_control=n - 1) > target - baseline


@pytest.mark.parametrize(("n_treatment", "n_control"), [(9000, 1000), (1234, 4321), (300, 300)])
def test_the_sample_size_inverts_the_detectable_effect_for_unequal_arms(n_treatment, n_control):
    mde = minimum_detectable_effect(baseline=0.15, n_treatment=n_treatment, n_control=n_control)

    needed = sample_size_per_arm(baseline=0.15, target=0.15 + mde, ratio=n_control / n_treatment)

    assert abs(needed - n_treatment) <= 1


@pytest.mark.parametrize("baseline", [0.02, 0.1, 0.2, 0.5, 0.85])
@pytest.mark.parametrize(("n_treatment", "n_control"), [(100, 100), (9000, 1000), (50_000, 5_000), (1234, 4321)])
@pytest.mark.parametrize(("alpha", "power"), [(0.05, 0.8), (0.01, 0.9)])
def test_the_detectable_effect_agrees_with_statsmodels(baseline, n_treatment, n_control, alpha, power):
    ours = minimum_detectable_effect(
        baseline=baseline, n_treatment=n_treatment, n_control=n_control, alpha=alpha, power=power
    )
    oracle = statsmodels_mde(baseline=baseline, n_treatment=n_treatment, n_control=n_control, alpha=alpha, power=power)

    assert ours == pytest.approx(oracle, rel=1e-4)


def test_an_arm_with_no_customers_detects_nothing():
    assert minimum_detectable_effect(baseline=0.2, n_treatment=1000, n_control=0) is None
    assert minimum_detectable_effect(baseline=0.2, n_treatment=0, n_control=1000) is None


def test_a_rise_beyond_100_percent_is_no_detectable_effect():
    assert minimum_detectable_effect(baseline=0.95, n_treatment=5, n_control=5) is None


# --- The table on the offer form -------------------------------------------------------------
def test_the_table_shows_what_a_10_percent_holdout_detects_after_4_8_and_12_weeks():
    rows = planning_table(weekly_eligible=2500, baseline=0.15, holdout_percent=10)

    assert [(row.weeks, row.n_treatment, row.n_control) for row in rows] == [
        (4, 9000, 1000),
        (8, 18000, 2000),
        (12, 27000, 3000),
    ]
    assert [row.mde_absolute for row in rows] == pytest.approx([0.034822, 0.024324, 0.019751], abs=1e-6)
    assert [row.mde_relative for row in rows] == pytest.approx([0.23215, 0.16216, 0.13168], abs=1e-5)
    first = rows[0]
    assert first.mde_absolute == pytest.approx(
        statsmodels_mde(baseline=0.15, n_treatment=9000, n_control=1000), rel=1e-4
    )


def test_the_table_takes_other_horizons_and_rounds_the_holdout_to_whole_customers():
    assert planning_table(weekly_eligible=333, baseline=0.3, holdout_percent=5, weeks=(1, 2)) == [
        PlanningRow(
            weeks=1,
            n_treatment=316,
            n_control=17,
            mde_absolute=minimum_detectable_effect(baseline=0.3, n_treatment=316, n_control=17),
            mde_relative=minimum_detectable_effect(baseline=0.3, n_treatment=316, n_control=17) / 0.3,
        ),
        PlanningRow(
            weeks=2,
            n_treatment=633,
            n_control=33,
            mde_absolute=minimum_detectable_effect(baseline=0.3, n_treatment=633, n_control=33),
            mde_relative=minimum_detectable_effect(baseline=0.3, n_treatment=633, n_control=33) / 0.3,
        ),
    ]


def test_without_a_holdout_the_table_shows_no_detectable_effect():
    rows = planning_table(weekly_eligible=2500, baseline=0.15, holdout_percent=0)

    assert [(row.n_treatment, row.n_control, row.mde_absolute, row.mde_relative) for row in rows] == [
        (10000, 0, None, None),
        (20000, 0, None, None),
        (30000, 0, None, None),
    ]


# --- Bad inputs ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"baseline": 0, "target": 0.1}, "baseline rate must be between 0 and 1"),
        ({"baseline": 1, "target": 0.1}, "baseline rate must be between 0 and 1"),
        ({"baseline": 20, "target": 23}, "baseline rate must be between 0 and 1"),
        ({"baseline": 0.2, "target": 1.2}, "target rate must be between 0 and 1"),
        ({"baseline": 0.2, "target": 0.2}, "must differ from the baseline"),
        ({"baseline": 0.2, "target": 0.23, "alpha": 0}, "alpha must be between 0 and 1"),
        ({"baseline": 0.2, "target": 0.23, "power": 1}, "power must be above alpha and below 1"),
        ({"baseline": 0.2, "target": 0.23, "power": 0.01}, "power must be above alpha and below 1"),
        ({"baseline": 0.2, "target": 0.23, "ratio": 0}, "ratio of control to treatment"),
    ],
)
def test_a_sample_size_for_impossible_inputs_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample_size_per_arm(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"baseline": 1.5, "n_treatment": 10, "n_control": 10}, "baseline rate must be between 0 and 1"),
        ({"baseline": 0.2, "n_treatment": -1, "n_control": 10}, "cannot be negative"),
        ({"baseline": 0.2, "n_treatment": 10, "n_control": -1}, "cannot be negative"),
    ],
)
def test_a_detectable_effect_for_impossible_inputs_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        minimum_detectable_effect(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weekly_eligible": 1000, "baseline": 0.0, "holdout_percent": 10}, "baseline rate must be between 0 and 1"),
        ({"weekly_eligible": 1000, "baseline": 1.0, "holdout_percent": 10}, "baseline rate must be between 0 and 1"),
        ({"weekly_eligible": -1, "baseline": 0.2, "holdout_percent": 10}, "cannot be negative"),
        ({"weekly_eligible": 1000, "baseline": 0.2, "holdout_percent": 100}, "holdout must be at least 0%"),
        ({"weekly_eligible": 1000, "baseline": 0.2, "holdout_percent": -5}, "holdout must be at least 0%"),
        ({"weekly_eligible": 1000, "baseline": 0.2, "holdout_percent": 10, "weeks": (0,)}, "at least one week"),
    ],
)
def test_a_planning_table_for_impossible_inputs_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        planning_table(**kwargs)
