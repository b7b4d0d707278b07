"""End to end: Stripe (a localstripe of this test's own) delivers real, signed webhooks to a
running Foretaste, which stores and handles them, and the ledger comes out exactly right.

localstripe waits about a second before each delivery and sends them concurrently, so they
arrive in no particular order. It never sends ``charge.refunded``; the test signs and posts that
one itself, as Stripe would.
"""

import json
import time
import urllib.request
from datetime import UTC, datetime

import pytest

from billing import gateway
from billing.models import StripeEvent
from tests import factories
from tests.billing.stripe_world import (
    event_for,
    ledger_rows,
    own_localstripe,
    paid_intent,
    refund_payment,
    saved_card,
    signature,
    stripe_customer_for,
    stripe_object,
    subscription_create,
)
from tests.support import CARD_OK

pytestmark = pytest.mark.django_db(transaction=True)

PATIENCE = 20.0


@pytest.fixture
def stripe_delivering(live_server, settings):
    """Stripe, delivering its webhooks to the live server."""
    with own_localstripe(
        webhook_url=f"{live_server.url}/stripe/webhook/", webhook_secret=settings.STRIPE_WEBHOOK_SECRET
    ) as base:
        yield base


def post_to(url: str, event: dict) -> int:
    payload = json.dumps(event).encode()
    request = urllib.request.Request(  # noqa: S310 (the live server, on loopback)
        url, data=payload, headers={"Content-Type": "application/json", "Stripe-Signature": signature(payload)}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return response.status


def all_handled(expected_ledger) -> bool:
    """Every event Stripe holds has arrived and been handled, and the ledger is as expected."""
    sent = {e["id"] for e in gateway.events_since(created_after=0)}
    held = dict(StripeEvent.objects.values_list("event_id", "status"))
    return sent <= held.keys() and set(held.values()) == {"processed"} and ledger_rows() == expected_ledger


def at(timestamp):
    return datetime.fromtimestamp(timestamp, tz=UTC)


def test_a_payment_a_subscription_with_its_renewal_and_a_refund_end_in_an_exact_ledger(
    stripe_delivering, live_server, customer
):
    factories.product(sku="beans", name="Beans 1 kg", price_amount=2400)  # synced to Stripe after commit
    factories.product(sku="club", name="Coffee club", price_amount=1500, interval="month")
    carla = stripe_customer_for(customer)

    payment = paid_intent(carla, amount=2400, product_sku="beans")
    card = saved_card(customer_id=carla, number=CARD_OK, key="club")
    subscription = subscription_create(
        customer_id=carla, price_id="price_club", payment_method_id=card, idempotency_key="club"
    )
    renewal = gateway.client().v1.invoices.create({"customer": carla, "subscription": subscription.id})
    gateway.client().v1.invoices.pay(renewal.id)
    refund = refund_payment(payment_intent_id=payment, amount=400, idempotency_key="sorry")
    charge = stripe_object("payment_intents", payment)["latest_charge"]["id"]
    assert (
        post_to(f"{live_server.url}/stripe/webhook/", event_for("charge.refunded", stripe_object("charges", charge)))
        == 200
    )

    paid, refunded = stripe_object("payment_intents", payment), stripe_object("refunds", refund)
    first, second = (stripe_object("invoices", i) for i in (subscription.latest_invoice_id, renewal.id))
    email = customer.email
    expected = {
        (payment, "regular", 2400, "EUR", email, "beans", None, None, at(paid["latest_charge"]["created"])),
        (refund, "regular", -400, "EUR", email, "beans", payment, None, at(refunded["created"])),
        (first["id"], "regular", 1500, "EUR", email, "club", None, None, at(first["status_transitions"]["paid_at"])),
        (second["id"], "regular", 1500, "EUR", email, "club", None, None, at(second["status_transitions"]["paid_at"])),
    }  # fmt: skip

    deadline = time.monotonic() + PATIENCE
    while not all_handled(expected) and time.monotonic() < deadline:
        time.sleep(0.2)

    assert ledger_rows() == expected
    assert all_handled(expected), dict(StripeEvent.objects.values_list("type", "status"))
    assert set(StripeEvent.objects.values_list("source", flat=True)) == {"webhook"}
    handled = set(StripeEvent.objects.values_list("type", flat=True))
    assert {"payment_intent.succeeded", "invoice.payment_succeeded", "charge.refunded"} <= handled
