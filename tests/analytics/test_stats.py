"""The statistics of docs/metrics.md: the test vectors there, then each function against an
independent implementation (statsmodels, scipy, lifelines, numpy: test-only dependencies) on
generated data, agreeing to 1e-6, then the edges where a figure is None rather than 0."""

import itertools
import math
import statistics
import warnings
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from lifelines import KaplanMeierFitter
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint, proportions_ztest

from analytics.stats import (
    SRM_ALPHA,
    Z95,
    Moments,
    WelchResult,
    benjamini_hochberg,
    chi_square_sf,
    kaplan_meier,
    kaplan_meier_tallied,
    km_cumulative_at,
    km_survival_at,
    newcombe,
    per_claimer,
    quantiles,
    srm_p,
    student_t_isf,
    student_t_sf,
    two_proportion_p,
    welch,
    wilson,
)

TOLERANCE = 1e-6
ORACLE = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def close(a, b, tolerance=TOLERANCE):
    return math.isclose(a, b, rel_tol=0, abs_tol=tolerance)


@st.composite
def proportions(draw, max_n=5000):
    n = draw(st.integers(min_value=1, max_value=max_n))
    return draw(st.integers(min_value=0, max_value=n)), n


# --- The test vectors of docs/metrics.md ---------------------------------------------------------
def test_wilson_of_540_in_1800_is_the_documented_interval():
    lo, hi = wilson(540, 1800)

    assert round(lo, 5) == 0.27927
    assert round(hi, 5) == 0.32158


def test_newcombe_of_300_in_1000_against_250_in_1000_is_the_documented_interval():
    diff, lo, hi = newcombe(300, 1000, 250, 1000)

    assert diff == pytest.approx(0.05, abs=1e-15)
    assert round(lo, 5) == 0.01086
    assert round(hi, 5) == 0.08894


def test_kaplan_meier_of_the_documented_vector_steps_at_each_event():
    curve = kaplan_meier([3, 5, 6, 7, 8, 10, 12, 12], [1, 0, 1, 1, 0, 1, 1, 0])

    assert [t for t, _ in curve] == [3, 6, 7, 10, 12]
    assert [round(s, 4) for _, s in curve] == [0.875, 0.7292, 0.5833, 0.3889, 0.1944]
    # Between the steps the curve holds its value; before the first it is 1.
    assert km_survival_at(curve, 2.99) == 1.0
    assert km_survival_at(curve, 5) == 0.875
    assert km_survival_at(curve, 11.5) == pytest.approx(0.3889, abs=5e-5)
    assert km_cumulative_at(curve, 12) == pytest.approx(1 - 0.1944, abs=5e-5)


def test_z95_is_the_two_sided_95_percent_normal_quantile():
    assert math.isclose(Z95, scipy_stats.norm.isf(0.025), rel_tol=1e-15)
    assert SRM_ALPHA == 0.001


# --- Against the oracles -------------------------------------------------------------------------
@ORACLE
@given(proportions())
def test_wilson_agrees_with_statsmodels(proportion):
    successes, n = proportion
    lo, hi = wilson(successes, n)
    expected_lo, expected_hi = proportion_confint(successes, n, alpha=0.05, method="wilson")

    assert close(lo, expected_lo)
    assert close(hi, expected_hi)
    assert 0 <= lo <= successes / n <= hi <= 1


@ORACLE
@given(proportions(), st.floats(min_value=0.5, max_value=3.5))
def test_wilson_at_any_level_agrees_with_statsmodels(proportion, z):
    successes, n = proportion
    alpha = 2 * scipy_stats.norm.sf(z)
    lo, hi = wilson(successes, n, z=z)
    expected_lo, expected_hi = proportion_confint(successes, n, alpha=alpha, method="wilson")

    assert close(lo, expected_lo)
    assert close(hi, expected_hi)


@ORACLE
@given(proportions(), proportions())
def test_newcombe_agrees_with_statsmodels(first, second):
    (x1, n1), (x2, n2) = first, second
    diff, lo, hi = newcombe(x1, n1, x2, n2)
    expected_lo, expected_hi = confint_proportions_2indep(x1, n1, x2, n2, method="newcomb", compare="diff")

    assert close(diff, x1 / n1 - x2 / n2)
    assert close(lo, expected_lo)
    assert close(hi, expected_hi)
    assert -1 <= lo <= diff <= hi <= 1


@ORACLE
@given(proportions(), proportions())
def test_two_proportion_p_agrees_with_the_statsmodels_pooled_z_test(first, second):
    (x1, n1), (x2, n2) = first, second
    assume(0 < x1 + x2 < n1 + n2)  # otherwise the pooled standard error is 0 (an edge below)
    _, expected = proportions_ztest([x1, x2], [n1, n2], alternative="two-sided")

    assert close(two_proportion_p(x1, n1, x2, n2), expected)


# Money in minor units (exact integer sums) and purchase counts, as the rollups store them.
samples = st.lists(st.integers(min_value=-50_000, max_value=500_000), min_size=2, max_size=80)
float_samples = st.lists(
    st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, allow_infinity=False), min_size=2, max_size=80
)


@ORACLE
@given(st.one_of(st.tuples(samples, samples), st.tuples(float_samples, float_samples)))
def test_welch_agrees_with_scipy(pair):
    a, b = pair
    # Nearly identical values make scipy's own variance lose its digits (it warns); a constant
    # arm is its own test below.
    for sample in (a, b):
        assume(statistics.variance(sample) > 1e-3 + 1e-8 * max(abs(x) for x in sample) ** 2)
    result = welch(Moments.of(a), Moments.of(b))
    expected = scipy_stats.ttest_ind(a, b, equal_var=False)
    expected_ci = expected.confidence_interval(0.95)
    # Scale-free comparison: money can be large, and the oracle is accurate to its own rounding.
    scale = max(1.0, abs(expected_ci.low), abs(expected_ci.high))

    assert close(result.diff / scale, (statistics.fmean(a) - statistics.fmean(b)) / scale)
    assert close(result.ci95[0] / scale, expected_ci.low / scale)
    assert close(result.ci95[1] / scale, expected_ci.high / scale)
    assert close(result.p_value, expected.pvalue)
    assert result.df == pytest.approx(expected.df, rel=1e-9)


@ORACLE
@given(st.lists(st.integers(min_value=0, max_value=10**6), min_size=2, max_size=8))
def test_srm_p_agrees_with_the_scipy_chi_square_test(raw_weights):
    weights = [w + 1 for w in raw_weights]
    counts = [w * 37 % 1000 + 1 for w in raw_weights]  # any positive counts, unrelated to the weights
    total = sum(counts)
    expected = [total * w / sum(weights) for w in weights]

    assert close(srm_p(counts, weights), scipy_stats.chisquare(counts, expected).pvalue)


@ORACLE
@given(
    st.lists(st.integers(min_value=0, max_value=10_000), min_size=2, max_size=6),
    st.lists(st.floats(min_value=0.01, max_value=1), min_size=6, max_size=6),
)
def test_srm_p_agrees_with_scipy_for_any_counts(counts, weights):
    weights = weights[: len(counts)]
    assume(sum(counts) > 0)
    total = sum(counts)
    expected = [total * w / sum(weights) for w in weights]

    assert close(srm_p(counts, weights), scipy_stats.chisquare(counts, expected).pvalue)


@ORACLE
@given(
    st.lists(
        st.one_of(st.none(), st.floats(min_value=0, max_value=1), st.sampled_from([0.0, 1e-12, 0.05, 1.0])),
        max_size=40,
    )
)
def test_benjamini_hochberg_agrees_with_statsmodels(p_values):
    adjusted = benjamini_hochberg(p_values)
    present = [p for p in p_values if p is not None]

    assert [q is None for q in adjusted] == [p is None for p in p_values]
    if present:
        _, expected, _, _ = multipletests(present, method="fdr_bh")
        got = [q for q in adjusted if q is not None]
        assert all(close(q, e) for q, e in zip(got, expected, strict=True))
        # Never below the raw p-value, never above 1, and in the same order as the raw ones.
        assert all(p <= q <= 1 for p, q in zip(present, got, strict=True))
        ranked = sorted(zip(present, got, strict=True))
        assert all(q1 <= q2 for (_, q1), (_, q2) in itertools.pairwise(ranked))


durations = st.lists(
    st.tuples(
        # Whole and half days make ties common, the case where the convention matters.
        st.one_of(st.integers(min_value=0, max_value=40).map(float), st.sampled_from([0.5, 7.5, 13.5])),
        st.booleans(),
    ),
    min_size=1,
    max_size=60,
)


@ORACLE
@given(durations)
def test_kaplan_meier_agrees_with_lifelines(observations):
    times = [t for t, _ in observations]
    events = [e for _, e in observations]
    curve = kaplan_meier(times, events)
    fitter = KaplanMeierFitter().fit(times, events)
    probes = sorted({*times, 0.0, 7.0, 14.0, 30.0, 60.0, 90.0, *(t + 0.25 for t in times)})
    expected = fitter.survival_function_at_times(probes).tolist()

    assert all(close(km_survival_at(curve, t), s) for t, s in zip(probes, expected, strict=True))
    assert [t for t, _ in curve] == sorted({t for t, e in observations if e})


@ORACLE
@given(durations)
def test_kaplan_meier_from_tallies_is_the_curve_of_the_raw_rows(observations):
    tallies = {}
    for t, event in observations:
        events, censored = tallies.get(t, (0, 0))
        tallies[t] = (events + event, censored + (not event))

    assert kaplan_meier_tallied((t, d, c) for t, (d, c) in reversed(tallies.items())) == kaplan_meier(
        [t for t, _ in observations], [e for _, e in observations]
    )


@ORACLE
@given(st.lists(st.floats(min_value=0, max_value=400), max_size=50), st.lists(st.floats(0, 1), max_size=5))
def test_quantiles_agree_with_numpy_linear(values, probs):
    got = quantiles(values, probs)

    if not values:
        assert got == [None] * len(probs)
    else:
        expected = np.quantile(values, probs, method="linear").tolist() if probs else []
        assert all(close(g, e) for g, e in zip(got, expected, strict=True))


@ORACLE
@given(
    st.floats(min_value=-60, max_value=60),
    st.one_of(st.floats(min_value=0.5, max_value=10), st.floats(min_value=10, max_value=1e7)),
)
def test_student_t_agrees_with_scipy(t, df):
    assert close(student_t_sf(t, df), scipy_stats.t.sf(t, df))
    assert student_t_isf(0.025, df) == pytest.approx(scipy_stats.t.isf(0.025, df), rel=1e-9)


@ORACLE
@given(st.floats(min_value=0, max_value=500), st.integers(min_value=1, max_value=200))
def test_chi_square_agrees_with_scipy(x, df):
    assert close(chi_square_sf(x, df), scipy_stats.chi2.sf(x, df))


@ORACLE
@given(samples, samples)
def test_moments_of_parts_add_up_to_the_moments_of_the_whole(first, second):
    whole = Moments.of(first + second)

    assert Moments.of(first) + Moments.of(second) == whole
    assert whole.mean == pytest.approx(statistics.fmean(first + second), rel=1e-12, abs=1e-9)
    assert whole.sd == pytest.approx(statistics.stdev(first + second), rel=1e-12, abs=1e-9)


# --- Edges: None, never 0 ------------------------------------------------------------------------
def test_nobody_gives_no_proportion_and_no_comparison():
    assert wilson(0, 0) is None
    assert newcombe(0, 0, 5, 10) is None
    assert newcombe(5, 10, 0, 0) is None
    assert two_proportion_p(0, 0, 5, 10) is None
    assert two_proportion_p(5, 10, 0, 0) is None


def test_all_failures_and_all_successes_touch_the_bounds_exactly():
    assert wilson(0, 50) == (0.0, pytest.approx(proportion_confint(0, 50, method="wilson")[1], abs=1e-12))
    assert wilson(50, 50) == (pytest.approx(proportion_confint(50, 50, method="wilson")[0], abs=1e-12), 1.0)
    lo, hi = wilson(1, 1)
    assert hi == 1.0 and 0 < lo < 1


def test_two_arms_that_all_fail_or_all_succeed_have_an_interval_but_no_test():
    # The pooled standard error is 0: statsmodels answers nan, we answer None.
    assert two_proportion_p(0, 100, 0, 50) is None
    assert two_proportion_p(100, 100, 50, 50) is None
    diff, lo, hi = newcombe(0, 100, 0, 50)
    assert diff == 0 and lo < 0 < hi


def test_one_arm_all_successes_and_the_other_all_failures_is_a_strong_test():
    p = two_proportion_p(20, 20, 0, 20)

    assert 0 < p < 1e-8
    assert close(p, proportions_ztest([20, 0], [20, 20])[1])


def test_an_impossible_count_is_refused():
    for args in [(-1, 10), (11, 10), (0, -1)]:
        with pytest.raises(ValueError, match="between 0 and the number of trials"):
            wilson(*args)


def test_an_empty_sample_has_no_mean_and_one_observation_no_sd():
    assert Moments().mean is None
    assert Moments().sd is None
    one = Moments.of([12])
    assert one.mean == 12
    assert one.sd is None


def test_welch_needs_two_observations_in_each_arm():
    assert welch(Moments.of([5]), Moments.of([1, 2, 3])) is None
    assert welch(Moments.of([1, 2, 3]), Moments()) is None


def test_welch_on_two_constant_arms_gives_the_exact_difference_and_no_interval():
    # Integer cents are summed exactly, so constant arms have a variance of exactly 0.
    result = welch(Moments.of([1234] * 7), Moments.of([1000] * 3))

    assert result == WelchResult(diff=234.0, ci95=None, p_value=None, df=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # scipy's answer here is a p-value of 0 (t = inf), a certainty two samples cannot give.
        assert scipy_stats.ttest_ind([1234] * 7, [1000] * 3, equal_var=False).pvalue == 0


def test_welch_with_one_constant_arm_uses_the_other_arms_degrees_of_freedom():
    result = welch(Moments.of([0, 0, 0, 0]), Moments.of([1, 5, 2, 9, 3]))
    expected = scipy_stats.ttest_ind([0, 0, 0, 0], [1, 5, 2, 9, 3], equal_var=False)

    assert result.df == pytest.approx(4)
    assert close(result.p_value, expected.pvalue)
    assert close(result.ci95[0], expected.confidence_interval().low)


def test_welch_does_not_depend_on_the_unit_even_where_squared_variances_underflow():
    a, b = [1.0, 2.0, 4.0], [0.0, 1.0, 5.0, 3.0]
    tiny = welch(Moments.of([x * 1e-100 for x in a]), Moments.of([x * 1e-100 for x in b]))
    expected = scipy_stats.ttest_ind(a, b, equal_var=False)

    # (scipy itself falls back to df = 1 at this scale, where (s²/n)² underflows to 0.)
    assert tiny.df == pytest.approx(expected.df, rel=1e-12)
    assert close(tiny.p_value, expected.pvalue)
    assert tiny.ci95[1] * 1e100 == pytest.approx(expected.confidence_interval().high, rel=1e-12)


def test_a_constant_sample_of_cents_has_an_sd_of_exactly_zero():
    assert Moments.of([1999] * 1000).sd == 0.0
    # With rollup-sized integer sums the variance is still exact.
    big = Moments(n=10**6, total=1999 * 10**6, total_sq=1999**2 * 10**6)
    assert big.sd == 0.0 and big.mean == 1999


def test_moments_take_the_decimal_sums_of_the_database_exactly():
    values = [Decimal("19.99"), Decimal("0.00"), Decimal("-5.50"), Decimal("19.99")]
    moments = Moments(n=4, total=sum(values), total_sq=sum(v * v for v in values))
    as_floats = [float(v) for v in values]

    assert isinstance(moments.mean, float) and isinstance(moments.sd, float)
    assert moments.mean == pytest.approx(statistics.fmean(as_floats), abs=1e-15)
    assert moments.sd == pytest.approx(statistics.stdev(as_floats), rel=1e-15)
    assert welch(moments, Moments.of([1, 2, 3])).diff == pytest.approx(8.62 - 2, abs=1e-12)
    assert Moments(n=3, total=Decimal("3.30"), total_sq=Decimal("3.63")).sd == 0.0


def test_kaplan_meier_with_no_events_stays_at_one():
    curve = kaplan_meier([5, 10, 30], [False, False, False])

    assert curve == []
    assert km_survival_at(curve, 90) == 1.0
    assert km_cumulative_at(curve, 90) == 0.0
    assert kaplan_meier([], []) == []


def test_kaplan_meier_counts_censorings_at_an_event_time_as_still_at_risk():
    # At t = 2: four at risk (the two censored at 2 included), one event, so S = 3/4, not 1/2.
    curve = kaplan_meier([2, 2, 2, 4], [True, False, False, True])

    assert curve == [(2, 0.75), (4, 0.0)]


def test_kaplan_meier_with_tied_events_takes_them_in_one_step():
    curve = kaplan_meier([1, 1, 1, 3], [True, True, False, True])

    assert curve == [(1, 0.5), (3, 0.0)]


def test_kaplan_meier_refuses_bad_input():
    with pytest.raises(ValueError, match="same length"):
        kaplan_meier([1, 2], [True])
    with pytest.raises(ValueError, match="not negative"):
        kaplan_meier([-1], [True])
    with pytest.raises(ValueError, match="not negative"):
        kaplan_meier([math.nan], [True])
    with pytest.raises(ValueError, match="cannot be negative"):
        kaplan_meier_tallied([(1.0, -1, 3)])


def test_quantiles_of_one_value_and_of_none():
    assert quantiles([4.0], [0.25, 0.5, 0.75]) == [4.0, 4.0, 4.0]
    assert quantiles([], [0.5]) == [None]
    assert quantiles([1, 2, 3, 4], [0, 1]) == [1, 4]
    with pytest.raises(ValueError, match="between 0 and 1"):
        quantiles([1], [1.5])


def test_srm_flags_a_broken_split_and_passes_a_fair_one():
    assert srm_p([9000, 1000], [0.9, 0.1]) == pytest.approx(1.0)
    assert srm_p([9000, 1150], [90, 10]) < SRM_ALPHA
    assert srm_p([9000, 1030], [0.9, 0.1]) > SRM_ALPHA


def test_srm_without_data_or_comparison_is_none():
    assert srm_p([0, 0], [0.9, 0.1]) is None
    assert srm_p([50], [1.0]) is None
    # An empty arm weighted 0 drops out; one with assignments is certainly broken.
    assert srm_p([10, 10, 0], [1, 1, 0]) == pytest.approx(1.0)
    assert srm_p([10, 10, 1], [1, 1, 0]) == 0.0


def test_benjamini_hochberg_keeps_none_and_counts_only_real_tests():
    assert benjamini_hochberg([None, 0.01, None, 0.04]) == [None, 0.02, None, 0.04]
    assert benjamini_hochberg([]) == []
    assert benjamini_hochberg([None]) == [None]
    assert benjamini_hochberg([0.9, 0.8]) == [0.9, 0.9]
    with pytest.raises(ValueError, match="between 0 and 1"):
        benjamini_hochberg([1.2])


def test_per_claimer_scales_the_effect_by_the_claim_rate():
    assert per_claimer(0.04, 0.3) == pytest.approx(0.1333333)
    assert per_claimer(0.04, 0.0) is None
    assert per_claimer(None, 0.3) is None
    assert per_claimer(0.04, None) is None
