"""Through the real allauth pages: an anonymous visitor's assignment joins their account when they
log in or sign up (at the email confirmation, which is what logs a new account in), and an
account that already had an assignment for the offer keeps it."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.urls import reverse

from accounts.models import User
from offers import services as offer_services
from offers import views
from tests import factories
from tests.factories import NOW
from trials import services
from trials.models import Assignment

VISIT = NOW + timedelta(hours=1)
PASSWORD = "correct-horse-battery"  # the shared customer fixture's
VARIANTS = [{"name": "short", "weight": 1, "trial_days": 10}, {"name": "long", "weight": 1, "trial_days": 21}]


@pytest.fixture
def offer(marketer):
    made = factories.offer(actor=marketer, variants=VARIANTS)
    return offer_services.offer_launch(offer=made, actor=marketer, at=NOW)


def view_anonymously(client, offer) -> Assignment:
    with time_machine.travel(VISIT, tick=False):
        response = client.get(reverse("offer_landing", kwargs={"slug": offer.slug}))
    assert response.status_code == 200
    return Assignment.objects.get(visitor=response.cookies[views.VISITOR_COOKIE].value)


@pytest.mark.django_db
def test_at_login_the_anonymous_assignment_joins_the_account(client, offer, customer):
    anonymous = view_anonymously(client, offer)

    response = client.post(reverse("account_login"), {"login": customer.email, "password": PASSWORD})

    assert response.status_code == 302
    anonymous.refresh_from_db()
    assert anonymous.customer_id == customer.pk
    assert Assignment.objects.count() == 1
    # Logged in, the page reads that same row: same arm, nothing new written.
    with time_machine.travel(VISIT + timedelta(hours=1), tick=False):
        assert client.get(reverse("offer_landing", kwargs={"slug": offer.slug})).status_code == 200
    assert list(Assignment.objects.values_list("pk", "arm")) == [(anonymous.pk, anonymous.arm)]


@pytest.mark.django_db
def test_at_login_an_account_that_already_had_an_assignment_keeps_the_older_one(client, offer, customer):
    held = services.assignment_for_visitor(offer=offer, customer=customer, at=NOW)
    anonymous = view_anonymously(client, offer)

    client.post(reverse("account_login"), {"login": customer.email, "password": PASSWORD})

    anonymous.refresh_from_db()
    held.refresh_from_db()
    assert (held.customer_id, held.assigned_at) == (customer.pk, NOW)
    assert (anonymous.customer_id, anonymous.superseded_by_id) == (None, held.pk)
    assert Assignment.objects.filter(customer=customer).get().pk == held.pk


def _confirmation_link(message) -> str:
    return re.search(r"https?://[^/\s]+(/accounts/confirm-email/[^\s]+/)", message.body).group(1)


@pytest.mark.django_db(transaction=True)
def test_at_signup_the_anonymous_assignment_joins_the_new_account(client, offer):
    anonymous = view_anonymously(client, offer)

    client.post(reverse("account_signup"), {"email": "nina@example.com", "password1": PASSWORD, "password2": PASSWORD})
    assert client.post(_confirmation_link(mail.outbox[-1])).status_code == 302

    anonymous.refresh_from_db()
    assert anonymous.customer_id == User.objects.get(email="nina@example.com").pk


@pytest.mark.django_db(transaction=True)
def test_at_signup_the_assignment_joins_before_the_email_is_verified_elsewhere(client, offer):
    anonymous = view_anonymously(client, offer)

    response = client.post(
        reverse("account_signup"), {"email": "olga@example.com", "password1": PASSWORD, "password2": PASSWORD}
    )

    # Not logged in yet (verification is mandatory), and already the account's arm: the link
    # may be opened on a phone that never had this browser's cookie.
    assert response.url == reverse("account_email_verification_sent")
    assert "_auth_user_id" not in client.session
    anonymous.refresh_from_db()
    assert anonymous.customer_id == User.objects.get(email="olga@example.com").pk
    phone = type(client)()
    assert phone.post(_confirmation_link(mail.outbox[-1])).status_code == 302
    phone.post(reverse("account_login"), {"login": "olga@example.com", "password": PASSWORD})
    with time_machine.travel(VISIT + timedelta(hours=1), tick=False):
        assert phone.get(reverse("offer_landing", kwargs={"slug": offer.slug})).status_code == 200
    assert list(Assignment.objects.values_list("pk", "arm", "customer__email")) == [
        (anonymous.pk, anonymous.arm, "olga@example.com")
    ]
