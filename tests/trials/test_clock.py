"""The trial clock keeps the terms' dates: each promised reminder goes out once, when its time
comes, with the date and the amount of the charge and a cancel link; a trial that charges nothing
ends on its day with an invitation to buy; cancelled and imported trials are left alone."""

from datetime import timedelta

import pytest

from accounts.models import OutboxMessage
from tests import factories
from tests.factories import NOW
from trials import clock
from trials.models import Trial

pytestmark = pytest.mark.django_db


@pytest.fixture
def card_trial(customer):
    product = factories.product(sku="club", name="Coffee club", price_amount=999, interval="month")
    offer = factories.offer(slug="club-trial", name="Coffee club trial", kind="free_trial", product_=product)
    return factories.trial(customer=customer, offer=offer)  # claimed at NOW, ends NOW + 14 days; reminders 7 and 3


def reminders(trial):
    return list(OutboxMessage.objects.filter(about_id=trial.pk, purpose="reminder").order_by("due_at"))


def test_each_promised_reminder_goes_out_on_its_day_once(card_trial):
    assert clock.reminders_send_due(at=NOW + timedelta(days=6)) == 0
    assert reminders(card_trial) == []

    assert clock.reminders_send_due(at=NOW + timedelta(days=7) - clock.LEAD) == 1
    assert clock.reminders_send_due(at=NOW + timedelta(days=7, hours=1)) == 0  # run again: nothing new
    assert clock.reminders_send_due(at=NOW + timedelta(days=11)) == 1

    first, second = reminders(card_trial)
    assert first.key == clock.reminder_key(card_trial, NOW + timedelta(days=7))
    assert second.key == clock.reminder_key(card_trial, NOW + timedelta(days=11))


def test_a_reminder_names_the_date_and_amount_of_the_charge_and_a_working_cancel_link(client, card_trial):
    clock.reminders_send_due(at=NOW + timedelta(days=7))

    (message,) = reminders(card_trial)
    text = message.email.message
    assert "On June 15, 2026 we will charge €9.99 for Coffee club" in text
    link = next(word for word in text.split() if "/me/cancel/" in word)
    client.post("/" + link.split("://", 1)[1].split("/", 1)[1])
    card_trial.refresh_from_db()
    assert card_trial.status == Trial.Status.CANCELLED


def test_a_cancelled_or_imported_trial_gets_no_reminder(customer, outsider):
    offer = factories.offer(kind="free_trial")
    cancelled = factories.trial(customer=customer, offer=offer, status=Trial.Status.CANCELLED)
    imported = factories.trial(customer=outsider, offer=offer, source="import")

    assert clock.reminders_send_due(at=NOW + timedelta(days=12)) == 0
    assert reminders(cancelled) == [] and reminders(imported) == []


def test_a_reminder_is_in_the_customers_language(customer, card_trial):
    Trial.objects.filter(pk=card_trial.pk).update(language="it")

    clock.reminders_send_due(at=NOW + timedelta(days=7))

    (message,) = reminders(card_trial)
    assert message.language == "it"
    assert "Coffee club trial" in message.email.subject and "giugno" in message.email.subject


def test_a_sample_ends_on_its_day_with_an_invitation_to_buy_and_a_card_trial_does_not(customer, outsider, card_trial):
    sample = factories.trial(customer=outsider, offer=factories.offer(product_=card_trial.offer.product))

    assert clock.trials_expire_due(at=NOW + timedelta(days=14) - timedelta(minutes=1)) == 0
    assert clock.trials_expire_due(at=NOW + timedelta(days=14)) == 1
    assert clock.trials_expire_due(at=NOW + timedelta(days=15)) == 0

    sample.refresh_from_db()
    card_trial.refresh_from_db()
    assert sample.status == Trial.Status.EXPIRED
    assert card_trial.status == Trial.Status.ACTIVE  # its end is the conversion charge, not an expiry
    (invitation,) = OutboxMessage.objects.filter(about_id=sample.pk, purpose="trial_ended")
    assert "/o/coffee-sampler/buy/" in invitation.email.message
    assert [(e.from_status, e.to_status) for e in sample.events.all()] == [("active", "expired")]
