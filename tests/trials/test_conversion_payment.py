"""When the end step's charge does not simply succeed, against localstripe: the customer's page
completes the bank's 3-D Secure or takes another card (a new charge per attempt), a charge that
Stripe did not answer is tried again with the same key, and each ledger row carries the id the
webhook uses, so the webhook adds nothing."""

from datetime import timedelta

import pytest
import time_machine

from accounts.models import OutboxMessage
from billing import gateway
from billing.models import Purchase, StripeEvent
from tests import factories
from tests.billing.stripe_world import card_payment_method, event_for, post_event, setup_intent_confirm, stripe_object
from tests.support import CARD_DECLINES_OFF_SESSION, CARD_NEEDS_3DS, CARD_OK
from tests.trials.test_claim import live_offer, payment_intents_of
from tests.trials.test_conversion import card_claim, reminders_delivered, stripe_customer
from trials import clock, services
from trials.models import Trial

pytestmark = pytest.mark.django_db
REFUSING = "tests.accounts.mail_backends.RefusingBackend"


@pytest.fixture
def card_offer(marketer):
    return live_offer(marketer, kind="free_trial", slug="club-trial", inventory=5)


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    def deliver(event):
        with django_capture_on_commit_callbacks(execute=True):
            assert post_event(client, event).status_code == 200
        return StripeEvent.objects.get(event_id=event["id"])

    return deliver


def failed_trial(offer, number: str) -> Trial:
    trial = card_claim(offer, "ann@example.com", number)
    reminders_delivered(trial)
    clock.trials_convert_due(at=trial.ends_at)
    trial.refresh_from_db()
    assert trial.status == Trial.Status.PAYMENT_FAILED
    return trial


def bank_confirms(payment_intent_id: str, client_secret: str) -> None:
    """What localstripe's Stripe.js does when the customer passes the bank's 3-D Secure modal."""
    gateway.client().raw_request(
        "post", f"/v1/payment_intents/{payment_intent_id}/_authenticate",
        client_secret=client_secret, success="true",
    )  # fmt: skip


def new_card(page, number: str) -> str:
    """confirmCardSetup on the page's SetupIntent, as Stripe.js does; returns the SetupIntent id."""
    setup_intent_id = page.context["intent_id"]
    setup_intent_confirm(setup_intent_id=setup_intent_id, payment_method_id=card_payment_method(number))
    return setup_intent_id


def test_the_failure_email_links_to_the_payment_page_and_me_shows_the_button(client, card_offer, settings):
    trial = failed_trial(card_offer, CARD_NEEDS_3DS)

    message = OutboxMessage.objects.get(key=f"trial-{trial.pk}-payment-action")
    link = services.trial_pay_url(trial)
    assert link.startswith(settings.SITE_URL.rstrip("/")) and link.endswith(f"/me/trials/{trial.pk}/pay/")
    assert link in message.email.message
    client.force_login(trial.customer)
    page = client.get("/me/").content.decode()
    assert f"/me/trials/{trial.pk}/pay/" in page and "Complete payment" in page


def test_completing_3d_secure_converts_the_trial_and_the_webhook_adds_nothing(client, card_offer, deliver):
    trial = failed_trial(card_offer, CARD_NEEDS_3DS)
    client.force_login(trial.customer)

    page = client.get(f"/me/trials/{trial.pk}/pay/")
    assert page.status_code == 200 and page.context["mode"] == "authenticate"
    assert 'data-mode="payment"' in page.content.decode()
    intent_id = page.context["intent_id"]
    assert intent_id == trial.conversion_payment_intent_id
    bank_confirms(intent_id, page.context["client_secret"])
    done = client.post(f"/me/trials/{trial.pk}/pay/", {"payment_intent_id": intent_id})

    assert done.status_code == 302
    trial.refresh_from_db()
    (purchase,) = Purchase.objects.filter(trial=trial)
    assert trial.status == Trial.Status.CONVERTED
    assert (purchase.external_id, purchase.amount, purchase.kind) == (
        intent_id,
        card_offer.product.price_amount,
        "regular",
    )
    event = deliver(event_for("payment_intent.succeeded", stripe_object("payment_intents", intent_id)))
    assert event.status == "processed"
    assert Purchase.objects.filter(trial=trial).count() == 1


def test_a_declined_card_is_paid_with_another_card_each_attempt_a_new_charge(client, card_offer, deliver):
    trial = failed_trial(card_offer, CARD_DECLINES_OFF_SESSION)
    client.force_login(trial.customer)
    page = client.get("/me/")
    assert "Pay with another card" in page.content.decode()

    page = client.get(f"/me/trials/{trial.pk}/pay/")
    assert page.context["mode"] == "card" and 'data-mode="setup"' in page.content.decode()
    declined = client.post(
        f"/me/trials/{trial.pk}/pay/", {"setup_intent_id": new_card(page, CARD_DECLINES_OFF_SESSION)}
    )
    assert declined.status_code == 402 and "declined" in declined.content.decode()
    trial.refresh_from_db()
    assert (trial.status, trial.charge_attempt) == (Trial.Status.PAYMENT_FAILED, 1)
    assert not Purchase.objects.filter(trial=trial).exists()

    before = payment_intents_of(stripe_customer(trial))
    page = client.get(f"/me/trials/{trial.pk}/pay/")
    paid = client.post(f"/me/trials/{trial.pk}/pay/", {"setup_intent_id": new_card(page, CARD_OK)})

    assert paid.status_code == 302
    trial.refresh_from_db()
    (charged,) = payment_intents_of(stripe_customer(trial)) - before
    (purchase,) = Purchase.objects.filter(trial=trial)
    assert (trial.status, trial.charge_attempt, purchase.external_id) == (Trial.Status.CONVERTED, 2, charged)
    assert (
        deliver(event_for("payment_intent.succeeded", stripe_object("payment_intents", charged))).status == "processed"
    )
    assert Purchase.objects.filter(trial=trial).count() == 1


def test_a_subscription_whose_first_invoice_was_declined_is_paid_with_another_card(client, marketer):
    product = factories.product(sku="club", name="Coffee club", price_amount=999, interval="month")
    offer = live_offer(marketer, kind="free_trial", slug="club-monthly", inventory=5, product_=product)
    trial = failed_trial(offer, CARD_DECLINES_OFF_SESSION)
    assert trial.conversion_invoice_id.startswith("in_")
    client.force_login(trial.customer)

    page = client.get(f"/me/trials/{trial.pk}/pay/")
    paid = client.post(f"/me/trials/{trial.pk}/pay/", {"setup_intent_id": new_card(page, CARD_OK)})

    assert paid.status_code == 302
    trial.refresh_from_db()
    (purchase,) = Purchase.objects.filter(trial=trial)
    assert (trial.status, purchase.external_id, purchase.amount) == (
        Trial.Status.CONVERTED,
        trial.conversion_invoice_id,
        999,
    )
    (subscription,) = gateway.client().v1.subscriptions.list({"customer": stripe_customer(trial)}).data
    assert subscription.status == "active"


def test_another_customers_trial_is_a_404_and_a_trial_with_nothing_to_pay_charges_nothing(client, card_offer, outsider):
    trial = failed_trial(card_offer, CARD_NEEDS_3DS)
    client.force_login(outsider)
    assert client.get(f"/me/trials/{trial.pk}/pay/").status_code == 404
    assert client.post(f"/me/trials/{trial.pk}/pay/", {"payment_intent_id": "pi_x"}).status_code == 404

    services.trial_cancel(trial_id=trial.pk, customer=trial.customer, at=trial.ends_at + timedelta(hours=1))
    client.force_login(trial.customer)
    before = payment_intents_of(stripe_customer(trial))
    page = client.post(f"/me/trials/{trial.pk}/pay/", {"payment_intent_id": trial.conversion_payment_intent_id})

    assert page.status_code == 200 and "no payment waiting" in page.content.decode()
    assert payment_intents_of(stripe_customer(trial)) == before
    trial.refresh_from_db()
    assert trial.status == Trial.Status.CANCELLED and not Purchase.objects.filter(trial=trial).exists()


def test_someone_elses_card_is_refused_and_nothing_is_charged(client, card_offer, marketer):
    trial = failed_trial(card_offer, CARD_DECLINES_OFF_SESSION)
    other = gateway.customer_get_or_create(our_id="someone-else", email="eve@example.com")
    setup = gateway.setup_intent_start(customer_id=other, idempotency_key="eve")
    setup_intent_confirm(setup_intent_id=setup.id, payment_method_id=card_payment_method(CARD_OK))
    client.force_login(trial.customer)

    refused = client.post(f"/me/trials/{trial.pk}/pay/", {"setup_intent_id": setup.id})

    assert refused.status_code == 400
    trial.refresh_from_db()
    assert (trial.status, trial.charge_attempt) == (Trial.Status.PAYMENT_FAILED, 0)
    assert not Purchase.objects.filter(trial=trial).exists()


def test_a_charge_stripe_did_not_answer_is_retried_with_the_same_key_after_a_backoff(card_offer, settings):
    trial = card_claim(card_offer, "ann@example.com")
    reminders_delivered(trial)
    before = payment_intents_of(stripe_customer(trial))
    working = settings.STRIPE_API_BASE
    settings.STRIPE_API_BASE = "http://127.0.0.1:1"  # a closed port: Stripe unreachable

    assert clock.trials_convert_due(at=trial.ends_at) == {"unavailable": 1}
    settings.STRIPE_API_BASE = working
    assert clock.trials_converting_retry(at=trial.ends_at + timedelta(minutes=1)) == {}  # backing off
    assert clock.trials_convert_due(at=trial.ends_at + timedelta(minutes=1)) == {}  # not active: never a new key
    assert clock.trials_converting_retry(at=trial.ends_at + services.CHARGE_RETRY_AFTER) == {"converted": 1}
    assert clock.trials_converting_retry(at=trial.ends_at + timedelta(hours=1)) == {}

    trial.refresh_from_db()
    (charged,) = payment_intents_of(stripe_customer(trial)) - before
    assert trial.status == Trial.Status.CONVERTED and trial.charge_attempt == 0
    assert stripe_object("payment_intents", charged)["metadata"]["trial_id"] == str(trial.pk)
    assert Purchase.objects.get(trial=trial).external_id == charged


def test_the_retry_backs_off_longer_each_time_stripe_stays_down(card_offer, settings):
    trial = card_claim(card_offer, "ann@example.com")
    reminders_delivered(trial)
    settings.STRIPE_API_BASE = "http://127.0.0.1:1"
    clock.trials_convert_due(at=trial.ends_at)
    later = trial.ends_at + timedelta(minutes=20)

    assert clock.trials_converting_retry(at=later) == {"unavailable": 1}

    trial.refresh_from_db()
    assert trial.charge_retry_at == later + timedelta(minutes=20)  # as long again as it has waited


def test_a_reminder_that_failed_is_retried_and_the_charge_then_waits_for_the_notice_it_promised(
    client, card_offer, marketer
):
    from django.test import override_settings

    from accounts.emails import outbox_send_due
    from offers.models import Offer

    Offer.objects.filter(pk=card_offer.pk).update(reminder_days=[3, 1])
    card_offer.refresh_from_db()
    trial = card_claim(card_offer, "ann@example.com")
    early, last = clock.reminder_times(offer=trial.offer, variant=trial.variant, at=trial.claimed_at)
    assert trial.ends_at - last == timedelta(days=1)  # the last reminder promises a day's notice
    with time_machine.travel(early, tick=False):
        clock.reminders_send_due(at=early)
        assert outbox_send_due(at=early) >= 1
    with time_machine.travel(last, tick=False), override_settings(EMAIL_BACKEND=REFUSING):
        clock.reminders_send_due(at=last)
        outbox_send_due(at=last)  # the mail server refuses: the outbox backs off and tries again
    reminder = OutboxMessage.objects.get(key=clock.reminder_key(trial, last))
    assert reminder.sent_at is None

    with time_machine.travel(trial.ends_at, tick=False):
        assert clock.trials_convert_due(at=trial.ends_at) == {"waiting": 1}
        client.force_login(trial.customer)
        assert "we could not send you the reminder" in client.get("/me/").content.decode()
        client.force_login(marketer)
        console = client.get(f"/console/offers/{card_offer.slug}/trials/{trial.pk}/").content.decode()
        assert "we could not send you the reminder" in console

    late = trial.ends_at + timedelta(hours=2)
    with time_machine.travel(late, tick=False):
        assert outbox_send_due(at=late) >= 1  # the retry reaches the customer, two hours late
        assert clock.trials_convert_due(at=late) == {"waiting": 1}
        client.force_login(trial.customer)
        assert "reached you late" in client.get("/me/").content.decode()
    reminder.refresh_from_db()
    assert reminder.sent_at == late

    noticed = late + (trial.ends_at - last)  # the day's notice it promised, from when it was sent
    with time_machine.travel(noticed - timedelta(minutes=1), tick=False):
        assert clock.trials_convert_due(at=noticed - timedelta(minutes=1)) == {"waiting": 1}
    assert not Purchase.objects.filter(trial=trial).exists()
    with time_machine.travel(noticed, tick=False):
        assert clock.trials_convert_due(at=noticed) == {"converted": 1}
    trial.refresh_from_db()
    assert trial.status == Trial.Status.CONVERTED and trial.waiting_reason == ""
    assert Purchase.objects.filter(trial=trial, kind="regular").count() == 1


def test_a_retry_finds_the_charge_whose_answer_was_lost_instead_of_charging_again(card_offer, settings):
    trial = card_claim(card_offer, "ann@example.com")
    reminders_delivered(trial)
    before = payment_intents_of(stripe_customer(trial))
    working = settings.STRIPE_API_BASE
    settings.STRIPE_API_BASE = "http://127.0.0.1:1"
    assert clock.trials_convert_due(at=trial.ends_at) == {"unavailable": 1}
    settings.STRIPE_API_BASE = working
    # The charge was made at Stripe, but its answer never came back (localstripe ignores keys, so
    # only the lookup can find it).
    consent, product = trial.consent, card_offer.product
    lost = gateway.payment_intent_charge(
        customer_id=consent.stripe_customer_id, payment_method_id=consent.stripe_payment_method_id,
        amount=product.price_amount, currency=product.currency, idempotency_key=services.conversion_key(trial.pk),
        metadata={"product_sku": product.sku, "foretaste_kind": "regular", "trial_id": str(trial.pk)},
        off_session=True,
    )  # fmt: skip

    assert clock.trials_converting_retry(at=trial.ends_at + services.CHARGE_RETRY_AFTER) == {"converted": 1}

    assert payment_intents_of(stripe_customer(trial)) - before == {lost.id}
    assert Purchase.objects.get(trial=trial).external_id == lost.id


def test_an_imported_payment_failed_trial_has_no_payment_page_to_complete(client, customer):
    imported = factories.trial(customer=customer, offer=factories.offer(), status="payment_failed", source="import")
    client.force_login(customer)

    assert f"/me/trials/{imported.pk}/pay/" not in client.get("/me/").content.decode()
    page = client.get(f"/me/trials/{imported.pk}/pay/")
    assert page.status_code == 200 and "no payment waiting" in page.content.decode()
