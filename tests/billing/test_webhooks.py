"""Stripe's webhooks: a delivery is verified over its raw body, stored once under its event id,
acknowledged at once and handled after the commit. A failure stays visible, is retried with
growing delays, and an operator can replay it from the admin."""

import json
import threading
import time
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnavailable

from accounts.demo import user_ensure
from billing import webhooks
from billing.models import Purchase, StripeEvent, Subscription
from billing.tasks import stripe_event_process_task, stripe_events_retry_task
from config.celery import app
from tests import factories
from tests.billing.stripe_world import (
    WEBHOOK,
    customer_get_or_create,
    event_for,
    paid_intent,
    post_event,
    signature,
    stripe_customer_for,
    stripe_object,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def beans(db):
    return factories.product(sku="beans", name="Beans 1 kg", price_amount=2400)


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    """Post a signed event and run what it queued after the commit, as a worker would."""

    def deliver(event, **options):
        with django_capture_on_commit_callbacks(execute=True):
            return post_event(client, event, **options)

    return deliver


def a_customer_event(**values):
    return event_for("customer.created", {"id": "cus_new", "object": "customer"}, **values)


# --- Intake ----------------------------------------------------------------------------------
def test_a_signed_event_is_stored_then_handled_only_after_the_commit(client, django_capture_on_commit_callbacks):
    event = a_customer_event(event_id="evt_1")

    with django_capture_on_commit_callbacks() as queued:
        response = post_event(client, event)
        stored = StripeEvent.objects.get()
        assert stored.status == StripeEvent.Status.RECEIVED, "nothing is handled before the commit"

    assert response.status_code == 200
    assert response.json() == {"id": "evt_1", "duplicate": False}
    assert (stored.event_id, stored.type, stored.object_id, stored.source) == (
        "evt_1", "customer.created", "cus_new", "webhook"
    )  # fmt: skip
    assert stored.payload == event
    assert stored.stripe_created.timestamp() == event["created"]
    assert len(queued) == 1


def test_an_event_type_without_a_handler_is_acknowledged_and_marked_processed_with_a_note(deliver):
    response = deliver(a_customer_event())

    stored = StripeEvent.objects.get()
    assert response.status_code == 200
    assert stored.status == StripeEvent.Status.PROCESSED
    assert stored.error == webhooks.NO_HANDLER_NOTE
    assert stored.attempts == 1
    assert stored.processed_at is not None


@pytest.mark.parametrize("tamper", ["missing", "wrong secret", "body changed", "too old"])
def test_a_delivery_with_a_bad_signature_is_refused_and_nothing_is_written(client, settings, tamper):
    payload = json.dumps(a_customer_event()).encode()
    header = {
        "missing": None,
        "wrong secret": signature(payload, secret="whsec_someone_else"),
        "body changed": signature(payload.replace(b"cus_new", b"cus_old")),
        "too old": signature(payload, at=int(time.time()) - settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS - 1),
    }[tamper]
    extra = {"HTTP_STRIPE_SIGNATURE": header} if header else {}

    response = client.post(WEBHOOK, data=payload, content_type="application/json", **extra)

    assert response.status_code == 400
    assert not StripeEvent.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        b"not json at all",
        b"[1, 2, 3]",
        json.dumps({"type": "invoice.paid", "created": 1, "data": {"object": {}}}).encode(),
        json.dumps({"id": "evt_1", "created": 1, "data": {"object": {}}}).encode(),
        json.dumps({"id": "evt_1", "type": "invoice.paid", "data": {"object": {}}}).encode(),
        json.dumps({"id": "evt_1", "type": "invoice.paid", "created": "yesterday", "data": {"object": {}}}).encode(),
        json.dumps({"id": "evt_1", "type": "invoice.paid", "created": 1}).encode(),
        json.dumps({"id": "evt_1", "type": "invoice.paid", "created": 1, "data": {"object": "in_1"}}).encode(),
    ],
    ids=["not json", "not an object", "no id", "no type", "no time", "bad time", "no data", "object not a dict"],
)
def test_a_signed_body_that_is_not_a_stripe_event_is_refused(client, body):
    response = post_event(client, body)

    assert response.status_code == 400
    assert not StripeEvent.objects.exists()


def test_the_endpoint_takes_only_posts_and_needs_no_csrf_token():
    client = Client(enforce_csrf_checks=True)

    assert client.get(WEBHOOK).status_code == 405
    assert post_event(client, a_customer_event()).status_code == 200


def test_the_same_payment_delivered_twice_is_stored_once_and_counted_once(customer, beans, deliver):
    intent = paid_intent(stripe_customer_for(customer), product_sku="beans")
    event = event_for("payment_intent.succeeded", stripe_object("payment_intents", intent))

    first, again = deliver(event), deliver(event)

    assert first.status_code == again.status_code == 200
    assert again.json()["duplicate"] is True
    stored = StripeEvent.objects.get()
    assert (stored.status, stored.attempts) == (StripeEvent.Status.PROCESSED, 1)
    assert Purchase.objects.get().external_id == intent


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_deliveries_racing_store_one_event():
    event = a_customer_event()
    start = threading.Barrier(4)
    results = []

    def store():
        try:
            start.wait()
            results.append(webhooks.event_store(event=event, source="webhook", at=timezone.now()).created)
        finally:
            connection.close()

    threads = [threading.Thread(target=store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == [False, False, False, True]
    assert StripeEvent.objects.count() == 1


# --- Failures and retries ----------------------------------------------------------------------
def test_a_payment_from_a_customer_not_imported_yet_fails_visibly_and_succeeds_on_a_retry_once_they_are(
    beans, deliver, django_capture_on_commit_callbacks
):
    dora_at_stripe = customer_get_or_create(our_id="shop-dora", email="dora.newcomer@example.com")
    intent = paid_intent(dora_at_stripe, product_sku="beans")
    before = timezone.now()

    deliver(event_for("payment_intent.succeeded", stripe_object("payment_intents", intent)))

    failed = StripeEvent.objects.get()
    assert failed.status == StripeEvent.Status.FAILED
    assert f"No customer matches Stripe customer {dora_at_stripe} (email dora.newcomer@example.com)" in failed.error
    assert failed.attempts == 1
    assert before + timedelta(minutes=1) <= failed.next_attempt_at <= timezone.now() + timedelta(minutes=1)
    assert not Purchase.objects.exists()

    dora = user_ensure(email="Dora.Newcomer@example.com", password="x" * 12)
    run_queued = django_capture_on_commit_callbacks
    with time_machine.travel(failed.next_attempt_at - timedelta(seconds=1), tick=False), run_queued(execute=True):
        assert stripe_events_retry_task() == 0
    with time_machine.travel(failed.next_attempt_at, tick=False), run_queued(execute=True):
        assert stripe_events_retry_task() == 1

    retried = StripeEvent.objects.get()
    assert (retried.status, retried.attempts, retried.error) == (StripeEvent.Status.PROCESSED, 2, "")
    assert Purchase.objects.get().customer == dora
    dora.refresh_from_db()
    assert dora.stripe_customer_id == dora_at_stripe, "matched by email, the Stripe id is remembered"


def test_retries_wait_longer_each_time_up_to_two_hours():
    assert [webhooks.retry_delay(n) for n in (1, 2, 3, 4)] == [timedelta(minutes=m) for m in (1, 2, 4, 8)]
    assert webhooks.retry_delay(20) == timedelta(hours=2)


def test_after_the_last_attempt_an_event_stays_failed_and_is_not_retried_again(customer, deliver):
    intent = paid_intent(stripe_customer_for(customer), product_sku="no-such-product")
    deliver(event_for("payment_intent.succeeded", stripe_object("payment_intents", intent)))
    event = StripeEvent.objects.get()

    at = timezone.now()
    while event.next_attempt_at is not None:
        at = event.next_attempt_at
        webhooks.event_process(event_pk=event.pk, at=at)
        event.refresh_from_db()

    assert event.status == StripeEvent.Status.FAILED
    assert event.attempts == webhooks.MAX_ATTEMPTS
    assert "no-such-product" in event.error
    assert webhooks.events_retry_due(at=at + timedelta(days=30)) == 0


def test_an_event_a_worker_holds_is_not_taken_by_another_until_its_lease_runs_out(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks():  # stored, but its task is "lost"
        stored = webhooks.event_store(event=a_customer_event(), source="webhook", at=timezone.now()).event
    now = timezone.now()
    StripeEvent.objects.filter(pk=stored.pk).update(status="processing", next_attempt_at=now + timedelta(minutes=10))

    assert webhooks.event_process(event_pk=stored.pk, at=now) is None
    assert webhooks.events_retry_due(at=now) == 0
    assert webhooks.event_process(event_pk=stored.pk, at=now + timedelta(minutes=10)) == "processed"


def test_an_event_whose_task_was_lost_is_queued_again_by_the_retry_job(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks():  # the broker was down: the task never ran
        webhooks.event_store(event=a_customer_event(), source="webhook", at=timezone.now() - timedelta(minutes=6))

    with django_capture_on_commit_callbacks(execute=True):
        stripe_events_retry_task()

    assert StripeEvent.objects.get().status == StripeEvent.Status.PROCESSED


def test_an_event_is_acknowledged_even_when_the_broker_is_down_and_is_queued_later(
    client, monkeypatch, django_capture_on_commit_callbacks
):
    def broker_down(**kwargs):
        raise BrokerUnavailable("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(stripe_event_process_task, "delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_event(client, a_customer_event())

    assert response.status_code == 200
    assert StripeEvent.objects.get().status == StripeEvent.Status.RECEIVED
    monkeypatch.undo()
    later = timezone.now() + webhooks.RECEIVED_GRACE
    with time_machine.travel(later, tick=False), django_capture_on_commit_callbacks(execute=True):
        assert stripe_events_retry_task() == 1
    assert StripeEvent.objects.get().status == StripeEvent.Status.PROCESSED


def test_the_beat_retries_events_every_minute_and_reconciles_every_ten_minutes():
    schedule = {entry["task"]: entry["schedule"] for entry in app.conf.beat_schedule.values()}

    assert schedule["billing.tasks.stripe_events_retry_task"] == 60
    assert schedule["billing.tasks.stripe_reconcile_task"] == 600


# --- The admin -----------------------------------------------------------------------------------
def test_operators_find_failed_events_and_replay_them_once_the_cause_is_fixed(
    client, operator, customer, deliver, django_capture_on_commit_callbacks
):
    intent = paid_intent(stripe_customer_for(customer), product_sku="espresso")
    deliver(event_for("payment_intent.succeeded", stripe_object("payment_intents", intent), event_id="evt_espresso"))
    deliver(a_customer_event(event_id="evt_fine"))
    client.force_login(operator)

    listing = client.get(
        "/admin/billing/stripeevent/", {"status__exact": "failed", "has_error": "yes", "attempts": "1"}
    )
    assert listing.status_code == 200
    assert "evt_espresso" in listing.content.decode() and "evt_fine" not in listing.content.decode()
    by_type = client.get("/admin/billing/stripeevent/", {"type__exact": "customer.created"}).content.decode()
    assert "evt_fine" in by_type and "evt_espresso" not in by_type

    factories.product(sku="espresso", name="Espresso beans", price_amount=2400)
    failed = StripeEvent.objects.get(event_id="evt_espresso")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/billing/stripeevent/", {"action": "replay", "_selected_action": [failed.pk]}, follow=True
        )

    assert "1 event queued again." in response.content.decode()
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == (StripeEvent.Status.PROCESSED, 1)
    assert Purchase.objects.get().product.sku == "espresso"


def test_events_cannot_be_added_edited_or_deleted_in_the_admin(client, operator, deliver):
    deliver(a_customer_event())
    event = StripeEvent.objects.get()
    client.force_login(operator)

    assert client.get(f"/admin/billing/stripeevent/{event.pk}/change/").status_code == 200
    assert client.get("/admin/billing/stripeevent/add/").status_code == 403
    assert client.get(f"/admin/billing/stripeevent/{event.pk}/delete/").status_code == 403


@pytest.mark.parametrize("model", ["purchase", "subscription"])
def test_the_ledger_and_subscriptions_are_read_only_in_the_admin(client, operator, customer, beans, model):
    purchase = Purchase.objects.create(
        customer=customer, product=beans, kind="regular", amount=2400, currency="EUR",
        purchased_at=timezone.now(), source="stripe", external_id="pi_admin",
    )  # fmt: skip
    subscription = Subscription.objects.create(
        stripe_id="sub_admin", customer=customer, product=beans, status="active", stripe_updated=timezone.now()
    )
    row = {"purchase": purchase, "subscription": subscription}[model]
    client.force_login(operator)
    base = f"/admin/billing/{model}/"

    assert client.get(base).status_code == 200
    assert client.get(f"{base}{row.pk}/change/").status_code == 200
    assert client.post(f"{base}{row.pk}/change/", {}).status_code == 403
    assert client.get(f"{base}add/").status_code == 403
    assert client.get(f"{base}{row.pk}/delete/").status_code == 403
    assert b"delete_selected" not in client.get(base).content
