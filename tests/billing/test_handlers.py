"""What each Stripe event does. Handlers read the object's current state from Stripe (here
localstripe), never the copy in the event, and write the ledger through billing.ledger: one
purchase per payment, one negative row per refund, and nothing counted twice."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from billing import gateway
from billing.models import Purchase, StripeEvent, Subscription
from tests import factories
from tests.billing.stripe_world import (
    SubscriptionResult,
    claimed_trial,
    declined_intent,
    event_for,
    paid_intent,
    post_event,
    refund_payment,
    saved_card,
    stripe_customer_for,
    stripe_object,
    subscription_cancel,
    subscription_create,
)
from tests.support import CARD_OK
from trials.models import Trial

pytestmark = pytest.mark.django_db


@pytest.fixture
def beans(db):
    return factories.product(sku="beans", name="Beans 1 kg", price_amount=2400)


@pytest.fixture
def club(db):
    product = factories.product(sku="club", name="Coffee club", price_amount=1500, interval="month")
    gateway.price_sync(sku="club", name="Coffee club", amount=1500, currency="EUR", interval="month")
    return product


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    def deliver(event):
        with django_capture_on_commit_callbacks(execute=True):
            assert post_event(client, event).status_code == 200
        return StripeEvent.objects.get(event_id=event["id"])

    return deliver


def a_day_ago():
    return timezone.now() - timedelta(days=1)


def at(timestamp):
    return datetime.fromtimestamp(timestamp, tz=UTC)


def subscribed(customer) -> SubscriptionResult:
    stripe_customer = stripe_customer_for(customer)
    card = saved_card(customer_id=stripe_customer, number=CARD_OK, key=f"club-{customer.pk}")
    return subscription_create(
        customer_id=stripe_customer, price_id="price_club", payment_method_id=card, idempotency_key="club"
    )


# --- One-off payments --------------------------------------------------------------------------
def test_a_one_off_payment_is_a_regular_purchase_under_its_payment_intent_and_converts_the_trial(
    customer, marketer, beans, deliver
):
    trial = claimed_trial(factories.offer(actor=marketer, product_=beans), customer, claimed_at=a_day_ago())
    intent = paid_intent(stripe_customer_for(customer), amount=2400, product_sku="beans")

    event = deliver(event_for("payment_intent.succeeded", stripe_object("payment_intents", intent)))

    assert event.status == StripeEvent.Status.PROCESSED
    purchase = Purchase.objects.get()
    assert (purchase.source, purchase.external_id, purchase.kind, purchase.amount, purchase.currency) == (
        "stripe", intent, "regular", 2400, "EUR"
    )  # fmt: skip
    assert (purchase.customer, purchase.product) == (customer, beans)
    assert purchase.purchased_at == at(stripe_object("payment_intents", intent)["latest_charge"]["created"])
    trial.refresh_from_db()
    assert trial.status == Trial.Status.CONVERTED


def test_a_trial_fee_keeps_its_kind_and_trial_and_converts_nothing(customer, marketer, beans, deliver):
    trial = claimed_trial(factories.offer(actor=marketer, product_=beans), customer, claimed_at=a_day_ago())
    intent = paid_intent(
        stripe_customer_for(customer), amount=100, product_sku="beans", foretaste_kind="trial_fee", trial_id=trial.pk
    )

    deliver(event_for("payment_intent.succeeded", stripe_object("payment_intents", intent)))

    purchase = Purchase.objects.get()
    assert (purchase.kind, purchase.amount, purchase.trial) == ("trial_fee", 100, trial)
    trial.refresh_from_db()
    assert trial.status == Trial.Status.ACTIVE


def test_a_customer_found_by_email_has_their_stripe_id_remembered(customer, beans, deliver):
    stripe_customer = stripe_customer_for(customer, remember=False)
    intent = paid_intent(stripe_customer, product_sku="beans")

    deliver(event_for("payment_intent.succeeded", stripe_object("payment_intents", intent)))

    customer.refresh_from_db()
    assert customer.stripe_customer_id == stripe_customer
    assert Purchase.objects.get().customer == customer


# --- Invoices ----------------------------------------------------------------------------------
def test_a_subscription_payment_is_counted_once_under_its_invoice_whichever_event_tells_of_it(customer, club, deliver):
    subscription = subscribed(customer)
    invoice = stripe_object("invoices", subscription.latest_invoice_id)

    deliver(event_for("payment_intent.succeeded", stripe_object("payment_intents", subscription.payment_intent_id)))
    deliver(event_for("invoice.payment_succeeded", invoice))
    deliver(event_for("invoice.paid", invoice))

    purchase = Purchase.objects.get()
    assert (purchase.external_id, purchase.kind, purchase.amount, purchase.product) == (
        invoice["id"],
        "regular",
        1500,
        club,
    )
    assert purchase.purchased_at == at(invoice["status_transitions"]["paid_at"])
    assert set(StripeEvent.objects.values_list("status", flat=True)) == {"processed"}


def test_an_invoice_that_is_not_paid_yet_records_nothing(customer, club, deliver):
    subscription = subscribed(customer)
    draft = gateway.client().v1.invoices.create(
        {"customer": subscription_customer(subscription), "subscription": subscription.id}
    )

    event = deliver(event_for("invoice.paid", stripe_object("invoices", draft.id)))

    assert event.status == StripeEvent.Status.PROCESSED
    assert not Purchase.objects.exists()


def subscription_customer(subscription: SubscriptionResult) -> str:
    return stripe_object("subscriptions", subscription.id)["customer"]


# --- Refunds -----------------------------------------------------------------------------------
def test_a_refund_that_arrives_before_its_payment_records_the_payment_first_then_one_row_per_refund(
    customer, beans, deliver
):
    intent = paid_intent(stripe_customer_for(customer), amount=2400, product_sku="beans")
    first = refund_payment(payment_intent_id=intent, amount=400, idempotency_key="first")
    second = refund_payment(payment_intent_id=intent, amount=600, idempotency_key="second")
    charge = stripe_object("payment_intents", intent)["latest_charge"]["id"]

    deliver(event_for("charge.refunded", stripe_object("charges", charge)))
    deliver(event_for("payment_intent.succeeded", stripe_object("payment_intents", intent)))
    deliver(event_for("charge.refunded", stripe_object("charges", charge)))

    original = Purchase.objects.get(external_id=intent)
    assert original.amount == 2400
    assert sorted(original.refunds.values_list("external_id", "amount")) == sorted([(first, -400), (second, -600)])
    assert Purchase.objects.count() == 3


# --- Failed payments ---------------------------------------------------------------------------
def test_a_declined_conversion_charge_fails_the_trial(outsider, marketer, club, deliver):
    offer = factories.offer(actor=marketer, product_=club, kind="paid_trial", trial_price=100)
    trial = claimed_trial(offer, outsider, claimed_at=a_day_ago())
    intent = declined_intent(stripe_customer_for(outsider), amount=1500, product_sku="club", trial_id=trial.pk)

    deliver(event_for("payment_intent.payment_failed", stripe_object("payment_intents", intent)))

    trial.refresh_from_db()
    assert trial.status == Trial.Status.PAYMENT_FAILED
    assert not Purchase.objects.exists()


def test_a_failure_event_for_a_payment_that_has_since_succeeded_does_not_fail_the_trial(
    customer, marketer, club, deliver
):
    offer = factories.offer(actor=marketer, product_=club, kind="paid_trial", trial_price=100)
    trial = claimed_trial(offer, customer, claimed_at=a_day_ago())
    intent = paid_intent(stripe_customer_for(customer), amount=1500, product_sku="club", trial_id=trial.pk)
    as_it_was = {**stripe_object("payment_intents", intent), "status": "requires_payment_method"}

    deliver(event_for("payment_intent.payment_failed", as_it_was))

    trial.refresh_from_db()
    assert trial.status == Trial.Status.CONVERTED
    assert Purchase.objects.get().external_id == intent


# --- Payments that cannot be placed ------------------------------------------------------------
@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ({"product_sku": "saffron"}, "for the product “saffron”, which the catalogue does not have"),
        ({}, "names no product"),
        ({"product_sku": "beans", "foretaste_kind": "gift"}, "has the kind “gift”"),
    ],
    ids=["unknown product", "no product", "unknown kind"],
)
def test_a_payment_that_cannot_be_placed_fails_with_a_clear_error(customer, beans, deliver, metadata, error):
    intent = paid_intent(stripe_customer_for(customer), **metadata)

    event = deliver(event_for("payment_intent.succeeded", stripe_object("payment_intents", intent)))

    assert event.status == StripeEvent.Status.FAILED
    assert error in event.error
    assert not Purchase.objects.exists()


def test_a_payment_naming_someone_elses_trial_fails(customer, outsider, marketer, beans, deliver):
    trial = claimed_trial(factories.offer(actor=marketer, product_=beans), outsider, claimed_at=a_day_ago())
    intent = paid_intent(stripe_customer_for(customer), product_sku="beans", trial_id=trial.pk)

    event = deliver(event_for("payment_intent.succeeded", stripe_object("payment_intents", intent)))

    assert event.status == StripeEvent.Status.FAILED
    assert f"names the trial {trial.pk}, which is not one of this customer's trials" in event.error


@pytest.mark.parametrize("trial_id", ["²", "1" * 40, "-3", "12abc"])
def test_a_payment_naming_a_trial_id_that_is_not_a_number_fails_visibly(customer, beans, deliver, trial_id):
    intent = paid_intent(stripe_customer_for(customer), product_sku="beans", trial_id=trial_id)

    event = deliver(event_for("payment_intent.succeeded", stripe_object("payment_intents", intent)))

    assert event.status == StripeEvent.Status.FAILED
    assert event.error.startswith("HandlerError: ")
    assert f"names the trial {trial_id}, which is not one of this customer's trials" in event.error
    assert not Purchase.objects.exists()


# --- Subscriptions -------------------------------------------------------------------------------
def test_a_subscription_row_follows_stripe_and_an_older_event_never_moves_it_back(customer, club, deliver):
    subscription = subscribed(customer)
    created = stripe_object("subscriptions", subscription.id)
    t = created["created"]

    deliver(event_for("customer.subscription.created", created, created=t))
    row = Subscription.objects.get()
    assert (row.stripe_id, row.customer, row.product, row.status) == (subscription.id, customer, club, "active")

    subscription_cancel(subscription_id=subscription.id)
    deleted = stripe_object("subscriptions", subscription.id)
    deliver(event_for("customer.subscription.deleted", deleted, created=t + 20))
    deliver(event_for("customer.subscription.updated", {**created, "status": "past_due"}, created=t + 10))

    row.refresh_from_db()
    assert row.status == "canceled"
    assert row.cancelled_at == at(deleted["ended_at"])
    assert row.stripe_updated == at(t + 20), "the newest event applied stays the watermark"
