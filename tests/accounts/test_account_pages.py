"""allauth's pages wear the house layout and speak the house's words: "Log in", "Sign up" and
"Log out", never "Sign In", "Sign Up", "Sign Out" or "Login" as a verb. Every GET route allauth
serves is walked, so a page added by an allauth upgrade is checked too."""

import re
from html.parser import HTMLParser

import pytest
from allauth import urls as allauth_urls
from allauth.account.models import EmailAddress, EmailConfirmationHMAC
from django.contrib.auth.tokens import default_token_generator
from django.core import mail
from django.urls import URLResolver
from django.utils.http import int_to_base36

# Checked after the house's "Sign up"/"sign up" are taken out, so "Sign Up" and "signup" remain.
WRONG_WORDS = re.compile(r"\bsign[ -]?(?:in|up|out)\b|\bsigned (?:in|out)\b|\blogin\b(?! code)", re.IGNORECASE)


def _routes(patterns, prefix="/accounts/"):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield pattern.name, prefix + str(pattern.pattern)


ROUTES = dict(_routes(allauth_urls.urlpatterns))


class _Text(HTMLParser):
    """The words a visitor reads: text and the labels of buttons and fields, not markup."""

    def __init__(self):
        super().__init__()
        self.words: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1
        attributes = dict(attrs)
        for name in ("placeholder", "aria-label", "title"):
            if attributes.get(name):
                self.words.append(attributes[name])
        if tag == "input" and attributes.get("type") in ("submit", "button") and attributes.get("value"):
            self.words.append(attributes["value"])

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.words.append(data)


def _visible_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(" ".join(parser.words).split())


def _assert_house_page(response):
    assert response.status_code == 200, response
    html = response.content.decode()
    assert '<a class="brand" href="/">Foretaste</a>' in html, "not in the house layout (templates/base.html)"
    assert '<main id="main"' in html
    text = _visible_text(html).replace("Sign up", "").replace("sign up", "")
    wrong = WRONG_WORDS.findall(text)
    assert wrong == [], f"{response.request['PATH_INFO']} says {wrong}: {text}"


def _confirmation_key(user):
    address = EmailAddress.objects.get_or_create(
        user=user, email=user.email, defaults={"verified": False, "primary": True}
    )[0]
    return EmailConfirmationHMAC(address).key


def _pages(user):
    """Every GET page of allauth that these settings serve, with what it needs to render."""
    key = int_to_base36(user.pk) + "-" + default_token_generator.make_token(user)
    return {
        "account_login": ("anonymous", ROUTES["account_login"]),
        "account_signup": ("anonymous", ROUTES["account_signup"]),
        "account_inactive": ("anonymous", ROUTES["account_inactive"]),
        "account_email_verification_sent": ("anonymous", ROUTES["account_email_verification_sent"]),
        "account_reset_password": ("anonymous", ROUTES["account_reset_password"]),
        "account_reset_password_done": ("anonymous", ROUTES["account_reset_password_done"]),
        "account_reset_password_from_key_done": ("anonymous", ROUTES["account_reset_password_from_key_done"]),
        "account_confirm_email": ("anonymous", f"/accounts/confirm-email/{_confirmation_key(user)}/"),
        "account_reset_password_from_key": ("anonymous", f"/accounts/password/reset/key/{key}/"),
        "account_logout": ("user", ROUTES["account_logout"]),
        "account_email": ("user", ROUTES["account_email"]),
        "account_change_password": ("user", ROUTES["account_change_password"]),
        "account_reauthenticate": ("user", ROUTES["account_reauthenticate"]),
        # Redirect elsewhere with these settings (login by code is off, the user has a password),
        # and are followed to the page they land on.
        "account_set_password": ("user", ROUTES["account_set_password"]),
        "account_confirm_login_code": ("anonymous", ROUTES["account_confirm_login_code"]),
    }


def test_every_allauth_route_is_checked(db, customer):
    assert set(ROUTES) == set(_pages(customer))


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(ROUTES))
@pytest.mark.parametrize("language", ["en", "it", "ru", "pl", "de", "fr"])
def test_every_allauth_page_is_in_the_house_layout_and_wording(client, customer, name, language):
    who, path = _pages(customer)[name]
    if who == "user":
        client.force_login(customer)

    response = client.get(path, follow=True, HTTP_ACCEPT_LANGUAGE=language)

    _assert_house_page(response)


@pytest.mark.django_db
def test_an_invalid_link_page_and_a_form_with_errors_are_in_the_house_wording_too(client, customer):
    _assert_house_page(client.get("/accounts/confirm-email/not-a-key/"))
    _assert_house_page(client.get("/accounts/password/reset/key/1-not-a-token/", follow=True))
    _assert_house_page(client.post("/accounts/login/", {"login": customer.email, "password": "wrong"}))
    _assert_house_page(client.post("/accounts/signup/", {"email": "x", "password1": "a", "password2": "b"}))


@pytest.mark.django_db
def test_the_messages_after_logging_in_and_out_use_the_house_words(client, customer):
    logged_in = client.post(
        "/accounts/login/", {"login": customer.email, "password": "correct-horse-battery"}, follow=True
    )
    _assert_house_page(logged_in)
    assert "You are logged in as" in logged_in.content.decode()

    logged_out = client.post("/accounts/logout/", follow=True)
    _assert_house_page(logged_out)
    assert "You have logged out." in logged_out.content.decode()
    assert mail.outbox == []
