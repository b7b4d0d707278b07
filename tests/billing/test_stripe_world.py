"""The helpers that build the tests' Stripe world (customers, saved cards, charges, refunds,
subscriptions) do what the other tests assume, against localstripe. They lived in
billing/gateway.py until it turned out only the tests called them; these tests moved with them."""

import uuid

import pytest

from billing import gateway
from tests.billing.stripe_world import (
    card_fingerprint,
    card_payment_method,
    charge_off_session,
    customer_get_or_create,
    payment_intent_get,
    payment_method_attach,
    refund_payment,
    saved_card,
    setup_intent_confirm,
    setup_intent_get,
    setup_intent_start,
    subscription_cancel,
    subscription_create,
)
from tests.support import CARD_DECLINES_OFF_SESSION, CARD_NEEDS_3DS, CARD_OK, CARD_OK_OTHER


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def stripe_customer():
    our_id = _unique("cust")
    return customer_get_or_create(our_id=our_id, email=f"{our_id}@example.com")


def test_a_customer_is_created_once_and_found_again():
    our_id = _unique("cust")
    first = customer_get_or_create(our_id=our_id, email=f"{our_id}@example.com", name="Ann")
    again = customer_get_or_create(our_id=our_id, email=f"{our_id}@example.com", name="Ann")
    assert first.startswith("cus_")
    assert again == first


def test_a_card_is_saved_with_a_setup_intent(stripe_customer):
    intent = setup_intent_start(customer_id=stripe_customer, idempotency_key=_unique("trial"))
    assert intent.id.startswith("seti_")
    assert intent.client_secret
    assert intent.status == "requires_payment_method"

    confirmed = setup_intent_confirm(setup_intent_id=intent.id, payment_method_id=card_payment_method(CARD_OK))

    assert confirmed.status == "succeeded"
    assert confirmed.payment_method_id.startswith("pm_")
    assert setup_intent_get(setup_intent_id=intent.id).status == "succeeded"


def test_the_same_card_number_has_the_same_fingerprint_for_every_customer():
    first = card_payment_method(CARD_OK)
    same_number = card_payment_method(CARD_OK)
    other_number = card_payment_method(CARD_OK_OTHER)

    assert card_fingerprint(payment_method_id=first) == card_fingerprint(payment_method_id=same_number)
    assert card_fingerprint(payment_method_id=first) != card_fingerprint(payment_method_id=other_number)


def test_an_off_session_charge_on_a_saved_card_succeeds(stripe_customer):
    method = saved_card(customer_id=stripe_customer, number=CARD_OK, key=_unique("trial"))

    result = charge_off_session(
        customer_id=stripe_customer, payment_method_id=method, amount=2400, currency="EUR", idempotency_key=_unique("t")
    )

    assert result.status == "succeeded"
    assert result.payment_intent_id.startswith("pi_")
    assert payment_intent_get(payment_intent_id=result.payment_intent_id).status == "succeeded"


def test_a_declined_off_session_charge_is_a_failed_result_not_an_exception(stripe_customer):
    method = saved_card(customer_id=stripe_customer, number=CARD_DECLINES_OFF_SESSION, key=_unique("trial"))

    result = charge_off_session(
        customer_id=stripe_customer, payment_method_id=method, amount=2400, currency="eur", idempotency_key=_unique("t")
    )

    assert result.status == "failed"
    assert result.decline_code


def test_a_charge_that_needs_3d_secure_asks_for_the_customer(stripe_customer):
    method = card_payment_method(CARD_NEEDS_3DS)
    payment_method_attach(payment_method_id=method, customer_id=stripe_customer)

    result = charge_off_session(
        customer_id=stripe_customer, payment_method_id=method, amount=900, currency="eur", idempotency_key=_unique("t")
    )

    assert result.status == "requires_action"
    assert result.client_secret


def test_a_charge_must_be_positive(stripe_customer):
    with pytest.raises(ValueError, match="positive"):
        charge_off_session(
            customer_id=stripe_customer, payment_method_id="pm_x", amount=0, currency="eur", idempotency_key="t"
        )


def test_a_payment_is_refunded_in_part_then_in_full(stripe_customer):
    method = saved_card(customer_id=stripe_customer, number=CARD_OK, key=_unique("trial"))
    charge = charge_off_session(
        customer_id=stripe_customer, payment_method_id=method, amount=2400, currency="eur", idempotency_key=_unique("t")
    )

    partial = refund_payment(payment_intent_id=charge.payment_intent_id, amount=400, idempotency_key=_unique("r"))
    rest = refund_payment(payment_intent_id=charge.payment_intent_id, amount=2000, idempotency_key=_unique("r"))

    assert partial.startswith("re_")
    assert rest.startswith("re_") and rest != partial
    refunds = gateway.client().v1.refunds.list({"payment_intent": charge.payment_intent_id}).data
    assert sorted(r.amount for r in refunds) == [400, 2000]


@pytest.mark.parametrize(
    ("card", "status", "payment"),
    [(CARD_OK, "active", "succeeded"), (CARD_DECLINES_OFF_SESSION, "incomplete", "requires_payment_method")],
)
def test_a_subscription_starts_charged_or_incomplete_and_cancels_once(stripe_customer, card, status, payment):
    # Declined, the first payment leaves an incomplete subscription: what a purchase cancels.
    sku = _unique("club")
    price = gateway.price_sync(sku=sku, name="Coffee club", amount=1500, currency="eur", interval="month")
    method = saved_card(customer_id=stripe_customer, number=card, key=_unique("trial"))

    subscription = subscription_create(
        customer_id=stripe_customer, price_id=price, payment_method_id=method, idempotency_key=_unique("t")
    )

    assert subscription.id.startswith("sub_")
    assert (subscription.status, subscription.payment_intent_status) == (status, payment)
    assert subscription_cancel(subscription_id=subscription.id) == "canceled"
    assert gateway.client().v1.subscriptions.retrieve(subscription.id).status == "canceled"
    assert subscription_cancel(subscription_id=subscription.id) == "canceled"  # again: left as it is
