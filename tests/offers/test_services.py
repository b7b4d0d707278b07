"""Offers move draft → scheduled → live → paused → ended through legal transitions only, keep a
history, and lock their experiment at launch."""

from datetime import timedelta

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
