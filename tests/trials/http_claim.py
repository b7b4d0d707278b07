"""Claiming over real HTTP, as a browser does it, for the HTTP race tests and bench/bench_claim.py:
a logged-in session made in the database (so signup is not part of what is measured), the
landing page's form with its CSRF token, the claim POST, and for a card kind the card page, the
card saved at localstripe through the stripe library (standing in for Stripe.js) and the confirm
POST. One connection per request, as gunicorn's sync workers close them anyway."""

import html
import http.client
import re
from dataclasses import dataclass
from http.cookies import SimpleCookie
from importlib import import_module
from urllib.parse import urlencode, urlsplit

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

from accounts.models import User
from tests.billing.stripe_world import card_payment_method, setup_intent_confirm

_CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_CARD_FORM = re.compile(r'<form method="post" action="([^"]+)" id="claim-card"')
_SETUP_INTENT = re.compile(r'name="setup_intent_id" value="([^"]*)"')


def card_number(n: int) -> str:
    """The ``n``-th of distinct cards that localstripe saves without trouble: one person per
    card, since a card already used for an offer is refused as the same person."""
    return f"4111{n:012d}"


def verified_customer(email: str) -> User:
    """A customer whose email is verified: one who could claim at once."""
    user = User.objects.create_user(email=email)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


def session_cookie(user: User) -> str:
    """A logged-in session for ``user``, written the way ``login()`` writes one; the Cookie pair."""
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return f"{settings.SESSION_COOKIE_NAME}={store.session_key}"


@dataclass
class Answer:
    status: int
    location: str
    body: str


class Browser:
    """One customer's browser: its cookies, and (behind a trusted proxy) the client address the
    proxy puts in X-Forwarded-For."""

    def __init__(self, base: str, *, cookie: str = "", forwarded_for: str = "", timeout: float = 30):
        parts = urlsplit(base)
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self.cookies = SimpleCookie(cookie)
        self.forwarded_for = forwarded_for

    def request(self, method: str, path: str, form: dict | None = None) -> Answer:
        headers = {"Cookie": "; ".join(f"{k}={m.value}" for k, m in self.cookies.items()), "User-Agent": "http-claim"}
        if self.forwarded_for:
            headers["X-Forwarded-For"] = self.forwarded_for
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            text = response.read().decode()
            for header in response.headers.get_all("Set-Cookie") or []:
                self.cookies.load(header)
            return Answer(response.status, urlsplit(response.getheader("Location") or "").path, text)
        finally:
            conn.close()

    def get(self, path: str) -> Answer:
        return self.request("GET", path)

    def post(self, path: str, form: dict, *, page: Answer) -> Answer:
        """POST a form of ``page``, with that page's CSRF token."""
        token = _CSRF_FIELD.search(page.body)
        return self.request("POST", path, {"csrfmiddlewaretoken": token.group(1) if token else "", **form})


def claim_post(browser: Browser, slug: str, *, landing: Answer | None = None) -> Answer:
    """The landing page (which assigns the visitor, and gives the form), then the claim POST."""
    landing = landing or browser.get(f"/o/{slug}/")
    return browser.post(f"/o/{slug}/claim/", {"consent": "on"}, page=landing)


def card_step(browser: Browser, claimed: Answer, *, number: str) -> Answer:
    """After a card kind's claim POST: the card page, the card saved on its SetupIntent at
    localstripe as Stripe.js would (``settings.STRIPE_API_BASE`` must point there), then the
    confirm POST."""
    page = browser.get(claimed.location)
    action, setup_intent = _CARD_FORM.search(page.body), _SETUP_INTENT.search(page.body)
    assert page.status == 200 and action and setup_intent and setup_intent.group(1), (page.status, claimed.location)
    setup_intent_id = setup_intent.group(1)
    setup_intent_confirm(setup_intent_id=setup_intent_id, payment_method_id=card_payment_method(number))
    return browser.post(html.unescape(action.group(1)), {"setup_intent_id": setup_intent_id}, page=page)
