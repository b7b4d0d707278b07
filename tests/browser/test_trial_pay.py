"""The payment page of a failed end step, in Chromium with localstripe's Stripe.js: the bank's
3-D Secure completed with confirmCardPayment, and a declined card replaced with another one
through confirmCardSetup; each ends with the trial converted and one ledger row."""

import copy

import pytest
from django.test import Client

from billing.models import Purchase
from tests.support import CARD_DECLINES_OFF_SESSION, CARD_NEEDS_3DS, CARD_OK
from tests.trials.test_claim import live_offer
from tests.trials.test_conversion_payment import failed_trial
from trials.models import Trial


@pytest.fixture
def stripe_js(settings, localstripe):
    """The pages load Stripe.js from this session's localstripe, and the CSP allows it (the
    settings were made for the default port, before the session's localstripe started)."""
    settings.STRIPE_JS_URL = f"{localstripe}/js.stripe.com/v3/"
    policy = copy.deepcopy(settings.CONTENT_SECURITY_POLICY)
    for directive in ("script-src", "connect-src", "frame-src"):
        policy["DIRECTIVES"][directive].append(localstripe)
    settings.CONTENT_SECURITY_POLICY = policy


def logged_in(page, live_server, user):
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )


def keep_on_failure(page, tmp_path, name):
    """A screenshot and the page's HTML, kept in pytest's temporary folder (it says where)."""
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
    (tmp_path / f"{name}.html").write_text(page.content())
    print(f"kept {tmp_path / name}.png and .html")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("card", [CARD_NEEDS_3DS, CARD_DECLINES_OFF_SESSION])
def test_a_failed_end_step_is_paid_from_the_page(live_server, browser, marketer, tmp_path, card, stripe_js):
    offer = live_offer(marketer, kind="free_trial", slug="club-trial", inventory=5)
    trial = failed_trial(offer, card)
    page = browser.new_context().new_page()
    page.set_default_timeout(15_000)
    logged_in(page, live_server, trial.customer)
    try:
        page.goto(f"{live_server.url}/me/")
        page.get_by_role("link", name="Complete payment" if card == CARD_NEEDS_3DS else "Pay with another card").click()
        if card == CARD_NEEDS_3DS:
            page.get_by_role("button", name="Confirm the payment").click()
            page.get_by_role("button", name="Complete authentication").click()
        else:
            page.get_by_placeholder("number").fill(CARD_OK)
            page.get_by_placeholder("exp_month").fill("12")
            page.get_by_placeholder("exp_year").fill("34")  # the element prefixes "20"
            page.get_by_placeholder("cvc").fill("123")
            page.get_by_placeholder("postal_code").fill("10115")
            page.get_by_role("button", name="with this card").click()
        page.wait_for_url(f"{live_server.url}/me/")
        assert "the payment went through" in page.content()
    except Exception:
        keep_on_failure(page, tmp_path, f"trial-pay-{card}")
        raise
    finally:
        page.context.close()
    trial.refresh_from_db()
    assert trial.status == Trial.Status.CONVERTED
    assert Purchase.objects.filter(trial=trial, kind="regular").count() == 1
