"""Every email names the product. allauth's emails are checked as a class: every template the
installed allauth can send is rendered, so a new one that slips through fails here."""

import re
from pathlib import Path

import allauth
import pytest
from allauth.account.adapter import get_adapter
from allauth.core import context as allauth_context
from django.contrib.sites.models import Site
from django.core import mail
from django.test import RequestFactory
from django.utils import timezone, translation

from accounts.adapters import PURPOSES
from accounts.models import OutboxMessage, OutboxPurpose

PASSWORD = "a-long-and-unusual-password"
ALLAUTH_EMAILS = sorted(
    f"account/email/{path.name.removesuffix('_message.txt')}"
    for path in (Path(allauth.__file__).parent / "templates" / "account" / "email").glob("*_message.txt")
    if not path.name.startswith("base_")
)
# A name or domain left empty by a missing context variable: "Hello from !", "using !".
EMPTY_NAME = re.compile(r"\b(?:from|using|of|at)\s+[!.,]")
WRONG_WORDS = re.compile(r"Sign[ -]?In|Sign Up|sign-in|signed in|signed out|Sign Out")


def _assert_names_the_product(subject: str, body: str):
    assert subject.startswith("Foretaste: "), subject
    assert "Foretaste" in body, body
    assert not EMPTY_NAME.search(subject + "\n" + body), body
    assert not WRONG_WORDS.search(subject + "\n" + body), body


def test_every_email_allauth_can_send_has_a_purpose():
    assert len(ALLAUTH_EMAILS) >= 10
    assert set(ALLAUTH_EMAILS) - set(PURPOSES) == set()


@pytest.mark.django_db
@pytest.mark.parametrize("language", ["en", "de", "fr"])
@pytest.mark.parametrize("template_prefix", ALLAUTH_EMAILS)
def test_every_allauth_email_names_foretaste(template_prefix, language, customer):
    request = RequestFactory().get("/")
    request.user = customer
    context = {
        "user": customer,
        "email": customer.email,
        "current_site": Site.objects.get_current(),
        "activate_url": "http://testserver/accounts/confirm-email/key/",
        "password_reset_url": "http://testserver/accounts/password/reset/key/1-key/",
        "signup_url": "http://testserver/accounts/signup/",
        "code": "ABC123",
        "key": "key",
        "ip": "192.0.2.1",
        "user_agent": "Firefox",
        "timestamp": timezone.now(),
        "from_email": "old@example.com",
        "to_email": "new@example.com",
        "deleted_email": "old@example.com",
    }
    with translation.override(language), allauth_context.request_context(request):
        message = get_adapter(request).render_mail(template_prefix, customer.email, context)

    _assert_names_the_product(message.subject, message.body)


def test_the_site_is_named_foretaste_on_site_url(db, settings):
    site = Site.objects.get_current()
    assert site.name == "Foretaste"
    assert site.domain == settings.SITE_URL.split("://", 1)[1]


@pytest.mark.django_db(transaction=True)
def test_the_verification_email_names_foretaste_and_is_recorded(client):
    client.post("/accounts/signup/", {"email": "nina@example.com", "password1": PASSWORD, "password2": PASSWORD})

    (message,) = mail.outbox
    _assert_names_the_product(message.subject, message.body)
    record = OutboxMessage.objects.get()
    assert record.purpose == OutboxPurpose.VERIFICATION
    assert record.user.email == "nina@example.com"
    assert record.language == "en"


@pytest.mark.django_db(transaction=True)
def test_the_account_already_exists_email_names_foretaste(client, customer):
    client.post("/accounts/signup/", {"email": customer.email, "password1": PASSWORD, "password2": PASSWORD})

    (message,) = mail.outbox
    _assert_names_the_product(message.subject, message.body)
    assert OutboxMessage.objects.get().purpose == OutboxPurpose.ACCOUNT_EXISTS
    assert OutboxMessage.objects.get().user == customer


@pytest.mark.django_db(transaction=True)
def test_the_password_reset_email_names_foretaste(client, customer):
    client.post("/accounts/password/reset/", {"email": customer.email})

    (message,) = mail.outbox
    _assert_names_the_product(message.subject, message.body)
    assert "/accounts/password/reset/key/" in message.body
    assert OutboxMessage.objects.get().purpose == OutboxPurpose.PASSWORD_RESET


@pytest.mark.django_db(transaction=True)
def test_the_unknown_account_email_names_foretaste(client):
    client.post("/accounts/password/reset/", {"email": "nobody@example.com"})

    (message,) = mail.outbox
    _assert_names_the_product(message.subject, message.body)
    record = OutboxMessage.objects.get()
    assert record.purpose == OutboxPurpose.UNKNOWN_ACCOUNT
    assert record.user is None


@pytest.mark.django_db(transaction=True)
def test_a_german_visitor_gets_a_german_email_recorded_as_german(client):
    client.post(
        "/accounts/signup/",
        {"email": "jonas@example.com", "password1": PASSWORD, "password2": PASSWORD},
        HTTP_ACCEPT_LANGUAGE="de",
    )

    record = OutboxMessage.objects.get()
    assert record.language == "de"
    assert record.email.subject.startswith("Foretaste: ")
