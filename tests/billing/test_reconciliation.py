"""Reconciliation finds the events whose webhooks never came. Every ten minutes it lists
Stripe's recent events, stores the unknown ones and handles them like a delivery; the ledger ends
exactly as if every webhook had arrived, and running it again changes nothing."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from billing import reconciliation
from billing.models import StripeEvent
from billing.tasks import stripe_reconcile_task
from tests.billing.stripe_world import final_state, own_localstripe, post_event, world_build
from trials.models import Trial

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(customer, outsider, marketer):
    with own_localstripe():
        yield world_build(carla=customer, oscar=outsider, marketer=marketer)


@pytest.fixture
def reconcile(django_capture_on_commit_callbacks):
    def reconcile(**options):
        with django_capture_on_commit_callbacks(execute=True):
            return reconciliation.reconciliation_run(at=timezone.now(), **options)

    return reconcile


def stripe_sent(world):
    """The events Stripe (localstripe) holds, without those the tests add themselves."""
    return [e for e in world.events if not e["id"].startswith("evt_test_")]


def test_when_no_webhook_arrives_at_all_reconciliation_records_everything(world, reconcile):
    result = reconcile()

    assert result.stored == result.listed == len(stripe_sent(world))
    state = final_state()
    assert state["ledger"] == world.expected_ledger()
    assert set(state["events"].values()) == {"processed"}
    assert set(StripeEvent.objects.values_list("source", flat=True)) == {"reconciliation"}
    assert Trial.objects.get(pk=world.beans_trial.pk).status == Trial.Status.CONVERTED
    assert Trial.objects.get(pk=world.club_trial.pk).status == Trial.Status.PAYMENT_FAILED
    assert {s[4] for s in state["subscriptions"]} == {"canceled"}


def test_running_reconciliation_again_changes_nothing(world, reconcile):
    reconcile()
    before = final_state()

    again = reconcile()

    assert again.stored == 0
    assert final_state() == before


def test_only_the_lost_deliveries_are_stored_by_reconciliation(
    world, reconcile, client, django_capture_on_commit_callbacks
):
    sent = stripe_sent(world)
    delivered, lost = sent[::2], sent[1::2]
    for event in delivered:
        with django_capture_on_commit_callbacks(execute=True):
            assert post_event(client, event).status_code == 200

    result = reconcile()

    assert result.stored == len(lost)
    sources = dict(StripeEvent.objects.values_list("event_id", "source"))
    assert {sources[e["id"]] for e in delivered} == {"webhook"}
    assert {sources[e["id"]] for e in lost} == {"reconciliation"}
    assert final_state()["ledger"] == world.expected_ledger()


def test_the_beat_task_runs_reconciliation(world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        stored = stripe_reconcile_task()

    assert stored == len(stripe_sent(world))
    assert final_state()["ledger"] == world.expected_ledger()


def test_the_watermark_is_the_newest_event_held_less_a_safety_margin(db):
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert reconciliation.reconciliation_watermark(at=now) == now - reconciliation.FIRST_LOOKBACK

    for event_id, created in (("evt_old", now - timedelta(hours=5)), ("evt_new", now - timedelta(minutes=3))):
        StripeEvent.objects.create(
            event_id=event_id, type="customer.created", stripe_created=created, payload={}, received_at=now
        )

    assert reconciliation.reconciliation_watermark(at=now) == now - timedelta(minutes=3) - reconciliation.SAFETY_MARGIN


def test_an_event_from_the_future_does_not_push_the_watermark_past_now(db):
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    StripeEvent.objects.create(
        event_id="evt_skewed", type="customer.created", stripe_created=now + timedelta(days=1), payload={},
        received_at=now,
    )  # fmt: skip

    assert reconciliation.reconciliation_watermark(at=now) == now - reconciliation.SAFETY_MARGIN


def test_an_event_found_by_reconciliation_that_a_late_webhook_then_delivers_is_handled_once(
    world, reconcile, client, django_capture_on_commit_callbacks
):
    reconcile()
    late = next(e for e in stripe_sent(world) if e["type"] == "payment_intent.succeeded")

    with django_capture_on_commit_callbacks(execute=True):
        response = post_event(client, late)

    assert response.json()["duplicate"] is True
    event = StripeEvent.objects.get(event_id=late["id"])
    assert (event.source, event.attempts) == ("reconciliation", 1)
    assert final_state()["ledger"] == world.expected_ledger()
