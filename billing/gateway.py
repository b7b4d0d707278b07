"""The Stripe gateway: the only module that imports ``stripe``.

Everything else in Foretaste talks to payments through these functions, which take and return
plain Python values (ids, integers of minor units, small dataclasses), never Stripe objects.

Rules kept here:
- Every call has an explicit timeout and a bounded number of network retries.
- Every write carries an idempotency key derived from our own ids, so a retried job cannot
  create a second customer, charge or refund at real Stripe.
- Where localstripe (the offline emulator used by ``make run`` and the tests) differs from Stripe,
  the difference is handled in this module, next to a comment that says "localstripe".
  localstripe ignores idempotency keys; callers therefore also guard with a conditional update
  before calling (see DESIGN.md, "Who owns the trial clock").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

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


class CardDeclined(GatewayError):
    """The card was declined; retrying the same card will not help."""


class WebhookSignatureInvalid(Exception):
    """A webhook's signature is missing, wrong or too old."""


@dataclass(frozen=True)
class SetupIntentResult:
    id: str
    client_secret: str
    status: str
    payment_method_id: str | None


@dataclass(frozen=True)
class ChargeResult:
    """The outcome of an off-session charge.

    ``status`` is ``succeeded``, ``requires_action`` (3-D Secure: the customer must confirm, see
    ``client_secret``) or ``failed`` (declined; ``decline_code`` says why).
    """

    payment_intent_id: str | None
    status: str
    client_secret: str | None = None
    decline_code: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class SubscriptionResult:
    id: str
    status: str
    latest_invoice_id: str | None
    payment_intent_id: str | None
    payment_intent_status: str | None


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


def _as_dict(obj) -> dict:
    # localstripe's objects, like Stripe's, come back as StripeObject, which is not a dict.
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _call(fn, *args, **kwargs):
    """Run one Stripe request and translate its errors into ours."""
    try:
        return fn(*args, **kwargs)
    except stripe.CardError as exc:
        raise CardDeclined(exc.user_message or str(exc), code=exc.code) from exc
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


# --- Reachability ----------------------------------------------------------------------------
def ping(*, timeout: float = 2.0) -> None:
    """Raise unless Stripe answers an authenticated read within ``timeout`` seconds."""
    _call(client(timeout=timeout).v1.customers.list, {"limit": 1})


# --- Customers -------------------------------------------------------------------------------
def customer_get_or_create(*, our_id: str, email: str, name: str = "") -> str:
    """Return the Stripe customer id for one of our customers, creating it once.

    Found by our id in the metadata first (so an earlier half-finished attempt is reused), then
    created with an idempotency key from our id.
    """
    api = client().v1.customers
    existing = _call(api.list, {"email": email, "limit": 100})
    for customer in existing.data:
        if (_as_dict(customer).get("metadata") or {}).get("foretaste_id") == our_id:
            return customer.id
    params = {"email": email, "metadata": {"foretaste_id": our_id}}
    if name:
        params["name"] = name
    created = _call(api.create, params, _options(f"customer-{our_id}"))
    return created.id


# --- Saving a card ---------------------------------------------------------------------------
def _setup_result(intent) -> SetupIntentResult:
    data = _as_dict(intent)
    payment_method = data.get("payment_method")
    if isinstance(payment_method, dict):
        payment_method = payment_method.get("id")
    return SetupIntentResult(
        id=data["id"], client_secret=data["client_secret"], status=data["status"], payment_method_id=payment_method
    )


def setup_intent_start(*, customer_id: str, idempotency_key: str) -> SetupIntentResult:
    """Begin saving a card for later off-session charges; the browser confirms it with
    Stripe.js and ``client_secret``."""
    intent = _call(
        client().v1.setup_intents.create,
        {"customer": customer_id, "usage": "off_session", "payment_method_types": ["card"]},
        _options(f"setup-{idempotency_key}"),
    )
    return _setup_result(intent)


def setup_intent_confirm(*, setup_intent_id: str, payment_method_id: str) -> SetupIntentResult:
    """Confirm a SetupIntent server-side with a payment method the customer already gave."""
    intent = _call(client().v1.setup_intents.confirm, setup_intent_id, {"payment_method": payment_method_id})
    return _setup_result(intent)


def setup_intent_get(*, setup_intent_id: str) -> SetupIntentResult:
    """Read a SetupIntent back, e.g. after Stripe.js confirmed it in the browser."""
    return _setup_result(_call(client().v1.setup_intents.retrieve, setup_intent_id))


def payment_method_attach(*, payment_method_id: str, customer_id: str) -> None:
    _call(client().v1.payment_methods.attach, payment_method_id, {"customer": customer_id})


def card_fingerprint(*, payment_method_id: str) -> str:
    """The card's fingerprint: the same card number gives the same value for every customer,
    which is how one card is kept to one trial."""
    method = _as_dict(_call(client().v1.payment_methods.retrieve, payment_method_id))
    card = method.get("card") or {}
    fingerprint = card.get("fingerprint")
    if not fingerprint:
        raise GatewayError(f"payment method {payment_method_id} has no card fingerprint")
    return fingerprint


# --- Charging --------------------------------------------------------------------------------
def _charge_result(intent) -> ChargeResult:
    data = _as_dict(intent)
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
    """Charge a saved card while the customer is away. ``amount`` is in minor units.

    A decline or a 3-D Secure request is a result, not an exception: the caller decides what
    the trial does next. Only an unreachable Stripe raises (``GatewayUnavailable``).
    """
    if amount <= 0:
        raise ValueError("amount must be a positive number of minor units")
    params = {
        "amount": amount,
        "currency": currency.lower(),
        "customer": customer_id,
        "payment_method": payment_method_id,
        "off_session": True,
        "confirm": True,
        "metadata": metadata or {},
    }
    if description:
        params["description"] = description
    try:
        intent = client().v1.payment_intents.create(params, _options(f"charge-{idempotency_key}"))
    except stripe.CardError as exc:
        # Stripe reports an off-session decline or authentication request as a CardError that
        # carries the PaymentIntent; turn it into a result.
        intent = getattr(exc.error, "payment_intent", None) if exc.error else None
        if intent is not None:
            return _charge_result(intent)
        return ChargeResult(payment_intent_id=None, status="failed", decline_code=exc.code, message=exc.user_message)
    except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
        raise GatewayUnavailable(str(exc)) from exc
    except stripe.StripeError as exc:
        raise _translated(exc) from exc
    return _charge_result(intent)


def payment_intent_get(*, payment_intent_id: str) -> ChargeResult:
    return _charge_result(_call(client().v1.payment_intents.retrieve, payment_intent_id))


def refund(*, payment_intent_id: str, amount: int, idempotency_key: str, reason: str = "") -> str:
    """Refund ``amount`` minor units of a payment. Returns the refund id.

    The amount is always explicit: our ledger knows what is left to refund, and localstripe,
    unlike Stripe, refunds the whole original again when no amount is given after a partial one.
    """
    if amount <= 0:
        raise ValueError("a refund amount must be positive")
    params: dict = {"payment_intent": payment_intent_id, "amount": amount}
    if reason in ("duplicate", "fraudulent", "requested_by_customer"):
        params["reason"] = reason
    created = _call(client().v1.refunds.create, params, _options(f"refund-{idempotency_key}"))
    return created.id


# --- Catalogue and subscriptions ---------------------------------------------------------------
def price_id_for(sku: str) -> str:
    return f"price_{sku}"


def price_sync(*, sku: str, name: str, amount: int, currency: str, interval: str | None) -> str:
    """Make sure Stripe has a product and a price for ``sku``; return the price id.

    localstripe has Plans but no Prices, so recurring prices are Plans with ids we choose
    (``price_<sku>``); real Stripe accepts a Plan id wherever a price id is asked for.
    One-off products need no price object: they are charged with a PaymentIntent.
    """
    api = client()
    product_id = f"prod_{sku}"
    try:
        _call(api.v1.products.retrieve, product_id)
        _call(api.v1.products.update, product_id, {"name": name})
    except NotFound:
        _call(api.v1.products.create, {"id": product_id, "name": name}, _options(f"product-{sku}"))
    price_id = price_id_for(sku)
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
        _call(api.v1.plans.delete, price_id)
    _call(
        api.v1.plans.create,
        {"id": price_id, "product": product_id, "amount": amount, "currency": currency.lower(), "interval": interval},
    )
    return price_id


def subscription_create(
    *, customer_id: str, price_id: str, payment_method_id: str, idempotency_key: str, metadata: dict | None = None
) -> SubscriptionResult:
    """Start a paid subscription now, charging the saved card for the first period.

    Foretaste owns the trial clock, so no Stripe trial is used (localstripe has none anyway).
    """
    # localstripe rejects the subscription-level ``default_payment_method`` and ``off_session``;
    # making the card the customer's default for invoices works on both and has the same effect.
    _call(
        client().v1.customers.update,
        customer_id,
        {"invoice_settings": {"default_payment_method": payment_method_id}},
    )
    sub = _call(
        client().v1.subscriptions.create,
        {
            "customer": customer_id,
            "items": [{"plan": price_id}],
            "payment_behavior": "allow_incomplete",
            "expand": ["latest_invoice.payment_intent"],
            "metadata": metadata or {},
        },
        _options(f"subscription-{idempotency_key}"),
    )
    data = _as_dict(sub)
    invoice = data.get("latest_invoice")
    intent = invoice.get("payment_intent") if isinstance(invoice, dict) else None
    if isinstance(intent, str):
        intent = _as_dict(_call(client().v1.payment_intents.retrieve, intent))
    return SubscriptionResult(
        id=data["id"],
        status=data["status"],
        latest_invoice_id=invoice.get("id") if isinstance(invoice, dict) else invoice,
        payment_intent_id=intent.get("id") if intent else None,
        payment_intent_status=intent.get("status") if intent else None,
    )


def subscription_cancel(*, subscription_id: str) -> str:
    """Cancel a subscription now; returns its new status. Cancelling twice is harmless."""
    try:
        sub = _call(client().v1.subscriptions.cancel, subscription_id)
    except GatewayError as exc:
        current = _as_dict(_call(client().v1.subscriptions.retrieve, subscription_id))
        if current.get("status") == "canceled":
            return "canceled"
        raise exc
    return _as_dict(sub)["status"]


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


def events_list(*, created_after: int, limit: int = 100) -> list[dict]:
    """Events created after a Unix time, oldest first: what reconciliation replays."""
    page = _call(client().v1.events.list, {"created": {"gt": created_after}, "limit": limit})
    return sorted((_as_dict(e) for e in page.data), key=lambda e: e["created"])


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


def charge_state(*, charge_id: str) -> ChargeState:
    data = _as_dict(_call(client().v1.charges.retrieve, charge_id))
    return ChargeState(
        id=data["id"], payment_intent_id=_id_of(data.get("payment_intent")), customer_id=_id_of(data.get("customer"))
    )


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


def customer_email(*, customer_id: str) -> str | None:
    """The email Stripe holds for a customer; None for a deleted customer or none given."""
    data = _as_dict(_call(client().v1.customers.retrieve, customer_id))
    return None if data.get("deleted") else data.get("email")
