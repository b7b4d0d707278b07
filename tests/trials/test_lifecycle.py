"""A trial's whole life, with the clock moved by time-machine and a real localstripe: the claim,
each promised reminder on its day (and not before), the conversion on the end day and its ledger
row, then a renewal billed at Stripe whose webhook records the repeat purchase. And a no-card
trial: its end, the "buy now" email, and the purchase through the buy page that converts it."""

import time
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from accounts.emails import outbox_send_due
from accounts.models import OutboxMessage
from billing import gateway
from billing.models import Checkout, Purchase, StripeEvent
from offers import services as offer_services
from tests import factories
from tests.billing.stripe_world import post_event
from tests.billing.test_buy import card_saved
from tests.trials.test_claim import AT, assigned, browser_saves_card, live_offer, reserve
from trials import clock, services
from trials.models import Trial

pytestmark = pytest.mark.django_db


def clock_runs(at) -> dict:
    """One beat tick of the trial clock and the outbox sender, at ``at``."""
    with time_machine.travel(at, tick=False):
        ran = {
            "reminders": clock.reminders_send_due(at=at),
            "expired": clock.trials_expire_due(at=at),
            "converted": clock.trials_convert_due(at=at).get("converted", 0),
        }
        outbox_send_due(at=at)
    return ran


def reminders_sent(trial) -> list:
    return list(
        OutboxMessage.objects.filter(about_id=trial.pk, purpose="reminder", sent_at__isnull=False)
        .order_by("due_at")
        .values_list("sent_at", flat=True)
    )


def events_about(object_id: str, *types: str, since: int) -> list[dict]:
    """The real events localstripe emitted about one object (localstripe keeps the real clock)."""
    return [
        e
        for e in gateway.events_since(created_after=since)
        if e["type"] in types and e["data"]["object"].get("id") == object_id
    ]


def test_a_card_trial_is_reminded_on_its_days_converts_on_its_end_day_and_renews(
    client, marketer, django_capture_on_commit_callbacks
):
    since = int(time.time()) - 1  # the real clock, localstripe's
    product = factories.product(sku="club", name="Coffee club", price_amount=1500, interval="month")
    offer = live_offer(marketer, kind="free_trial", slug="club-trial", inventory=5, product_=product)
    with time_machine.travel(AT, tick=False):
        trial = reserve(assigned(offer, "ann@example.com"))
        payment = services.claim_payment_start(trial_id=trial.pk, at=AT)
        browser_saves_card(payment)
        trial = services.claim_confirm(trial_id=trial.pk, setup_intent_id=payment.setup_intent_id, at=AT)
    assert trial.status == Trial.Status.ACTIVE and trial.ends_at == AT + timedelta(days=14)
    first, second = clock.reminder_times(offer=offer, variant=trial.variant, at=trial.claimed_at)
    assert (first, second) == (AT + timedelta(days=7), AT + timedelta(days=11))  # 7 and 3 days before the end

    # Nothing before the first reminder's day; each reminder on its day, once.
    assert clock_runs(first - timedelta(hours=1)) == {"reminders": 0, "expired": 0, "converted": 0}
    assert clock_runs(first) == {"reminders": 1, "expired": 0, "converted": 0}
    assert clock_runs(second - timedelta(days=1)) == {"reminders": 0, "expired": 0, "converted": 0}
    assert reminders_sent(trial) == [first]
    assert clock_runs(second) == {"reminders": 1, "expired": 0, "converted": 0}
    assert reminders_sent(trial) == [first, second]

    # The end day: not a minute early, then converted once.
    assert clock_runs(trial.ends_at - timedelta(minutes=1))["converted"] == 0
    assert clock_runs(trial.ends_at)["converted"] == 1
    assert clock_runs(trial.ends_at + timedelta(minutes=1))["converted"] == 0
    trial.refresh_from_db()
    (conversion,) = Purchase.objects.filter(customer=trial.customer)
    assert (conversion.kind, conversion.amount, conversion.trial) == ("regular", 1500, trial)
    assert conversion.external_id.startswith("in_")  # the subscription's first invoice
    # Converted when Stripe took the money (localstripe's real clock), the time the webhook gives too.
    assert (trial.status, trial.converted_at) == (Trial.Status.CONVERTED, conversion.purchased_at)

    # The first invoice's own webhook, when it comes, adds nothing.
    (first_paid,) = events_about(conversion.external_id, "invoice.payment_succeeded", since=since)
    with django_capture_on_commit_callbacks(execute=True):
        assert post_event(client, first_paid).status_code == 200
    assert StripeEvent.objects.get(event_id=first_paid["id"]).status == StripeEvent.Status.PROCESSED
    assert list(Purchase.objects.filter(customer=trial.customer)) == [conversion]

    # A month later Stripe bills the renewal; its webhook records the repeat purchase.
    stripe_customer = trial.consent.stripe_customer_id
    (subscription,) = gateway.client().v1.subscriptions.list({"customer": stripe_customer}).data
    renewal = gateway.client().v1.invoices.create({"customer": stripe_customer, "subscription": subscription.id})
    paid = gateway.client().v1.invoices.pay(renewal.id).to_dict()
    assert paid["status"] == "paid"
    (event,) = events_about(renewal.id, "invoice.payment_succeeded", since=since)
    with (
        time_machine.travel(trial.ends_at + timedelta(days=30), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert post_event(client, event).status_code == 200
    assert StripeEvent.objects.get(event_id=event["id"]).status == StripeEvent.Status.PROCESSED

    conversion_row, repeat = Purchase.objects.filter(customer=trial.customer).order_by("pk")
    assert conversion_row == conversion
    assert (repeat.external_id, repeat.kind, repeat.amount, repeat.currency) == (renewal.id, "regular", 1500, "EUR")


def test_a_no_card_trial_ends_with_a_buy_now_email_and_a_purchase_converts_it(client, customer, marketer):
    # Claimed 16 days ago, so that it ended 2 days ago and the purchase happens now: localstripe
    # runs on the real clock, and the time it says the money was taken is the purchase's time.
    claimed_at = timezone.now() - timedelta(days=16)
    offer = factories.offer(
        actor=marketer, kind="free_trial_no_card", slug="beans-try", inventory=5,
        starts_at=claimed_at - timedelta(hours=1), ends_at=claimed_at + timedelta(days=60),
    )  # fmt: skip
    offer = offer_services.offer_launch(offer=offer, actor=marketer, at=claimed_at - timedelta(minutes=30))
    with time_machine.travel(claimed_at, tick=False):
        trial = reserve(assigned(offer, customer=customer), at=claimed_at)
        trial = services.claim_confirm(trial_id=trial.pk, at=claimed_at)
    assert trial.status == Trial.Status.ACTIVE

    assert clock_runs(trial.ends_at - timedelta(minutes=1))["expired"] == 0
    assert clock_runs(trial.ends_at)["expired"] == 1
    trial.refresh_from_db()
    assert trial.status == Trial.Status.EXPIRED
    invitation = OutboxMessage.objects.get(about_id=trial.pk, purpose="trial_ended")
    assert invitation.sent_at == trial.ends_at
    link = next(word for word in invitation.email.message.split() if "/buy/" in word)
    path = "/" + link.split("://", 1)[1].split("/", 1)[1]
    assert path == f"/o/{offer.slug}/buy/"

    # Two days after the end (inside the conversion window), now, the customer follows the link.
    client.force_login(customer)
    page = client.get(path)
    assert page.status_code == 200 and "Pay €24.00" in page.content.decode()
    checkout = Checkout.objects.get(customer=customer)
    card_saved(checkout)
    done = client.post(f"{path}{checkout.pk}/pay/", {"setup_intent_id": checkout.stripe_setup_intent_id})
    assert done.status_code == 302 and done["Location"] == "/me/"

    trial.refresh_from_db()
    checkout.refresh_from_db()
    (purchase,) = Purchase.objects.filter(customer=customer)
    assert trial.status == Trial.Status.CONVERTED and trial.converted_at == purchase.purchased_at
    assert (purchase.kind, purchase.amount, purchase.external_id) == (
        "regular",
        2400,
        checkout.stripe_payment_intent_id,
    )
