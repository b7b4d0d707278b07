"""The customer's language: the switcher, remembered on the account, then the browser.

A visitor who picks a language reads every page in it. A logged-in customer's pick is kept on
the account, so another browser (or a fresh login) shows the same language, and the mail written
to them (allauth's too) is in it and is recorded as such in the outbox.
"""

import re

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client
from django.utils import translation

from accounts.languages import user_language
from accounts.models import OutboxMessage, User
from tests.conftest import PASSWORD

# The storefront's heading, in each language (templates/offers/home.html).
LIVE_OFFERS = {"en": "Live offers", "it": "Offerte attive", "ru": "Действующие предложения", "pl": "Aktualne oferty"}


def page_language(response) -> str:
    return re.search(r'<html lang="([^"]+)"', response.content.decode()).group(1)


def switch(client, language, **headers):
    return client.post("/i18n/setlang/", {"language": language, "next": "/"}, **headers)


@pytest.mark.django_db
@pytest.mark.parametrize("language", ["it", "ru", "pl"])
def test_the_switcher_turns_the_site_into_the_chosen_language(client, language):
    switch(client, language)

    response = client.get("/", HTTP_ACCEPT_LANGUAGE="en")

    assert page_language(response) == language
    assert LIVE_OFFERS[language] in response.content.decode()


@pytest.mark.django_db
def test_the_switcher_is_a_plain_form_listing_each_language_by_its_own_name(client):
    html = client.get("/").content.decode()
    form = re.search(r'<form class="language".*?</form>', html, re.S).group(0)

    assert 'action="/i18n/setlang/"' in form and 'method="post"' in form
    assert 'type="submit"' in form  # works without script, so the CSP needs no exception
    assert "<script" not in form and "onchange" not in form
    for name in ("English", "Italiano", "Русский", "Polski", "Deutsch", "Français"):
        assert f">{name}</option>" in form


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("header", "language"), [("pl", "pl"), ("ru-RU,ru;q=0.9", "ru"), ("it-CH", "it"), ("ja", "en")]
)
def test_without_a_choice_the_browser_decides(client, header, language):
    response = client.get("/", HTTP_ACCEPT_LANGUAGE=header)

    assert page_language(response) == language
    assert LIVE_OFFERS[language] in response.content.decode()


@pytest.mark.django_db
def test_a_logged_in_switch_is_remembered_on_the_account(client, customer):
    client.force_login(customer)

    switch(client, "it")

    customer.refresh_from_db()
    assert customer.preferred_language == "it"


@pytest.mark.django_db
def test_the_remembered_language_follows_the_customer_to_a_fresh_browser(client, customer):
    client.force_login(customer)
    switch(client, "it")
    client.post("/accounts/logout/")

    fresh = Client()
    fresh.post("/accounts/login/", {"login": customer.email, "password": PASSWORD}, HTTP_ACCEPT_LANGUAGE="pl")
    response = fresh.get("/", HTTP_ACCEPT_LANGUAGE="pl")

    assert page_language(response) == "it"
    assert LIVE_OFFERS["it"] in response.content.decode()


@pytest.mark.django_db
def test_the_account_language_comes_before_this_browsers_cookie(client, customer):
    switch(client, "ru")  # chosen in this browser before logging in to an Italian account
    User.objects.filter(pk=customer.pk).update(preferred_language="it")
    client.force_login(customer)

    assert page_language(client.get("/")) == "it"


@pytest.mark.django_db
def test_an_account_without_a_language_takes_the_one_chosen_before_logging_in(client, customer):
    assert customer.preferred_language == ""
    switch(client, "pl")

    client.post("/accounts/login/", {"login": customer.email, "password": PASSWORD})

    customer.refresh_from_db()
    assert customer.preferred_language == "pl"


@pytest.mark.django_db
@pytest.mark.parametrize("bad", ["xx", "", "de-<script>", "a" * 40])
def test_an_unknown_language_changes_nothing(client, customer, bad):
    User.objects.filter(pk=customer.pk).update(preferred_language="it")
    client.force_login(customer)

    switch(client, bad)

    customer.refresh_from_db()
    assert customer.preferred_language == "it"
    assert page_language(client.get("/")) == "it"


@pytest.mark.django_db
def test_a_stored_language_the_site_no_longer_has_falls_back_to_the_browser(client, customer):
    User.objects.filter(pk=customer.pk).update(preferred_language="xx")
    client.force_login(customer)

    assert page_language(client.get("/", HTTP_ACCEPT_LANGUAGE="ru")) == "ru"


@pytest.mark.django_db(transaction=True)
def test_a_new_account_keeps_the_language_it_was_opened_in_and_its_email_is_in_it(client):
    client.post(
        "/accounts/signup/",
        {"email": "olga@example.com", "password1": PASSWORD, "password2": PASSWORD},
        HTTP_ACCEPT_LANGUAGE="ru",
    )

    assert User.objects.get(email="olga@example.com").preferred_language == "ru"
    record = OutboxMessage.objects.get()
    assert record.language == "ru"
    with translation.override("ru"):
        subject = translation.gettext("Please Confirm Your Email Address")
    assert subject != "Please Confirm Your Email Address"
    assert record.email.subject == f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}{subject}"


@pytest.mark.django_db(transaction=True)
def test_mail_to_an_account_is_in_its_language_whatever_browser_asked_for_it(client, customer):
    User.objects.filter(pk=customer.pk).update(preferred_language="pl")

    client.post("/accounts/password/reset/", {"email": customer.email}, HTTP_ACCEPT_LANGUAGE="en")

    (message,) = mail.outbox
    record = OutboxMessage.objects.get()
    assert record.language == "pl"
    with translation.override("pl"):
        subject = translation.gettext("Password Reset Email")
    assert subject != "Password Reset Email"
    assert message.subject == f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}{subject}"
    assert "Pozdrowienia od Foretaste," in message.body


@pytest.mark.django_db
def test_mail_written_without_a_request_asks_the_account_for_its_language(customer):
    with translation.override("fr"):  # as a beat job with nothing but the default active
        assert user_language(customer) == "fr"
    customer.preferred_language = "ru"
    assert user_language(customer) == "ru"
    customer.preferred_language = "xx"
    assert user_language(customer, "pl") == "pl"
    assert user_language(None, "it-IT") == "it"
