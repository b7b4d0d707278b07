"""Stripe delivers events late, twice and in any order. Whatever the order, Foretaste ends in the
same state: the same ledger rows, the same trial states, the same subscription rows."""

import random
from datetime import UTC, datetime

import pytest
from django.db import transaction

from tests.billing.stripe_world import final_state, own_localstripe, post_event, world_build
from trials.models import Trial

pytestmark = pytest.mark.django_db

ORDERS = 100
DUPLICATES = 6
SEED = 20261122


@pytest.fixture
def world(customer, outsider, marketer):
    with own_localstripe():
        yield world_build(carla=customer, oscar=outsider, marketer=marketer)


def deliver_all(client, capture, deliveries):
    for event in deliveries:
        with capture(execute=True):
            response = post_event(client, event)
        assert response.status_code == 200, response.content


def test_every_delivery_order_with_duplicates_ends_in_the_same_state(world, client, django_capture_on_commit_callbacks):
    rng = random.Random(SEED)
    states = []
    for _ in range(ORDERS):
        deliveries = [*world.events, *rng.sample(world.events, k=DUPLICATES)]
        rng.shuffle(deliveries)
        savepoint = transaction.savepoint()
        try:
            deliver_all(client, django_capture_on_commit_callbacks, deliveries)
            states.append(final_state())
        finally:
            transaction.savepoint_rollback(savepoint)

    first = states[0]
    assert all(state == first for state in states[1:])
    assert first["ledger"] == world.expected_ledger()
    assert set(first["events"].values()) == {"processed"}
    assert len(first["events"]) == len({e["id"] for e in world.events})
    assert dict((pk, status) for pk, status, _ in first["trials"]) == {
        world.beans_trial.pk: Trial.Status.CONVERTED,
        world.club_trial.pk: Trial.Status.PAYMENT_FAILED,
    }
    [(stripe_id, email, sku, _, status, cancelled_at, updated)] = first["subscriptions"]
    assert (stripe_id, email, sku, status) == (world.subscription, world.carla.email, "club", "canceled")
    assert cancelled_at is not None
    newest = max(e["created"] for e in world.events if e["type"].startswith("customer.subscription."))
    assert updated == datetime.fromtimestamp(newest, tz=UTC), "the newest subscription event is the watermark"
    assert first["stripe_customer_ids"][world.oscar.email] == world.oscar_stripe
