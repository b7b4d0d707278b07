"""The end step of a card trial, against localstripe: once every promised reminder was sent,
the product is charged once through the gateway and lands in the ledger; a decline or a bank
asking for 3-D Secure makes the trial payment_failed (not cancelled) with an email saying how to
pay; a missing reminder makes it wait and say why; a cancelled or imported trial is never charged."""

import threading
from datetime import timedelta

import pytest
from django.db import connection

from accounts.models import OutboxMessage, User
from billing.models import Purchase
from tests import factories
from tests.billing.stripe_world import card_payment_method, setup_intent_confirm
from tests.support import CARD_DECLINES_OFF_SESSION, CARD_NEEDS_3DS, CARD_OK
from tests.trials.test_claim import AT, assigned, browser_saves_card, live_offer, payment_intents_of, reserve
from trials import clock, services
from trials.models import Trial, TrialEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def card_offer(marketer):
    return live_offer(marketer, kind="free_trial", slug="club-trial", inventory=5)


def card_claim(offer, email: str, number: str = CARD_OK) -> Trial:
    trial = reserve(assigned(offer, email))
    payment = services.claim_payment_start(trial_id=trial.pk, at=AT)
    if number == CARD_NEEDS_3DS:
        setup_intent_confirm(setup_intent_id=payment.setup_intent_id, payment_method_id=card_payment_method(number))
        from billing import gateway

        gateway.client().v1.setup_intents.confirm(payment.setup_intent_id)  # confirmCardSetup after its modal
    else:
        browser_saves_card(payment, number)
    return services.claim_confirm(trial_id=trial.pk, setup_intent_id=payment.setup_intent_id, at=AT)


def reminders_delivered(trial: Trial) -> None:
    """Each promised reminder goes out on its day; the outbox's sender marks it sent (done here
    by hand: the sending worker is not what this file tests)."""
    for moment in clock.reminder_times(offer=trial.offer, variant=trial.variant, at=trial.claimed_at):
        clock.reminders_send_due(at=moment)
        OutboxMessage.objects.filter(key=clock.reminder_key(trial, moment)).update(sent_at=moment)


def stripe_customer(trial: Trial) -> str:
    return User.objects.get(pk=trial.customer_id).stripe_customer_id


def test_a_card_trial_whose_reminders_were_sent_converts_at_its_end_once(card_offer):
    trial = card_claim(card_offer, "ann@example.com")
    reminders_delivered(trial)
    before = payment_intents_of(stripe_customer(trial))

    assert clock.trials_convert_due(at=trial.ends_at - timedelta(minutes=1)) == {}  # not yet
    assert clock.trials_convert_due(at=trial.ends_at) == {"converted": 1}
    assert clock.trials_convert_due(at=trial.ends_at + timedelta(minutes=1)) == {}  # run again: nothing

    trial.refresh_from_db()
    product = card_offer.product
    (purchase,) = Purchase.objects.filter(trial=trial)
    # Converted when Stripe took the money, the time the webhook handler records too.
    assert trial.status == Trial.Status.CONVERTED and trial.converted_at == purchase.purchased_at
    assert (purchase.kind, purchase.amount, purchase.currency) == ("regular", product.price_amount, product.currency)
    (charged,) = payment_intents_of(stripe_customer(trial)) - before
    assert purchase.external_id == charged  # the id the webhook handler records: it adds nothing
    assert list(TrialEvent.objects.filter(trial=trial).order_by("pk").values_list("to_status", flat=True))[-2:] == [
        "converting",
        "converted",
    ]


def test_a_trial_whose_reminder_was_not_sent_waits_and_says_why(card_offer):
    trial = card_claim(card_offer, "ann@example.com")
    first, *_ = clock.reminder_times(offer=trial.offer, variant=trial.variant, at=trial.claimed_at)
    clock.reminders_send_due(at=first)  # queued, never delivered

    assert clock.trials_convert_due(at=trial.ends_at) == {"waiting": 1}

    trial.refresh_from_db()
    assert trial.status == Trial.Status.ACTIVE
    assert trial.waiting_reason.startswith(f"waiting: the reminder due {first:%Y-%m-%d %H:%M}")
    assert not Purchase.objects.filter(trial=trial).exists()


def test_a_cancelled_trial_is_never_charged(card_offer):
    trial = card_claim(card_offer, "ann@example.com")
    reminders_delivered(trial)
    services.trial_cancel(trial_id=trial.pk, customer=trial.customer, at=AT + timedelta(days=1))
    before = payment_intents_of(stripe_customer(trial))

    assert clock.trials_convert_due(at=trial.ends_at) == {}
    assert services.trial_conversion_charge(trial_id=trial.pk, at=trial.ends_at).outcome == "taken"

    assert payment_intents_of(stripe_customer(trial)) == before
    assert not Purchase.objects.filter(trial=trial).exists()


def test_a_declined_card_makes_the_trial_payment_failed_with_an_email(card_offer):
    trial = card_claim(card_offer, "ann@example.com", CARD_DECLINES_OFF_SESSION)
    reminders_delivered(trial)

    assert clock.trials_convert_due(at=trial.ends_at) == {"declined": 1}

    trial.refresh_from_db()
    assert trial.status == Trial.Status.PAYMENT_FAILED
    assert TrialEvent.objects.filter(trial=trial, to_status="payment_failed").get().note.startswith("declined")
    message = OutboxMessage.objects.get(key=f"trial-{trial.pk}-payment-failed")
    assert "another card" in message.email.message and "/me/" in message.email.message
    assert not Purchase.objects.filter(trial=trial).exists()


def test_a_bank_asking_for_3d_secure_makes_the_trial_wait_for_the_customer(card_offer):
    trial = card_claim(card_offer, "ann@example.com", CARD_NEEDS_3DS)
    reminders_delivered(trial)

    assert clock.trials_convert_due(at=trial.ends_at) == {"action_needed": 1}

    trial.refresh_from_db()
    assert trial.status == Trial.Status.PAYMENT_FAILED  # not cancelled: the customer can complete it
    assert TrialEvent.objects.filter(trial=trial, to_status="payment_failed").get().note == "authentication needed"
    message = OutboxMessage.objects.get(key=f"trial-{trial.pk}-payment-action")
    assert message.purpose == "payment_action" and "/me/" in message.email.message
    assert not Purchase.objects.filter(trial=trial).exists()


def test_an_imported_trial_is_skipped(customer):
    offer = factories.offer(kind="free_trial")
    imported = factories.trial(customer=customer, offer=offer, source="import")

    assert clock.trials_convert_due(at=imported.ends_at + timedelta(days=1)) == {}
    imported.refresh_from_db()
    assert imported.status == Trial.Status.ACTIVE


@pytest.mark.django_db(transaction=True)
def test_two_jobs_at_once_charge_once(card_offer):
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL; SQLite serializes writers anyway")
    trial = card_claim(card_offer, "ann@example.com")
    reminders_delivered(trial)
    before = payment_intents_of(stripe_customer(trial))
    outcomes = []

    def job():
        try:
            outcomes.append(clock.trials_convert_due(at=trial.ends_at))
        finally:
            connection.close()

    threads = [threading.Thread(target=job) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(payment_intents_of(stripe_customer(trial)) - before) == 1
    assert Purchase.objects.filter(trial=trial).count() == 1
    assert sum(outcome.get("converted", 0) for outcome in outcomes) == 1


def test_a_subscription_product_gets_a_subscription_from_the_saved_card(marketer):
    product = factories.product(sku="club", name="Coffee club", price_amount=999, interval="month")
    offer = live_offer(marketer, kind="free_trial", slug="club-monthly", inventory=5, product_=product)
    trial = card_claim(offer, "ann@example.com")
    reminders_delivered(trial)

    assert clock.trials_convert_due(at=trial.ends_at) == {"converted": 1}

    trial.refresh_from_db()
    (purchase,) = Purchase.objects.filter(trial=trial)
    assert trial.status == Trial.Status.CONVERTED
    assert (purchase.kind, purchase.amount) == ("regular", 999)
    assert purchase.external_id.startswith("in_")  # the first invoice, as the invoice webhook records it
    from billing import gateway

    (subscription,) = gateway.client().v1.subscriptions.list({"customer": stripe_customer(trial)}).data
    assert subscription.status == "active"


def test_stripe_down_at_the_end_leaves_the_trial_converting_and_charges_nothing(card_offer, settings):
    trial = card_claim(card_offer, "ann@example.com")
    reminders_delivered(trial)
    settings.STRIPE_API_BASE = "http://127.0.0.1:1"

    assert clock.trials_convert_due(at=trial.ends_at) == {"unavailable": 1}

    trial.refresh_from_db()
    # Not known whether Stripe charged: it stays converting (never active again, so never a
    # second charge with a new key), and nothing is in the ledger.
    assert trial.status == Trial.Status.CONVERTING
    assert not Purchase.objects.filter(trial=trial).exists()
