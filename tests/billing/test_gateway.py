"""The Stripe gateway against localstripe, through the real stripe library."""

import json
import time
import uuid

import pytest
import stripe

from billing import gateway
from tests.support import (
    CARD_DECLINES_OFF_SESSION,
    CARD_NEEDS_3DS,
    CARD_OK,
    CARD_OK_OTHER,
    card_payment_method,
    free_port,
    saved_card,
)


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def stripe_customer():
    our_id = _unique("cust")
    return gateway.customer_get_or_create(our_id=our_id, email=f"{our_id}@example.com")


def test_a_customer_is_created_once_and_found_again():
    our_id = _unique("cust")
    first = gateway.customer_get_or_create(our_id=our_id, email=f"{our_id}@example.com", name="Ann")
    again = gateway.customer_get_or_create(our_id=our_id, email=f"{our_id}@example.com", name="Ann")
    assert first.startswith("cus_")
    assert again == first


def test_a_card_is_saved_with_a_setup_intent(stripe_customer):
    intent = gateway.setup_intent_start(customer_id=stripe_customer, idempotency_key=_unique("trial"))
    assert intent.id.startswith("seti_")
    assert intent.client_secret
    assert intent.status == "requires_payment_method"

    confirmed = gateway.setup_intent_confirm(setup_intent_id=intent.id, payment_method_id=card_payment_method(CARD_OK))

    assert confirmed.status == "succeeded"
    assert confirmed.payment_method_id.startswith("pm_")
    assert gateway.setup_intent_get(setup_intent_id=intent.id).status == "succeeded"


def test_the_same_card_number_has_the_same_fingerprint_for_every_customer():
    first = card_payment_method(CARD_OK)
    same_number = card_payment_method(CARD_OK)
    other_number = card_payment_method(CARD_OK_OTHER)

    assert gateway.card_fingerprint(payment_method_id=first) == gateway.card_fingerprint(payment_method_id=same_number)
    assert gateway.card_fingerprint(payment_method_id=first) != gateway.card_fingerprint(payment_method_id=other_number)


def test_an_off_session_charge_on_a_saved_card_succeeds(stripe_customer):
    method = saved_card(customer_id=stripe_customer, number=CARD_OK, key=_unique("trial"))

    result = gateway.charge_off_session(
        customer_id=stripe_customer, payment_method_id=method, amount=2400, currency="EUR", idempotency_key=_unique("t")
    )

    assert result.status == "succeeded"
    assert result.payment_intent_id.startswith("pi_")
    assert gateway.payment_intent_get(payment_intent_id=result.payment_intent_id).status == "succeeded"


def test_a_declined_off_session_charge_is_a_failed_result_not_an_exception(stripe_customer):
    method = saved_card(customer_id=stripe_customer, number=CARD_DECLINES_OFF_SESSION, key=_unique("trial"))

    result = gateway.charge_off_session(
        customer_id=stripe_customer, payment_method_id=method, amount=2400, currency="eur", idempotency_key=_unique("t")
    )

    assert result.status == "failed"
    assert result.decline_code


def test_a_charge_that_needs_3d_secure_asks_for_the_customer(stripe_customer):
    method = card_payment_method(CARD_NEEDS_3DS)
    gateway.payment_method_attach(payment_method_id=method, customer_id=stripe_customer)

    result = gateway.charge_off_session(
        customer_id=stripe_customer, payment_method_id=method, amount=900, currency="eur", idempotency_key=_unique("t")
    )

    assert result.status == "requires_action"
    assert result.client_secret


def test_a_charge_must_be_positive(stripe_customer):
    with pytest.raises(ValueError, match="positive"):
        gateway.charge_off_session(
            customer_id=stripe_customer, payment_method_id="pm_x", amount=0, currency="eur", idempotency_key="t"
        )


def test_a_payment_is_refunded_in_part_then_in_full(stripe_customer):
    method = saved_card(customer_id=stripe_customer, number=CARD_OK, key=_unique("trial"))
    charge = gateway.charge_off_session(
        customer_id=stripe_customer, payment_method_id=method, amount=2400, currency="eur", idempotency_key=_unique("t")
    )

    partial = gateway.refund(payment_intent_id=charge.payment_intent_id, amount=400, idempotency_key=_unique("r"))
    rest = gateway.refund(payment_intent_id=charge.payment_intent_id, amount=2000, idempotency_key=_unique("r"))

    assert partial.startswith("re_")
    assert rest.startswith("re_") and rest != partial
    refunds = gateway.client().v1.refunds.list({"payment_intent": charge.payment_intent_id}).data
    assert sorted(r.amount for r in refunds) == [400, 2000]


def test_a_recurring_price_syncs_as_a_plan_and_is_idempotent():
    sku = _unique("beans")
    first = gateway.price_sync(sku=sku, name="Beans", amount=2400, currency="EUR", interval="month")
    again = gateway.price_sync(sku=sku, name="Beans", amount=2400, currency="EUR", interval="month")
    repriced = gateway.price_sync(sku=sku, name="Beans", amount=2600, currency="EUR", interval="month")

    assert first == again == repriced == f"price_{sku}"
    plan = gateway.client().v1.plans.retrieve(first)
    assert (plan.amount, plan.currency, plan.interval) == (2600, "eur", "month")


def test_a_subscription_starts_charged_and_cancels_once(stripe_customer):
    sku = _unique("club")
    price = gateway.price_sync(sku=sku, name="Coffee club", amount=1500, currency="eur", interval="month")
    method = saved_card(customer_id=stripe_customer, number=CARD_OK, key=_unique("trial"))

    subscription = gateway.subscription_create(
        customer_id=stripe_customer, price_id=price, payment_method_id=method, idempotency_key=_unique("t")
    )

    assert subscription.id.startswith("sub_")
    assert subscription.status == "active"
    assert subscription.payment_intent_status == "succeeded"
    assert gateway.subscription_cancel(subscription_id=subscription.id) == "canceled"
    assert gateway.subscription_cancel(subscription_id=subscription.id) == "canceled"


def _signed(payload: bytes, *, secret: str, at: int | None = None) -> str:
    timestamp = int(time.time()) if at is None else at
    signature = stripe.WebhookSignature._compute_signature(f"{timestamp}.{payload.decode()}", secret)
    return f"t={timestamp},v1={signature}"


def test_a_webhook_with_a_valid_signature_is_parsed(settings):
    payload = json.dumps({"id": "evt_1", "type": "invoice.paid", "data": {"object": {}}}).encode()

    event = gateway.webhook_event_parse(
        payload=payload, signature_header=_signed(payload, secret=settings.STRIPE_WEBHOOK_SECRET)
    )

    assert event["id"] == "evt_1"


@pytest.mark.parametrize(
    "tamper",
    ["missing", "wrong secret", "body changed", "too old"],
)
def test_a_webhook_with_a_bad_signature_is_refused(settings, tamper):
    payload = json.dumps({"id": "evt_1", "type": "invoice.paid"}).encode()
    header = {
        "missing": None,
        "wrong secret": _signed(payload, secret="whsec_other"),
        "body changed": _signed(b'{"id": "evt_2", "type": "invoice.paid"}', secret=settings.STRIPE_WEBHOOK_SECRET),
        "too old": _signed(payload, secret=settings.STRIPE_WEBHOOK_SECRET, at=int(time.time()) - 301),
    }[tamper]

    with pytest.raises(gateway.WebhookSignatureInvalid):
        gateway.webhook_event_parse(payload=payload, signature_header=header)


def test_events_are_listed_oldest_first(stripe_customer):
    events = gateway.events_list(created_after=int(time.time()) - 3600)

    assert any(e["type"] == "customer.created" and e["data"]["object"]["id"] == stripe_customer for e in events)
    assert [e["created"] for e in events] == sorted(e["created"] for e in events)


def test_an_unreachable_stripe_is_reported_as_unavailable(settings):
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"
    settings.STRIPE_MAX_NETWORK_RETRIES = 0

    with pytest.raises(gateway.GatewayUnavailable):
        gateway.customer_get_or_create(our_id="x", email="x@example.com")
    with pytest.raises(gateway.GatewayUnavailable):
        gateway.ping(timeout=1)
