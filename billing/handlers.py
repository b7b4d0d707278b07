"""What each Stripe event does to Foretaste: the dispatch table and its handlers.

Events arrive late, twice, and in any order, and reconciliation may find them again days later.
So no handler trusts the copy of the object inside the event. Each one reads the object's
current state from Stripe (through the gateway) and brings our rows in line with it. The ledger
is idempotent by (source, external id), and subscriptions keep a watermark, so handling any
event again, or in any order, ends in the same state.

A handler works in two steps, so that no database lock is held while Stripe is called:
``handler(event)`` does the Stripe reads and returns the writes, a function with no arguments
(or None when there is nothing to write). The processor (``billing.webhooks.event_process``)
runs those writes in one transaction, together with the event's new status.

Metadata that Foretaste puts on PaymentIntents and subscriptions, and reads back here:
``product_sku`` (the product; otherwise an invoice line's price id ``price_<sku>``),
``foretaste_kind`` (``regular``, ``trial_fee`` or ``sample``; default ``regular``) and
``trial_id`` (the trial the payment belongs to).

A payment that cannot be placed (an unknown customer, product or trial) raises
``HandlerError``: the event is kept ``failed`` with the message, retried, and can be replayed from
the admin once the cause is fixed. Nothing is dropped silently.
"""

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from django.db.models import Q

from accounts.models import User
from billing import gateway, ledger
from billing.models import Purchase, Subscription
from offers.models import Product
from trials import services as trial_services
from trials.models import Trial

logger = logging.getLogger(__name__)

PRODUCT_SKU = "product_sku"
KIND = "foretaste_kind"
TRIAL_ID = "trial_id"
SOURCE = Purchase.Source.STRIPE
PRICE_PREFIX = "price_"
# A PaymentIntent in one of these states did not take the money, and will not without the
# customer: a trial waiting on it has a failed payment (3-D Secure included, see docs/architecture.md).
NOT_PAID = ("requires_payment_method", "requires_action", "canceled")

Writes = Callable[[], None]
Handler = Callable[[dict], Writes | None]


class HandlerError(Exception):
    """The event cannot be applied as things stand; the message says what is missing."""


# --- Reading an event ----------------------------------------------------------------------------
# Intake (billing.webhooks) refuses events without these; a handler still checks, because a
# row can be older than those checks, and a clear HandlerError beats a KeyError.
def event_object_id(event: dict) -> str:
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    object_id = obj.get("id") if isinstance(obj, dict) else None
    if not isinstance(object_id, str) or not object_id:
        raise HandlerError(f"Event {event.get('id')} carries no object id.")
    return object_id


def event_time(event: dict) -> datetime:
    created = event.get("created")
    if not isinstance(created, int) or isinstance(created, bool):
        raise HandlerError(f"Event {event.get('id')} carries no creation time.")
    return _time(created)


def _time(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


# --- Placing a payment: customer, product, kind, trial -----------------------------------------
def _customer(stripe_customer_id: str | None, *, email: str | None = None) -> tuple[User, Writes | None]:
    """Our customer for a Stripe customer, and the write that remembers the Stripe id on them
    when they were found by email."""
    if not stripe_customer_id:
        raise HandlerError("The payment has no Stripe customer, so it cannot be given to one of ours.")
    user = ledger.customer_match(stripe_customer_id=stripe_customer_id)
    if user is not None:
        return user, None
    email = email or gateway.customer_email(customer_id=stripe_customer_id)
    user = ledger.customer_match(email=email) if email else None
    if user is None:
        raise HandlerError(
            f"No customer matches Stripe customer {stripe_customer_id} (email {email or 'unknown'}): "
            "create or import the customer, then replay the event."
        )

    def remember() -> None:
        User.objects.filter(pk=user.pk).filter(Q(stripe_customer_id__isnull=True) | Q(stripe_customer_id="")).update(
            stripe_customer_id=stripe_customer_id
        )

    return user, remember


def _product(metadata: dict, price_ids: tuple[str, ...] = (), *, what: str) -> Product:
    sku = metadata.get(PRODUCT_SKU)
    if not sku:
        sku = next((p.removeprefix(PRICE_PREFIX) for p in price_ids if p.startswith(PRICE_PREFIX)), None)
    if not sku:
        raise HandlerError(f"{what} names no product: no {PRODUCT_SKU} metadata and no price_<sku> price.")
    product = Product.objects.filter(sku=sku).first()
    if product is None:
        raise HandlerError(f"{what} is for the product “{sku}”, which the catalogue does not have.")
    return product


def _kind(metadata: dict, *, what: str) -> str:
    kind = metadata.get(KIND) or Purchase.Kind.REGULAR
    if kind not in Purchase.Kind.values:
        raise HandlerError(f"{what} has the kind “{kind}”: use regular, trial_fee or sample.")
    return kind


def _trial_id(metadata: dict, *, customer: User | None = None, what: str) -> int | None:
    raw = metadata.get(TRIAL_ID)
    if raw in (None, ""):
        return None
    # ASCII digits of a bigint only: "²".isdigit() is true but int("²") raises, and a longer
    # number cannot be a trial's id.
    text = str(raw)
    usable = text.isascii() and text.isdigit() and len(text) <= 18
    trials = Trial.objects.filter(pk=int(text)) if usable else Trial.objects.none()
    if customer is not None:
        trials = trials.filter(customer=customer)
    if not trials.exists():
        raise HandlerError(f"{what} names the trial {raw}, which is not one of this customer's trials.")
    return int(text)


def _recorded(
    *,
    customer: User,
    product: Product,
    kind: str,
    amount: int,
    currency: str,
    paid_at: int,
    external_id: str,
    trial_id: int | None,
    refunds: list[gateway.RefundState],
    remember: Writes | None,
) -> Writes:
    """The writes for one payment as it stands now: the purchase, then each of its refunds."""

    def write() -> None:
        if remember is not None:
            remember()
        original = ledger.purchase_record(
            customer=customer,
            product=product,
            kind=kind,
            amount=amount,
            currency=currency,
            purchased_at=_time(paid_at),
            source=SOURCE,
            external_id=external_id,
            trial_id=trial_id,
        ).purchase
        for refund in refunds:
            if refund.status == "succeeded":
                ledger.refund_record(
                    original=original,
                    amount=refund.amount,
                    refunded_at=_time(refund.created),
                    source=SOURCE,
                    external_id=refund.id,
                )

    return write


# --- Payments ----------------------------------------------------------------------------------
def invoice_writes(invoice: gateway.InvoiceState) -> Writes | None:
    """A paid invoice is one purchase under the invoice id (and its refunds); an unpaid one is
    nothing yet."""
    if invoice.status != "paid" or invoice.amount_paid <= 0:
        return None
    what = f"Invoice {invoice.id}"
    customer, remember = _customer(invoice.customer_id, email=invoice.customer_email)
    metadata = dict(invoice.metadata)
    if invoice.subscription_id:
        subscription = gateway.subscription_state(subscription_id=invoice.subscription_id)
        metadata = {**subscription.metadata, **metadata}
    refunds = gateway.refunds_of(payment_intent_id=invoice.payment_intent_id) if invoice.payment_intent_id else []
    return _recorded(
        customer=customer,
        product=_product(metadata, invoice.price_ids, what=what),
        kind=_kind(metadata, what=what),
        amount=invoice.amount_paid,
        currency=invoice.currency,
        paid_at=invoice.paid_at or invoice.created,
        external_id=invoice.id,
        trial_id=_trial_id(metadata, customer=customer, what=what),
        refunds=refunds,
        remember=remember,
    )


def payment_intent_writes(intent: gateway.PaymentIntentState, *, at: datetime) -> Writes | None:
    """A PaymentIntent as it stands now.

    One that belongs to an invoice is handled as that invoice (recorded under the invoice id,
    never its own), so nothing is counted twice. A succeeded one is a purchase under its own id,
    with its refunds. One that did not take the money fails its trial, if it has one: only when
    its current state says so, because the "failed" event may be older than a success.
    """
    if intent.invoice_id:
        return invoice_writes(gateway.invoice_state(invoice_id=intent.invoice_id))
    what = f"PaymentIntent {intent.id}"
    if intent.status == "succeeded":
        customer, remember = _customer(intent.customer_id)
        return _recorded(
            customer=customer,
            product=_product(intent.metadata, what=what),
            kind=_kind(intent.metadata, what=what),
            amount=intent.amount_received,
            currency=intent.currency,
            paid_at=intent.paid_at or intent.created,
            external_id=intent.id,
            trial_id=_trial_id(intent.metadata, customer=customer, what=what),
            refunds=gateway.refunds_of(payment_intent_id=intent.id),
            remember=remember,
        )
    trial_id = _trial_id(intent.metadata, what=what)
    if intent.status in NOT_PAID and trial_id is not None:

        def fail_trial() -> None:
            trial_services.trial_payment_failed(trial_id=trial_id, at=at, note=f"{intent.id} {intent.status}")

        return fail_trial
    return None


def payment_intent_changed(event: dict) -> Writes | None:
    intent = gateway.payment_intent_state(payment_intent_id=event_object_id(event))
    return payment_intent_writes(intent, at=event_time(event))


def invoice_changed(event: dict) -> Writes | None:
    return invoice_writes(gateway.invoice_state(invoice_id=event_object_id(event)))


def charge_refunded(event: dict) -> Writes | None:
    """A refund: the payment it belongs to is brought up to date, which records the original
    purchase first if its own event has not arrived yet, then one negative row per refund."""
    charge = gateway.charge_state(charge_id=event_object_id(event))
    if not charge.payment_intent_id:
        raise HandlerError(f"Charge {charge.id} has no PaymentIntent; charges made without one are not supported.")
    intent = gateway.payment_intent_state(payment_intent_id=charge.payment_intent_id)
    return payment_intent_writes(intent, at=event_time(event))


# --- Subscriptions ---------------------------------------------------------------------------
def subscription_changed(event: dict) -> Writes:
    """Our Subscription row takes the subscription's current state.

    ``stripe_updated`` is the creation time of the newest event applied: a handler for an older
    event, finishing after a newer one, does not overwrite the row, and a cancelled subscription
    never comes back to life (Stripe cannot revive one either).
    """
    state = gateway.subscription_state(subscription_id=event_object_id(event))
    return subscription_writes(state, at=event_time(event))


def subscription_writes(state: gateway.SubscriptionState, *, at: datetime) -> Writes:
    """The writes that bring our Subscription row to ``state``, as known at ``at`` (the event's
    time; for a purchase on Foretaste, the subscription's creation, so every event about it is
    newer)."""
    what = f"Subscription {state.id}"
    customer, remember = _customer(state.customer_id)
    product = _product(state.metadata, state.price_ids, what=what)
    trial_id = _trial_id(state.metadata, customer=customer, what=what)
    ended = state.canceled_at or state.ended_at
    values = {
        "status": state.status,
        "cancelled_at": _time(ended) if state.status == "canceled" and ended else None,
        "product": product,
        "trial_id": trial_id,
    }

    def write() -> None:
        if remember is not None:
            remember()
        row, created = Subscription.objects.get_or_create(
            stripe_id=state.id, defaults={**values, "customer": customer, "stripe_updated": at}
        )
        if created:
            return
        newer = Subscription.objects.filter(pk=row.pk, stripe_updated__lte=at)
        newer.exclude(status="canceled").update(**values, stripe_updated=at)
        newer.update(stripe_updated=at)

    return write


# --- The dispatch table ------------------------------------------------------------------------
# Event types not listed here are stored, acknowledged and marked processed with a note.
HANDLERS: dict[str, Handler] = {
    "invoice.payment_succeeded": invoice_changed,
    "invoice.paid": invoice_changed,
    "payment_intent.succeeded": payment_intent_changed,
    "payment_intent.payment_failed": payment_intent_changed,
    "charge.refunded": charge_refunded,
    "customer.subscription.created": subscription_changed,
    "customer.subscription.updated": subscription_changed,
    "customer.subscription.deleted": subscription_changed,
}
