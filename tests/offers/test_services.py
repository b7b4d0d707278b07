"""Offers move draft → scheduled → live → paused → ended through legal transitions only, keep a
history, and lock their experiment at launch."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError

from offers import services
from offers.models import Offer, OfferChange
from offers.validation import VariantSpec
from tests import factories
from tests.factories import NOW

pytestmark = pytest.mark.django_db


def test_a_new_offer_is_a_draft_with_one_default_variant_and_default_reminders(marketer):
    offer = factories.offer(actor=marketer, kind="free_trial")

    assert offer.status == Offer.Status.DRAFT
    assert [(v.name, v.weight) for v in offer.variants.all()] == [("default", 1)]
    assert offer.reminder_days == [7, 3]
    assert offer.changes.get().action == "created"


def test_launch_makes_a_started_offer_live_and_locks_it(marketer):
    offer = factories.offer(actor=marketer)

    services.offer_launch(offer=offer, actor=marketer, at=NOW + timedelta(hours=1))

    offer.refresh_from_db()
    assert offer.status == Offer.Status.LIVE
    assert offer.is_locked
    assert offer.product.stripe_price_id == "price_beans-1kg"


def test_launch_before_the_start_schedules_and_the_beat_job_starts_it_once(marketer):
    offer = factories.offer(actor=marketer, starts_at=NOW + timedelta(days=2))
    services.offer_launch(offer=offer, actor=marketer, at=NOW)
    assert Offer.objects.get(pk=offer.pk).status == Offer.Status.SCHEDULED

    assert services.offers_advance(at=NOW + timedelta(days=1))["started"] == 0
    assert services.offers_advance(at=NOW + timedelta(days=2))["started"] == 1
    assert services.offers_advance(at=NOW + timedelta(days=2, minutes=1))["started"] == 0

    assert Offer.objects.get(pk=offer.pk).status == Offer.Status.LIVE
    assert OfferChange.objects.filter(offer=offer, action="started").count() == 1


def test_the_beat_job_ends_an_offer_at_its_end_and_when_its_inventory_is_gone(marketer):
    timed = factories.offer(actor=marketer, slug="timed")
    stocked = factories.offer(actor=marketer, slug="stocked", inventory=2, ends_at=None, product_=timed.product)
    for offer in (timed, stocked):
        services.offer_launch(offer=offer, actor=marketer, at=NOW)
    Offer.objects.filter(pk=stocked.pk).update(claimed_count=2)

    first = services.offers_advance(at=NOW + timedelta(days=60))
    again = services.offers_advance(at=NOW + timedelta(days=61))

    assert first == {"started": 0, "ended": 1, "sold_out": 1}
    assert again == {"started": 0, "ended": 0, "sold_out": 0}
    assert set(Offer.objects.values_list("status", flat=True)) == {Offer.Status.ENDED}


def test_pause_resume_end_follow_the_legal_transitions_only(marketer):
    offer = factories.offer(actor=marketer)
    with pytest.raises(services.TransitionNotAllowed):
        services.offer_pause(offer=offer, actor=marketer, at=NOW)
    services.offer_launch(offer=offer, actor=marketer, at=NOW)
    services.offer_pause(offer=offer, actor=marketer, at=NOW)
    with pytest.raises(services.TransitionNotAllowed):
        services.offer_pause(offer=offer, actor=marketer, at=NOW)
    services.offer_resume(offer=offer, actor=marketer, at=NOW)
    services.offer_end(offer=offer, actor=marketer, at=NOW)
    with pytest.raises(services.TransitionNotAllowed):
        services.offer_resume(offer=offer, actor=marketer, at=NOW)

    actions = list(offer.changes.order_by("id").values_list("action", flat=True))
    assert actions == ["created", "launched", "paused", "resumed", "ended"]


def test_an_offer_whose_window_is_past_launches_straight_to_ended_for_imports(marketer):
    offer = factories.offer(actor=marketer, starts_at=NOW - timedelta(days=400), ends_at=NOW - timedelta(days=300))

    services.offer_launch(offer=offer, actor=marketer, at=NOW)

    assert Offer.objects.get(pk=offer.pk).status == Offer.Status.ENDED


def test_the_holdout_and_weights_of_a_launched_offer_cannot_change(marketer):
    offer = factories.offer(actor=marketer, holdout_percent=10)
    services.offer_launch(offer=offer, actor=marketer, at=NOW)

    with pytest.raises(ValidationError) as holdout:
        services.offer_update(offer=offer, actor=marketer, values={"holdout_percent": 20})
    with pytest.raises(ValidationError) as weights:
        services.offer_update(offer=offer, actor=marketer, values={}, variants=[VariantSpec("default", 3)])

    assert "locked since launch" in holdout.value.message_dict["holdout_percent"][0]
    assert "locked since launch" in weights.value.message_dict["variants"][0]
    assert Offer.objects.get(pk=offer.pk).holdout_percent == 10


def test_an_edit_is_recorded_field_by_field(marketer):
    offer = factories.offer(actor=marketer)

    services.offer_update(offer=offer, actor=marketer, values={"name": "Coffee sampler, spring", "inventory": 500})

    change = offer.changes.get(action="updated")
    assert change.actor == marketer
    assert change.changes == {"name": ["Coffee sampler", "Coffee sampler, spring"], "inventory": [None, 500]}


def test_duplicate_makes_a_draft_with_a_new_salt_and_slug(marketer):
    offer = factories.offer(
        actor=marketer, variants=[{"name": "short", "weight": 1}, {"name": "long", "weight": 2, "trial_days": 28}]
    )
    services.offer_launch(offer=offer, actor=marketer, at=NOW)

    copy = services.offer_duplicate(offer=offer, actor=marketer, at=NOW)

    assert copy.status == Offer.Status.DRAFT
    assert copy.slug == "coffee-sampler-copy"
    assert copy.salt != offer.salt
    assert not copy.is_locked
    assert [(v.name, v.weight, v.trial_days) for v in copy.variants.all()] == [("short", 1, None), ("long", 2, 28)]
    assert services.offer_duplicate(offer=offer, actor=marketer, at=NOW).slug == "coffee-sampler-copy-2"


# --- Variants are kept by name ------------------------------------------------------------------
def with_history(marketer, *, claimed: bool = False):
    """A draft with two variants, and a customer imported into "long" (with a trial, if claimed)."""
    from billing.imports import history_import_records

    offer = factories.offer(
        actor=marketer, variants=[{"name": "default", "weight": 1}, {"name": "long", "weight": 1, "trial_days": 28}]
    )
    history_import_records(
        kind="customers",
        records=[{"external_id": "C-1", "email": "c1@example.com", "created_at": "2026-05-01T10:00:00+00:00"}],
    )
    assignment = {"customer_external_id": "C-1", "offer_slug": offer.slug, "arm": "long",
                  "assigned_at": "2026-06-01T09:30:00+00:00"}  # fmt: skip
    if claimed:
        assignment |= {"claimed_at": "2026-06-01T09:31:00+00:00", "trial_ends_at": "2026-06-29T09:31:00+00:00",
                       "outcome": "pending"}  # fmt: skip
    result = history_import_records(kind="assignments", records=[assignment])
    assert not result.refused, result.errors
    return offer


def specs(offer) -> list[VariantSpec]:
    return [VariantSpec(v.name, v.weight, v.kind, v.trial_days, v.trial_price) for v in offer.variants.all()]


@pytest.mark.parametrize("claimed", [False, True], ids=["assigned", "claimed"])
def test_changing_a_variant_that_has_history_keeps_its_row_and_its_history(marketer, claimed):
    from trials.models import Assignment, Trial

    offer = with_history(marketer, claimed=claimed)
    long = offer.variants.get(name="long")

    services.offer_update(
        offer=offer,
        actor=marketer,
        values={},
        variants=[VariantSpec("default", 1), VariantSpec("long", 1, trial_days=21), VariantSpec("new", 2)],
    )

    assert offer.variants.get(name="long").pk == long.pk
    assert [(v.name, v.weight, v.trial_days, v.position) for v in offer.variants.all()] == [
        ("default", 1, None, 0), ("long", 1, 21, 1), ("new", 2, None, 2),
    ]  # fmt: skip
    assert Assignment.objects.get().variant_id == long.pk
    assert Trial.objects.filter(variant=long).count() == (1 if claimed else 0)
    change = offer.changes.get(action="updated").changes
    assert change["variants"][1][1]["trial_days"] == 21


@pytest.mark.parametrize(
    "variants",
    [[VariantSpec("default", 1)], [VariantSpec("default", 1), VariantSpec("longer", 1, trial_days=28)]],
    ids=["removed", "renamed"],
)
def test_a_variant_with_history_cannot_be_removed_or_renamed(marketer, variants):
    offer = with_history(marketer, claimed=True)
    before = specs(offer)

    with pytest.raises(ValidationError) as refused:
        services.offer_update(offer=offer, actor=marketer, values={}, variants=variants)

    assert refused.value.message_dict == {
        "variants": [
            "The variant “long” has customers assigned to it (imported history counts), so it cannot be removed "
            "or renamed; keep it under its name."
        ]
    }
    assert specs(offer) == before
    assert not offer.changes.filter(action="updated").exists()


def test_a_variant_without_history_can_be_removed_and_renamed(marketer):
    offer = with_history(marketer)

    services.offer_update(
        offer=offer, actor=marketer, values={}, variants=[VariantSpec("first", 1), VariantSpec("long", 1)]
    )

    assert [v.name for v in offer.variants.all()] == ["first", "long"]


def test_the_database_guard_gives_the_same_words_when_the_check_was_passed(marketer, monkeypatch):
    """An import that assigns a customer between the check and the delete: PROTECT refuses, and
    the service says it in the check's words."""
    from offers import validation

    offer = with_history(marketer)
    monkeypatch.setattr(validation, "_kept_variant_problems", lambda *args: None)

    with pytest.raises(ValidationError) as refused:
        services.offer_update(offer=offer, actor=marketer, values={}, variants=[VariantSpec("default", 1)])

    assert refused.value.message_dict["variants"] == [validation.variant_in_use("long")]
    assert offer.variants.filter(name="long").exists()


def test_duplicate_finds_a_free_slug_by_inserting(marketer):
    offer = factories.offer(actor=marketer)
    factories.offer(actor=marketer, slug="coffee-sampler-copy", product_=offer.product)
    factories.offer(actor=marketer, slug="coffee-sampler-copy-2", product_=offer.product)

    copy = services.offer_duplicate(offer=offer, actor=marketer, at=NOW)

    assert copy.slug == "coffee-sampler-copy-3"
    assert copy.changes.get().changes == {"duplicated_from": "coffee-sampler"}


@pytest.mark.parametrize(
    "moment",
    [datetime(9999, 1, 1, tzinfo=UTC), datetime(1999, 12, 31, tzinfo=UTC), NOW + timedelta(days=365 * 10 + 3)],
    ids=["year-9999", "before-2000", "just-over-10-years"],
)
@pytest.mark.parametrize("field", ["starts_at", "ends_at"])
def test_a_date_outside_the_accepted_range_is_refused_on_its_field(marketer, field, moment):
    values = {"starts_at": datetime(1999, 1, 1, tzinfo=UTC)} if field == "ends_at" and moment.year < 2000 else {}

    with pytest.raises(ValidationError) as refused:
        factories.offer(actor=marketer, **values, **{field: moment})

    assert "are not accepted" in " ".join(refused.value.message_dict[field])
    assert not Offer.objects.exists()


# --- The unique constraints speak the pre-checks' words ------------------------------------------
def test_a_taken_sku_or_slug_that_passed_the_check_is_the_checks_field_error(marketer, monkeypatch):
    """What the loser of a race sees (tests/offers/test_races.py races them on PostgreSQL): the
    check saw nothing, the constraint refused; on either database, the same field error."""
    from offers import validation

    offer = factories.offer(actor=marketer)
    monkeypatch.setattr(services, "product_problems", lambda **kwargs: validation.Problems())
    monkeypatch.setattr(services, "offer_problems", lambda **kwargs: validation.Problems())
    values = {name: getattr(offer, name) for name in validation.OFFER_FIELDS}

    with pytest.raises(ValidationError) as sku:
        services.product_create(sku="beans-1kg", name="Beans", price_amount=100, currency="EUR")
    with pytest.raises(ValidationError) as slug:
        services.offer_create(actor=marketer, values=values, at=NOW)
    with pytest.raises(ValidationError) as variant:
        services.offer_update(offer=offer, actor=marketer, values={}, variants=[VariantSpec("a"), VariantSpec("a")])

    assert sku.value.message_dict == {"sku": [validation.sku_taken("beans-1kg")]}
    assert slug.value.message_dict == {"slug": [validation.slug_taken("coffee-sampler")]}
    assert variant.value.message_dict == {"variants": [validation.VARIANT_NAME_TWICE]}
    assert Offer.objects.count() == 1
    assert [v.name for v in offer.variants.all()] == ["default"]
