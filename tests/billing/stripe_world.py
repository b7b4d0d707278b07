"""A small, real Stripe world for the webhook tests, built in localstripe through the gateway.

Carla (known to us by her Stripe customer id) claims a beans sample, then buys beans, is
refunded 4.00 of it, subscribes to the coffee club, is billed a renewal, changes and then
cancels the subscription. Oscar (known to us only by email) pays the 1.00 fee of a paid club
trial, and the charge that should convert that trial is declined.

localstripe never sends ``invoice.paid``, ``customer.subscription.updated`` or
``charge.refunded``; ``world.events`` holds those too, built from the real objects the way
Stripe would send them.
"""

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import stripe
from django.conf import settings
from django.utils import timezone

from accounts.models import User
from billing import gateway
from billing.gateway import (  # noqa: F401 (re-exported for the tests)
    SetupIntentResult,
    _setup_result,
    customer_get_or_create,
    setup_intent_get,
    setup_intent_start,
)
from billing.models import Purchase, StripeEvent, Subscription
from tests import factories
from tests.support import CARD_DECLINES_OFF_SESSION, CARD_OK, localstripe_as_stripe
from trials.models import Assignment, Trial

WEBHOOK = "/stripe/webhook/"


# --- Signed deliveries ---------------------------------------------------------------------------
def signature(payload: bytes, *, secret: str | None = None, at: int | None = None) -> str:
    timestamp = int(time.time()) if at is None else at
    signed = stripe.WebhookSignature._compute_signature(
        f"{timestamp}.{payload.decode()}", secret or settings.STRIPE_WEBHOOK_SECRET
    )
    return f"t={timestamp},v1={signed}"


def event_for(event_type: str, obj: dict, *, created: int | None = None, event_id: str | None = None) -> dict:
    """An event as Stripe sends it, around the object as it is now."""
    return {
        "id": event_id or f"evt_test_{uuid.uuid4().hex[:16]}",
        "object": "event",
        "type": event_type,
        "created": created or int(time.time()),
        "livemode": False,
        "api_version": "2017-08-15",
        "data": {"object": obj},
    }


def post_event(client, event: dict | bytes, *, secret: str | None = None):
    payload = event if isinstance(event, bytes) else json.dumps(event).encode()
    return client.post(
        WEBHOOK, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature(payload, secret=secret)
    )


def stripe_object(kind: str, object_id: str) -> dict:
    """The object as Stripe holds it now (``kind`` is the client's service: payment_intents…)."""
    return getattr(gateway.client().v1, kind).retrieve(object_id).to_dict()


# A localstripe of the test's own, so that its event list holds only this test's events.
own_localstripe = localstripe_as_stripe


# --- Our side ------------------------------------------------------------------------------------
def claimed_trial(offer, customer, *, claimed_at) -> Trial:
    variant = offer.variants.get()
    assignment = Assignment.objects.create(
        offer=offer, customer=customer, variant=variant, arm=variant.name, assigned_at=claimed_at
    )
    return Trial.objects.create(
        assignment=assignment, offer=offer, customer=customer, variant=variant,
        claimed_at=claimed_at, ends_at=claimed_at + timedelta(days=14),
    )  # fmt: skip


def ledger_rows() -> set[tuple]:
    """The ledger, as a set of readable rows."""
    return {
        (p.external_id, p.kind, p.amount, p.currency, p.customer.email, p.product.sku,
         p.refund_of.external_id if p.refund_of else None, p.trial_id, p.purchased_at)
        for p in Purchase.objects.select_related("customer", "product", "refund_of")
    }  # fmt: skip


def final_state() -> dict:
    """Everything webhook processing decides: compared between delivery orders."""
    return {
        "ledger": ledger_rows(),
        "trials": {(t.pk, t.status, t.converted_at) for t in Trial.objects.all()},
        "subscriptions": {
            (s.stripe_id, s.customer.email, s.product.sku if s.product else None, s.trial_id, s.status,
             s.cancelled_at, s.stripe_updated)
            for s in Subscription.objects.select_related("customer", "product")
        },
        "stripe_customer_ids": dict(User.objects.values_list("email", "stripe_customer_id")),
        "events": dict(StripeEvent.objects.values_list("event_id", "status")),
    }  # fmt: skip


# --- The world ---------------------------------------------------------------------------------
@dataclass
class World:
    carla: User
    oscar: User
    beans_trial: Trial
    club_trial: Trial
    carla_stripe: str
    oscar_stripe: str
    payment: str
    refund: str
    trial_fee: str
    declined: str
    subscription: str
    invoices: list[str]
    started: int
    events: list[dict] = field(default_factory=list)

    def expected_ledger(self) -> set[tuple]:
        pay = stripe_object("payment_intents", self.payment)
        fee = stripe_object("payment_intents", self.trial_fee)
        refund = stripe_object("refunds", self.refund)
        first, renewal = (stripe_object("invoices", i) for i in self.invoices)

        def at(timestamp):
            return datetime.fromtimestamp(timestamp, tz=UTC)

        carla, oscar = self.carla.email, self.oscar.email
        return {
            (self.payment, "regular", 2400, "EUR", carla, "beans", None, None, at(pay["latest_charge"]["created"])),
            (self.refund, "regular", -400, "EUR", carla, "beans", self.payment, None, at(refund["created"])),
            (self.trial_fee, "trial_fee", 100, "EUR", oscar, "club", None, self.club_trial.pk,
             at(fee["latest_charge"]["created"])),
            (first["id"], "regular", 1500, "EUR", carla, "club", None, None,
             at(first["status_transitions"]["paid_at"])),
            (renewal["id"], "regular", 1500, "EUR", carla, "club", None, None,
             at(renewal["status_transitions"]["paid_at"])),
        }  # fmt: skip


def world_build(*, carla: User, oscar: User, marketer: User) -> World:
    """Build the world in the database and in localstripe, and collect its events. Use a
    localstripe of the test's own (``own_localstripe``): its event list is then the world's."""
    started = int(time.time()) - 1
    beans = factories.product(sku="beans", name="Beans 1 kg", price_amount=2400)
    club = factories.product(sku="club", name="Coffee club", price_amount=1500, interval="month")
    beans_offer = factories.offer(actor=marketer, product_=beans, slug="beans-sample")
    club_offer = factories.offer(actor=marketer, product_=club, slug="club-trial", kind="paid_trial", trial_price=100)
    claimed_at = timezone.now() - timedelta(days=1)
    beans_trial = claimed_trial(beans_offer, carla, claimed_at=claimed_at)
    club_trial = claimed_trial(club_offer, oscar, claimed_at=claimed_at)
    for product in (beans, club):
        gateway.price_sync(
            sku=product.sku, name=product.name, amount=product.price_amount, currency=product.currency,
            interval=product.interval or None,
        )  # fmt: skip

    tag = uuid.uuid4().hex[:8]
    carla_stripe = customer_get_or_create(our_id=f"{carla.pk}-{tag}", email=carla.email)
    User.objects.filter(pk=carla.pk).update(stripe_customer_id=carla_stripe)
    oscar_stripe = customer_get_or_create(our_id=f"{oscar.pk}-{tag}", email=oscar.email)

    carla_card = saved_card(customer_id=carla_stripe, number=CARD_OK, key=f"carla-{tag}")
    payment = charge_off_session(
        customer_id=carla_stripe, payment_method_id=carla_card, amount=2400, currency="EUR",
        idempotency_key=f"beans-{tag}", metadata={"product_sku": "beans"},
    ).payment_intent_id  # fmt: skip
    subscription = subscription_create(
        customer_id=carla_stripe, price_id="price_club", payment_method_id=carla_card, idempotency_key=f"club-{tag}"
    )
    api = gateway.client().v1
    renewal = api.invoices.create({"customer": carla_stripe, "subscription": subscription.id})
    api.invoices.pay(renewal.id)
    refund = refund_payment(payment_intent_id=payment, amount=400, idempotency_key=f"refund-{tag}")
    # A second apart, so that the subscription's events have distinct times, as they would.
    time.sleep(1)
    api.subscriptions.update(subscription.id, {"metadata": {"note": "paused the club for a month"}})
    changed = stripe_object("subscriptions", subscription.id)
    changed_at = int(time.time())
    time.sleep(1)
    subscription_cancel(subscription_id=subscription.id)

    oscar_card = saved_card(customer_id=oscar_stripe, number=CARD_OK, key=f"oscar-{tag}")
    trial_fee = charge_off_session(
        customer_id=oscar_stripe, payment_method_id=oscar_card, amount=100, currency="EUR",
        idempotency_key=f"fee-{tag}",
        metadata={"product_sku": "club", "foretaste_kind": "trial_fee", "trial_id": str(club_trial.pk)},
    ).payment_intent_id  # fmt: skip
    declined = declined_intent(
        oscar_stripe, amount=1500, product_sku="club", trial_id=club_trial.pk
    )  # the charge that should have converted his trial

    world = World(
        carla=carla, oscar=oscar, beans_trial=beans_trial, club_trial=club_trial, carla_stripe=carla_stripe,
        oscar_stripe=oscar_stripe, payment=payment, refund=refund, trial_fee=trial_fee, declined=declined,
        subscription=subscription.id, invoices=[subscription.latest_invoice_id, renewal.id], started=started,
    )  # fmt: skip
    world.events = gateway.events_since(created_after=started)
    charge = stripe_object("payment_intents", payment)["latest_charge"]
    charge_id = charge["id"] if isinstance(charge, dict) else charge
    world.events += [
        *(event_for("invoice.paid", stripe_object("invoices", i)) for i in world.invoices),
        event_for("customer.subscription.updated", changed, created=changed_at),
        event_for("charge.refunded", stripe_object("charges", charge_id)),
    ]
    return world


# --- Single payments, for the handler tests ------------------------------------------------------
def stripe_customer_for(user: User, *, remember: bool = True) -> str:
    """A Stripe customer for ``user``; with ``remember``, we know its id (as after a claim)."""
    stripe_id = customer_get_or_create(our_id=f"{user.pk}-{uuid.uuid4().hex[:8]}", email=user.email)
    if remember:
        User.objects.filter(pk=user.pk).update(stripe_customer_id=stripe_id)
    return stripe_id


def paid_intent(stripe_customer: str, *, amount: int = 2400, card: str = CARD_OK, **metadata) -> str:
    """A one-off payment at Stripe; returns the PaymentIntent id (or, declined, None)."""
    method = saved_card(customer_id=stripe_customer, number=card, key=uuid.uuid4().hex)
    return charge_off_session(
        customer_id=stripe_customer, payment_method_id=method, amount=amount, currency="EUR",
        idempotency_key=uuid.uuid4().hex, metadata={k: str(v) for k, v in metadata.items()},
    ).payment_intent_id  # fmt: skip


def declined_intent(stripe_customer: str, *, amount: int = 2400, **metadata) -> str:
    """An off-session payment on a card that declines it; returns the failed PaymentIntent's id.
    (localstripe reports the decline without the PaymentIntent, so it is looked up.)"""
    paid_intent(stripe_customer, amount=amount, card=CARD_DECLINES_OFF_SESSION, **metadata)
    intents = gateway.client().v1.payment_intents.list({"limit": 100}).auto_paging_iter()
    return next(i.id for i in intents if i.customer == stripe_customer and i.status == "requires_payment_method")


# --- Writing at Stripe, as a customer, Stripe.js or the dashboard would ----------------------------
# What Foretaste itself does not do at Stripe (the browser's and the dashboard's part), so these
# live with the tests. The customer and SetupIntent calls that a claim makes are the gateway's
# (billing/gateway.py, "Claims") and are re-exported here for the tests that used them.
# They speak to localstripe through the gateway's client and return small values.
@dataclass(frozen=True)
class ChargeResult:
    """An off-session charge: ``succeeded``, ``requires_action`` (3-D Secure; see
    ``client_secret``) or ``failed`` (declined; ``decline_code`` says why)."""

    payment_intent_id: str | None
    status: str
    client_secret: str | None = None
    decline_code: str | None = None
    message: str | None = None


# Moved to the gateway (the end step of a card trial needs it): billing.gateway.SubscriptionResult.
SubscriptionResult = gateway.SubscriptionResult


def _key(key: str) -> dict:
    return {"idempotency_key": f"test-{key}"}


def setup_intent_confirm(*, setup_intent_id: str, payment_method_id: str) -> SetupIntentResult:
    """Confirm a SetupIntent with a card, as Stripe.js does in the browser."""
    confirmed = gateway.client().v1.setup_intents.confirm(setup_intent_id, {"payment_method": payment_method_id})
    return _setup_result(confirmed)


def payment_intent_confirm(*, payment_intent_id: str, payment_method_id: str) -> str:
    """Confirm a PaymentIntent with a card, as ``confirmCardPayment`` does; returns its status."""
    confirmed = gateway.client().v1.payment_intents.confirm(payment_intent_id, {"payment_method": payment_method_id})
    return confirmed.to_dict()["status"]


def card_payment_method(number: str) -> str:
    """Create a card payment method the way Stripe.js would in the browser; return its id."""
    method = gateway.client().v1.payment_methods.create(
        {"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}
    )
    return method.id


def saved_card(*, customer_id: str, number: str, key: str) -> str:
    """Save a card on a customer through a confirmed SetupIntent; return the payment method id."""
    intent = setup_intent_start(customer_id=customer_id, idempotency_key=f"test-{key}")
    confirmed = setup_intent_confirm(setup_intent_id=intent.id, payment_method_id=card_payment_method(number))
    assert confirmed.status == "succeeded", confirmed
    return confirmed.payment_method_id


def payment_method_attach(*, payment_method_id: str, customer_id: str) -> None:
    gateway.client().v1.payment_methods.attach(payment_method_id, {"customer": customer_id})


def card_fingerprint(*, payment_method_id: str) -> str:
    """The card's fingerprint: the same number gives the same value for every customer."""
    card = gateway.client().v1.payment_methods.retrieve(payment_method_id).to_dict().get("card") or {}
    assert card.get("fingerprint"), f"payment method {payment_method_id} has no card fingerprint"
    return card["fingerprint"]


def _charge_result(intent) -> ChargeResult:
    data = intent if isinstance(intent, dict) else intent.to_dict()
    status = data["status"]
    if status == "succeeded":
        return ChargeResult(payment_intent_id=data["id"], status="succeeded")
    if status in ("requires_action", "requires_confirmation"):
        return ChargeResult(payment_intent_id=data["id"], status="requires_action", client_secret=data["client_secret"])
    error = data.get("last_payment_error") or {}
    return ChargeResult(
        payment_intent_id=data["id"],
        status="failed",
        decline_code=error.get("decline_code") or error.get("code"),
        message=error.get("message"),
    )


def charge_off_session(
    *,
    customer_id: str,
    payment_method_id: str,
    amount: int,
    currency: str,
    idempotency_key: str,
    description: str = "",
    metadata: dict[str, str] | None = None,
) -> ChargeResult:
    """Charge a saved card while the customer is away (``amount`` in minor units). A decline or
    a 3-D Secure request is a result, not an exception."""
    if amount <= 0:
        raise ValueError("amount must be a positive number of minor units")
    params = {
        "amount": amount, "currency": currency.lower(), "customer": customer_id,
        "payment_method": payment_method_id, "off_session": True, "confirm": True, "metadata": metadata or {},
    }  # fmt: skip
    if description:
        params["description"] = description
    try:
        intent = gateway.client().v1.payment_intents.create(params, _key(f"charge-{idempotency_key}"))
    except stripe.CardError as exc:
        # Stripe reports an off-session decline as a CardError carrying the PaymentIntent.
        intent = getattr(exc.error, "payment_intent", None) if exc.error else None
        if intent is not None:
            return _charge_result(intent)
        return ChargeResult(payment_intent_id=None, status="failed", decline_code=exc.code, message=exc.user_message)
    return _charge_result(intent)


def payment_intent_get(*, payment_intent_id: str) -> ChargeResult:
    return _charge_result(gateway.client().v1.payment_intents.retrieve(payment_intent_id))


def refund_payment(*, payment_intent_id: str, amount: int, idempotency_key: str) -> str:
    """Refund ``amount`` minor units of a payment, as an operator would in the dashboard
    (billing.gateway.refund_create); returns the refund's id."""
    return gateway.refund_create(
        payment_intent_id=payment_intent_id, amount=amount, idempotency_key=f"test-{idempotency_key}"
    ).id


# Moved to the gateway: billing.gateway.subscription_create (the end step of a card trial).
subscription_create = gateway.subscription_create


# Cancelling now, twice harmlessly: the app's own (the declined first payment of a purchase).
subscription_cancel = gateway.subscription_cancel_now
