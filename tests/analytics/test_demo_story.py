"""The demo history tells a true story: the effects planted in accounts/demo_story.py can be
recovered from the raw rows it writes, inside their 95% intervals (METRICS.md: the repeat rate
from assignment over 90 days, Newcombe's interval for the difference)."""

import io
from collections import Counter, defaultdict
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db.models import F
from django.utils import timezone
from statsmodels.stats.proportion import confint_proportions_2indep

from accounts import demo_story as story
from accounts.demo_history import _anchor, _Block, history_offers
from analytics.metrics import offer_metrics
from billing.imports import ASSIGNMENTS, CUSTOMERS, PURCHASES, history_import_csv
from billing.models import Purchase
from offers.models import Offer
from trials.models import Assignment, Trial

# Enough customers that the planted offer has about 18,000 units, some 14,000 of them mature.
# Purchases outside the windows change no figure here, so the test leaves most of them out.
SIZE = 40_000
WINDOW = timedelta(days=story.WINDOW_DAYS)


def _repeat_buyers(slug: str, *, as_of) -> dict[str, tuple[int, int]]:
    """Per arm: (customers with two or more purchases in their window, mature customers), from
    the assignments and the ledger as they are: a purchase is a regular row with a positive amount
    that no refund points at."""
    units = list(
        Assignment.objects.filter(offer__slug=slug, assigned_at__lte=as_of - WINDOW).values_list(
            "customer_id", "arm", "assigned_at"
        )
    )
    purchases = defaultdict(list)
    for customer_id, at in Purchase.objects.filter(
        customer__assignments__offer__slug=slug, kind=Purchase.Kind.REGULAR, amount__gt=0, refunds__isnull=True
    ).values_list("customer_id", "purchased_at"):
        purchases[customer_id].append(at)
    repeat, mature = Counter(), Counter()
    for customer_id, arm, assigned_at in units:
        mature[arm] += 1
        bought = sum(assigned_at <= at < assigned_at + WINDOW for at in purchases[customer_id])
        repeat[arm] += bought >= 2
    return {arm: (repeat[arm], mature[arm]) for arm in mature}


def _uplift(arms, arm: str) -> tuple[float, float, float]:
    (count, total), (base, base_total) = arms[arm], arms[Assignment.HOLDOUT]
    low, high = confint_proportions_2indep(count, total, base, base_total, method="newcomb", compare="diff")
    return count / total - base / base_total, low, high


@pytest.mark.django_db
def test_the_planted_effects_are_inside_their_95_percent_intervals():
    call_command("seed_demo", customers=SIZE, purchases_per_year=0.2, progress=False)

    arms = _repeat_buyers(story.PLANTED_OFFER, as_of=timezone.now())

    assert sum(total for _, total in arms.values()) > 12_000
    holdout_rate = arms[Assignment.HOLDOUT][0] / arms[Assignment.HOLDOUT][1]
    assert 0.09 < holdout_rate < 0.13  # the baseline is the planted 11%, not something else
    sampler, low, high = _uplift(arms, story.SAMPLER_ARM)
    assert low <= story.SAMPLER_REPEAT_RATE - story.HOLDOUT_REPEAT_RATE <= high, (sampler, low, high)
    assert low > 0, "the sampler's effect must be visible: its interval excludes no effect"
    discount, low, high = _uplift(arms, story.DISCOUNT_ARM)
    assert low <= story.DISCOUNT_REPEAT_RATE - story.HOLDOUT_REPEAT_RATE <= high, (discount, low, high)

    # The metrics engine, on the same rows, agrees with the count above and recovers the same
    # effects inside its own intervals.
    figures = offer_metrics(offer=Offer.objects.get(slug=story.PLANTED_OFFER), as_of=timezone.now())
    for arm, (count, total) in arms.items():
        assert (figures.arm(arm).itt.repeat_buyers, figures.arm(arm).itt.mature) == (count, total)
    uplift = {entry.arm: entry for entry in figures.uplift if entry.metric == "repeat_rate"}
    for arm, planted in (
        (story.SAMPLER_ARM, story.SAMPLER_REPEAT_RATE),
        (story.DISCOUNT_ARM, story.DISCOUNT_REPEAT_RATE),
    ):
        low, high = uplift[arm].ci95
        assert low <= planted - story.HOLDOUT_REPEAT_RATE <= high, (arm, uplift[arm])
    assert uplift[story.SAMPLER_ARM].ci95[0] > 0 and not figures.observational and not figures.srm.flag


@pytest.mark.django_db
def test_the_history_has_every_kind_a_holdout_but_one_and_the_edges_the_engine_must_handle():
    call_command("seed_demo", customers=3_000, progress=False)
    history = Offer.objects.filter(slug__in=[spec.slug for spec in story.STORY])

    kinds = {offer.kind for offer in history} | set(
        history.exclude(variants__kind="").values_list("variants__kind", flat=True)
    )
    assert kinds == set(Offer.Kind.values)
    assert [o.slug for o in history if o.holdout_percent == 0] == [story.OBSERVATIONAL_OFFER]
    assert all(offer.status == Offer.Status.LIVE and offer.starts_at < timezone.now() for offer in history)
    outcomes = set(Trial.objects.filter(offer__in=history).values_list("status", flat=True))
    assert {"converted", "cancelled", "expired", "payment_failed", "active"} <= outcomes
    imported = Purchase.objects.filter(source=Purchase.Source.IMPORT)
    assert imported.filter(refund_of__isnull=False).exists()
    assert imported.exclude(currency="EUR").exists()
    assert {"trial_fee", "sample"} <= set(imported.values_list("kind", flat=True))
    # A refund after the window closed: the purchase is in a unit's window, its refund is not.
    assigned_at = F("refund_of__customer__assignments__assigned_at")
    crossing = imported.filter(
        refund_of__customer__assignments__offer__in=history,
        refund_of__purchased_at__gte=assigned_at,
        refund_of__purchased_at__lt=assigned_at + WINDOW,
        purchased_at__gte=assigned_at + WINDOW,
    )
    assert crossing.exists()


@pytest.mark.django_db
def test_the_history_is_the_same_every_time_so_running_it_again_changes_nothing():
    call_command("seed_demo", customers=1_500, progress=False)
    counts = [model.objects.count() for model in (Assignment, Trial, Purchase)]
    call_command("seed_demo", customers=1_500, progress=False)

    assert [model.objects.count() for model in (Assignment, Trial, Purchase)] == counts
    # Not only skipped: drawn again, the first block is row for row what the import already holds.
    block = _Block.setup(history_offers(len(story.STORY)), _anchor(), story.PURCHASES_PER_YEAR)
    files = block.draw(0, 0, 1_500)
    for kind in (CUSTOMERS, ASSIGNMENTS, PURCHASES):
        result = history_import_csv(kind=kind, file=io.BytesIO(files[kind]))
        assert (result.created, result.invalid, result.refused) == (0, 0, False), result.errors[:3]
        assert result.unchanged == result.rows
