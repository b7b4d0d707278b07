"""A customer's claim, end to end in Chromium against the live server and localstripe: from the
offer, signed up and verified, the consent, the card (with and without 3-D Secure), the trial
on /me/, and its cancellation; a no-card trial through to its purchase; a physical sample with
its address; and one journey on a phone."""

import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from playwright.sync_api import expect

from accounts.emails import outbox_send_due
from billing.models import Purchase
from offers.money import money_format
from tests.browser.journey import (
    complete_the_payment,
    consent_and_claim,
    fits_the_screen,
    link_in,
    save_the_card,
    sent_to,
    sign_up_from_the_offer,
    stripe_js_from,
    type_the_card,
    watch_the_console,
)
from tests.support import CARD_NEEDS_3DS, CARD_OK
from tests.trials.test_claim_web import live
from trials import clock
from trials.models import ConsentRecord, Trial

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def claim_ready(settings, localstripe):
    stripe_js_from(settings, localstripe)
    # Rate limits count in the shared cache across tests, and every test's browser is 127.0.0.1.
    cache.clear()


def day(moment) -> str:
    moment = timezone.localtime(moment)
    return f"{moment:%B} {moment.day}, {moment.year}"


def the_trial_card(page, trial):
    return page.locator(f"#trial-{trial.pk}")


def card_trial_journey(page, base_url, marketer, *, email: str, card: str, bank_asks: bool = False):
    """Sign up from the offer, claim with a card, see the trial on /me/, cancel it. Every page on
    the way fits the screen (the phone's too) and the console stays quiet (no CSP violation)."""
    offer = live(marketer, kind="free_trial", slug="club-trial", name="Coffee club")
    console = watch_the_console(page)
    sign_up_from_the_offer(page, base_url, slug=offer.slug, email=email)

    claim = page.get_by_role("button", name="Claim this offer")
    claim.scroll_into_view_if_needed()
    expect(claim).to_be_in_viewport(ratio=1)  # all of it on the screen, none cut off at a side
    assert fits_the_screen(page)
    consent_and_claim(page)
    page.wait_for_url(re.compile(r"/claim/\d+/card/$"))
    expect(page.get_by_role("heading", name="Save your card")).to_be_visible()
    assert fits_the_screen(page)
    save_the_card(page, card, bank_asks=bank_asks)

    page.wait_for_url(f"{base_url}/me/")
    assert fits_the_screen(page)
    expect(page.get_by_text("Your trial has started.")).to_be_visible()
    trial = Trial.objects.get(customer__email=email)
    assert trial.status == Trial.Status.ACTIVE
    consent = ConsentRecord.objects.get(trial=trial)
    assert consent.card_last4 == card[-4:]
    (receipt,) = [m for m in sent_to(email) if m.subject == "Your trial of Coffee club has started"]
    assert "To cancel at any time, in one click:" in receipt.body

    shown = the_trial_card(page, trial)
    expect(shown.locator(".trial-card__status")).to_contain_text("Active")
    expect(shown).to_contain_text("14 days")
    expect(shown.locator(".trial-card__charge")).to_have_text(f"€24.00 on {day(trial.ends_at)}")

    shown.get_by_role("link", name="Cancel this trial").click()
    page.wait_for_url(f"{base_url}/me/trials/{trial.pk}/cancel/")
    expect(page.get_by_role("heading", name="Cancel your trial of Coffee club?")).to_be_visible()
    assert fits_the_screen(page)
    page.get_by_role("button", name="Yes, cancel my trial").click()

    page.wait_for_url(f"{base_url}/me/")
    expect(page.get_by_text("Your trial of Coffee club is cancelled.")).to_be_visible()
    expect(shown.locator(".trial-card__status")).to_contain_text("Cancelled")
    expect(shown.locator(".trial-card__charge")).to_have_count(0)
    expect(shown).not_to_contain_text("Days left")
    expect(shown.get_by_role("link", name="Cancel this trial")).to_have_count(0)
    trial.refresh_from_db()
    assert trial.status == Trial.Status.CANCELLED and trial.cancelled_at is not None
    assert not Purchase.objects.filter(customer=trial.customer).exists()
    assert console == []


def test_a_card_trial_from_signup_to_cancelled(live_server, page, marketer):
    card_trial_journey(page, live_server.url, marketer, email="nora@example.com", card=CARD_OK)


def test_a_card_trial_with_3d_secure_from_signup_to_cancelled(live_server, page, marketer):
    card_trial_journey(page, live_server.url, marketer, email="sven@example.com", card=CARD_NEEDS_3DS, bank_asks=True)


def no_card_trial_journey(page, base_url, marketer, *, email: str, buy_from: str) -> Trial:
    """A no-card trial, claimed and active on /me/, then over, with the email that invites the
    customer to buy; the customer follows its link (``buy_from="email"``) or the "Buy" button on
    /me/ to the buy page, pays with card 4242, and the trial is converted by the purchase."""
    offer = live(marketer, kind="free_trial_no_card", slug="beans-trial", name="Beans trial")
    sign_up_from_the_offer(page, base_url, slug=offer.slug, email=email)
    consent_and_claim(page)

    page.wait_for_url(f"{base_url}/me/")
    trial = Trial.objects.get(customer__email=email)
    assert trial.status == Trial.Status.ACTIVE
    shown = the_trial_card(page, trial)
    expect(shown.locator(".trial-card__status")).to_contain_text("Active")
    expect(shown).to_contain_text("14 days")
    expect(shown.locator(".trial-card__charge")).to_have_count(0)  # nothing is charged by itself
    assert fits_the_screen(page)

    # The trial's time is up: the clock's beat job ends it, and the outbox's sends the email.
    later = trial.ends_at + timedelta(minutes=1)
    assert clock.trials_expire_due(at=later) == 1
    outbox_send_due(at=later)
    (ended,) = [m for m in sent_to(email) if m.subject == "Your trial of Beans trial has ended"]
    assert f"If you liked it, Beans 1 kg is {money_format(2400, 'EUR', 'en')}." in ended.body
    trial.refresh_from_db()
    assert trial.status == Trial.Status.EXPIRED
    page.reload()
    expect(shown.locator(".trial-card__status")).to_contain_text("Ended")
    expect(page.get_by_role("cell", name="Your trial of Beans trial has ended")).to_be_visible()
    expect(page.get_by_text("No purchases yet.")).to_be_visible()

    if buy_from == "email":
        page.goto(base_url + link_in(ended, rf"/o/{offer.slug}/buy/"))
    else:
        shown.get_by_role("link", name="Buy Beans 1 kg").click()
    page.wait_for_url(f"{base_url}/o/{offer.slug}/buy/")
    expect(page.get_by_role("heading", name="Buy Beans 1 kg")).to_be_visible()
    assert fits_the_screen(page)

    type_the_card(page, CARD_OK)
    page.get_by_role("button", name="Pay €24.00").click()

    page.wait_for_url(f"{base_url}/me/")
    expect(page.get_by_text("Thank you: you bought Beans 1 kg.")).to_be_visible()
    (purchase,) = Purchase.objects.filter(customer=trial.customer)
    assert (purchase.kind, purchase.amount, purchase.currency, purchase.product_id) == (
        Purchase.Kind.REGULAR,
        2400,
        "EUR",
        offer.product_id,
    )
    assert purchase.source == Purchase.Source.STRIPE and purchase.external_id.startswith("pi_")
    trial.refresh_from_db()
    assert trial.status == Trial.Status.CONVERTED and trial.converted_at is not None
    expect(shown.locator(".trial-card__status")).to_contain_text("Converted")
    # A one-off product can be bought again (a repeat purchase), so the button stays.
    expect(shown.get_by_role("link", name="Buy Beans 1 kg")).to_be_visible()
    row = page.get_by_role("region", name="Receipts and purchases").get_by_role("row").filter(has_text="Beans 1 kg")
    expect(row).to_contain_text("Purchase")
    expect(row).to_contain_text("€24.00")
    assert fits_the_screen(page)
    return trial


def test_a_no_card_trial_through_to_a_purchase_from_its_email(live_server, page, marketer):
    no_card_trial_journey(page, live_server.url, marketer, email="ida@example.com", buy_from="email")


def test_a_no_card_trial_through_to_a_purchase_from_the_account_page(live_server, page, marketer):
    no_card_trial_journey(page, live_server.url, marketer, email="ada@example.com", buy_from="me")


def test_a_card_trial_on_a_phone(live_server, phone, marketer):
    card_trial_journey(phone, live_server.url, marketer, email="pia@example.com", card=CARD_OK)


def test_a_paid_physical_sample_with_its_address(live_server, page, marketer):
    offer = live(marketer, kind="sample", trial_price=300, physical=True, slug="beans-sample", name="Beans sample")
    sign_up_from_the_offer(page, live_server.url, slug=offer.slug, email="ugo@example.com")
    page.get_by_label("Street and number").fill("Invalidenstraße 1")
    page.get_by_label("City").fill("Berlin")
    page.get_by_label("Country").select_option("DE")
    page.get_by_label("Postal code").fill("1011")
    consent_and_claim(page)

    postal_code = page.locator("p.field", has=page.get_by_label("Postal code"))
    expect(postal_code.locator(".field__error")).to_have_text(
        "This postal code does not look right for the country chosen. Expected: 5 digits, e.g. 10115."
    )
    expect(page.get_by_label("Postal code")).to_have_attribute("aria-invalid", "true")
    assert not Trial.objects.exists()
    expect(page.get_by_label("City")).to_have_value("Berlin")  # the rest is kept as typed
    page.get_by_label("Postal code").fill("10115")
    page.get_by_label("I have read the terms above and agree to them.").check()
    page.get_by_role("button", name="Claim this offer").click()
    save_the_card(page, CARD_OK)

    page.wait_for_url(f"{live_server.url}/me/")
    trial = Trial.objects.get(customer__email="ugo@example.com")
    assert trial.status == Trial.Status.ACTIVE
    address = trial.shipping_address
    assert (address["line1"], address["postal_code"], address["city"], address["country"]) == (
        "Invalidenstraße 1", "10115", "Berlin", "DE",
    )  # fmt: skip
    (charge,) = Purchase.objects.filter(trial_id=trial.pk)
    assert (charge.kind, charge.amount, charge.currency) == ("sample", 300, "EUR")
    expect(page.locator("table").first).to_contain_text(money_format(300, "EUR", "en"))
    expect(the_trial_card(page, trial).locator(".trial-card__status")).to_contain_text("Active")


def test_a_paid_sample_whose_bank_asks_to_authenticate_the_charge(live_server, page, marketer):
    offer = live(marketer, kind="sample", trial_price=300, slug="beans-sample", name="Beans sample")
    sign_up_from_the_offer(page, live_server.url, slug=offer.slug, email="eva@example.com")
    consent_and_claim(page)
    save_the_card(page, CARD_NEEDS_3DS, bank_asks=True)
    complete_the_payment(page)

    page.wait_for_url(f"{live_server.url}/me/")
    trial = Trial.objects.get(customer__email="eva@example.com")
    assert trial.status == Trial.Status.ACTIVE
    (charge,) = Purchase.objects.filter(trial_id=trial.pk)
    assert (charge.kind, charge.amount) == ("sample", 300)
    assert re.fullmatch(r"pi_\w+", charge.external_id)
