"""Customers sign up with their email, and must verify it before they can log in."""

import re
from urllib.parse import urlencode

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client

from accounts.models import User

PASSWORD = "a-long-and-unusual-password"


def _confirmation_link(message) -> str:
    return re.search(r"https?://[^/\s]+(/accounts/confirm-email/[^\s]+/)", message.body).group(1)


@pytest.mark.django_db(transaction=True)
def test_signup_sends_a_verification_email_and_login_waits_for_it(client):
    response = client.post(
        "/accounts/signup/", {"email": "Nina@Example.com", "password1": PASSWORD, "password2": PASSWORD}
    )

    assert response.status_code == 302
    assert response.url == "/accounts/confirm-email/"
    user = User.objects.get()
    assert user.email == "nina@example.com"  # stored in its canonical, lower-case form
    assert not EmailAddress.objects.get(user=user).verified
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["nina@example.com"]

    client.logout()
    refused = client.post("/accounts/login/", {"login": "nina@example.com", "password": PASSWORD})
    assert refused.status_code == 302
    assert refused.url == "/accounts/confirm-email/"
    assert "_auth_user_id" not in client.session

    link = _confirmation_link(mail.outbox[-1])
    assert client.get(link).status_code == 200  # a page with a button: a GET changes nothing
    assert not EmailAddress.objects.get(user=user).verified
    confirmed = client.post(link)

    assert confirmed.status_code == 302
    assert EmailAddress.objects.get(user=user).verified
    assert client.get("/me/").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_an_email_can_only_sign_up_once_whatever_its_case_without_revealing_who_has_an_account(client, customer):
    response = client.post(
        "/accounts/signup/",
        {"email": customer.email.upper(), "password1": PASSWORD, "password2": PASSWORD},
    )

    # The same answer as a new signup, so the form cannot be used to find out who has an
    # account; the owner is told by email instead.
    assert response.status_code == 302
    assert response.url == "/accounts/confirm-email/"
    assert User.objects.count() == 1
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [customer.email]
    assert "already" in mail.outbox[0].body


@pytest.mark.django_db
def test_a_verified_customer_logs_in_with_email_and_password(client, customer):
    response = client.post("/accounts/login/", {"login": customer.email, "password": "correct-horse-battery"})

    assert response.status_code == 302
    assert client.get("/me/").status_code == 200


@pytest.mark.django_db
def test_a_wrong_password_is_refused_with_a_message(client, customer):
    response = client.post("/accounts/login/", {"login": customer.email, "password": "nope"})

    assert response.status_code == 200
    assert "not correct" in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_password_reset_sends_a_link(client, customer):
    response = client.post("/accounts/password/reset/", {"email": customer.email})

    assert response.status_code == 302
    assert len(mail.outbox) == 1
    assert "/accounts/password/reset/key/" in mail.outbox[0].body


def test_the_user_model_uses_email_as_login():
    assert User.USERNAME_FIELD == "email"
    assert not hasattr(User, "username") or User.username is None


def _sign_up(client, email: str, next_url: str):
    response = client.post(
        f"/accounts/signup/?{urlencode({'next': next_url})}",
        {"email": email, "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 302
    return _confirmation_link(mail.outbox[-1])


@pytest.mark.django_db(transaction=True)
def test_verified_in_the_same_browser_the_signup_goes_back_to_its_page(client):
    link = _sign_up(client, "vera@example.com", "/o/coffee-sampler/")

    assert client.post(link).url == "/o/coffee-sampler/"
    assert client.get("/me/").status_code == 200  # logged in by the confirmation


@pytest.mark.django_db(transaction=True)
def test_verified_on_another_device_the_signup_goes_back_to_its_page_after_logging_in(client):
    link = _sign_up(client, "vera@example.com", "/o/coffee-sampler/?arm=1")
    phone = Client()

    confirmed = phone.post(link)

    assert EmailAddress.objects.get(email="vera@example.com").verified
    assert confirmed.url == "/accounts/login/?next=%2Fo%2Fcoffee-sampler%2F%3Farm%3D1"
    logged_in = phone.post(confirmed.url, {"login": "vera@example.com", "password": PASSWORD})
    assert logged_in.url == "/o/coffee-sampler/?arm=1"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("next_url", ["https://evil.example/o/x/", "//evil.example/o/x/", "javascript:alert(1)"])
def test_a_signup_next_on_another_site_is_not_remembered(client, next_url):
    link = _sign_up(client, "vera@example.com", next_url)

    assert User.objects.get().signed_up_from == ""
    confirmed = Client().post(link)
    assert confirmed.url == "/accounts/login/"  # allauth's own answer, as without a next
