"""Writes of the billing app that a customer starts on Foretaste: buying a product, and ending a
subscription at the end of its paid period.

Buying ("Buying" in README.md). A purchase is a ``Checkout`` row, persisted before Stripe is
called, whose id keys every Stripe write it makes. The order of work is the claim's
(trials/services.py, "Claims"): ``checkout_start`` (the row) → ``checkout_card`` (the Stripe
customer and a SetupIntent, no lock held) → the browser saves the card (Stripe.js
``confirmCardSetup``, static/js/claim.js) → ``checkout_pay``: open → charging by a conditional
update (of a double submit, one goes on), then Stripe with the checkout's key and no transaction
open, then one transaction: charging → paid, the ledger row, our mirror of a new subscription, and
the receipt email. The ledger row and the subscription row are written by the very functions the
webhook handlers use (``billing.handlers``), from the same Stripe objects, so the later webhook
finds them already there and adds nothing. A ``regular`` ledger row converts the customer's open
trials of the product (``billing.ledger.purchase_record``).

A one-off product is one PaymentIntent; a subscription product is a Stripe subscription from the
saved card, its first invoice paid at once. A bank that asks for 3-D Secure leaves the checkout in
``action`` until the page's ``confirmCardPayment`` is done and the page posts again.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import translation
from django.utils.translation import gettext

from accounts.models import OutboxPurpose, User
from billing.models import Checkout, Purchase, Subscription
from offers.terms import long_date, paid_price, supported_language
from trials.services import gateway_time

logger = logging.getLogger(__name__)

# The customer is looking at the page, as in a claim: Stripe gets this long, with no retries.
PAGE_STRIPE_TIMEOUT = 5.0
# A checkout left ``charging`` longer than this (its request died during the Stripe call) may be
# charged again by the next submit: with the same key, so Stripe answers with the same charge.
CHARGING_LEASE = timedelta(minutes=2)
# Subscription states in which the customer already has the product. Not ``incomplete``: a
# first payment declined leaves one behind at Stripe (cancelled at once, ``_declined``), and the
# customer may try another card.
SUBSCRIBED = ("active", "trialing", "past_due")


class BuyRefused(Exception):
    """The purchase cannot go on; ``message`` says why in plain words. Nothing was charged."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class BuyUnavailable(Exception):
    """Stripe could not be reached in time. Nothing new was recorded; the customer should try
    again, and the retry repeats the same write at Stripe (the checkout's key)."""


class BuyAction(Exception):
    """The bank asks the customer to authenticate the payment (3-D Secure): the page runs
    ``confirmCardPayment`` with ``client_secret``, then posts again with ``payment_intent_id``."""

    def __init__(self, *, payment_intent_id: str, client_secret: str):
        super().__init__("the bank asks the customer to authenticate the payment")
        self.payment_intent_id = payment_intent_id
        self.client_secret = client_secret


def _refused(code: str, language: str, **values) -> BuyRefused:
    with translation.override(supported_language(language)):
        messages = {
            "subscribed": gettext("You already subscribe to %(product)s. You can see it on your account page."),
            "tampered": gettext("The payment form was changed. Please open the page again."),
            "card_declined": gettext("The card was not accepted, and nothing was charged. Please try another card."),
            "card_pending": gettext(
                "Your payment is still being processed. Please wait a moment, then look at your account page."
            ),
        }
        return BuyRefused(code, messages[code] % values if values else messages[code])


def _key(checkout: Checkout) -> str:
    return f"checkout-{checkout.pk}"


# --- The Stripe customer -------------------------------------------------------------------------
def customer_stripe_id(*, customer: User, timeout: float | None = None) -> str:
    """The customer's Stripe customer: found by our id in its metadata, or created, once; and
    remembered on the account (a conditional update, so a race keeps the first)."""
    from billing import gateway

    if customer.stripe_customer_id:
        return customer.stripe_customer_id
    stripe_id = gateway.customer_get_or_create(our_id=f"user-{customer.pk}", email=customer.email, timeout=timeout)
    User.objects.filter(pk=customer.pk, stripe_customer_id__isnull=True).update(stripe_customer_id=stripe_id)
    customer.stripe_customer_id = stripe_id
    return stripe_id


# --- Buying --------------------------------------------------------------------------------------
def checkout_start(*, customer: User, offer, language: str, at: datetime) -> Checkout:
    """The customer's unfinished attempt to buy the offer's product, or a new one at today's
    price. The partial unique constraint makes two tabs (or two racing requests) share one."""
    from django.db import IntegrityError

    product = offer.product
    language = supported_language(language)
    if (
        product.interval
        and Subscription.objects.filter(customer=customer, product=product, status__in=SUBSCRIBED).exists()
    ):
        raise _refused("subscribed", language, product=product.name)
    unfinished = Checkout.objects.filter(customer=customer, product=product, status__in=Checkout.UNFINISHED)
    found = unfinished.select_related("product", "offer").first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return Checkout.objects.create(
                customer=customer, offer=offer, product=product, amount=product.price_amount,
                currency=product.currency, language=language, created_at=at, updated_at=at,
            )  # fmt: skip
    except IntegrityError:
        return unfinished.select_related("product", "offer").get()


@dataclass(frozen=True)
class CardStep:
    """What the page needs next: save a card (``setup``, with the SetupIntent's secret), or
    complete 3-D Secure (``payment``, with the PaymentIntent's)."""

    mode: str
    client_secret: str
    setup_intent_id: str = ""
    payment_intent_id: str = ""


def _failed(checkout: Checkout, *, reason: str, at: datetime) -> None:
    Checkout.objects.filter(pk=checkout.pk, status__in=Checkout.UNFINISHED).update(
        status=Checkout.Status.FAILED, failure=reason[:200], updated_at=at
    )


def _declined(checkout: Checkout, *, reason: str, at: datetime) -> None:
    """The charge was declined: the checkout failed, and the incomplete subscription it made (if
    any) is cancelled at Stripe, after the commit (no lock held), so that its open first invoice
    can never be paid later by surprise. If Stripe does not answer, it still expires there by
    itself (within a day) and is said so in the log; the customer's answer does not wait."""
    from billing import gateway

    _failed(checkout, reason=reason, at=at)
    if not checkout.stripe_subscription_id:
        return
    try:
        gateway.subscription_cancel_now(subscription_id=checkout.stripe_subscription_id, timeout=PAGE_STRIPE_TIMEOUT)
    except gateway.GatewayError as exc:
        logger.warning(
            "checkout %s: the incomplete subscription %s was not cancelled: %s",
            checkout.pk, checkout.stripe_subscription_id, exc,
        )  # fmt: skip


def checkout_card(*, checkout: Checkout, at: datetime) -> CardStep:
    """The card step of an unfinished checkout: its SetupIntent, made once with no lock held (a
    reload finds it), or the 3-D Secure step it is waiting on. A SetupIntent the bank declined
    (Stripe cancels it) ends the checkout: ``BuyRefused``, and the next visit starts anew."""
    from billing import gateway

    language = checkout.language
    try:
        if checkout.status == Checkout.Status.ACTION:
            payment = gateway.payment_intent_get(
                payment_intent_id=checkout.stripe_payment_intent_id, timeout=PAGE_STRIPE_TIMEOUT
            )
            return CardStep("payment", payment.client_secret, checkout.stripe_setup_intent_id, payment.id)
        if checkout.stripe_setup_intent_id:
            setup = gateway.setup_intent_get(
                setup_intent_id=checkout.stripe_setup_intent_id, timeout=PAGE_STRIPE_TIMEOUT
            )
        else:
            stripe_customer = customer_stripe_id(customer=checkout.customer, timeout=PAGE_STRIPE_TIMEOUT)
            setup = gateway.setup_intent_start(
                customer_id=stripe_customer, idempotency_key=_key(checkout), timeout=PAGE_STRIPE_TIMEOUT
            )
            Checkout.objects.filter(pk=checkout.pk, stripe_setup_intent_id="").update(stripe_setup_intent_id=setup.id)
            checkout.stripe_setup_intent_id = setup.id
    except gateway.GatewayError as exc:
        raise BuyUnavailable(str(exc)) from exc
    if setup.status == "canceled":
        _failed(checkout, reason="card declined while saving", at=at)
        raise _refused("card_declined", language)
    return CardStep("setup", setup.client_secret, setup.id)


def checkout_pay(
    *, checkout: Checkout, setup_intent_id: str | None, payment_intent_id: str | None = None, at: datetime
) -> Checkout:
    """Charge the product to the card the page just saved, once, and record it. A checkout
    already paid is returned as it is (a double submit or a reload). Raises ``BuyAction`` when
    the bank asks for 3-D Secure, ``BuyRefused`` for a decline or a tampered form (nothing
    recorded), and ``BuyUnavailable`` when Stripe does not answer in time."""
    from billing import gateway

    language = checkout.language
    if checkout.status == Checkout.Status.PAID:
        return checkout
    if checkout.status == Checkout.Status.FAILED:
        raise _refused("card_declined", language)
    if (setup_intent_id or "") != checkout.stripe_setup_intent_id or not setup_intent_id:
        raise _refused("tampered", language)
    try:
        if checkout.status == Checkout.Status.ACTION:
            if (payment_intent_id or "") != checkout.stripe_payment_intent_id:
                raise _refused("tampered", language)
            status = gateway.payment_intent_get(
                payment_intent_id=checkout.stripe_payment_intent_id, timeout=PAGE_STRIPE_TIMEOUT
            ).status
        else:
            status = _charge(checkout, at=at)
        if status == "requires_action":
            payment = gateway.payment_intent_get(
                payment_intent_id=checkout.stripe_payment_intent_id, timeout=PAGE_STRIPE_TIMEOUT
            )
            raise BuyAction(payment_intent_id=payment.id, client_secret=payment.client_secret)
    except gateway.GatewayUnavailable as exc:
        raise BuyUnavailable(str(exc)) from exc
    except gateway.GatewayError as exc:
        _declined(checkout, reason=f"declined: {exc.code or exc}", at=at)
        raise _refused("card_declined", language) from exc
    if status != "succeeded":
        _declined(checkout, reason=f"declined: {status}", at=at)
        raise _refused("card_declined", language)
    try:
        return _record(checkout, at=at)
    except gateway.GatewayError as exc:
        # Charged, but not read back: the checkout stays charging (or action), and the next
        # submit, or the webhook, records it.
        raise BuyUnavailable(str(exc)) from exc


def _charge(checkout: Checkout, *, at: datetime) -> str:
    """Claim the checkout (open → charging), then charge it at Stripe under its key. Returns the
    payment's status; the Stripe ids are kept on the checkout."""
    from django.db.models import Q

    from billing import gateway

    setup = gateway.setup_intent_get(setup_intent_id=checkout.stripe_setup_intent_id, timeout=PAGE_STRIPE_TIMEOUT)
    if setup.status in ("requires_action", "requires_confirmation", "processing"):
        raise _refused("card_pending", checkout.language)
    if setup.status != "succeeded":
        raise gateway.GatewayError(f"the card was not saved: {setup.status}", code=setup.status)
    # Of two submits racing, one charges and the other is told to wait. (localstripe ignores the
    # idempotency key, which alone would have made them one charge at Stripe.)
    stale = at - CHARGING_LEASE
    claimed = (
        Checkout.objects.filter(pk=checkout.pk)
        .filter(Q(status=Checkout.Status.OPEN) | Q(status=Checkout.Status.CHARGING, updated_at__lt=stale))
        .update(status=Checkout.Status.CHARGING, updated_at=at)
    )
    if not claimed:
        raise _refused("card_pending", checkout.language)
    product = checkout.product
    metadata = {"product_sku": product.sku, "foretaste_kind": Purchase.Kind.REGULAR, "checkout_id": str(checkout.pk)}
    stripe_customer = checkout.customer.stripe_customer_id
    try:
        if product.interval:
            result = gateway.subscription_create(
                customer_id=stripe_customer, price_id=product.stripe_price_id,
                payment_method_id=setup.payment_method_id, idempotency_key=_key(checkout), metadata=metadata,
                timeout=PAGE_STRIPE_TIMEOUT,
            )  # fmt: skip
            ids = {"stripe_subscription_id": result.id, "stripe_payment_intent_id": result.payment_intent_id or ""}
            status = "succeeded" if result.status == "active" else (result.payment_intent_status or result.status)
        else:
            payment = gateway.payment_intent_charge(
                customer_id=stripe_customer, payment_method_id=setup.payment_method_id, amount=checkout.amount,
                currency=checkout.currency, idempotency_key=_key(checkout), metadata=metadata,
                timeout=PAGE_STRIPE_TIMEOUT,
            )  # fmt: skip
            ids = {"stripe_payment_intent_id": payment.id}
            status = payment.status
    except gateway.GatewayUnavailable:
        # Not known whether Stripe charged: open again, and the same key repeats the same charge.
        Checkout.objects.filter(pk=checkout.pk, status=Checkout.Status.CHARGING).update(status=Checkout.Status.OPEN)
        raise
    waiting = {"status": Checkout.Status.ACTION} if status == "requires_action" else {}
    Checkout.objects.filter(pk=checkout.pk, status=Checkout.Status.CHARGING).update(**ids, **waiting, updated_at=at)
    for name, value in {**ids, **waiting}.items():
        setattr(checkout, name, value)
    return status


def _record(checkout: Checkout, *, at: datetime) -> Checkout:
    """A succeeded payment: the Stripe reads first (no transaction open), then one transaction
    with the same writes the webhook handlers would make for the same objects, so that the
    later webhook finds them and adds nothing."""
    from billing import gateway, handlers

    intent = gateway.payment_intent_state(payment_intent_id=checkout.stripe_payment_intent_id)
    purchase_writes = handlers.payment_intent_writes(intent, at=at)
    subscription_writes = None
    if checkout.stripe_subscription_id:
        subscription = gateway.subscription_state(subscription_id=checkout.stripe_subscription_id)
        subscription_writes = handlers.subscription_writes(subscription, at=gateway_time(subscription.created))
    external_id = intent.invoice_id or intent.id  # what the handlers record it under
    with transaction.atomic():
        moved = Checkout.objects.filter(
            pk=checkout.pk, status__in=(Checkout.Status.CHARGING, Checkout.Status.ACTION)
        ).update(status=Checkout.Status.PAID, updated_at=at)
        if moved:
            purchase_writes()
            if subscription_writes is not None:
                subscription_writes()
            purchase = Purchase.objects.get(source=Purchase.Source.STRIPE, external_id=external_id)
            Checkout.objects.filter(pk=checkout.pk).update(purchase=purchase)
            _receipt_queue(checkout=checkout, purchase=purchase, at=at)
    checkout.refresh_from_db()
    return checkout


def _receipt_queue(*, checkout: Checkout, purchase: Purchase, at: datetime) -> None:
    """The receipt, in the customer's language, keyed by the checkout: sent once."""
    from django.conf import settings
    from django.urls import reverse

    from accounts.emails import email_queue
    from accounts.languages import user_language
    from offers.money import money_format

    customer = checkout.customer
    language = supported_language(user_language(customer, checkout.language))
    product = checkout.product
    with translation.override(language):
        subject = gettext("Your receipt for %(product)s") % {"product": product.name}
        lines = [
            gettext("Thank you for buying %(product)s. We charged %(amount)s to your card on %(date)s.")
            % {
                "product": product.name,
                "amount": money_format(purchase.amount, purchase.currency, language),
                "date": long_date(purchase.purchased_at, language),
            }
        ]
        if product.interval:
            lines.append(
                gettext(
                    "Your subscription costs %(price)s and renews by itself until you cancel it, which you can "
                    "do at any time from your account page: %(link)s"
                )
                % {"price": paid_price(product, language), "link": settings.SITE_URL.rstrip("/") + reverse("me")}
            )
    email_queue(
        to=customer.email, subject=subject, text="\n\n".join(lines), purpose=OutboxPurpose.RECEIPT, user=customer,
        about=purchase, language=language, key=f"checkout-{checkout.pk}-receipt", at=at,
    )  # fmt: skip


# --- Ending a subscription at the end of its paid period --------------------------------------
def subscription_period_end(*, subscription: Subscription) -> datetime:
    """When the subscription's paid period ends, as Stripe says now: the day the cancel page
    promises. (A read, but of Stripe, with the page's timeout; hence here, not in selectors.)"""
    from billing import gateway

    try:
        period = gateway.subscription_period(subscription_id=subscription.stripe_id, timeout=PAGE_STRIPE_TIMEOUT)
    except gateway.GatewayError as exc:
        raise BuyUnavailable(str(exc)) from exc
    return gateway_time(period.current_period_end)


def subscription_cancel(*, subscription: Subscription, at: datetime) -> Subscription:
    """The customer ends their subscription from /me/: Stripe is asked to end it when the paid
    period ends (no lock held meanwhile), so it stays active until then and nothing more is
    charged. We keep when they asked and the end Stripe gave, and email the confirmation once.
    Asking again changes nothing. Raises ``BuyUnavailable`` when Stripe does not answer."""
    from accounts.emails import email_queue
    from accounts.languages import user_language
    from billing import gateway

    if subscription.status == "canceled" or subscription.cancel_requested_at is not None:
        return subscription
    try:
        period = gateway.subscription_cancel_at_period_end(
            subscription_id=subscription.stripe_id, timeout=PAGE_STRIPE_TIMEOUT
        )
    except gateway.GatewayError as exc:
        raise BuyUnavailable(str(exc)) from exc
    ends_at = gateway_time(period.current_period_end)
    customer = subscription.customer
    language = supported_language(user_language(customer))
    product_name = subscription.product.name if subscription.product else subscription.stripe_id
    with translation.override(language):
        subject = gettext("Your subscription to %(product)s is cancelled") % {"product": product_name}
        text = gettext(
            "You cancelled your subscription to %(product)s. It stays active until %(date)s, then ends. "
            "Nothing more will be charged."
        ) % {"product": product_name, "date": long_date(ends_at, language)}
    with transaction.atomic():
        if Subscription.objects.filter(pk=subscription.pk, cancel_requested_at__isnull=True).update(
            cancel_requested_at=at, ends_at=ends_at
        ):
            email_queue(
                to=customer.email, subject=subject, text=text, purpose=OutboxPurpose.CANCELLATION, user=customer,
                about=subscription, language=language, key=f"subscription-{subscription.pk}-cancelled", at=at,
            )  # fmt: skip
    subscription.refresh_from_db()
    return subscription
