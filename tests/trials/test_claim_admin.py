"""Operators see trials, their history, consent records and refusal counts in the admin, and
can change none of them: trials move only through the services, and the records are
append-only. The beat job that releases stale reservations is scheduled."""

from datetime import timedelta

import pytest
from django.urls import reverse

from accounts.models import User
from config.celery import app
from offers import services as offer_services
from tests import factories
from tests.factories import NOW
from trials import services
from trials.models import Assignment, ConsentRecord, Trial

pytestmark = pytest.mark.django_db


@pytest.fixture
def confirmed(marketer):
    offer = offer_services.offer_launch(offer=factories.offer(actor=marketer, inventory=1), actor=marketer, at=NOW)
    customer = User.objects.create_user(email="ann@example.com")
    variant = offer.variants.get()
    assignment = Assignment.objects.create(
        offer=offer, customer=customer, variant=variant, arm=variant.name, assigned_at=NOW
    )
    trial = services.claim_reserve(assignment=assignment, customer=customer, ip="203.0.113.7", user_agent="t", at=NOW)
    services.claim_confirm(trial_id=trial.pk, at=NOW + timedelta(seconds=1))
    refused = User.objects.create_user(email="ben@example.com")
    other = Assignment.objects.create(offer=offer, customer=refused, variant=variant, arm=variant.name, assigned_at=NOW)
    with pytest.raises(services.ClaimRefused):
        services.claim_reserve(assignment=other, customer=refused, ip=None, user_agent="", at=NOW)
    return Trial.objects.get(pk=trial.pk)


@pytest.mark.parametrize("model", ["trial", "consentrecord", "claimrefusal"])
def test_the_admin_lists_and_shows_claims_read_only(client, operator, confirmed, model):
    client.force_login(operator)
    listing = client.get(reverse(f"admin:trials_{model}_changelist"))
    assert listing.status_code == 200
    assert client.get(reverse(f"admin:trials_{model}_add")).status_code == 403

    obj = {"trial": confirmed, "consentrecord": ConsentRecord.objects.get(trial=confirmed)}.get(model)
    if obj is not None:
        page = client.get(reverse(f"admin:trials_{model}_change", args=[obj.pk]))
        assert page.status_code == 200 and b'name="_save"' not in page.content
        assert client.post(reverse(f"admin:trials_{model}_delete", args=[obj.pk]), {"post": "yes"}).status_code == 403
    assert Trial.objects.get(pk=confirmed.pk).status == Trial.Status.ACTIVE
    assert ConsentRecord.objects.count() == 1


def test_the_trial_page_shows_its_history(client, operator, confirmed):
    client.force_login(operator)
    page = client.get(reverse("admin:trials_trial_change", args=[confirmed.pk])).content.decode()
    assert "reserved" in page and "claim confirmed" in page


def test_stale_reservations_are_released_by_a_beat_job(marketer):
    from trials.tasks import reservations_release_stale_task

    offer = offer_services.offer_launch(offer=factories.offer(actor=marketer), actor=marketer, at=NOW)
    customer = User.objects.create_user(email="ann@example.com")
    variant = offer.variants.get()
    assignment = Assignment.objects.create(
        offer=offer, customer=customer, variant=variant, arm=variant.name, assigned_at=NOW
    )
    # Reserved at NOW, long before the real clock the task reads: stale.
    trial = services.claim_reserve(assignment=assignment, customer=customer, ip=None, user_agent="", at=NOW)

    entry = app.conf.beat_schedule["reservations-release-stale"]
    assert entry["task"] == reservations_release_stale_task.name
    reservations_release_stale_task.apply()

    trial.refresh_from_db()
    assert trial.status == Trial.Status.ABANDONED
