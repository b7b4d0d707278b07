"""A marketer's answer to a feedback can refund the trial's charge: through the gateway, with a
negative ledger row at once under the refund's id, which the later ``charge.refunded`` webhook
does not duplicate; bad amounts and a refusal at Stripe change nothing and send nothing."""

import pytest

from accounts.models import OutboxMessage
from billing import gateway
from billing.models import Purchase, StripeEvent
from tests.billing.stripe_world import event_for, post_event, stripe_object
from tests.trials.test_claim import live_offer
from tests.trials.test_conversion import card_claim, reminders_delivered
from trials import clock, services
from trials.models import Feedback, Trial

pytestmark = pytest.mark.django_db


@pytest.fixture
def converted(marketer):
    offer = live_offer(marketer, kind="free_trial", slug="club-trial", inventory=5)
    trial = card_claim(offer, "ann@example.com")
    Trial.objects.filter(pk=trial.pk).update(language="it")
    reminders_delivered(trial)
    assert clock.trials_convert_due(at=trial.ends_at) == {"converted": 1}
    trial.refresh_from_db()
    return trial


@pytest.fixture
def feedback(converted):
    return Feedback.objects.create(trial=converted, promise_met="no", rating=1, answered_at=converted.ends_at)


def answer(client, feedback, **data):
    offer = feedback.trial.offer
    return client.post(f"/console/offers/{offer.slug}/feedback/{feedback.pk}/answer/", {"response": "Sorry.", **data})


def test_a_refund_with_the_answer_is_one_negative_row_the_webhook_does_not_duplicate(
    client, marketer, feedback, django_capture_on_commit_callbacks
):
    charge = Purchase.objects.get(trial=feedback.trial)
    client.force_login(marketer)

    response = answer(client, feedback, refund="5.00")

    assert response.status_code == 302
    (refund,) = gateway.refunds_of(payment_intent_id=charge.external_id)
    row = Purchase.objects.get(refund_of=charge)
    assert (row.external_id, row.amount, row.source) == (refund.id, -500, "stripe")
    feedback.refresh_from_db()
    assert feedback.responded_at is not None and feedback.responded_by == marketer
    apology = OutboxMessage.objects.get(key=f"trial-{feedback.trial_id}-feedback-answer")
    assert apology.email.subject.startswith("A proposito della tua prova")  # the customer's language

    latest_charge = stripe_object("payment_intents", charge.external_id)["latest_charge"]["id"]
    with django_capture_on_commit_callbacks(execute=True):
        assert (
            post_event(client, event_for("charge.refunded", stripe_object("charges", latest_charge))).status_code == 200
        )
    assert StripeEvent.objects.get(type="charge.refunded").status == "processed"
    assert Purchase.objects.filter(refund_of=charge).count() == 1


@pytest.mark.parametrize(
    ("refund", "error"),
    [("abc", "like 12.50"), ("0", "more than zero"), ("-1", "like 12.50"), ("1.234", "like 12.50"),
     ("99999.00", "At most")],
)  # fmt: skip
def test_a_bad_refund_amount_is_refused_and_nothing_changes(client, marketer, feedback, refund, error):
    client.force_login(marketer)

    response = client.get(answer(client, feedback, refund=refund).url)

    assert error in response.content.decode()
    feedback.refresh_from_db()
    assert feedback.responded_at is None
    assert not Purchase.objects.filter(refund_of__isnull=False).exists()
    assert not OutboxMessage.objects.filter(key=f"trial-{feedback.trial_id}-feedback-answer").exists()


def test_no_more_than_what_is_left_can_be_refunded(marketer, feedback):
    charge = Purchase.objects.get(trial=feedback.trial)
    services.feedback_answer(
        feedback_id=feedback.pk, actor=marketer, text="Sorry.", refund="20.00", at=charge.purchased_at
    )

    assert services.feedback_refundable(trial_id=feedback.trial_id) == (charge, charge.amount - 2000)


def test_a_refund_stripe_refuses_records_nothing_and_sends_nothing(client, marketer, feedback, settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:1"  # Stripe unreachable
    client.force_login(marketer)

    response = answer(client, feedback, refund="5.00")

    assert "Nothing was refunded or sent" in client.get(response.url).content.decode()
    feedback.refresh_from_db()
    assert feedback.responded_at is None and feedback.response == ""
    assert not Purchase.objects.filter(refund_of__isnull=False).exists()
    assert not OutboxMessage.objects.filter(key=f"trial-{feedback.trial_id}-feedback-answer").exists()


def test_a_trial_that_charged_nothing_has_nothing_to_refund(client, marketer, customer):
    from tests import factories

    trial = factories.trial(customer=customer, offer=factories.offer(), status=Trial.Status.EXPIRED)
    feedback = Feedback.objects.create(trial=trial, promise_met="no", rating=1, answered_at=trial.ends_at)
    client.force_login(marketer)

    response = client.get(answer(client, feedback, refund="1.00").url)

    assert "nothing to refund" in response.content.decode()
    feedback.refresh_from_db()
    assert feedback.responded_at is None


def test_an_answer_without_a_refund_is_sent_as_before(client, marketer, feedback):
    client.force_login(marketer)

    assert answer(client, feedback).status_code == 302

    feedback.refresh_from_db()
    assert feedback.responded_at is not None
    assert not Purchase.objects.filter(refund_of__isnull=False).exists()
