"""Buying on Foretaste, through the Django client and localstripe: the buy page saves a card
with the claim's Stripe.js step, the pay step charges once (a PaymentIntent, or a subscription
for a subscription product) and records the ledger row under the id the webhook handlers use, so
the real webhook that follows adds nothing. 3-D Secure, declines, double submits, Stripe down,
other customers' objects and anonymous visitors are each covered; and so is ending a
subscription from /me/ at the end of its paid period."""

import time
from datetime import timedelta

import pytest
import stripe
from allauth.account.models import EmailAddress
from django.utils import timezone

from accounts.models import OutboxMessage
from billing import gateway, services
from billing.models import Checkout, Purchase, StripeEvent, Subscription
from offers.models import Offer
from tests import factories
from tests.billing.stripe_world import card_payment_method, post_event, setup_intent_confirm, stripe_object
from tests.support import CARD_DECLINES_OFF_SESSION, CARD_NEEDS_3DS, CARD_OK
from tests.trials.test_claim import bank_authenticates, live_offer, payment_intents_of
from trials.models import Trial

pytestmark = pytest.mark.django_db
CARD_DECLINED = "4000000000000002"  # declined as soon as it is saved


@pytest.fixture(autouse=True)
def fresh_counts(settings):
    # The pages' rate limits count in the shared cache, across tests: each test starts with none.
    from django.core.cache import cache

    cache.clear()
    settings.FORETASTE_RATE_LIMITS = {"buy": "1000/10m/ip,1000/10m/user", "cancel": "1000/10m/ip,1000/10m/user"}


@pytest.fixture
def logged_in(client, customer):
    client.force_login(customer)
    return client


@pytest.fixture
def beans(marketer) -> Offer:
    return live_offer(marketer, slug="beans-sample")  # a one-off product: Beans 1 kg, €24.00


@pytest.fixture
def club(marketer) -> Offer:
    product = factories.product(sku="club", name="Coffee club", price_amount=1500, interval="month")
    return live_offer(marketer, kind="free_trial", slug="club-trial", product_=product)


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    """Post a signed event and run what it queued after the commit, as a worker would."""

    def deliver(event):
        with django_capture_on_commit_callbacks(execute=True):
            response = post_event(client, event)
        assert response.status_code == 200, response.content
        return StripeEvent.objects.get(event_id=event["id"])

    return deliver


def buy_page(client, offer):
    return client.get(f"/o/{offer.slug}/buy/")


def card_saved(checkout: Checkout, number: str = CARD_OK) -> None:
    """What the page's Stripe.js does: confirmCardSetup with the card (and its 3-D Secure modal)."""
    checkout.refresh_from_db()
    result = setup_intent_confirm(
        setup_intent_id=checkout.stripe_setup_intent_id, payment_method_id=card_payment_method(number)
    )
    if result.status == "requires_action":
        gateway.client().v1.setup_intents.confirm(checkout.stripe_setup_intent_id)  # after the modal


def pay(client, checkout: Checkout, *, follow: bool = False, **extra):
    checkout.refresh_from_db()
    return client.post(
        f"/o/{checkout.offer.slug}/buy/{checkout.pk}/pay/",
        {"setup_intent_id": checkout.stripe_setup_intent_id, **extra},
        follow=follow,
    )


def bought(client, offer, number: str = CARD_OK) -> Checkout:
    page = buy_page(client, offer)
    assert page.status_code == 200 and 'data-mode="setup"' in page.content.decode()
    checkout = Checkout.objects.get(offer=offer, status=Checkout.Status.OPEN)
    card_saved(checkout, number)
    done = pay(client, checkout)
    assert done.status_code == 302 and done["Location"] == "/me/", done.content.decode()[:2000]
    checkout.refresh_from_db()
    return checkout


def stripe_id(user) -> str:
    return type(user).objects.get(pk=user.pk).stripe_customer_id


def events_about(object_id: str, *, types: tuple[str, ...], since: int) -> list[dict]:
    """The real events localstripe emitted about one object."""
    return [
        e
        for e in gateway.events_since(created_after=since)
        if e["type"] in types and e["data"]["object"].get("id") == object_id
    ]


# --- Who may buy ---------------------------------------------------------------------------------
def test_an_anonymous_visitor_is_sent_to_log_in_and_back_to_the_buy_page(client, beans):
    response = buy_page(client, beans)

    assert response.status_code == 302 and response["Location"] == f"/accounts/login/?next=/o/{beans.slug}/buy/"
    assert client.post(f"/o/{beans.slug}/buy/1/pay/").status_code == 302
    assert not Checkout.objects.exists()


def test_an_unverified_email_is_asked_to_verify_and_nothing_starts(logged_in, customer, beans):
    EmailAddress.objects.filter(user=customer).update(verified=False)

    page = buy_page(logged_in, beans).content.decode()

    assert "Please verify your email address before you buy." in page and "data-client-secret" not in page
    assert not Checkout.objects.exists()


def test_the_landing_page_and_the_holdout_lead_to_the_buy_page(client, customer, beans):
    client.force_login(customer)
    page = client.get(f"/o/{beans.slug}/").content.decode()
    # The holdout's product page has its buy button, every other arm the line under the claim.
    assert f'href="/o/{beans.slug}/buy/"' in page
    assert "Or buy Beans 1 kg now" in page or "Buy now" in page


# --- A one-off product ---------------------------------------------------------------------------
def test_a_one_off_purchase_is_charged_once_recorded_and_the_webhook_adds_nothing(logged_in, customer, beans, deliver):
    since = int(time.time()) - 1
    buy_page(logged_in, beans)
    before = payment_intents_of(stripe_id(customer))  # the session's localstripe is shared
    checkout = bought(logged_in, beans)

    (purchase,) = Purchase.objects.filter(customer=customer)
    (charged,) = payment_intents_of(stripe_id(customer)) - before
    assert (checkout.status, checkout.purchase, checkout.stripe_payment_intent_id) == ("paid", purchase, charged)
    assert (purchase.kind, purchase.source, purchase.external_id) == ("regular", "stripe", charged)
    assert (purchase.amount, purchase.currency, purchase.product) == (2400, "EUR", beans.product)
    receipt = OutboxMessage.objects.get(key=f"checkout-{checkout.pk}-receipt")
    assert (receipt.purpose, receipt.language, receipt.email.subject) == (
        "receipt",
        "en",
        "Your receipt for Beans 1 kg",
    )
    assert "We charged €24.00 to your card" in receipt.email.message

    # A reload of the pay step, or a second click: the same checkout, nothing charged again.
    assert pay(logged_in, checkout).status_code == 302
    assert payment_intents_of(stripe_id(customer)) - before == {charged}

    (event,) = events_about(charged, types=("payment_intent.succeeded",), since=since)
    assert deliver(event).status == StripeEvent.Status.PROCESSED
    assert list(Purchase.objects.values_list("external_id", flat=True)) == [charged]
    me = logged_in.get("/me/").content.decode()
    assert "Beans 1 kg" in me and "€24.00" in me


def test_the_buy_page_reloaded_keeps_one_checkout_and_one_setup_intent(logged_in, beans):
    buy_page(logged_in, beans)
    first = Checkout.objects.get()
    buy_page(logged_in, beans)

    assert list(Checkout.objects.values_list("pk", "stripe_setup_intent_id")) == [
        (first.pk, first.stripe_setup_intent_id)
    ]


def test_a_purchase_the_bank_asks_to_authenticate_completes_after_3d_secure(logged_in, customer, beans):
    buy_page(logged_in, beans)
    checkout = Checkout.objects.get()
    card_saved(checkout, CARD_NEEDS_3DS)
    before = payment_intents_of(stripe_id(customer))  # the session's localstripe is shared

    asked = pay(logged_in, checkout)

    page = asked.content.decode()
    checkout.refresh_from_db()
    assert asked.status_code == 200 and 'data-mode="payment"' in page and "js/claim.js" in page
    assert checkout.status == Checkout.Status.ACTION and not Purchase.objects.exists()
    assert buy_page(logged_in, beans).content.decode().count('data-mode="payment"') == 1  # a reload asks again
    secret = page.split('data-client-secret="')[1].split('"')[0]
    bank_authenticates(checkout.stripe_payment_intent_id, secret)

    done = pay(logged_in, checkout, payment_intent_id=checkout.stripe_payment_intent_id)

    assert done.status_code == 302 and done["Location"] == "/me/"
    purchase = Purchase.objects.get(customer=customer)
    assert purchase.external_id == checkout.stripe_payment_intent_id
    assert payment_intents_of(stripe_id(customer)) - before == {purchase.external_id}


def test_a_forged_payment_intent_after_3d_secure_is_refused(logged_in, beans):
    buy_page(logged_in, beans)
    checkout = Checkout.objects.get()
    card_saved(checkout, CARD_NEEDS_3DS)
    pay(logged_in, checkout)

    response = pay(logged_in, checkout, payment_intent_id="pi_someone_elses")

    assert response.status_code == 302 and response["Location"] == f"/o/{beans.slug}/buy/"
    assert not Purchase.objects.exists()


def test_a_card_declined_while_saving_says_so_records_nothing_and_the_next_visit_starts_anew(logged_in, beans):
    buy_page(logged_in, beans)
    checkout = Checkout.objects.get()
    with pytest.raises(stripe.CardError):  # what Stripe.js shows on the page
        card_saved(checkout, CARD_DECLINED)

    response = pay(logged_in, checkout)

    assert response.status_code == 302 and response["Location"] == f"/o/{beans.slug}/buy/"
    again = logged_in.get(response["Location"])
    assert "The card was not accepted, and nothing was charged." in again.content.decode()
    checkout.refresh_from_db()
    assert checkout.status == Checkout.Status.FAILED and not Purchase.objects.exists()
    assert Checkout.objects.filter(status=Checkout.Status.OPEN).exclude(pk=checkout.pk).count() == 1


def test_a_card_declined_at_the_charge_records_nothing(logged_in, customer, beans):
    buy_page(logged_in, beans)
    checkout = Checkout.objects.get()
    card_saved(checkout, CARD_DECLINES_OFF_SESSION)

    response = pay(logged_in, checkout, follow=True)

    assert "The card was not accepted, and nothing was charged." in response.content.decode()
    checkout.refresh_from_db()
    assert checkout.status == Checkout.Status.FAILED and not Purchase.objects.exists()
    assert not OutboxMessage.objects.filter(purpose="receipt").exists()


def test_a_submit_while_another_is_charging_waits_and_charges_nothing(logged_in, customer, beans):
    buy_page(logged_in, beans)
    checkout = Checkout.objects.get()
    card_saved(checkout)
    before = payment_intents_of(stripe_id(customer))
    # The first submit holds the checkout while it is at Stripe.
    Checkout.objects.filter(pk=checkout.pk).update(status=Checkout.Status.CHARGING, updated_at=timezone.now())

    response = pay(logged_in, checkout, follow=True)

    assert "Your payment is still being processed." in response.content.decode()
    assert payment_intents_of(stripe_id(customer)) == before and not Purchase.objects.exists()


def test_stripe_down_gives_a_fast_try_again_page_and_records_nothing(logged_in, beans, settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:1"

    response = buy_page(logged_in, beans)

    assert response.status_code == 503 and "Nothing was charged. Please try again" in response.content.decode()
    assert not Purchase.objects.exists()


def test_stripe_down_at_the_charge_leaves_the_checkout_open_for_a_retry(logged_in, customer, beans, settings):
    buy_page(logged_in, beans)
    checkout = Checkout.objects.get()
    card_saved(checkout)
    working = settings.STRIPE_API_BASE
    settings.STRIPE_API_BASE = "http://127.0.0.1:1"

    assert pay(logged_in, checkout).status_code == 503
    checkout.refresh_from_db()
    assert checkout.status == Checkout.Status.OPEN and not Purchase.objects.exists()

    settings.STRIPE_API_BASE = working
    assert pay(logged_in, checkout).status_code == 302
    assert Purchase.objects.filter(customer=customer).count() == 1


def test_another_customers_checkout_is_not_found(logged_in, client, beans, outsider):
    buy_page(logged_in, beans)
    checkout = Checkout.objects.get()
    client.force_login(outsider)

    assert pay(client, checkout).status_code == 404
    assert client.post(f"/o/{beans.slug}/buy/not-a-number/pay/").status_code == 404
    checkout.refresh_from_db()
    assert checkout.status == Checkout.Status.OPEN


# --- A subscription product ----------------------------------------------------------------------
def test_a_subscription_is_started_from_the_saved_card_and_the_webhooks_add_nothing(logged_in, customer, club, deliver):
    since = int(time.time()) - 1
    checkout = bought(logged_in, club)

    (purchase,) = Purchase.objects.filter(customer=customer)
    stripe_subscription = stripe_object("subscriptions", checkout.stripe_subscription_id)
    invoice = stripe_subscription["latest_invoice"]
    invoice_id = invoice["id"] if isinstance(invoice, dict) else invoice
    assert (purchase.external_id, purchase.kind, purchase.amount) == (invoice_id, "regular", 1500)
    assert stripe_subscription["status"] == "active"
    mirror = Subscription.objects.get(customer=customer)
    assert (mirror.stripe_id, mirror.product, mirror.status) == (
        checkout.stripe_subscription_id,
        club.product,
        "active",
    )
    assert "renews by itself until you cancel it" in OutboxMessage.objects.get(purpose="receipt").email.message

    events = events_about(invoice_id, types=("invoice.payment_succeeded",), since=since) + events_about(
        checkout.stripe_subscription_id, types=("customer.subscription.created",), since=since
    )
    assert len(events) == 2
    assert {deliver(event).status for event in events} == {StripeEvent.Status.PROCESSED}
    assert list(Purchase.objects.values_list("external_id", flat=True)) == [invoice_id]
    assert Subscription.objects.get().status == "active"

    # Subscribed already: the buy page says so and starts nothing.
    again = buy_page(logged_in, club)
    assert again.status_code == 409 and "You already subscribe to Coffee club." in again.content.decode()


def test_a_subscription_whose_first_payment_needs_3d_secure_completes_after_it(logged_in, customer, club):
    buy_page(logged_in, club)
    checkout = Checkout.objects.get()
    card_saved(checkout, CARD_NEEDS_3DS)

    asked = pay(logged_in, checkout)
    checkout.refresh_from_db()
    assert asked.status_code == 200 and checkout.status == Checkout.Status.ACTION
    secret = asked.content.decode().split('data-client-secret="')[1].split('"')[0]
    bank_authenticates(checkout.stripe_payment_intent_id, secret)

    assert pay(logged_in, checkout, payment_intent_id=checkout.stripe_payment_intent_id).status_code == 302
    purchase = Purchase.objects.get(customer=customer)
    assert purchase.external_id.startswith("in_") and Subscription.objects.get().status == "active"


# --- A purchase converts a trial of the product ---------------------------------------------------
def test_a_purchase_within_the_conversion_window_converts_the_ended_trial_and_later_does_not(
    logged_in, client, customer, outsider, beans
):
    now = timezone.now()
    ended = factories.trial(customer=customer, offer=beans, claimed_at=now - timedelta(days=15), status="expired")
    too_late = factories.trial(customer=outsider, offer=beans, claimed_at=now - timedelta(days=30), status="expired")

    bought(logged_in, beans)
    client.force_login(outsider)
    bought(client, beans)

    ended.refresh_from_db()
    too_late.refresh_from_db()
    assert ended.status == Trial.Status.CONVERTED and too_late.status == Trial.Status.EXPIRED
    assert Purchase.objects.filter(kind="regular").count() == 2


# --- Ending a subscription from /me/ -------------------------------------------------------------
def test_a_subscription_is_cancelled_at_the_end_of_its_paid_period_from_me(logged_in, client, customer, outsider, club):
    checkout = bought(logged_in, club)
    mirror = Subscription.objects.get()
    period_end = stripe_object("subscriptions", checkout.stripe_subscription_id)["current_period_end"]
    from offers.terms import long_date
    from trials.services import gateway_time

    ends_on = long_date(gateway_time(period_end), "en")
    me = logged_in.get("/me/").content.decode()
    assert f'href="/me/subscriptions/{mirror.pk}/cancel/"' in me

    ask = logged_in.get(f"/me/subscriptions/{mirror.pk}/cancel/").content.decode()
    assert f"Your subscription stays active until {ends_on}, then ends. Nothing more will be charged." in ask
    assert stripe_object("subscriptions", mirror.stripe_id)["cancel_at_period_end"] is False  # a GET asks only

    done = logged_in.post(f"/me/subscriptions/{mirror.pk}/cancel/", follow=True)
    page = done.content.decode()
    assert f"Your subscription stays active until {ends_on}, then ends. Nothing more will be charged." in page
    assert f"Cancelled: it stays active until {ends_on}, then ends." in page
    assert f'href="/me/subscriptions/{mirror.pk}/cancel/"' not in page
    at_stripe = stripe_object("subscriptions", mirror.stripe_id)
    assert (at_stripe["cancel_at_period_end"], at_stripe["status"]) == (True, "active")
    mirror.refresh_from_db()
    assert mirror.ends_at == gateway_time(period_end) and mirror.cancel_requested_at is not None

    again = logged_in.post(f"/me/subscriptions/{mirror.pk}/cancel/")
    assert again.status_code == 200 and "already cancelled" in again.content.decode()
    assert OutboxMessage.objects.filter(key=f"subscription-{mirror.pk}-cancelled").count() == 1
    (kept,) = logged_in.get("/me/data.json").json()["subscriptions"]
    assert (kept["product"], kept["status"], kept["ends_at"]) == ("club", "active", mirror.ends_at.isoformat())

    client.force_login(outsider)
    assert client.get(f"/me/subscriptions/{mirror.pk}/cancel/").status_code == 404
    assert client.post(f"/me/subscriptions/{mirror.pk}/cancel/").status_code == 404


def test_stripe_down_at_the_subscription_cancel_changes_nothing(logged_in, club, settings):
    bought(logged_in, club)
    mirror = Subscription.objects.get()
    settings.STRIPE_API_BASE = "http://127.0.0.1:1"

    response = logged_in.post(f"/me/subscriptions/{mirror.pk}/cancel/")

    assert response.status_code == 503 and "Nothing was changed." in response.content.decode()
    mirror.refresh_from_db()
    assert mirror.cancel_requested_at is None


# --- The services, without the pages ----------------------------------------------------------------
def test_two_starts_share_one_unfinished_checkout_at_the_price_of_the_first(customer, beans):
    at = timezone.now()
    first = services.checkout_start(customer=customer, offer=beans, language="it", at=at)
    beans.product.__class__.objects.filter(pk=beans.product.pk).update(price_amount=2600)
    beans.product.refresh_from_db()
    again = services.checkout_start(customer=customer, offer=beans, language="en", at=at)

    assert again.pk == first.pk and (again.amount, again.language) == (2400, "it")
    Checkout.objects.filter(pk=first.pk).update(status=Checkout.Status.FAILED)
    fresh = services.checkout_start(customer=customer, offer=beans, language="en", at=at)
    assert fresh.pk != first.pk and fresh.amount == 2600


def test_the_receipt_is_written_in_the_customers_language(logged_in, customer, beans):
    type(customer).objects.filter(pk=customer.pk).update(preferred_language="it")

    checkout = bought(logged_in, beans)

    receipt = OutboxMessage.objects.get(key=f"checkout-{checkout.pk}-receipt")
    # (The new sentences are translated when the integrator runs makemessages; the amount and
    # the date are already written the Italian way.)
    assert receipt.language == "it" and "24,00" in receipt.email.message


def test_me_offers_to_buy_the_product_of_an_ended_trial(logged_in, customer, beans, marketer):
    ended = factories.trial(customer=customer, offer=beans, claimed_at=timezone.now() - timedelta(days=15))
    Trial.objects.filter(pk=ended.pk).update(status=Trial.Status.EXPIRED)

    page = logged_in.get("/me/").content.decode()

    card = page[page.index(f'id="trial-{ended.pk}"') :]
    assert f'href="/o/{beans.slug}/buy/"' in card and "Buy Beans 1 kg" in card


def test_operators_see_the_checkouts_read_only_in_the_admin(logged_in, operator, beans):
    buy_page(logged_in, beans)
    logged_in.force_login(operator)

    page = logged_in.get("/admin/billing/checkout/")

    assert page.status_code == 200 and "carla.customer@example.com" in page.content.decode()
    assert logged_in.get("/admin/billing/checkout/add/").status_code == 403


def test_a_declined_first_subscription_payment_records_nothing_and_another_card_may_be_tried(
    logged_in, customer, club, deliver
):
    since = int(time.time()) - 1
    buy_page(logged_in, club)
    checkout = Checkout.objects.get()
    card_saved(checkout, CARD_DECLINES_OFF_SESSION)

    response = pay(logged_in, checkout, follow=True)

    assert "The card was not accepted, and nothing was charged." in response.content.decode()
    checkout.refresh_from_db()
    assert checkout.status == Checkout.Status.FAILED and not Purchase.objects.exists()
    # The incomplete subscription is cancelled at Stripe at once, so its first invoice can never
    # be paid later; the webhooks mirror that.
    assert stripe_object("subscriptions", checkout.stripe_subscription_id)["status"] == "canceled"
    for kind in ("created", "deleted"):
        (event,) = events_about(checkout.stripe_subscription_id, types=(f"customer.subscription.{kind}",), since=since)
        deliver(event)
    assert Subscription.objects.get().status == "canceled"
    assert 'data-mode="setup"' in buy_page(logged_in, club).content.decode()
