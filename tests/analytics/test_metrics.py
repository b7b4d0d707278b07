"""The metrics engine gives exactly METRICS.md's figures on a history built by hand, where every
number can be worked out on paper, and at the edges: empty arms, windows not yet closed,
refunds, currencies without a rate, superseded assignments, the holdout.

The history (days after NOW; T = day 200, N = 90, G = 7), offer split 40% default, 40% long,
20% holdout:

    default  d1  claimed 0, ends 14, converted 14; buys 15 (10.00), 40 (5.00); a trial fee on 1
             d2  claimed 1, ends 15, cancelled; buys 20 (24.00), refunded on 95 (after its itt window)
             d3  never claimed; bought 8.00 on day -10, refunded on day 5: its only row in a window is a refund
             d4  assigned and claimed 150, ends 164, still active (decided, not converted)
             d5  assigned and claimed 190, ends 204, active (pending: D = 211 > T)
    long     l1  claimed 0, ends 28, converted 30; buys 30 (24.00 EUR), 60 (10.00 USD at 0.5), 70 (10.00 GBP, no rate)
             l2  claimed 2, ends 30, converted 40: late (D = 37)
             and a visitor's row superseded by l1's, and a visitor who never logged in: not units
    holdout  h1  buys 10 (10.00);  h2  buys nothing
"""

import json
import statistics
from datetime import timedelta
from decimal import Decimal

import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint, proportions_ztest

from analytics import api, metrics, queries
from billing.models import ExchangeRate
from tests import factories
from tests.factories import NOW
from trials.models import Assignment

pytestmark = pytest.mark.django_db

T = NOW + timedelta(days=200)
EXACT = {"rel": 1e-9, "abs": 1e-12}


def day(n: float):
    return NOW + timedelta(days=n)


def wilson(x: int, n: int) -> list[float]:
    return list(proportion_confint(x, n, alpha=0.05, method="wilson"))


@pytest.fixture
def offer(marketer):
    return factories.offer(
        actor=marketer,
        holdout_percent=20,
        variants=[{"name": "default", "weight": 1}, {"name": "long", "weight": 1, "trial_days": 28}],
    )


@pytest.fixture
def history(offer):
    beans = offer.product
    people = {name: factories.customer(email=f"{name}@example.com", country="IT") for name in
              ("d1", "d2", "d3", "d4", "d5", "l1", "l2", "h1", "h2")}  # fmt: skip
    people["d1"].country = "DE"
    people["d1"].save(update_fields=["country"])
    arms = {"d": "default", "l": "long", "h": "holdout"}
    a = {name: factories.assignment(offer=offer, customer=person, arm=arms[name[0]]) for name, person in people.items()}
    for name in ("d4", "d5"):
        start = day(150 if name == "d4" else 190)
        Assignment.objects.filter(pk=a[name].pk).update(assigned_at=start)
        a[name].refresh_from_db()
    factories.claim(assignment=a["d1"], status="converted", converted_at=day(14))
    factories.claim(assignment=a["d2"], claimed_at=day(1), status="cancelled", cancelled_at=day(3))
    factories.claim(assignment=a["d4"])
    factories.claim(assignment=a["d5"])
    factories.claim(assignment=a["l1"], days=28, status="converted", converted_at=day(30))
    factories.claim(assignment=a["l2"], claimed_at=day(2), days=28, status="converted", converted_at=day(40))

    buy = factories.purchase
    buy(customer=people["d1"], product=beans, amount=100, at=day(1), kind="trial_fee")
    buy(customer=people["d1"], product=beans, amount=1000, at=day(15))
    buy(customer=people["d1"], product=beans, amount=500, at=day(40))
    factories.refund(original=buy(customer=people["d2"], product=beans, amount=2400, at=day(20)), at=day(95))
    factories.refund(original=buy(customer=people["d3"], product=beans, amount=800, at=day(-10)), at=day(5))
    buy(customer=people["l1"], product=beans, amount=2400, at=day(30))
    buy(customer=people["l1"], product=beans, amount=1000, at=day(60), currency="USD")
    buy(customer=people["l1"], product=beans, amount=1000, at=day(70), currency="GBP")
    buy(customer=people["h1"], product=beans, amount=1000, at=day(10))
    ExchangeRate.objects.create(currency="USD", to_currency="EUR", rate=Decimal("0.5"), valid_from=day(-100))
    # A rate that came into force after the purchase does not apply to it.
    ExchangeRate.objects.create(currency="GBP", to_currency="EUR", rate=Decimal("1.2"), valid_from=day(71))

    visitor = Assignment.objects.create(
        offer=offer, visitor="cookie-1", variant=a["l1"].variant, arm="long", assigned_at=NOW, superseded_by=a["l1"]
    )
    Assignment.objects.create(offer=offer, visitor="cookie-2", variant=a["l1"].variant, arm="long", assigned_at=NOW)
    assert visitor.superseded_by_id == a["l1"].pk
    return people


def figures(offer, **options) -> metrics.OfferMetrics:
    return metrics.offer_metrics(offer=offer, as_of=T, **options)


# --- Per arm -----------------------------------------------------------------------------------
def test_assignments_claims_and_conversion_per_arm(offer, history):
    result = figures(offer)
    default, long, holdout = result.arms

    assert [arm.arm for arm in result.arms] == ["default", "long", "holdout"]
    assert [arm.weight for arm in result.arms] == pytest.approx([0.4, 0.4, 0.2])
    assert (default.assigned, default.claimed, default.claim_rate) == (5, 4, 0.8)
    # The superseded visitor's row and the visitor who never logged in are not units.
    assert (long.assigned, long.claimed, long.claim_rate) == (2, 2, 1.0)
    assert (holdout.assigned, holdout.claimed, holdout.claim_rate) == (2, 0, 0.0)
    assert default.conversion == metrics.Conversion(
        mature=3, converted=1, pending=1, rate=1 / 3, ci95=default.conversion.ci95
    )
    assert list(default.conversion.ci95) == pytest.approx(wilson(1, 3), **EXACT)
    # l2 converted on day 40, after its decision time (day 37): mature, not converted.
    assert (long.conversion.mature, long.conversion.converted, long.conversion.pending) == (2, 1, 0)
    assert default.outcomes == metrics.Outcomes(converted=1, cancelled=1, expired=0, payment_failed=0, pending=2)
    assert long.outcomes == metrics.Outcomes(converted=2, cancelled=0, expired=0, payment_failed=0, pending=0)


def test_time_to_convert_counts_the_on_time_converters_and_censors_the_rest(offer, history):
    default, long, _ = figures(offer).arms

    assert default.time_to_convert == metrics.TimeToConvert(
        converters=1, median_days=14.0, p25_days=14.0, p75_days=14.0,
        # d5 is censored at 10 days, d1 converts at 14 with three at risk, d4 and d2 censored later.
        km_cumulative={7: 0.0, 14: pytest.approx(1 / 3), 30: pytest.approx(1 / 3), 60: pytest.approx(1 / 3),
                       90: pytest.approx(1 / 3)},
    )  # fmt: skip
    # l2's late conversion (day 38 of its trial) is still an event of the curve, which reaches 1.
    assert long.time_to_convert.converters == 1
    assert long.time_to_convert.median_days == 30.0
    assert long.time_to_convert.km_cumulative == {7: 0.0, 14: 0.0, 30: 0.5, 60: 1.0, 90: 1.0}


def test_itt_counts_purchases_and_revenue_from_the_assignment(offer, history):
    default, long, holdout = figures(offer).arms

    # d1: two purchases (the trial fee is not one), 15.00; d2: its purchase was refunded, but the
    # refund came after the window, so its 24.00 stays in the window's revenue; d3: only a refund, -8.00.
    assert (default.itt.mature, default.itt.buyers, default.itt.repeat_buyers) == (3, 1, 1)
    assert default.itt.buyer_rate == pytest.approx(1 / 3)
    assert list(default.itt.buyer_rate_ci95) == pytest.approx(wilson(1, 3), **EXACT)
    assert default.itt.purchases_per_customer == pytest.approx(2 / 3)
    assert default.itt.revenue_per_customer == pytest.approx((15 + 24 - 8) / 3)
    assert default.itt.revenue_sd == pytest.approx(statistics.stdev([15, 24, -8]))
    # l1: 24.00 EUR + 10.00 USD at 0.5; the GBP row has no rate in force and is left out of revenue
    # (but is still a purchase).
    assert (long.itt.mature, long.itt.buyers, long.itt.repeat_buyers) == (2, 1, 1)
    assert long.itt.purchases_per_customer == 1.5
    assert long.itt.revenue_per_customer == pytest.approx(29 / 2)
    assert long.itt.revenue_sd == pytest.approx(statistics.stdev([29, 0]))
    assert (holdout.itt.mature, holdout.itt.buyers, holdout.itt.repeat_buyers) == (2, 1, 0)
    assert (holdout.itt.buyer_rate, holdout.itt.repeat_rate) == (0.5, 0.0)
    assert holdout.itt.revenue_per_customer == 5.0


def test_post_trial_counts_from_the_trials_end_for_claimers_only(offer, history):
    result = figures(offer)
    default, long, holdout = result.arms

    # d1 and d2 ended by T - N; d2's refund falls inside its post-trial window and cancels its 24.00.
    assert (default.post_trial.mature, default.post_trial.buyers, default.post_trial.repeat_buyers) == (2, 1, 1)
    assert default.post_trial.repeat_rate == 0.5
    assert default.post_trial.purchases_per_customer == 1.0
    assert default.post_trial.revenue_per_customer == 7.5
    assert (long.post_trial.mature, long.post_trial.purchases_per_customer) == (2, 1.5)
    assert long.post_trial.revenue_per_customer == 14.5
    assert holdout.post_trial is None
    # The GBP row is in l1's itt and post-trial windows: one row left out, counted once.
    assert result.unconverted_rows == 1
    assert result.currency == "EUR"


def test_the_holdout_has_nothing_to_claim(offer, history):
    holdout = figures(offer).arm("holdout")

    assert holdout.is_holdout
    assert (holdout.conversion, holdout.outcomes, holdout.time_to_convert, holdout.post_trial) == (None,) * 4
    body = figures(offer).as_json()["arms"][2]
    assert body["conversion"] is None and body["post_trial"] is None and body["time_to_convert"] is None


# --- Uplift and checks -------------------------------------------------------------------------
def test_uplift_of_each_variant_against_the_holdout(offer, history):
    result = figures(offer)
    uplift = {(entry.arm, entry.metric): entry for entry in result.uplift}

    assert [(entry.arm, entry.metric) for entry in result.uplift] == [
        (arm, metric) for arm in ("default", "long") for metric in metrics.UPLIFT_METRICS
    ]
    repeat = uplift["default", "repeat_rate"]
    low, high = confint_proportions_2indep(1, 3, 0, 2, method="newcomb", compare="diff")
    assert repeat.diff == pytest.approx(1 / 3)
    assert list(repeat.ci95) == pytest.approx([low, high], **EXACT)
    assert repeat.p_value == pytest.approx(proportions_ztest([1, 0], [3, 2])[1], **EXACT)
    assert repeat.per_claimer == pytest.approx((1 / 3) / 0.8)
    assert repeat.vs == "holdout"

    revenue = uplift["default", "revenue_per_customer"]
    welch = scipy_stats.ttest_ind([15, 24, -8], [10, 0], equal_var=False)
    assert revenue.diff == pytest.approx(31 / 3 - 5)
    assert revenue.p_value == pytest.approx(welch.pvalue, **EXACT)
    assert list(revenue.ci95) == pytest.approx(list(welch.confidence_interval(0.95)), **EXACT)
    counts = uplift["long", "purchases_per_customer"]
    welch = scipy_stats.ttest_ind([3, 0], [1, 0], equal_var=False)
    assert counts.diff == 1.0
    assert counts.p_value == pytest.approx(welch.pvalue, **EXACT)


def test_benjamini_hochberg_within_the_offer_and_the_sample_ratio_check(offer, history):
    from statsmodels.stats.multitest import multipletests

    result = figures(offer)
    raw = [entry.p_value for entry in result.uplift]
    assert None not in raw
    assert [entry.p_value_bh for entry in result.uplift] == pytest.approx(
        list(multipletests(raw, method="fdr_bh")[1]), **EXACT
    )
    expected = scipy_stats.chisquare([5, 2, 2], [9 * 0.4, 9 * 0.4, 9 * 0.2]).pvalue
    assert result.srm == metrics.SampleRatio(p_value=pytest.approx(expected, **EXACT), flag=False)
    assert not result.observational


def test_a_split_far_from_its_weights_is_flagged(offer):
    for number in range(60):
        factories.assignment(offer=offer, customer=factories.customer(email=f"c{number}@example.com"), arm="default")

    result = figures(offer)

    assert result.srm.p_value < 0.001
    assert result.srm.flag


def test_an_offer_without_a_holdout_is_observational(marketer):
    offer = factories.offer(actor=marketer, slug="no-holdout", holdout_percent=0)
    factories.assignment(offer=offer, customer=factories.customer(email="a@example.com"))

    result = figures(offer)

    assert result.observational
    assert [arm.arm for arm in result.arms] == ["default"]
    assert result.uplift == ()
    assert result.srm.p_value is None  # one arm: nothing to compare


# --- Edges -------------------------------------------------------------------------------------
def test_an_offer_nobody_was_assigned_to_has_nulls_not_zeros(offer):
    result = figures(offer)

    for arm in result.arms:
        assert (arm.assigned, arm.claim_rate, arm.itt.mature) == (0, None, 0)
        assert arm.itt.buyer_rate is None and arm.itt.repeat_rate_ci95 is None
        assert arm.itt.purchases_per_customer is None and arm.itt.revenue_sd is None
    default = result.arm("default")
    assert default.conversion == metrics.Conversion(mature=0, converted=0, pending=0, rate=None, ci95=None)
    assert default.time_to_convert.km_cumulative == dict.fromkeys(metrics.KM_DAYS)
    assert default.time_to_convert.median_days is None
    assert all(entry.diff is None and entry.p_value is None and entry.ci95 is None for entry in result.uplift)
    assert result.srm.p_value is None
    assert json.loads(json.dumps(result.as_json()))["arms"][0]["itt"]["buyer_rate"] is None


def test_when_every_window_is_still_open_only_counts_and_pending_show(offer, history):
    result = metrics.offer_metrics(offer=offer, as_of=day(10))
    default = result.arm("default")

    assert (default.assigned, default.claimed) == (3, 2)  # d4 and d5 were assigned later
    assert (default.conversion.mature, default.conversion.pending, default.conversion.rate) == (0, 2, None)
    assert all(arm.itt.mature == 0 and arm.itt.repeat_rate is None for arm in result.arms)
    assert default.post_trial.mature == 0 and default.post_trial.revenue_per_customer is None
    # Observed for 9 and 10 days: the curve is known up to then, and not beyond.
    assert default.time_to_convert.km_cumulative == {7: 0.0, 14: None, 30: None, 60: None, 90: None}
    assert result.unconverted_rows == 0


def test_a_refund_made_after_the_as_of_time_does_not_undo_the_purchase_yet(offer, history):
    # d2's refund is on day 95: as of day 94 + N... use a shorter window so its window is mature.
    before = metrics.offer_metrics(offer=offer, as_of=day(94), window_days=30).arm("default")
    after = metrics.offer_metrics(offer=offer, as_of=day(96), window_days=30).arm("default")

    assert before.itt.buyers == 2  # d1 and d2, whose purchase was not refunded yet
    assert after.itt.buyers == 1
    assert before.itt.revenue_per_customer == after.itt.revenue_per_customer  # the refund is outside the window


def test_a_shorter_grace_makes_a_conversion_late(offer, history):
    long = figures(offer, grace_days=1).arm("long")

    assert (long.conversion.mature, long.conversion.converted) == (2, 0)  # l1 converted 2 days after its end
    assert figures(offer, grace_days=1).grace_days == 1
    assert figures(offer).grace_days == offer.grace_days == 7


def test_filters_by_variant_country_and_assignment_date(offer, history):
    one = figures(offer, variant="long")
    italians = figures(offer, country="IT")
    early = figures(offer, assigned_to=day(100))

    assert [arm.arm for arm in one.arms] == ["long", "holdout"]
    assert one.srm.p_value is None
    assert {entry.arm for entry in one.uplift} == {"long"}
    assert italians.arm("default").assigned == 4  # d1 is in Germany
    assert figures(offer, country="FR").arm("default").assigned == 0
    assert early.arm("default").assigned == 3


def test_the_document_has_exactly_the_shape_of_metrics_md(offer, history):
    def shape(value):
        if isinstance(value, dict):
            return {key: shape(item) for key, item in value.items()}
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return [shape(value[0])]
        return type(value).__name__ if value is not None else None

    body = json.loads(json.dumps(figures(offer).as_json()))
    variant, holdout = api.EXAMPLE["arms"]

    assert set(body) == set(api.EXAMPLE)
    assert set(body["arms"][0]) == set(variant)
    for part in ("conversion", "outcomes", "time_to_convert", "itt", "post_trial"):
        assert set(body["arms"][0][part]) == set(variant[part]), part
    assert set(body["arms"][0]["time_to_convert"]["km_cumulative"]) == {"7", "14", "30", "60", "90"}
    assert set(body["arms"][2]) == set(holdout)
    assert set(body["uplift"][0]) == set(api.EXAMPLE["uplift"][0])
    assert body["as_of"] == "2026-12-18T09:00:00+00:00"
    assert body["arms"][0]["conversion"]["ci95"] == pytest.approx(wilson(1, 3))
    assert shape(body["srm"]) == {"p_value": "float", "flag": "bool"}


def test_the_overview_adjusts_p_values_across_offers(offer, history, marketer):
    from statsmodels.stats.multitest import multipletests

    other = factories.offer(actor=marketer, slug="tea-sampler", holdout_percent=50, product_=offer.product)
    for number in range(6):
        person = factories.customer(email=f"t{number}@example.com")
        factories.assignment(offer=other, customer=person, arm="holdout" if number % 2 else "default")
        if number < 3:
            factories.purchase(customer=person, product=offer.product, amount=500, at=day(3))
            factories.purchase(customer=person, product=offer.product, amount=500, at=day(4))

    overview = metrics.offers_overview(as_of=T)

    assert [headline.metrics.offer for headline in overview.offers] == ["tea-sampler", "coffee-sampler"]
    entries = [entry for headline in overview.offers for entry in headline.uplift]
    assert [(entry.arm, entry.metric) for entry in entries] == [
        ("default", "repeat_rate"),
        ("default", "repeat_rate"),
        ("long", "repeat_rate"),
    ]
    raw = [entry.p_value for entry in entries]
    assert [entry.p_value_bh for entry in entries] == pytest.approx(
        list(multipletests(raw, method="fdr_bh")[1]), **EXACT
    )
    body = overview.as_json()
    assert body["grace_days"] is None and body["offers"][1]["grace_days"] == 7
    assert set(body["offers"][0]) == {
        "offer", "name", "status", "currency", "grace_days", "observational", "srm", "arms", "uplift"
    }  # fmt: skip


def test_claim_weeks_count_each_arms_claims_by_outcome_and_week(offer, history):
    weeks = queries.claim_weeks(units=metrics.unit_filter(offer=offer), as_of=T)
    monday = NOW.date()  # 1 June 2026 is a Monday
    assert monday.weekday() == 0
    none = dict.fromkeys(queries.OUTCOMES, 0)
    later = {day(150).date() - timedelta(days=day(150).weekday()), day(190).date() - timedelta(days=day(190).weekday())}
    assert weeks == {
        (monday, "default"): none | {"converted": 1, "cancelled": 1},
        (monday, "long"): none | {"converted": 2},
        **{(week, "default"): none | {"pending": 1} for week in later},
    }
    assert list(weeks) == sorted(weeks)
    # Claims after the as-of moment are not there yet.
    assert (
        sum(
            sum(c.values())
            for c in queries.claim_weeks(units=metrics.unit_filter(offer=offer), as_of=day(160)).values()
        )
        == 5
    )
