"""On random histories, the engine (SQL sufficient statistics, then analytics/stats.py) agrees to
1e-6 with a plain computation from the raw rows written straight from METRICS.md, whose
intervals and tests come from statsmodels, scipy and lifelines.

Times are whole hours, so purchases land exactly on windows' edges often enough to check that
windows are half-open. Each example's rows are rolled back before the next one.
"""

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lifelines import KaplanMeierFitter
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint, proportions_ztest

from analytics import metrics
from billing.models import ExchangeRate
from tests import factories
from tests.factories import NOW

pytestmark = pytest.mark.django_db

ARMS = ("default", "long", "holdout")
WEIGHTS = {"default": 0.35, "long": 0.35, "holdout": 0.3}
CLAIMED = ("active", "converted", "cancelled", "expired", "payment_failed")
# USD has a rate that changes on day 100; GBP has none.
RATES = [("USD", Decimal("0.9"), -10), ("USD", Decimal("0.8"), 100)]
TOLERANCE = {"rel": 1e-6, "abs": 1e-6}


def hours(n: int) -> datetime:
    return NOW + timedelta(hours=n)


@dataclass
class Row:
    at: datetime
    amount: int
    kind: str
    currency: str
    refund_at: datetime | None = None


@dataclass
class Person:
    arm: str
    assigned_at: datetime
    claim: tuple | None  # (claimed_at, days, status, converted_at)
    rows: list[Row] = field(default_factory=list)


@st.composite
def histories(draw):
    """People, an as-of time, a window and a grace; many times fall on an edge of a window."""
    window = draw(st.sampled_from([7, 30, 90]))
    grace = draw(st.sampled_from([1, 7]))
    edges = [0, -1, 1, window * 24, window * 24 - 1]

    def near(anchor: datetime) -> datetime:
        offset = draw(st.one_of(st.sampled_from(edges), st.integers(-30 * 24, 250 * 24)))
        return anchor + timedelta(hours=offset)

    crowd = []
    for _ in range(draw(st.integers(0, 12))):
        arm = draw(st.sampled_from(ARMS))
        assigned_at = hours(draw(st.integers(0, 200 * 24)))
        claim = None
        if arm != "holdout" and draw(st.booleans()):
            claimed_at = assigned_at + timedelta(hours=draw(st.integers(0, 72)))
            days = draw(st.sampled_from([14, 28]))
            status = draw(st.sampled_from([*CLAIMED, "abandoned"]))
            converted_at = None
            if status == "converted":
                converted_at = claimed_at + timedelta(days=days + grace, hours=draw(st.sampled_from([-1, 0, 1])))
                converted_at = max(draw(st.sampled_from([converted_at, near(claimed_at)])), claimed_at)
            claim = (claimed_at, days, status, converted_at)
        person = Person(arm=arm, assigned_at=assigned_at, claim=claim)
        anchors = [assigned_at] + ([claim[0] + timedelta(days=claim[1])] if claim else [])
        for _ in range(draw(st.integers(0, 5))):
            at = near(draw(st.sampled_from(anchors)))
            refund_at = None
            if draw(st.booleans()):
                refund_at = at + timedelta(hours=draw(st.integers(0, 150 * 24)))
            person.rows.append(
                Row(
                    at=at,
                    amount=draw(st.integers(1, 10_000)),
                    kind=draw(st.sampled_from(["regular", "regular", "regular", "trial_fee", "sample"])),
                    currency=draw(st.sampled_from(["EUR", "EUR", "EUR", "USD", "GBP"])),
                    refund_at=refund_at,
                )
            )
        crowd.append(person)
    # Often exactly when someone's window closes, or their trial is decided.
    moments = [person.assigned_at + timedelta(days=window) for person in crowd] + [
        person.claim[0] + timedelta(days=person.claim[1] + grace) for person in crowd if person.claim
    ]
    as_of = draw(st.one_of(st.integers(20 * 24, 320 * 24).map(hours), st.sampled_from(moments or [hours(240)])))
    return crowd, as_of, window, grace


@contextmanager
def rolled_back():
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


# --- The oracle: METRICS.md read literally, row by row -------------------------------------------
def rate_of(currency: str, at: datetime) -> Decimal | None:
    """The rate in force for a ledger row made at ``at`` (a refund has its own)."""
    if currency == "EUR":
        return Decimal(1)
    in_force = [rate for code, rate, since in RATES if code == currency and hours(since * 24) <= at]
    return in_force[-1] if in_force else None


def window_values(person: Person, start: datetime, window: int, as_of: datetime, left_out: set):
    end = start + timedelta(days=window)
    count, revenue = 0, 0.0
    for index, row in enumerate(person.rows):
        if row.kind != "regular":
            continue
        ledger = [(row.at, row.amount)] + ([(row.refund_at, -row.amount)] if row.refund_at else [])
        refunded = row.refund_at is not None and row.refund_at <= as_of
        if start <= row.at < end and not refunded:
            count += 1
        for number, (at, amount) in enumerate(ledger):
            if start <= at < end:
                rate = rate_of(row.currency, at)
                if rate is None:
                    left_out.add((id(person), index, number))
                else:
                    revenue += float(amount * rate)
    return count, revenue / 100


def oracle_window(values: list[tuple[int, float]]) -> dict:
    n = len(values)
    counts = [count for count, _ in values]
    revenue = [money for _, money in values]
    buyers = sum(count >= 1 for count in counts)
    repeat = sum(count >= 2 for count in counts)
    return {
        "mature": n,
        "buyers": buyers,
        "repeat_buyers": repeat,
        "buyer_rate": buyers / n if n else None,
        "repeat_rate": repeat / n if n else None,
        "buyer_rate_ci95": list(proportion_confint(buyers, n, method="wilson")) if n else None,
        "repeat_rate_ci95": list(proportion_confint(repeat, n, method="wilson")) if n else None,
        "purchases_per_customer": float(np.mean(counts)) if n else None,
        "revenue_per_customer": float(np.mean(revenue)) if n else None,
        "revenue_sd": float(np.std(revenue, ddof=1)) if n >= 2 else None,
        "counts": counts,
        "revenue": revenue,
    }


def km_oracle(durations, events, observed_max):
    if not durations:
        return dict.fromkeys(metrics.KM_DAYS)
    fitter = KaplanMeierFitter().fit(durations, events)
    values = {}
    for t in metrics.KM_DAYS:
        cumulative = 1 - float(fitter.survival_function_at_times(t).iloc[0])
        values[t] = cumulative if t <= observed_max or cumulative >= 1 - 1e-12 else None
    return values


def oracle(history: list[Person], as_of: datetime, window: int, grace: int) -> dict:
    result, left_out = {}, set()
    for arm in ARMS:
        units = [person for person in history if person.arm == arm and person.assigned_at <= as_of]
        claims = [
            person.claim for person in units if person.claim and person.claim[0] <= as_of and person.claim[2] in CLAIMED
        ]
        decided = [claim for claim in claims if claim[0] + timedelta(days=claim[1] + grace) <= as_of]
        converted = [c for c in decided if c[3] is not None and c[3] <= c[0] + timedelta(days=c[1] + grace)]
        pending = [c for c in claims if c[0] + timedelta(days=c[1] + grace) > as_of and (c[3] is None or c[3] > as_of)]
        durations, events = [], []
        for claimed_at, _days, _status, converted_at in claims:
            event = converted_at is not None and converted_at <= as_of
            durations.append(((converted_at if event else as_of) - claimed_at).total_seconds() / 86400)
            events.append(event)
        itt = oracle_window(
            [
                window_values(person, person.assigned_at, window, as_of, left_out)
                for person in units
                if person.assigned_at + timedelta(days=window) <= as_of
            ]
        )
        post = oracle_window(
            [
                window_values(person, person.claim[0] + timedelta(days=person.claim[1]), window, as_of, left_out)
                for person in units
                if person.claim
                and person.claim[0] <= as_of
                and person.claim[2] in CLAIMED
                and person.claim[0] + timedelta(days=person.claim[1] + window) <= as_of
            ]
        )
        on_time = [(c[3] - c[0]).total_seconds() / 86400 for c in converted]
        result[arm] = {
            "assigned": len(units),
            "claimed": len(claims),
            "claim_rate": len(claims) / len(units) if units else None,
            "mature": len(decided),
            "converted": len(converted),
            "pending": len(pending),
            "rate": len(converted) / len(decided) if decided else None,
            "ci95": list(proportion_confint(len(converted), len(decided), method="wilson")) if decided else None,
            "outcomes": {
                name: sum(c[2] in statuses for c in claims)
                for name, statuses in {
                    "converted": ("converted",),
                    "cancelled": ("cancelled",),
                    "expired": ("expired",),
                    "payment_failed": ("payment_failed",),
                    "pending": ("active",),
                }.items()
            },
            "quartiles": list(np.percentile(on_time, [25, 50, 75])) if on_time else [None] * 3,
            "km": km_oracle(durations, events, max(durations, default=0)),
            "itt": itt,
            "post": post,
        }
    result["unconverted_rows"] = len(left_out)
    return result


def same(engine, expected):
    if expected is None or (isinstance(expected, float) and math.isnan(expected)):
        assert engine is None
    elif isinstance(expected, list | tuple):
        assert engine is not None
        assert list(engine) == pytest.approx(list(expected), **TOLERANCE)
    else:
        assert engine == pytest.approx(expected, **TOLERANCE)


def uplift_oracle(treated: dict, control: dict, metric: str):
    if metric in ("repeat_rate", "buyer_rate"):
        counted = "repeat_buyers" if metric == "repeat_rate" else "buyers"
        x1, n1, x2, n2 = treated[counted], treated["mature"], control[counted], control["mature"]
        if not n1 or not n2:
            return None, None, None
        low, high = confint_proportions_2indep(x1, n1, x2, n2, method="newcomb", compare="diff")
        pooled = (x1 + x2) / (n1 + n2)
        p_value = None if pooled in (0, 1) else float(proportions_ztest([x1, x2], [n1, n2])[1])
        return x1 / n1 - x2 / n2, [low, high], p_value
    a, b = (treated["counts"], control["counts"]) if metric == "purchases_per_customer" else (
        treated["revenue"], control["revenue"])  # fmt: skip
    if len(a) < 2 or len(b) < 2:
        return None, None, None
    diff = float(np.mean(a) - np.mean(b))
    if np.var(a) == 0 and np.var(b) == 0:
        return diff, None, None
    test = scipy_stats.ttest_ind(a, b, equal_var=False)
    return diff, list(test.confidence_interval(0.95)), float(test.pvalue)


@pytest.fixture
def offer(marketer):
    return rated_offer(marketer)


def rated_offer(marketer):
    """An offer with two variants and a 30% holdout, and the USD rates of ``RATES``."""
    offer = factories.offer(
        actor=marketer,
        holdout_percent=30,
        variants=[{"name": "default", "weight": 1}, {"name": "long", "weight": 1, "trial_days": 28}],
    )
    for currency, rate, since in RATES:
        ExchangeRate.objects.create(currency=currency, to_currency="EUR", rate=rate, valid_from=hours(since * 24))
    return offer


def write_history(offer, people: list[Person], *, first: int = 0, countries: tuple[str, ...] = ("",)) -> None:
    """The people's rows: each a customer (of the next of ``countries`` in turn), their
    assignment, their claim and their ledger rows, refunds included."""
    for number, person in enumerate(people, start=first):
        customer = factories.customer(email=f"p{number}@example.com", country=countries[number % len(countries)])
        assignment = factories.assignment(
            offer=offer, customer=customer, arm=person.arm, assigned_at=person.assigned_at
        )
        if person.claim:
            claimed_at, days, status, converted_at = person.claim
            factories.claim(
                assignment=assignment, claimed_at=claimed_at, days=days, status=status, converted_at=converted_at
            )
        for row in person.rows:
            made = factories.purchase(
                customer=customer, product=offer.product, amount=row.amount, at=row.at, kind=row.kind,
                currency=row.currency,
            )  # fmt: skip
            if row.refund_at is not None:
                factories.refund(original=made, at=row.refund_at)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories())
def test_the_engine_agrees_with_a_plain_computation_from_the_raw_rows(offer, history):
    people_, as_of, window, grace = history
    with rolled_back():
        write_history(offer, people_)

        engine = metrics.offer_metrics(offer=offer, as_of=as_of, window_days=window, grace_days=grace)

    expected = oracle(people_, as_of, window, grace)
    assert engine.unconverted_rows == expected["unconverted_rows"]
    for arm in engine.arms:
        want = expected[arm.arm]
        assert (arm.assigned, arm.claimed) == (want["assigned"], want["claimed"])
        same(arm.claim_rate, want["claim_rate"])
        for name in ("buyers", "repeat_buyers", "mature"):
            assert getattr(arm.itt, name) == want["itt"][name], name
        for name in ("buyer_rate", "repeat_rate", "buyer_rate_ci95", "repeat_rate_ci95", "purchases_per_customer",
                     "revenue_per_customer", "revenue_sd"):  # fmt: skip
            same(getattr(arm.itt, name), want["itt"][name])
        if arm.is_holdout:
            assert arm.conversion is None and arm.post_trial is None
            continue
        conversion = arm.conversion
        assert (conversion.mature, conversion.converted, conversion.pending) == (
            want["mature"], want["converted"], want["pending"])  # fmt: skip
        same(conversion.rate, want["rate"])
        same(conversion.ci95, want["ci95"])
        assert arm.outcomes == metrics.Outcomes(**want["outcomes"])
        time = arm.time_to_convert
        for engine_value, oracle_value in zip(
            (time.p25_days, time.median_days, time.p75_days), want["quartiles"], strict=True
        ):
            same(engine_value, oracle_value)
        for t in metrics.KM_DAYS:
            same(time.km_cumulative[t], want["km"][t])
        for name in ("mature", "buyers", "repeat_buyers"):
            assert getattr(arm.post_trial, name) == want["post"][name], name
        for name in ("repeat_rate", "purchases_per_customer", "revenue_per_customer"):
            same(getattr(arm.post_trial, name), want["post"][name])

    raw = []
    for entry in engine.uplift:
        diff, ci95, p_value = uplift_oracle(expected[entry.arm]["itt"], expected["holdout"]["itt"], entry.metric)
        same(entry.diff, diff)
        same(entry.ci95, ci95)
        same(entry.p_value, p_value)
        claim_rate = expected[entry.arm]["claim_rate"]
        same(entry.per_claimer, None if diff is None or not claim_rate else diff / claim_rate)
        raw.append(p_value)
    present = [p for p in raw if p is not None]
    adjusted = iter(multipletests(present, method="fdr_bh")[1]) if present else iter(())
    for entry, p_value in zip(engine.uplift, raw, strict=True):
        same(entry.p_value_bh, None if p_value is None else next(adjusted))

    counts = [expected[arm]["assigned"] for arm in ARMS]
    if sum(counts):
        same(engine.srm.p_value, scipy_stats.chisquare(counts, [sum(counts) * WEIGHTS[arm] for arm in ARMS]).pvalue)
    else:
        assert engine.srm.p_value is None
