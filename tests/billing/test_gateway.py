"""The Stripe gateway against localstripe, through the real stripe library."""

import json
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import stripe

from billing import gateway
from tests.billing.stripe_world import customer_get_or_create
from tests.support import free_port


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_a_recurring_price_syncs_as_a_plan_and_is_idempotent():
    sku = _unique("beans")
    first = gateway.price_sync(sku=sku, name="Beans", amount=2400, currency="EUR", interval="month")
    again = gateway.price_sync(sku=sku, name="Beans", amount=2400, currency="EUR", interval="month")
    repriced = gateway.price_sync(sku=sku, name="Beans", amount=2600, currency="EUR", interval="month")

    assert first == again == repriced == f"price_{sku}"
    plan = gateway.client().v1.plans.retrieve(first)
    assert (plan.amount, plan.currency, plan.interval) == (2600, "eur", "month")


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


def test_events_are_listed_oldest_first():
    our_id = _unique("cust")
    stripe_customer = customer_get_or_create(our_id=our_id, email=f"{our_id}@example.com")

    events = gateway.events_since(created_after=int(time.time()) - 3600)

    assert any(e["type"] == "customer.created" and e["data"]["object"]["id"] == stripe_customer for e in events)
    assert [e["created"] for e in events] == sorted(e["created"] for e in events)


def test_an_unreachable_stripe_is_reported_as_unavailable(settings):
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"
    settings.STRIPE_MAX_NETWORK_RETRIES = 0

    with pytest.raises(gateway.GatewayUnavailable):
        gateway.price_sync(sku=_unique("beans"), name="Beans", amount=2400, currency="EUR", interval="month")
    with pytest.raises(gateway.GatewayUnavailable):
        gateway.ping(timeout=1)


# --- Every write carries our idempotency key ---------------------------------------------------
@dataclass(frozen=True)
class Sent:
    method: str
    path: str
    key: str | None


class SentRequests:
    """Every request the stripe library sends, as its HTTP client sees it."""

    def __init__(self):
        self.all: list[Sent] = []
        self.failing: set[str] = set()
        self.losing: set[str] = set()

    def clear(self) -> None:
        self.all.clear()

    def writes(self) -> list[Sent]:
        return [r for r in self.all if r.method in ("POST", "DELETE")]

    def fail_next(self, path: str) -> None:
        """Make the next POST to ``path`` fail as a dropped connection would, before it
        reaches localstripe."""
        self.failing.add(path)

    def lose_answer(self, path: str) -> None:
        """Let the next POST to ``path`` reach localstripe, then lose its answer."""
        self.losing.add(path)


@pytest.fixture
def sent(monkeypatch):
    """The requests seen at the stripe library's HTTP client: below our code and below the
    library's own request building (which adds the Idempotency-Key header)."""
    log = SentRequests()
    original = stripe.RequestsClient.request

    def request(self, method, url, headers, post_data=None):
        path = "/" + url.split("://", 1)[1].split("/", 1)[1].split("?")[0]
        log.all.append(Sent(method.upper(), path, headers.get("Idempotency-Key")))
        if method.upper() == "POST" and path in log.failing:
            log.failing.discard(path)
            raise stripe.APIConnectionError("connection dropped (test)")
        answer = original(self, method, url, headers, post_data)
        if method.upper() == "POST" and path in log.losing:
            log.losing.discard(path)
            raise stripe.APIConnectionError("answer lost (test)")
        return answer

    monkeypatch.setattr(stripe.RequestsClient, "request", request)
    return log


def test_every_catalogue_write_carries_our_idempotency_key(sent):
    sku = _unique("club")

    gateway.price_sync(sku=sku, name="Club", amount=1500, currency="EUR", interval="month")  # creates
    gateway.price_sync(sku=sku, name="Coffee club", amount=1500, currency="EUR", interval="month")  # renames
    gateway.price_sync(sku=sku, name="Coffee club", amount=1700, currency="EUR", interval="month")  # reprices

    writes = sent.writes()
    assert [(w.method, w.path) for w in writes] == [
        ("POST", "/v1/products"),
        ("POST", "/v1/plans"),
        ("POST", f"/v1/products/prod_{sku}"),
        ("DELETE", f"/v1/plans/price_{sku}"),
        ("POST", "/v1/plans"),
    ]
    products = [w for w in writes if w.method == "POST" and w.path.startswith("/v1/products")]
    assert all(w.key.startswith("foretaste-product") and sku in w.key for w in products), products
    assert len({w.key for w in products}) == len(products), "different writes never share a key"
    # A plan's create carries the stripe library's own key (billing/gateway.py says why not ours):
    # a fresh one each time, so a price changed back is never answered from Stripe's memory.
    plans = [w for w in writes if w.method == "POST" and w.path == "/v1/plans"]
    assert all(w.key and not w.key.startswith("foretaste-") for w in plans), plans
    assert len({w.key for w in plans}) == len(plans)


def test_an_unchanged_catalogue_entry_writes_nothing(sent):
    sku = _unique("beans")
    gateway.price_sync(sku=sku, name="Beans", amount=2400, currency="EUR", interval="month")
    sent.clear()

    gateway.price_sync(sku=sku, name="Beans", amount=2400, currency="EUR", interval="month")

    assert sent.writes() == []


@pytest.mark.parametrize("write", ["product create", "product rename"])
def test_a_retried_product_write_sends_the_same_key(sent, settings, write):
    settings.STRIPE_MAX_NETWORK_RETRIES = 0  # the job's retry, not the library's, is under test
    sku = _unique("club")
    if write == "product rename":
        gateway.price_sync(sku=sku, name="Club", amount=1500, currency="EUR", interval="month")
    path, name = {
        "product create": ("/v1/products", "Club"),
        "product rename": (f"/v1/products/prod_{sku}", "Coffee club"),
    }[write]
    values = {"sku": sku, "name": name, "amount": 1500, "currency": "EUR", "interval": "month"}
    sent.clear()

    sent.fail_next(path)
    with pytest.raises(gateway.GatewayUnavailable):
        gateway.price_sync(**values)
    gateway.price_sync(**values)  # the job, run again

    attempts = [w.key for w in sent.writes() if w.path == path]
    assert len(attempts) == 2 and attempts[0] == attempts[1], attempts
    assert gateway.client().v1.products.retrieve(f"prod_{sku}").name == name


@pytest.mark.parametrize("lost", ["the request", "the answer"])
def test_a_repriced_plan_whose_create_was_lost_is_created_once_on_the_retry(sent, settings, lost):
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    sku = _unique("club")
    gateway.price_sync(sku=sku, name="Club", amount=1500, currency="EUR", interval="month")

    if lost == "the request":
        sent.fail_next("/v1/plans")
    else:
        sent.lose_answer("/v1/plans")
    with pytest.raises(gateway.GatewayUnavailable):
        gateway.price_sync(sku=sku, name="Club", amount=1700, currency="EUR", interval="month")
    assert gateway.price_sync(sku=sku, name="Club", amount=1700, currency="EUR", interval="month") == f"price_{sku}"

    plan = gateway.client().v1.plans.retrieve(f"price_{sku}")
    assert (plan.amount, plan.interval) == (1700, "month")


# --- A Stripe answer that is not as documented ---------------------------------------------------
@contextmanager
def stripe_answering(body: dict):
    """A loopback HTTP server that answers every request with ``body`` (200, JSON), standing in
    for a Stripe whose objects lack fields or have them in the wrong type."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            payload = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("read", "body"),
    [
        (lambda: gateway.payment_intent_state(payment_intent_id="pi_1"), {"id": "pi_1", "object": "payment_intent"}),
        (lambda: gateway.invoice_state(invoice_id="in_1"), {"id": "in_1", "object": "invoice", "status": "paid"}),
        (lambda: gateway.charge_state(charge_id="ch_1"), {"object": "charge"}),
        (lambda: gateway.subscription_state(subscription_id="sub_1"), {"id": "sub_1", "items": "none"}),
        (lambda: gateway.refunds_of(payment_intent_id="pi_1"), {"object": "list", "data": [{"id": "re_1"}]}),
    ],
    ids=["intent without status", "invoice without currency", "charge without id", "items a string", "refund bare"],
)
def test_a_stripe_object_that_is_not_as_documented_is_a_gateway_error_naming_it(settings, read, body):
    with stripe_answering(body) as base:
        settings.STRIPE_API_BASE = base

        with pytest.raises(gateway.GatewayError, match="is not as expected"):
            read()
