"""The Stripe gateway: the only module that imports ``stripe``.

Everything else in Foretaste talks to payments through these functions, which take and return
plain Python values (ids, integers of minor units, small dataclasses), never Stripe objects.
Foretaste writes little at Stripe: the catalogue (``price_sync``), and at a claim the customer,
the SetupIntent that saves the card and the charge of a fee ("Claims", at the end). Everything
else here reads: webhooks and the events list in, and the current state of payments.

Rules kept here:
- Every call has an explicit timeout and a bounded number of network retries.
- Every write carries an idempotency key of ours, derived from our id and what is written (see
  ``_write_key``), so a retried job repeats its write at real Stripe instead of making another.
  (The stripe library adds a random key to any POST without one; that covers only its own
  network retries, not a job run again.) The two exceptions (a plan's create, and a DELETE)
  say why next to them.
- Where localstripe (the offline emulator used by ``make run`` and the tests) differs from Stripe,
  the difference is handled in this module, next to a comment that says "localstripe".
  localstripe ignores idempotency keys; callers therefore also guard with a conditional update
  before calling (see docs/architecture.md, "Foretaste owns the trial clock").
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache, wraps
from urllib.parse import urlparse

import stripe
from django.conf import settings


class GatewayError(Exception):
    """Stripe could not do what was asked. ``code`` is Stripe's error code when there is one."""

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.code = code


class GatewayUnavailable(GatewayError):
    """Stripe could not be reached, or answered with a server error: worth retrying later."""


class NotFound(GatewayError):
    """Stripe has no such object. (Stripe says ``resource_missing``; localstripe only says 404.)"""


class WebhookSignatureInvalid(Exception):
    """A webhook's signature is missing, wrong or too old."""


@lru_cache(maxsize=8)
def _client(api_key: str, api_base: str, timeout: float, retries: int) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base},
        http_client=stripe.RequestsClient(timeout=timeout),
        max_network_retries=retries,
    )


def client(*, timeout: float | None = None) -> stripe.StripeClient:
    return _client(
        settings.STRIPE_SECRET_KEY,
        settings.STRIPE_API_BASE,
        timeout if timeout is not None else settings.STRIPE_TIMEOUT_SECONDS,
        settings.STRIPE_MAX_NETWORK_RETRIES if timeout is None else 0,
    )


def _real_stripe() -> bool:
    """Whether the gateway speaks to Stripe itself rather than localstripe (for the few
    parameters localstripe refuses)."""
    return urlparse(settings.STRIPE_API_BASE).hostname == "api.stripe.com"


def _as_dict(obj) -> dict:
    # localstripe's objects, like Stripe's, come back as StripeObject, which is not a dict.
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _call(fn, *args, **kwargs):
    """Run one Stripe request and translate its errors into ours."""
    try:
        return fn(*args, **kwargs)
    except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
        raise GatewayUnavailable(str(exc)) from exc
    except stripe.StripeError as exc:
        raise _translated(exc) from exc


def _translated(exc: stripe.StripeError) -> GatewayError:
    if exc.http_status and exc.http_status >= 500:
        return GatewayUnavailable(str(exc), code=exc.code)
    if exc.http_status == 404:
        return NotFound(str(exc), code=exc.code)
    return GatewayError(str(exc), code=exc.code)


def _options(idempotency_key: str | None) -> dict:
    return {"idempotency_key": f"foretaste-{idempotency_key}"} if idempotency_key else {}


def _write_key(kind: str, our_id: str, params: dict, *, over: dict | None) -> str:
    """The idempotency key for one write: our id, and a hash of what is written and of the
    object as it was read just before (``over``; None when there was none).

    A retry of the same write (the same parameters over the same state) sends the same key, so
    Stripe does it once. The parameters alone would not do: renaming A → B → A within the 24
    hours Stripe remembers a key would send the first key again, and Stripe would answer from
    memory without writing, leaving B. The state written over tells those writes apart.
    """
    content = json.dumps([params, over], sort_keys=True, default=str).encode()
    return f"{kind}-{our_id[:100]}-{hashlib.sha256(content).hexdigest()[:32]}"


# --- Reachability ----------------------------------------------------------------------------
def ping(*, timeout: float = 2.0) -> None:
    """Raise unless Stripe answers an authenticated read within ``timeout`` seconds."""
    _call(client(timeout=timeout).v1.customers.list, {"limit": 1})


# --- Catalogue ---------------------------------------------------------------------------------
def price_sync(*, sku: str, name: str, amount: int, currency: str, interval: str | None) -> str:
    """Make sure Stripe has a product and a price for ``sku``; return the price id.

    localstripe has Plans but no Prices, so recurring prices are Plans with ids we choose
    (``price_<sku>``); real Stripe accepts a Plan id wherever a price id is asked for.
    One-off products need no price object: they are charged with a PaymentIntent.

    The ids are ours, so Stripe itself refuses a second product or plan under them; the
    product's keys make a retried write one write rather than an error.
    """
    api = client()
    product_id = f"prod_{sku}"
    try:
        product = _as_dict(_call(api.v1.products.retrieve, product_id))
    except NotFound:
        product = None
    if product is None:
        params = {"id": product_id, "name": name}
        _call(api.v1.products.create, params, _options(_write_key("product", sku, params, over=None)))
    elif product.get("name") != name:
        # Keyed over the product as read: Stripe's ``updated`` in it tells a rename back from
        # the rename it undoes (see _write_key).
        params = {"name": name}
        _call(
            api.v1.products.update, product_id, params, _options(_write_key("product-name", sku, params, over=product))
        )
    price_id = f"price_{sku}"
    if interval is None:
        return price_id
    try:
        plan = _as_dict(_call(api.v1.plans.retrieve, price_id))
    except NotFound:
        plan = None
    if plan is not None and (plan["amount"], plan["currency"], plan["interval"]) == (
        amount,
        currency.lower(),
        interval,
    ):
        return price_id
    if plan is not None:
        # A Plan's price cannot change at Stripe; the old one is retired and a new id issued.
        # No key: Stripe takes idempotency keys on POSTs only, and a DELETE is idempotent by
        # itself (run again, it finds nothing: the NotFound means it is done).
        with contextlib.suppress(NotFound):
            _call(api.v1.plans.delete, price_id)
    params = {
        "id": price_id,
        "product": product_id,
        "amount": amount,
        "currency": currency.lower(),
        "interval": interval,
    }
    # No key of ours: the plan id is ours, so Stripe refuses a second plan under it, and a create
    # repeated after its answer was lost finds the plan made (below). A key from the content
    # would be wrong here: a price changed back (15.00 → 17.00 → 15.00) within the 24 hours
    # Stripe remembers keys would send the first key again, and Stripe would answer from memory
    # without creating the plan. (The stripe library still sends a key of its own, good for its
    # network retries of this one request.)
    try:
        _call(api.v1.plans.create, params)
    except GatewayError as exc:
        # Refused as a duplicate: done already (by a sync running at the same time) if the plan
        # Stripe has is this one.
        if isinstance(exc, GatewayUnavailable) or not _plan_is(price_id, amount, currency.lower(), interval):
            raise
    return price_id


def _plan_is(price_id: str, amount: int, currency: str, interval: str) -> bool:
    try:
        plan = _as_dict(_call(client().v1.plans.retrieve, price_id))
    except NotFound:
        return False
    return (plan["amount"], plan["currency"], plan["interval"]) == (amount, currency, interval)


# --- Webhooks and events -----------------------------------------------------------------------
def webhook_event_parse(*, payload: bytes, signature_header: str | None) -> dict:
    """Verify a webhook's signature over the raw body and return the event as a dict.

    Every way a body can be wrong raises ``WebhookSignatureInvalid`` (a 400 for the endpoint),
    never anything else: what the event holds is checked by ``billing.webhooks``."""
    if not signature_header:
        raise WebhookSignatureInvalid("missing Stripe-Signature header")
    if not signature_header.isascii():
        # stripe compares signatures with hmac.compare_digest, which raises TypeError (not a
        # verification error) on a non-ASCII string.
        raise WebhookSignatureInvalid("the Stripe-Signature header is not ASCII")
    try:
        text = payload.decode("utf-8")
        stripe.WebhookSignature.verify_header(
            text,
            signature_header,
            settings.STRIPE_WEBHOOK_SECRET,
            settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS,
        )
    except (stripe.SignatureVerificationError, UnicodeDecodeError) as exc:
        raise WebhookSignatureInvalid(str(exc)) from exc
    try:
        event = json.loads(text, parse_constant=_not_json)
    except (ValueError, RecursionError) as exc:
        # RecursionError: nesting deeper than Python's json can follow.
        raise WebhookSignatureInvalid(f"signed body is not JSON: {str(exc)[:200]}") from exc
    if not isinstance(event, dict) or "id" not in event or "type" not in event:
        raise WebhookSignatureInvalid("signed body is not a Stripe event")
    return event


def _not_json(constant: str):
    # Python's json reads NaN and Infinity, which are not JSON and which PostgreSQL's jsonb refuses.
    raise ValueError(f"{constant} is not a JSON number")


def events_since(*, created_after: int, page_size: int = 100) -> list[dict]:
    """Every event created after a Unix time, through all pages, oldest first.

    Stripe lists newest first and localstripe oldest first; paging with ``starting_after`` the
    last id of each page walks the whole list either way.
    """
    api = client().v1.events
    params: dict = {"created": {"gt": created_after}, "limit": page_size}
    found: dict[str, dict] = {}
    while True:
        page = _call(api.list, params)
        items = [_as_dict(e) for e in page.data]
        for item in items:
            found[item["id"]] = item
        if not page.has_more or not items:
            break
        params = {**params, "starting_after": items[-1]["id"]}
    return sorted(found.values(), key=lambda e: e["created"])


# --- Reading payments back (webhook handlers re-fetch the current state) -----------------------
# Handlers never trust the state inside an event: events arrive late, twice and out of order, so
# each handler reads the object as it is now. These readers return small frozen values.


@dataclass(frozen=True)
class PaymentIntentState:
    id: str
    status: str
    amount_received: int
    currency: str
    customer_id: str | None
    invoice_id: str | None
    metadata: dict
    created: int
    paid_at: int | None


@dataclass(frozen=True)
class InvoiceState:
    id: str
    status: str
    amount_paid: int
    currency: str
    customer_id: str | None
    customer_email: str | None
    subscription_id: str | None
    payment_intent_id: str | None
    price_ids: tuple[str, ...]
    metadata: dict
    created: int
    paid_at: int | None


@dataclass(frozen=True)
class ChargeState:
    id: str
    payment_intent_id: str | None
    customer_id: str | None


@dataclass(frozen=True)
class RefundState:
    id: str
    amount: int
    status: str
    created: int


@dataclass(frozen=True)
class SubscriptionState:
    id: str
    status: str
    customer_id: str | None
    price_ids: tuple[str, ...]
    metadata: dict
    created: int
    canceled_at: int | None
    ended_at: int | None


def _read(what: str):
    """A reader of Stripe's answer whose answer lacks a field or has one of the wrong type
    raises ``GatewayError`` naming it, not a KeyError or TypeError from deep inside."""

    def decorate(reader):
        @wraps(reader)
        def read(**kwargs):
            try:
                return reader(**kwargs)
            except (KeyError, TypeError, AttributeError, ValueError) as exc:
                ids = ", ".join(str(v) for v in kwargs.values())
                raise GatewayError(f"Stripe's {what} {ids} is not as expected: {type(exc).__name__}: {exc}") from exc

        return read

    return decorate


def _id_of(value) -> str | None:
    """An expandable field: an id, an expanded object, or nothing."""
    if isinstance(value, dict):
        return value.get("id")
    return value or None


def _price_id_of(item: dict) -> str | None:
    # Stripe: ``price``; older API versions and localstripe: ``plan``; invoice lines since API
    # 2025-03-31: ``pricing.price_details.price``.
    for key in ("price", "plan"):
        found = _id_of(item.get(key))
        if found:
            return found
    details = (item.get("pricing") or {}).get("price_details") or {}
    return _id_of(details.get("price"))


def _invoice_payment(params: dict) -> dict | None:
    """The paid (or newest) InvoicePayment matching ``params``: how real Stripe links invoices
    and PaymentIntents since API 2025-03-31. localstripe still has the direct fields."""
    payments = [_as_dict(p) for p in _call(client().v1.invoice_payments.list, {**params, "limit": 10}).data]
    payments.sort(key=lambda p: (p.get("status") == "paid", p.get("created") or 0), reverse=True)
    return payments[0] if payments else None


@_read("PaymentIntent")
def payment_intent_state(*, payment_intent_id: str) -> PaymentIntentState:
    data = _as_dict(_call(client().v1.payment_intents.retrieve, payment_intent_id, {"expand": ["latest_charge"]}))
    status = data["status"]
    charge = data.get("latest_charge")
    if "invoice" in data:
        invoice_id = _id_of(data["invoice"])
    else:  # real Stripe since API 2025-03-31
        payment = _invoice_payment({"payment": {"type": "payment_intent", "payment_intent": payment_intent_id}})
        invoice_id = _id_of(payment.get("invoice")) if payment else None
    # localstripe has no ``amount_received``; a succeeded intent there received its amount.
    received = data.get("amount_received")
    if received is None:
        received = data["amount"] if status == "succeeded" else 0
    return PaymentIntentState(
        id=data["id"],
        status=status,
        amount_received=received,
        currency=data["currency"].upper(),
        customer_id=_id_of(data.get("customer")),
        invoice_id=invoice_id,
        metadata=dict(data.get("metadata") or {}),
        created=data["created"],
        # When the money was taken: the successful charge, which may come days after the
        # intent was created (a customer completing 3-D Secure).
        paid_at=charge.get("created") if status == "succeeded" and isinstance(charge, dict) else None,
    )


@_read("invoice")
def invoice_state(*, invoice_id: str) -> InvoiceState:
    data = _as_dict(_call(client().v1.invoices.retrieve, invoice_id))
    subscription = _id_of(data.get("subscription"))
    if not subscription:  # real Stripe since API 2025-03-31
        details = (data.get("parent") or {}).get("subscription_details") or {}
        subscription = _id_of(details.get("subscription"))
    if "payment_intent" in data:
        payment_intent = _id_of(data["payment_intent"])
    else:  # real Stripe since API 2025-03-31
        payment = _invoice_payment({"invoice": invoice_id})
        payment_intent = _id_of((payment.get("payment") or {}).get("payment_intent")) if payment else None
    lines = (data.get("lines") or {}).get("data") or []
    return InvoiceState(
        id=data["id"],
        status=data["status"],
        amount_paid=data.get("amount_paid") or 0,
        currency=data["currency"].upper(),
        customer_id=_id_of(data.get("customer")),
        customer_email=data.get("customer_email"),
        subscription_id=subscription,
        payment_intent_id=payment_intent,
        price_ids=tuple(p for p in (_price_id_of(line) for line in lines) if p),
        metadata=dict(data.get("metadata") or {}),
        created=data["created"],
        paid_at=(data.get("status_transitions") or {}).get("paid_at"),
    )


@_read("charge")
def charge_state(*, charge_id: str) -> ChargeState:
    data = _as_dict(_call(client().v1.charges.retrieve, charge_id))
    return ChargeState(
        id=data["id"], payment_intent_id=_id_of(data.get("payment_intent")), customer_id=_id_of(data.get("customer"))
    )


@_read("refunds of PaymentIntent")
def refunds_of(*, payment_intent_id: str) -> list[RefundState]:
    """Every refund of a payment, oldest first."""
    api = client().v1.refunds
    params: dict = {"payment_intent": payment_intent_id, "limit": 100}
    found: dict[str, RefundState] = {}
    while True:
        page = _call(api.list, params)
        items = [_as_dict(r) for r in page.data]
        for r in items:
            found[r["id"]] = RefundState(id=r["id"], amount=r["amount"], status=r["status"], created=r["created"])
        if not page.has_more or not items:
            break
        params = {**params, "starting_after": items[-1]["id"]}
    return sorted(found.values(), key=lambda r: (r.created, r.id))


@_read("subscription")
def subscription_state(*, subscription_id: str) -> SubscriptionState:
    data = _as_dict(_call(client().v1.subscriptions.retrieve, subscription_id))
    items = (data.get("items") or {}).get("data") or []
    return SubscriptionState(
        id=data["id"],
        status=data["status"],
        customer_id=_id_of(data.get("customer")),
        price_ids=tuple(p for p in (_price_id_of(item) for item in items) if p),
        metadata=dict(data.get("metadata") or {}),
        created=data["created"],
        canceled_at=data.get("canceled_at"),
        ended_at=data.get("ended_at"),
    )


@_read("customer")
def customer_email(*, customer_id: str) -> str | None:
    """The email Stripe holds for a customer; None for a deleted customer or none given."""
    data = _as_dict(_call(client().v1.customers.retrieve, customer_id))
    return None if data.get("deleted") else data.get("email")


# --- Claims: customers, saving a card, charging a fee ---------------------------------------------
# A claim reserves a unit, commits, then calls these (no database lock is held meanwhile), then
# confirms or releases (trials/services.py, "Claims"). Each write is keyed by our trial's or
# customer's id, so a double submit or a retried request repeats the write at Stripe instead of
# making a second object. localstripe ignores the keys; the claim's reservation (one open trial
# per assignment, and the ids stored on it) is the guard there.
@dataclass(frozen=True)
class SetupIntentResult:
    id: str
    client_secret: str
    status: str
    payment_method_id: str | None
    customer_id: str | None = None


@dataclass(frozen=True)
class PaymentIntentResult:
    id: str
    client_secret: str
    status: str
    amount: int
    currency: str
    payment_method_id: str | None
    metadata: dict


@dataclass(frozen=True)
class CardDetails:
    last4: str
    fingerprint: str


def customer_get_or_create(*, our_id: str, email: str, name: str = "", timeout: float | None = None) -> str:
    """The Stripe customer for one of ours (found by our id in its metadata), created once."""
    api = client(timeout=timeout).v1.customers
    for customer in _call(api.list, {"email": email, "limit": 100}).data:
        if (_as_dict(customer).get("metadata") or {}).get("foretaste_id") == our_id:
            return customer.id
    params = {"email": email, "metadata": {"foretaste_id": our_id}}
    if name:
        params["name"] = name
    return _call(api.create, params, _options(f"customer-{our_id}")).id


def _setup_result(intent) -> SetupIntentResult:
    data = _as_dict(intent)
    return SetupIntentResult(
        id=data["id"],
        client_secret=data["client_secret"],
        status=data["status"],
        payment_method_id=_id_of(data.get("payment_method")),
        customer_id=_id_of(data.get("customer")),
    )


def setup_intent_start(*, customer_id: str, idempotency_key: str, timeout: float | None = None) -> SetupIntentResult:
    """Begin saving a card for off-session charges (the browser confirms it with Stripe.js)."""
    params = {"customer": customer_id, "usage": "off_session", "payment_method_types": ["card"]}
    return _setup_result(
        _call(client(timeout=timeout).v1.setup_intents.create, params, _options(f"setup-{idempotency_key}"))
    )


def setup_intent_get(*, setup_intent_id: str, timeout: float | None = None) -> SetupIntentResult:
    return _setup_result(_call(client(timeout=timeout).v1.setup_intents.retrieve, setup_intent_id))


def _payment_result(intent) -> PaymentIntentResult:
    data = _as_dict(intent)
    return PaymentIntentResult(
        id=data["id"],
        client_secret=data["client_secret"],
        status=data["status"],
        amount=data["amount"],
        currency=data["currency"].upper(),
        payment_method_id=_id_of(data.get("payment_method")),
        metadata=dict(data.get("metadata") or {}),
    )


def payment_intent_charge(
    *,
    customer_id: str,
    payment_method_id: str,
    amount: int,
    currency: str,
    idempotency_key: str,
    metadata: dict[str, str],
    timeout: float | None = None,
    off_session: bool = False,
) -> PaymentIntentResult:
    """Charge a saved card, in minor units: a trial's fee or a sample's price while the customer
    is on the page, or (``off_session``) the end step of a trial while they are away, which tells
    the bank so (SCA exemptions). ``requires_action`` means the bank asks for 3-D Secure, which
    the page completes with ``confirmCardPayment``; a decline raises ``GatewayError`` (code
    ``card_declined``). The intent is created and confirmed in one call, with the card: localstripe
    cannot confirm an existing intent with a new payment method."""
    if amount <= 0:
        raise ValueError("amount must be a positive number of minor units")
    params = {
        "amount": amount,
        "currency": currency.lower(),
        "customer": customer_id,
        "payment_method": payment_method_id,
        "payment_method_types": ["card"],
        "confirm": True,
        "metadata": metadata,
    }
    if off_session:
        params["off_session"] = True  # localstripe accepts it (with confirm), as Stripe does
    return _payment_result(
        _call(client(timeout=timeout).v1.payment_intents.create, params, _options(f"payment-{idempotency_key}"))
    )


def payment_intent_get(*, payment_intent_id: str, timeout: float | None = None) -> PaymentIntentResult:
    return _payment_result(_call(client(timeout=timeout).v1.payment_intents.retrieve, payment_intent_id))


def payment_intent_cancel(*, payment_intent_id: str, timeout: float | None = None) -> str:
    """Cancel a payment that was not made (a released claim); returns its status. A payment that
    already succeeded or was cancelled is left as it is."""
    api = client(timeout=timeout).v1.payment_intents
    status = _as_dict(_call(api.retrieve, payment_intent_id))["status"]
    if status in ("succeeded", "canceled"):
        return status
    # Stripe takes an idempotency key here; a repeated cancel is refused as already cancelled.
    return _as_dict(_call(api.cancel, payment_intent_id, {}, _options(f"cancel-{payment_intent_id}")))["status"]


@_read("payment method")
def card_details(*, payment_method_id: str, timeout: float | None = None) -> CardDetails:
    """A saved card's last 4 digits and fingerprint (the same number gives the same fingerprint
    for every customer, which is how one person with two accounts is told apart)."""
    card = _as_dict(_call(client(timeout=timeout).v1.payment_methods.retrieve, payment_method_id)).get("card") or {}
    if not card.get("fingerprint") or not card.get("last4"):
        raise GatewayError(f"Stripe's payment method {payment_method_id} has no card fingerprint or last 4 digits.")
    return CardDetails(last4=card["last4"], fingerprint=card["fingerprint"])


# --- Conversion: the end step of a card trial (trials/services.py, "Conversion") ----------------
@dataclass(frozen=True)
class SubscriptionResult:
    id: str
    status: str
    latest_invoice_id: str | None
    payment_intent_id: str | None
    payment_intent_status: str | None
    client_secret: str | None


def subscription_create(
    *,
    customer_id: str,
    price_id: str,
    payment_method_id: str,
    idempotency_key: str,
    metadata: dict[str, str] | None = None,
    timeout: float | None = None,
) -> SubscriptionResult:
    """Start a paid subscription now from a saved card, charging the first period. A first
    payment that needs 3-D Secure leaves the subscription incomplete with its PaymentIntent in
    ``requires_action``; a decline leaves it ``requires_payment_method``."""
    api = client(timeout=timeout).v1
    # localstripe rejects the subscription-level ``default_payment_method`` and ``off_session``;
    # making the card the customer's default for invoices works on both and has the same effect.
    _call(api.customers.update, customer_id, {"invoice_settings": {"default_payment_method": payment_method_id}})
    params = {
        "customer": customer_id, "items": [{"plan": price_id}], "payment_behavior": "allow_incomplete",
        "expand": ["latest_invoice.payment_intent"], "metadata": metadata or {},
    }  # fmt: skip
    if _real_stripe():
        # The first period is charged while the customer is away (the end of a trial). Only real
        # Stripe is told: localstripe's Subscription refuses any parameter it does not know
        # (400 "Unexpected off_session"); its charges behave the same either way.
        params["off_session"] = True
    data = _as_dict(_call(api.subscriptions.create, params, _options(f"subscription-{idempotency_key}")))
    invoice = data.get("latest_invoice")
    intent = invoice.get("payment_intent") if isinstance(invoice, dict) else None
    if isinstance(intent, str):
        intent = _as_dict(_call(api.payment_intents.retrieve, intent))
    return SubscriptionResult(
        id=data["id"],
        status=data["status"],
        latest_invoice_id=invoice.get("id") if isinstance(invoice, dict) else invoice,
        payment_intent_id=intent.get("id") if intent else None,
        payment_intent_status=intent.get("status") if intent else None,
        client_secret=intent.get("client_secret") if intent else None,
    )


# --- Ending a subscription at the end of its paid period (/me/) -------------------------------
@dataclass(frozen=True)
class SubscriptionPeriod:
    id: str
    status: str
    current_period_end: int  # Unix time: the paid period's end, when a cancelled one ends
    cancel_at_period_end: bool


def _period_of(data: dict) -> SubscriptionPeriod:
    end = data.get("current_period_end")
    if end is None:  # real Stripe since API 2025-03-31 keeps the period on each item
        items = (data.get("items") or {}).get("data") or []
        end = max(item["current_period_end"] for item in items)
    return SubscriptionPeriod(
        id=data["id"],
        status=data["status"],
        current_period_end=int(end),
        cancel_at_period_end=bool(data.get("cancel_at_period_end")),
    )


@_read("subscription period")
def subscription_period(*, subscription_id: str, timeout: float | None = None) -> SubscriptionPeriod:
    """The current paid period of a subscription, and whether it ends there."""
    return _period_of(_as_dict(_call(client(timeout=timeout).v1.subscriptions.retrieve, subscription_id)))


@_read("subscription")
def subscription_cancel_at_period_end(*, subscription_id: str, timeout: float | None = None) -> SubscriptionPeriod:
    """Ask Stripe to end a subscription when its paid period ends, charging nothing more.

    Stripe then ends it itself at that moment and sends ``customer.subscription.deleted``, which
    ``billing.handlers.subscription_changed`` mirrors. localstripe stores the flag and returns it
    but, having no clock, never reaches the period's end: tests see the flag, not the ending.
    The key is the subscription's own: asking twice is the same request."""
    params = {"cancel_at_period_end": True}
    data = _call(
        client(timeout=timeout).v1.subscriptions.update,
        subscription_id,
        params,
        _options(f"cancel-at-period-end-{subscription_id}"),
    )
    return _period_of(_as_dict(data))


@_read("subscription")
def subscription_cancel_now(*, subscription_id: str, timeout: float | None = None) -> str:
    """End a subscription at once, charging nothing more; returns its status. For the incomplete
    one a declined first payment leaves behind, whose open invoice could otherwise still be paid
    (by Stripe's retries, or a card update) until it expires. One already ended is left as it is."""
    api = client(timeout=timeout).v1.subscriptions
    status = _as_dict(_call(api.retrieve, subscription_id))["status"]
    if status in ("canceled", "incomplete_expired"):
        return status
    return _as_dict(_call(api.cancel, subscription_id, {}, _options(f"cancel-{subscription_id}")))["status"]


def payment_intent_find(*, customer_id: str, metadata: dict[str, str]) -> PaymentIntentResult | None:
    """The newest PaymentIntent of a customer carrying all of ``metadata``, or None: what a retry
    looks for before charging again, because localstripe ignores idempotency keys and Stripe
    forgets them after 24 hours. localstripe's list refuses the ``customer`` filter, so there
    every intent is read and the customer compared here (Stripe gets the filter too)."""
    params: dict = {"limit": 100}
    if _real_stripe():
        params["customer"] = customer_id
    found = []
    while True:  # paged by hand, like events_since: each page through this module's client
        page = _call(client().v1.payment_intents.list, params)
        items = [_as_dict(intent) for intent in page.data]
        found += [
            intent
            for intent in items
            if _id_of(intent.get("customer")) == customer_id
            and all((intent.get("metadata") or {}).get(key) == value for key, value in metadata.items())
        ]
        if not page.has_more or not items:
            break
        params = {**params, "starting_after": items[-1]["id"]}
    if not found:
        return None
    return _payment_result(max(found, key=lambda intent: (intent["created"], intent["id"])))


def invoice_pay(
    *, invoice_id: str, customer_id: str, payment_method_id: str, idempotency_key: str, timeout: float | None = None
) -> PaymentIntentResult:
    """Pay an open invoice (a subscription's first, declined) with another card the customer
    has just saved, and return the invoice's PaymentIntent as it is after: ``succeeded``,
    ``requires_action`` (3-D Secure, completed on the page) or declined. The card becomes the
    customer's default for invoices first, so the renewals use it too: localstripe's
    ``Invoice.pay`` takes no ``payment_method`` and pays with that default, which Stripe does too."""
    api = client(timeout=timeout).v1
    _call(api.customers.update, customer_id, {"invoice_settings": {"default_payment_method": payment_method_id}})
    with contextlib.suppress(GatewayError):
        # A declined attempt leaves the invoice open; a decline here is read from its intent below.
        _call(api.invoices.pay, invoice_id, {}, _options(f"invoice-pay-{idempotency_key}"))
    intent_id = invoice_state(invoice_id=invoice_id).payment_intent_id
    if not intent_id:
        raise GatewayError(f"Stripe's invoice {invoice_id} has no PaymentIntent after paying it.")
    return payment_intent_get(payment_intent_id=intent_id, timeout=timeout)


@_read("refund")
def refund_create(*, payment_intent_id: str, amount: int, idempotency_key: str) -> RefundState:
    """Refund ``amount`` minor units of a payment. The amount is always explicit: localstripe,
    unlike Stripe, refunds the whole original again when none is given after a partial refund."""
    if amount <= 0:
        raise ValueError("amount must be a positive number of minor units")
    params = {"payment_intent": payment_intent_id, "amount": amount}
    data = _as_dict(_call(client().v1.refunds.create, params, _options(f"refund-{idempotency_key}")))
    return RefundState(id=data["id"], amount=data["amount"], status=data["status"], created=data["created"])
