"""Each customer lands in one arm of an offer, the same one every time, and the arms fill in the
proportions the marketer set. scipy is the oracle for the split (a test-only dependency)."""

from collections import Counter

import pytest
from scipy.stats import chi2_contingency, chisquare

from offers.rules import HOLDOUT, arm_for, assignment_unit

SALT = "coffee-sampler"
CUSTOMERS = tuple(f"customer-{i}" for i in range(100_000))
VARIANTS = (("espresso", 1), ("filter", 1), ("whole-bean", 2))
# Holdout 10%, then the remaining 90% split 1:1:2.
EXPECTED_SHARES = {HOLDOUT: 0.10, "espresso": 0.225, "filter": 0.225, "whole-bean": 0.45}


def arms(*, salt=SALT, holdout_percent=10, variants=VARIANTS, customers=CUSTOMERS):
    return [
        arm_for(salt=salt, customer_key=key, holdout_percent=holdout_percent, variants=variants) for key in customers
    ]


def test_a_customer_gets_the_same_arm_on_every_call():
    first = arms(customers=CUSTOMERS[:1000])
    second = arms(customers=CUSTOMERS[:1000])

    assert first == second


def test_the_assignment_is_the_same_in_every_release():
    # SHA-256 of "salt:key", not Python's per-process hash: these values must never change, or
    # customers already in an experiment would switch arms.
    assert assignment_unit(salt=SALT, customer_key="customer-1") == 0.9418384950131652
    assert arms(customers=CUSTOMERS[:8]) == [
        "whole-bean",
        "whole-bean",
        HOLDOUT,
        "whole-bean",
        "whole-bean",
        "whole-bean",
        "whole-bean",
        "filter",
    ]


def test_over_100000_customers_the_split_matches_the_holdout_and_the_weights():
    counts = Counter(arms())
    names = list(EXPECTED_SHARES)
    observed = [counts[name] for name in names]
    expected = [EXPECTED_SHARES[name] * len(CUSTOMERS) for name in names]

    assert sum(observed) == len(CUSTOMERS)
    assert chisquare(observed, expected).pvalue > 0.001
    for name in names:
        assert counts[name] / len(CUSTOMERS) == pytest.approx(EXPECTED_SHARES[name], abs=0.01)


def test_two_offers_with_different_salts_split_customers_independently():
    first = arms(salt="coffee-sampler")
    second = arms(salt="tea-sampler")
    names = list(EXPECTED_SHARES)
    pairs = Counter(zip(first, second, strict=True))
    table = [[pairs[(a, b)] for b in names] for a in names]

    assert first != second
    assert chi2_contingency(table).pvalue > 0.001
    # Being in the holdout of one offer says nothing about the holdout of the other.
    in_both_holdouts = pairs[(HOLDOUT, HOLDOUT)] / len(CUSTOMERS)
    assert in_both_holdouts == pytest.approx(0.10 * 0.10, abs=0.002)


def test_a_variant_with_zero_weight_never_gets_anyone():
    counts = Counter(arms(variants=(("espresso", 1), ("retired", 0), ("filter", 1)), customers=CUSTOMERS[:20_000]))

    assert counts["retired"] == 0
    assert set(counts) == {HOLDOUT, "espresso", "filter"}


def test_without_a_holdout_nobody_is_held_out():
    counts = Counter(arms(holdout_percent=0, customers=CUSTOMERS[:20_000]))

    assert HOLDOUT not in counts
    assert set(counts) == {"espresso", "filter", "whole-bean"}


def test_a_single_variant_takes_everyone_outside_the_holdout():
    counts = Counter(arms(variants=(("default", 1),), customers=CUSTOMERS[:20_000]))

    assert set(counts) == {HOLDOUT, "default"}


@pytest.mark.parametrize(
    ("holdout_percent", "variants", "message"),
    [
        (10, (("espresso", 0), ("filter", 0)), "at least one variant needs a positive weight"),
        (10, (), "at least one variant needs a positive weight"),
        (100, VARIANTS, "holdout must be at least 0% and below 100%"),
        (-1, VARIANTS, "holdout must be at least 0% and below 100%"),
    ],
)
def test_an_impossible_split_is_refused(holdout_percent, variants, message):
    with pytest.raises(ValueError, match=message):
        arm_for(salt=SALT, customer_key="customer-1", holdout_percent=holdout_percent, variants=variants)
