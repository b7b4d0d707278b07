"""A trial is of its assignment's offer, and the database holds it (trials/migrations/0007): the
analytics read an offer's trials by the trial's own offer (analytics.queries.unit_trial)."""

import pytest
from django.db import IntegrityError, connection, transaction

from tests import factories
from trials.apps import _integrity
from trials.integrity import sqlite_triggers_drop
from trials.models import Assignment, Trial

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_offers(marketer):
    first = factories.offer(actor=marketer, slug="first")
    return first, factories.offer(actor=marketer, slug="second", product_=first.product)


def test_a_trial_of_another_offer_than_its_assignments_is_refused(two_offers):
    first, second = two_offers
    trial = factories.trial(customer=factories.customer(email="t@example.com"), offer=first, save=False)
    trial.offer = second
    trial.variant = second.variants.first()

    with pytest.raises(IntegrityError), transaction.atomic():
        trial.save()
    assert not Trial.objects.exists()


def test_a_trial_cannot_be_moved_to_another_offer(two_offers):
    first, second = two_offers
    trial = factories.trial(customer=factories.customer(email="t@example.com"), offer=first)

    with pytest.raises(IntegrityError), transaction.atomic():
        Trial.objects.filter(pk=trial.pk).update(offer=second)
    assert Trial.objects.get().offer == first


def test_an_assignment_with_a_trial_keeps_its_offer(two_offers):
    first, second = two_offers
    trial = factories.trial(customer=factories.customer(email="t@example.com"), offer=first)

    with pytest.raises(IntegrityError), transaction.atomic():
        Assignment.objects.filter(pk=trial.assignment_id).update(offer=second)
    assert Assignment.objects.get().offer == first


def test_an_assignment_without_a_trial_may_change_offer(two_offers):
    first, second = two_offers
    assignment = factories.assignment(offer=first, customer=factories.customer(email="a@example.com"))

    Assignment.objects.filter(pk=assignment.pk).update(offer=second)

    assert Assignment.objects.get().offer == second


def test_the_guard_is_back_after_a_later_migration_remade_the_table(two_offers):
    """SQLite remakes a table for most changes, and the remake drops its triggers: every
    ``migrate`` makes them again (trials/apps.py). PostgreSQL's foreign key stays with the table."""
    first, second = two_offers
    sqlite_triggers_drop(connection)  # what a remake of trials_trial does on SQLite; nothing elsewhere
    _integrity(sender=None, using=connection.alias)  # post_migrate
    trial = factories.trial(customer=factories.customer(email="t@example.com"), offer=first)

    with pytest.raises(IntegrityError), transaction.atomic():
        Trial.objects.filter(pk=trial.pk).update(offer=second)
