"""Steps the browser journeys share: Stripe.js from this session's localstripe, signing up from
an offer with the emailed link, the consent and the card element, and a page that fits the
screen."""

import copy
import re

from django.core import mail
from playwright.sync_api import expect

PASSWORD = "a-long-and-unusual-password"
CONSENT = "I have read the terms above and agree to them."
# Where settings.py points Stripe.js and the API when nothing is set: the CSP is built from it.
DEFAULT_STRIPE_ORIGIN = "http://127.0.0.1:8420"


def stripe_js_from(settings, base: str) -> None:
    """Serve Stripe.js from this session's localstripe (on its own port), with the CSP settings.py
    builds, its Stripe origin swapped for this one: a policy that left Stripe.js or its API out
    of a directive would block the card element here as it would in production."""
    settings.STRIPE_JS_URL = f"{base}/js.stripe.com/v3/"
    policy = copy.deepcopy(settings.CONTENT_SECURITY_POLICY)
    for directive, sources in policy["DIRECTIVES"].items():
        policy["DIRECTIVES"][directive] = [base if source == DEFAULT_STRIPE_ORIGIN else source for source in sources]
    settings.CONTENT_SECURITY_POLICY = policy


def watch_the_console(page) -> list[str]:
    """The page's console errors (a CSP violation is one), collected as they happen. The
    browser's own request for /favicon.ico, which the site does not serve, is not the page's."""
    errors: list[str] = []

    def heard(message):
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            errors.append(f"{message.text} ({message.location.get('url')})")

    page.on("console", heard)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def sent_to(email: str) -> list:
    return [message for message in mail.outbox if email in message.to]


def link_in(message, pattern: str) -> str:
    """The path of the first link in the email's text that matches ``pattern`` (the site's own
    host in the email is SITE_URL, not the test server's)."""
    found = re.search(rf"https?://[^/\s]+({pattern})", message.body)
    assert found, f"no link matching {pattern} in: {message.body}"
    return found.group(1)


def sign_up_from_the_offer(page, base_url: str, *, slug: str, email: str) -> None:
    """An anonymous visitor opens the offer, signs up from it, verifies their email with the
    link we sent, and is back on the offer, logged in."""
    page.goto(f"{base_url}/o/{slug}/")
    page.get_by_role("link", name="Sign up to claim").click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password:", exact=True).fill(PASSWORD)
    page.get_by_label("Password (again):").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(re.compile(r"/accounts/confirm-email/$"))

    (verification,) = sent_to(email)
    page.goto(base_url + link_in(verification, r"/accounts/confirm-email/\S+/"))
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(f"{base_url}/o/{slug}/")


def consent_and_claim(page) -> None:
    box = page.get_by_label(CONSENT)
    expect(box).not_to_be_checked()
    box.check()
    page.get_by_role("button", name="Claim this offer").click()


def type_the_card(page, number: str) -> None:
    """Type the card into localstripe's card element (the claim's card page and the buy page)."""
    card = page.locator("#card-element")
    for field, value in (("number", number), ("exp_month", "12"), ("exp_year", "34"), ("cvc", "123")):
        card.locator(f"input[placeholder={field}]").fill(value)
    card.locator("input[placeholder=postal_code]").fill("10115")


def save_the_card(page, number: str, *, bank_asks: bool = False) -> None:
    """Type the card into localstripe's card element and save it. localstripe's Stripe.js plays
    the bank's 3-D Secure step as a box on the page with a "Complete authentication" button."""
    page.wait_for_url(re.compile(r"/claim/\d+/card/$"))
    type_the_card(page, number)
    page.get_by_role("button", name="Save the card and start the trial").click()
    if bank_asks:
        page.get_by_role("button", name="Complete authentication").click()


def complete_the_payment(page) -> None:
    """The bank asks to authenticate the charge: the page runs confirmCardPayment."""
    expect(page.get_by_role("heading", name="Confirm with your bank")).to_be_visible()
    page.get_by_role("button", name="Confirm the payment").click()
    page.get_by_role("button", name="Complete authentication").click()


def fits_the_screen(page) -> bool:
    """Nothing wider than the screen (a mobile browser widens its layout viewport to fit content
    that overflows, so the screen's width is compared too)."""
    width = page.viewport_size["width"]
    return page.evaluate(f"window.innerWidth === {width} && document.documentElement.scrollWidth <= {width}")
