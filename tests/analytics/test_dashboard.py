"""The verdict under each offer says, in plain words, what the repeat-rate interval says and
never more: raised or lowered only when the whole interval is on one side of zero, otherwise how
many more customers would show +3 points, and "observational" without a holdout."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics import planning
from analytics.dashboard import (
    ARM_COLOURS,
    HOLDOUT_COLOUR,
    arm_colours,
    more_customers_to_detect,
    repeat_verdict,
)


def verdict(diff=0.0, ci95=(-0.01, 0.01), baseline=0.11, n_treated=5000, n_control=1000, observational=False):
    return repeat_verdict(
        observational=observational, diff=diff, ci95=ci95, baseline=baseline, n_treated=n_treated, n_control=n_control
    )


def test_an_interval_above_zero_raised_repeat_buyers():
    assert verdict(0.041, (0.018, 0.063)) == "Raised repeat buyers by 4.1 points (1.8 to 6.3)."


def test_an_interval_below_zero_lowered_them_and_says_so_in_positive_points():
    assert verdict(-0.025, (-0.04, -0.0101)) == "Lowered repeat buyers by 2.5 points (1.0 to 4.0)."


def test_points_are_rounded_not_truncated():
    # 0.018 * 100 is 1.7999999999999998 in floating point.
    assert verdict(0.0296, (0.018, 0.0416)) == "Raised repeat buyers by 3.0 points (1.8 to 4.2)."


def test_an_interval_across_zero_says_how_many_more_customers_would_detect_three_points():
    # METRICS.md: 20% to 23% takes 2,941 customers per arm; nobody yet in the window.
    assert planning.sample_size_per_arm(baseline=0.2, target=0.23) == 2941
    assert verdict(0.0, (-0.2, 0.2), baseline=0.2, n_treated=41, n_control=41) == (
        "No effect detectable yet: about 2,900 more customers per arm would detect +3 points."
    )


def test_the_more_customers_are_counted_from_the_smaller_arm():
    needed = planning.sample_size_per_arm(baseline=0.11, target=0.14)
    assert more_customers_to_detect(baseline=0.11, n_treated=50_000, n_control=300) == needed - 300
    assert more_customers_to_detect(baseline=0.11, n_treated=300, n_control=50_000) == needed - 300


def test_with_enough_customers_and_no_effect_it_gives_the_interval_not_a_claim_of_no_effect():
    assert verdict(0.002, (-0.012, 0.0161), baseline=0.11, n_treated=20_000, n_control=20_000) == (
        "No effect detected: between -1.2 and +1.6 points."
    )


def test_a_bound_that_rounds_to_zero_is_shown_as_zero_without_a_sign():
    assert verdict(0.01, (-0.0004, 0.02), n_treated=20_000, n_control=20_000) == (
        "No effect detected: between 0.0 and +2.0 points."
    )


@pytest.mark.parametrize("baseline", [0.0, 0.98])
def test_a_baseline_with_no_room_for_three_points_gives_the_interval(baseline):
    assert more_customers_to_detect(baseline=baseline, n_treated=10, n_control=10) is None
    assert verdict(0.0, (-0.05, 0.02), baseline=baseline) == "No effect detectable yet: between -5.0 and +2.0 points."


def test_without_a_holdout_it_is_observational_only():
    assert verdict(observational=True) == "No holdout: observational only."
    assert verdict(None, None, None, 0, 0, observational=True) == "No holdout: observational only."


@pytest.mark.parametrize(
    "diff, ci95, baseline, n_treated, n_control",
    [
        (None, None, None, 0, 0),  # nobody has completed the window
        (None, None, 0.1, 0, 500),  # the variant has nobody past the window
        (None, None, None, 500, 0),  # the holdout has nobody
        (0.01, None, 0.1, 5, 5),  # no interval
    ],
)
def test_without_customers_past_the_window_in_both_arms_there_is_not_enough_data(
    diff, ci95, baseline, n_treated, n_control
):
    assert verdict(diff, ci95, baseline, n_treated, n_control) == (
        "Not enough data yet: no customer has completed the window in both arms."
    )


@given(
    low=st.floats(min_value=-0.5, max_value=0.5),
    width=st.floats(min_value=0, max_value=0.5),
    baseline=st.floats(min_value=0.001, max_value=0.999),
    n=st.integers(min_value=1, max_value=100_000),
)
def test_the_verdict_is_never_stronger_than_its_interval(low, width, baseline, n):
    high = low + width
    text = verdict((low + high) / 2, (low, high), baseline=baseline, n_treated=n, n_control=n)
    assert text.startswith("Raised") == (low > 0)
    assert text.startswith("Lowered") == (high < 0)
    if low <= 0 <= high:
        assert text.startswith("No effect")


def test_each_arm_keeps_one_colour_and_the_holdout_is_grey():
    colours = arm_colours(["sample", "holdout", "discount", "sample"])
    assert colours == {"sample": ARM_COLOURS[0], "holdout": HOLDOUT_COLOUR, "discount": ARM_COLOURS[1]}
    assert HOLDOUT_COLOUR not in ARM_COLOURS
    many = arm_colours([f"arm{k}" for k in range(len(ARM_COLOURS) + 1)])
    assert list(many.values())[-1] == ARM_COLOURS[0]  # past the palette it starts again
