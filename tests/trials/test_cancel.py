"""Cancelling takes one click to a page that POSTs, from /me/ or from the signed link in any
email; a replayed, altered or expired link says so plainly and changes nothing."""

from datetime import timedelta

import pytest
import time_machine
from django.core import mail

from accounts.models import OutboxMessage
from tests import factories
from tests.factories import NOW
from trials.links import VALID_FOR, cancel_token, cancel_url
from trials.models import Trial

pytestmark = pytest.mark.django_db


@pytest.fixture
def trial(customer):
    return factories.trial(customer=customer, offer=factories.offer())


def status_of(trial) -> str:
    trial.refresh_from_db()
    return trial.status


def test_from_my_page_one_click_asks_and_the_button_cancels(client, customer, trial):
    client.force_login(customer)
    page = client.get("/me/").content.decode()
    assert f"/me/trials/{trial.pk}/cancel/" in page

    asked = client.get(f"/me/trials/{trial.pk}/cancel/")
    assert "Yes, cancel my trial" in asked.content.decode()
    assert status_of(trial) == Trial.Status.ACTIVE  # showing the question changes nothing

    done = client.post(f"/me/trials/{trial.pk}/cancel/", follow=True)

    assert status_of(trial) == Trial.Status.CANCELLED
    assert "is cancelled. Nothing will be charged" in done.content.decode()
    assert OutboxMessage.objects.filter(user=customer, purpose="cancellation").count() == 1


def test_another_customers_trial_is_not_found_not_forbidden(client, outsider, trial):
    client.force_login(outsider)

    assert client.get(f"/me/trials/{trial.pk}/cancel/").status_code == 404
    assert client.post(f"/me/trials/{trial.pk}/cancel/").status_code == 404
    assert status_of(trial) == Trial.Status.ACTIVE


def test_a_signed_link_asks_on_open_and_cancels_on_the_button_without_logging_in(client, trial):
    path = cancel_url(trial).split("://", 1)[1].split("/", 1)[1]
    path = "/" + path

    opened = client.get(path)  # what a mail scanner does
    assert opened.status_code == 200
    assert status_of(trial) == Trial.Status.ACTIVE

    client.post(path)

    assert status_of(trial) == Trial.Status.CANCELLED


def test_a_replayed_link_says_it_is_already_cancelled_and_sends_nothing_more(client, customer, trial):
    path = f"/me/cancel/{cancel_token(trial)}/"
    client.post(path)
    emails = OutboxMessage.objects.filter(user=customer).count()

    again = client.post(path)

    assert again.status_code == 200
    assert "already cancelled" in again.content.decode()
    assert OutboxMessage.objects.filter(user=customer).count() == emails


def test_an_altered_link_is_refused_and_changes_nothing(client, trial):
    token = cancel_token(trial)
    altered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")

    for response in (client.get(f"/me/cancel/{altered}/"), client.post(f"/me/cancel/{altered}/")):
        assert response.status_code == 404
        assert "This link is not valid" in response.content.decode()
    assert status_of(trial) == Trial.Status.ACTIVE


def test_an_expired_link_says_so_and_changes_nothing(client, trial):
    with time_machine.travel(NOW, tick=False):
        token = cancel_token(trial)

    with time_machine.travel(NOW + VALID_FOR + timedelta(days=1), tick=False):
        response = client.post(f"/me/cancel/{token}/")

    assert response.status_code == 410
    assert "This link has expired" in response.content.decode()
    assert status_of(trial) == Trial.Status.ACTIVE


def test_a_converted_trial_can_no_longer_be_cancelled_and_the_page_says_why(client, customer):
    converted = factories.trial(customer=customer, offer=factories.offer(), status=Trial.Status.CONVERTED)

    response = client.post(f"/me/cancel/{cancel_token(converted)}/")

    assert "can no longer be cancelled" in response.content.decode()
    assert status_of(converted) == Trial.Status.CONVERTED
    assert not mail.outbox


def test_the_claims_email_holds_the_agreed_terms_and_a_cancel_link_that_works(client, marketer):
    from tests.trials.test_claim import assigned, claim, live_offer

    offer = live_offer(marketer)
    trial = claim(assigned(offer, "ann@example.com"))
    message = OutboxMessage.objects.get(user=trial.customer, purpose="receipt")

    text = message.email.message
    assert trial.consent.terms_text in text
    link = next(word for word in text.split() if "/me/cancel/" in word)
    client.post("/" + link.split("://", 1)[1].split("/", 1)[1])
    assert status_of(trial) == Trial.Status.CANCELLED
