"""Claiming a trial: a unit is reserved, Stripe is called with no lock held, then the claim is
confirmed (with its consent record) or released (everything given back). Every limit is held by
a constraint or a conditional update, and a refusal says why in plain words and keeps nothing."""

import hashlib
from datetime import timedelta

import pytest
from django.http import Http404
from post_office.models import Email

from accounts.models import OutboxMessage, User
from billing import gateway
from billing.models import Purchase
from offers import services as offer_services
from offers.models import Offer
from offers.terms import offer_terms
from tests import factories
from tests.billing.stripe_world import card_payment_method, setup_intent_confirm
from tests.factories import NOW
from tests.support import CARD_DECLINES_OFF_SESSION, CARD_NEEDS_3DS, CARD_OK
from trials import services
from trials.models import Assignment, ClaimIdentity, ClaimRefusal, ConsentRecord, DailyClaims, Trial, TrialEvent

pytestmark = pytest.mark.django_db
AT = NOW + timedelta(hours=1)
BROWSER = {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0 (test)"}
CARD_DECLINED = "4000000000000002"  # declined as soon as it is saved
HOME = {"line1": "Via Roma 1", "postal_code": "00100", "city": "Roma", "country": "IT"}


def live_offer(marketer, **values) -> Offer:
    offer = factories.offer(actor=marketer, **values)
    return offer_services.offer_launch(offer=offer, actor=marketer, at=NOW)


def assigned(offer, email: str | None = None, *, customer=None) -> Assignment:
    customer = customer or User.objects.create_user(email=email)
    variant = offer.variants.order_by("pk").first()
    return Assignment.objects.create(offer=offer, customer=customer, variant=variant, arm=variant.name, assigned_at=NOW)


def reserve(assignment, *, at=AT, **extra) -> Trial:
    return services.claim_reserve(assignment=assignment, customer=assignment.customer, at=at, **BROWSER, **extra)


def claim(assignment, *, at=AT, **extra) -> Trial:
    trial = reserve(assignment, at=at, **extra)
    return services.claim_confirm(trial_id=trial.pk, at=at + timedelta(seconds=5))


def refused(code: str, call) -> services.ClaimRefused:
    with pytest.raises(services.ClaimRefused) as caught:
        call()
    assert caught.value.code == code, caught.value.message
    return caught.value


def counters_agree(offer: Offer) -> bool:
    offer.refresh_from_db()
    holding = Trial.objects.filter(offer=offer).exclude(status=Trial.Status.ABANDONED).count()
    return offer.claimed_count == holding


@pytest.fixture
def sample(marketer):
    return live_offer(marketer, inventory=2)


# --- A free claim, reserved then confirmed ------------------------------------------------------
def test_a_claim_reserves_a_unit_then_confirms_it_with_a_consent_record(sample):
    assignment = assigned(sample, "ann@example.com")

    trial = reserve(assignment, language="de")
    sample.refresh_from_db()
    assert (trial.status, sample.claimed_count) == (Trial.Status.RESERVED, 1)

    confirmed = services.claim_confirm(trial_id=trial.pk, at=AT + timedelta(seconds=30))

    assert confirmed.status == Trial.Status.ACTIVE
    consent = ConsentRecord.objects.get(trial=trial)
    expected = offer_terms(offer=sample, variant=trial.variant, language="de", at=AT).text
    assert consent.terms_text == expected
    assert consent.terms_sha256 == hashlib.sha256(expected.encode("utf-8")).hexdigest()
    assert (consent.offer, consent.variant, consent.customer) == (sample, trial.variant, assignment.customer)
    assert consent.offer_version == sample.changes.order_by("-pk").first().pk
    assert consent.offer_snapshot["trial_days"] == 14 and consent.variant_snapshot["name"] == trial.variant.name
    assert (consent.ip, consent.user_agent) == ("203.0.113.7", "Mozilla/5.0 (test)")
    assert (consent.consented_at, consent.recorded_at) == (AT, AT + timedelta(seconds=30))
    assert (consent.trial_price, consent.price_after, consent.currency) == (0, 2400, "EUR")
    assert consent.trial_ends_at == AT + timedelta(days=14) == confirmed.ends_at
    assert list(trial.events.values_list("from_status", "to_status")) == [("", "reserved"), ("reserved", "active")]


def test_a_double_submit_and_a_second_confirm_do_no_harm(sample):
    assignment = assigned(sample, "ann@example.com")

    first = reserve(assignment)
    again = reserve(assignment)
    assert again.pk == first.pk
    services.claim_confirm(trial_id=first.pk, at=AT)
    services.claim_confirm(trial_id=first.pk, at=AT + timedelta(seconds=1))

    assert Trial.objects.count() == 1 and ConsentRecord.objects.count() == 1
    assert counters_agree(sample)
    refused("already_claimed", lambda: reserve(assignment))


# --- Each refusal, counted, with nothing kept ---------------------------------------------------
def test_a_sold_out_offer_refuses_the_next_claim_and_keeps_nothing(sample):
    claim(assigned(sample, "a@example.com"))
    claim(assigned(sample, "b@example.com"))
    late = assigned(sample, "c@example.com")

    assert refused("sold_out", lambda: reserve(late)).message == "All samples have been claimed."
    assert not Trial.objects.filter(assignment=late).exists()
    assert counters_agree(sample) and sample.claimed_count == 2
    assert ClaimRefusal.objects.get(offer=sample, reason="sold_out").count == 1


def test_the_daily_limit_refuses_the_days_last_claim_and_opens_again_the_next_day(marketer):
    offer = live_offer(marketer, daily_limit=1)
    claim(assigned(offer, "a@example.com"))

    refused("daily_limit", lambda: reserve(assigned(offer, "b@example.com")))
    claim(assigned(offer, "c@example.com"), at=AT + timedelta(days=1))

    assert sorted(DailyClaims.objects.filter(offer=offer).values_list("claimed", flat=True)) == [1, 1]


def test_one_person_with_two_addresses_of_one_mailbox_gets_one_trial(sample):
    claim(assigned(sample, "ann.b@gmail.com"))

    refusal = refused("same_email", lambda: reserve(assigned(sample, "annb+coffee@googlemail.com")))

    assert refusal.message == "You already tried this on June 1, 2026."
    assert ClaimRefusal.objects.get(offer=sample, reason="same_email").count == 1


def test_one_door_gets_one_physical_sample(marketer):
    offer = live_offer(marketer, physical=True)
    claim(assigned(offer, "a@example.com"), address=HOME)

    written_otherwise = {**HOME, "line1": "via roma, 1", "postal_code": "00 100"}
    refused("same_address", lambda: reserve(assigned(offer, "b@example.com"), address=written_otherwise))
    refused("address", lambda: reserve(assigned(offer, "c@example.com"), address={"line1": "Via Roma 1"}))
    refused("address", lambda: reserve(assigned(offer, "d@example.com")))
    assert Trial.objects.filter(offer=offer).count() == 1


def test_the_holdout_another_customers_arm_and_a_closed_offer_are_refused(sample, marketer):
    customer = User.objects.create_user(email="ann@example.com")
    holdout = Assignment.objects.create(offer=sample, customer=customer, arm="holdout", assigned_at=NOW)
    refused("holdout", lambda: reserve(holdout))

    forged = assigned(sample, "ben@example.com")
    refused("not_yours", lambda: services.claim_reserve(assignment=forged, customer=customer, at=AT, **BROWSER))

    offer_services.offer_pause(offer=sample, actor=marketer, at=AT)
    refused("paused", lambda: reserve(assigned(sample, "cy@example.com")))
    refused(
        "ended",
        lambda: reserve(
            assigned(live_offer(marketer, slug="later", product_=factories.product(sku="later")), "di@example.com"),
            at=NOW + timedelta(days=61),
        ),
    )
    assert not Trial.objects.exists()


def test_an_offer_paused_while_the_form_was_open_refuses_at_the_update(sample):
    assignment = assigned(sample, "ann@example.com")
    Offer.objects.filter(pk=sample.pk).update(status=Offer.Status.PAUSED)
    # The status read says live (the form was open); the conditional update says otherwise.
    sample.status = Offer.Status.LIVE

    refused("paused", lambda: reserve(assignment))
    assert counters_agree(sample)


def test_ineligible_customers_are_told_why(marketer):
    offer = live_offer(marketer, eligibility="new_customers", allowed_countries=["IT"])
    abroad = User.objects.create_user(email="fr@example.com", country="FR")
    refused("country", lambda: reserve(assigned(offer, customer=abroad)))

    regular = User.objects.create_user(email="reg@example.com", country="IT")
    Purchase.objects.create(
        customer=regular, product=offer.product, kind="regular", amount=2400, currency="EUR",
        purchased_at=NOW - timedelta(days=3), source="import", external_id="old-1",
    )  # fmt: skip
    assert refused("not_new", lambda: reserve(assigned(offer, customer=regular))).message == (
        "This offer is for new customers."
    )


# --- Release and the beat job -------------------------------------------------------------------
def test_a_release_gives_back_every_unit_and_the_person_may_claim_again(marketer):
    offer = live_offer(marketer, inventory=1, daily_limit=1, physical=True)
    assignment = assigned(offer, "ann@example.com")
    trial = reserve(assignment, address=HOME)

    assert services.claim_release(trial_id=trial.pk, reason="tab closed", at=AT + timedelta(minutes=1))
    assert not services.claim_release(trial_id=trial.pk, reason="again", at=AT + timedelta(minutes=2))

    offer.refresh_from_db()
    assert offer.claimed_count == 0
    assert DailyClaims.objects.get(offer=offer).claimed == 0
    assert not ClaimIdentity.objects.filter(offer=offer).exists()
    trial.refresh_from_db()
    assert trial.status == Trial.Status.ABANDONED
    again = claim(assignment, at=AT + timedelta(minutes=3), address=HOME)
    assert (again.pk, again.status) == (trial.pk, Trial.Status.ACTIVE)
    assert counters_agree(offer)


def test_the_beat_job_releases_stale_reservations_once(sample):
    stale = reserve(assigned(sample, "a@example.com"))
    fresh = reserve(assigned(sample, "b@example.com"), at=AT + timedelta(minutes=20))
    later = AT + services.RESERVATION_TTL + timedelta(minutes=1)

    assert services.reservations_release_stale(at=later) == 1
    assert services.reservations_release_stale(at=later) == 0

    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert (stale.status, fresh.status) == (Trial.Status.ABANDONED, Trial.Status.RESERVED)
    assert stale.events.filter(to_status=Trial.Status.ABANDONED).count() == 1
    assert counters_agree(sample) and sample.claimed_count == 1
    refused("expired", lambda: services.claim_confirm(trial_id=stale.pk, at=later))


# --- Cancellation -------------------------------------------------------------------------------
def test_cancelling_is_at_once_emails_a_confirmation_and_nothing_converts_afterwards(sample):
    trial = claim(assigned(sample, "ann@example.com"), language="de")
    customer = trial.customer

    cancelled = services.trial_cancel(trial_id=trial.pk, customer=customer, at=AT + timedelta(days=2))
    services.trial_cancel(trial_id=trial.pk, customer=customer, at=AT + timedelta(days=2, minutes=1))

    assert (cancelled.status, cancelled.cancelled_at) == (Trial.Status.CANCELLED, AT + timedelta(days=2))
    message = OutboxMessage.objects.get(user=customer, purpose=services.CANCELLATION_PURPOSE)
    assert (message.language, message.about_id) == ("de", trial.pk)
    assert Email.objects.count() == 2  # the claim's receipt, and one confirmation of the cancel
    assert not services.trial_convert(trial_id=trial.pk, at=AT + timedelta(days=14))
    assert not services.trial_payment_failed(trial_id=trial.pk, at=AT + timedelta(days=14))
    cancelled.refresh_from_db()
    assert cancelled.status == Trial.Status.CANCELLED
    assert list(TrialEvent.objects.filter(trial=trial).values_list("to_status", flat=True)) == [
        "reserved", "active", "cancelled",
    ]  # fmt: skip


def test_someone_elses_trial_is_not_found(sample, outsider):
    trial = claim(assigned(sample, "ann@example.com"))

    for trial_id in (trial.pk, "x", None):
        with pytest.raises(Http404):
            services.trial_cancel(trial_id=trial_id, customer=outsider, at=AT)
    trial.refresh_from_db()
    assert trial.status == Trial.Status.ACTIVE
    assert not OutboxMessage.objects.filter(purpose=services.CANCELLATION_PURPOSE).exists()


def test_a_converted_trial_cannot_be_cancelled(sample):
    trial = claim(assigned(sample, "ann@example.com"))
    services.trial_convert(trial_id=trial.pk, at=AT + timedelta(days=1))

    with pytest.raises(services.TrialTransitionNotAllowed):
        services.trial_cancel(trial_id=trial.pk, customer=trial.customer, at=AT + timedelta(days=2))


# --- With Stripe (localstripe) ----------------------------------------------------------------
@pytest.fixture
def card_trial(marketer):
    return live_offer(marketer, kind="free_trial", slug="club-trial", inventory=5)


def browser_saves_card(payment: services.ClaimPayment, number: str = CARD_OK) -> str:
    method = card_payment_method(number)
    setup_intent_confirm(setup_intent_id=payment.setup_intent_id, payment_method_id=method)
    return method


def test_a_card_trial_saves_the_card_and_records_its_last4_and_fingerprint(card_trial):
    assignment = assigned(card_trial, "ann@example.com")
    trial = reserve(assignment)

    payment = services.claim_payment_start(trial_id=trial.pk, at=AT)
    reloaded = services.claim_payment_start(trial_id=trial.pk, at=AT)
    assert reloaded.setup_intent_id == payment.setup_intent_id and payment.setup_client_secret
    method = browser_saves_card(payment)
    confirmed = services.claim_confirm(trial_id=trial.pk, setup_intent_id=payment.setup_intent_id, at=AT)

    consent = confirmed.consent
    assert confirmed.status == Trial.Status.ACTIVE
    assert consent.card_last4 == "4242"
    assert consent.card_fingerprint == gateway.card_details(payment_method_id=method).fingerprint
    assert (consent.stripe_setup_intent_id, consent.stripe_payment_method_id) == (payment.setup_intent_id, method)
    assert consent.stripe_customer_id == User.objects.get(pk=assignment.customer_id).stripe_customer_id


def test_the_same_card_on_a_second_account_is_refused_and_released(card_trial):
    first = reserve(assigned(card_trial, "ann@example.com"))
    payment = services.claim_payment_start(trial_id=first.pk, at=AT)
    browser_saves_card(payment)
    services.claim_confirm(trial_id=first.pk, setup_intent_id=payment.setup_intent_id, at=AT)

    second = reserve(assigned(card_trial, "ann.other@example.com"))
    payment = services.claim_payment_start(trial_id=second.pk, at=AT)
    browser_saves_card(payment)
    refused(
        "same_card", lambda: services.claim_confirm(trial_id=second.pk, setup_intent_id=payment.setup_intent_id, at=AT)
    )

    second.refresh_from_db()
    assert second.status == Trial.Status.ABANDONED and counters_agree(card_trial)
    assert ClaimRefusal.objects.get(offer=card_trial, reason="same_card").count == 1


def test_a_tampered_or_unconfirmed_setup_is_refused(card_trial):
    trial = reserve(assigned(card_trial, "ann@example.com"))
    payment = services.claim_payment_start(trial_id=trial.pk, at=AT)

    refused("tampered", lambda: services.claim_confirm(trial_id=trial.pk, setup_intent_id="seti_forged", at=AT))
    refused("tampered", lambda: services.claim_confirm(trial_id=trial.pk, at=AT))
    with pytest.raises(services.ClaimRefused):
        services.claim_confirm(trial_id=trial.pk, setup_intent_id=payment.setup_intent_id, at=AT)
    assert not ConsentRecord.objects.exists()


def test_a_paid_trial_charges_its_fee_once_into_the_ledger(marketer):
    offer = live_offer(marketer, kind="paid_trial", trial_price=100, slug="paid-club")
    trial = reserve(assigned(offer, "ann@example.com"))
    payment = services.claim_payment_start(trial_id=trial.pk, at=AT)
    browser_saves_card(payment)

    services.claim_confirm(trial_id=trial.pk, setup_intent_id=payment.setup_intent_id, at=AT)
    services.claim_confirm(trial_id=trial.pk, setup_intent_id=payment.setup_intent_id, at=AT)

    trial.refresh_from_db()
    fee = Purchase.objects.get(trial=trial)
    assert (fee.kind, fee.amount, fee.currency, fee.source, fee.external_id) == (
        "trial_fee", 100, "EUR", "stripe", trial.stripe_payment_intent_id,
    )  # fmt: skip
    state = gateway.payment_intent_state(payment_intent_id=trial.stripe_payment_intent_id)
    assert (state.status, state.metadata["trial_id"]) == ("succeeded", str(trial.pk))
    assert ConsentRecord.objects.get(trial=trial).stripe_payment_intent_id == trial.stripe_payment_intent_id


def test_a_declined_fee_releases_the_reservation(marketer):
    offer = live_offer(marketer, kind="sample", trial_price=300, slug="priced-sample", inventory=3)
    trial = reserve(assigned(offer, "ann@example.com"))
    payment = services.claim_payment_start(trial_id=trial.pk, at=AT)
    browser_saves_card(payment, CARD_DECLINES_OFF_SESSION)

    refused(
        "card_declined",
        lambda: services.claim_confirm(trial_id=trial.pk, setup_intent_id=payment.setup_intent_id, at=AT),
    )

    trial.refresh_from_db()
    assert trial.status == Trial.Status.ABANDONED and counters_agree(offer) and offer.claimed_count == 0
    assert not Purchase.objects.exists() and not ConsentRecord.objects.exists()
    assert not ClaimIdentity.objects.filter(offer=offer).exists()


def test_stripe_down_at_claim_releases_the_reservation_with_a_clear_error(card_trial, settings):
    trial = reserve(assigned(card_trial, "ann@example.com"))
    settings.STRIPE_API_BASE = "http://127.0.0.1:1"

    with pytest.raises(services.ClaimUnavailable):
        services.claim_payment_start(trial_id=trial.pk, at=AT)

    trial.refresh_from_db()
    assert (trial.status, trial.stripe_setup_intent_id) == (Trial.Status.ABANDONED, "")
    assert counters_agree(card_trial) and card_trial.claimed_count == 0


def test_cancelling_a_card_trial_before_the_end_charges_nothing(card_trial):
    trial = reserve(assigned(card_trial, "ann@example.com"))
    payment = services.claim_payment_start(trial_id=trial.pk, at=AT)
    browser_saves_card(payment)
    services.claim_confirm(trial_id=trial.pk, setup_intent_id=payment.setup_intent_id, at=AT)

    services.trial_cancel(trial_id=trial.pk, customer=trial.customer, at=AT + timedelta(days=1))

    # The end step starts only from active (a conditional update), so a cancelled trial never
    # reaches a charge.
    assert not Trial.objects.filter(pk=trial.pk, status=Trial.Status.ACTIVE).exists()
    assert not Purchase.objects.filter(customer=trial.customer).exists()


def bank_authenticates(payment_intent_id: str, client_secret: str) -> None:
    """What localstripe's ``confirmCardPayment`` does when the customer completes 3-D Secure."""
    import requests
    from django.conf import settings

    response = requests.post(
        f"{settings.STRIPE_API_BASE}/v1/payment_intents/{payment_intent_id}/_authenticate?success=true",
        json={"key": settings.STRIPE_PUBLISHABLE_KEY, "client_secret": client_secret},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def test_a_fee_the_bank_asks_to_authenticate_waits_for_3d_secure_then_completes(marketer):
    offer = live_offer(marketer, kind="paid_trial", trial_price=100, slug="paid-club")
    trial = reserve(assigned(offer, "ann@example.com"))
    payment = services.claim_payment_start(trial_id=trial.pk, at=AT)
    method = card_payment_method(CARD_NEEDS_3DS)
    assert setup_intent_confirm(setup_intent_id=payment.setup_intent_id, payment_method_id=method).status == (
        "requires_action"
    )
    refused(
        "card_pending",
        lambda: services.claim_confirm(trial_id=trial.pk, setup_intent_id=payment.setup_intent_id, at=AT),
    )
    gateway.client().v1.setup_intents.confirm(payment.setup_intent_id)  # confirmCardSetup after its modal

    with pytest.raises(services.ClaimPaymentAction) as asked:
        services.claim_confirm(trial_id=trial.pk, setup_intent_id=payment.setup_intent_id, at=AT)
    trial.refresh_from_db()
    assert trial.status == Trial.Status.RESERVED and not Purchase.objects.exists()
    bank_authenticates(asked.value.payment_intent_id, asked.value.client_secret)
    confirmed = services.claim_confirm(
        trial_id=trial.pk, setup_intent_id=payment.setup_intent_id,
        payment_intent_id=asked.value.payment_intent_id, at=AT + timedelta(minutes=1),
    )  # fmt: skip

    assert confirmed.status == Trial.Status.ACTIVE
    assert Purchase.objects.get(trial=trial).external_id == asked.value.payment_intent_id
    assert confirmed.consent.card_last4 == CARD_NEEDS_3DS[-4:]


def test_a_card_already_used_is_refused_before_any_fee_is_charged(marketer):
    offer = live_offer(marketer, kind="paid_trial", trial_price=100, slug="paid-club")
    trials = []
    for email in ("ann@example.com", "ann.again@example.com"):
        trial = reserve(assigned(offer, email))
        payment = services.claim_payment_start(trial_id=trial.pk, at=AT)
        browser_saves_card(payment)
        trials.append((trial, payment))

    (first, first_payment), (second, second_payment) = trials
    services.claim_confirm(trial_id=first.pk, setup_intent_id=first_payment.setup_intent_id, at=AT)
    refused(
        "same_card",
        lambda: services.claim_confirm(trial_id=second.pk, setup_intent_id=second_payment.setup_intent_id, at=AT),
    )

    assert Purchase.objects.count() == 1
    assert Trial.objects.filter(offer=offer, stripe_payment_intent_id="").get().status == Trial.Status.ABANDONED


def test_stripe_slow_at_claim_gives_up_releases_and_says_try_again(card_trial, settings, monkeypatch):
    import socket

    # A server that accepts the connection and never answers.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    try:
        trial = reserve(assigned(card_trial, "ann@example.com"))
        settings.STRIPE_API_BASE = f"http://127.0.0.1:{silent.getsockname()[1]}"
        monkeypatch.setattr(services, "CLAIM_STRIPE_TIMEOUT", 0.5)

        with pytest.raises(services.ClaimUnavailable):
            services.claim_payment_start(trial_id=trial.pk, at=AT)
    finally:
        silent.close()

    trial.refresh_from_db()
    assert trial.status == Trial.Status.ABANDONED and counters_agree(card_trial)


def test_a_fee_is_not_charged_when_the_reservation_is_about_to_be_released(marketer):
    offer = live_offer(marketer, kind="paid_trial", trial_price=100, slug="paid-club")
    trial = reserve(assigned(offer, "ann@example.com"))
    payment = services.claim_payment_start(trial_id=trial.pk, at=AT)
    browser_saves_card(payment)
    late = AT + services.RESERVATION_TTL - services.CHARGE_MARGIN + timedelta(seconds=1)

    refused(
        "expired", lambda: services.claim_confirm(trial_id=trial.pk, setup_intent_id=payment.setup_intent_id, at=late)
    )

    trial.refresh_from_db()
    assert (trial.status, trial.stripe_payment_intent_id) == (Trial.Status.ABANDONED, "")
    assert not Purchase.objects.exists() and counters_agree(offer)


def test_a_card_declined_while_saving_releases_the_reservation(card_trial):
    trial = reserve(assigned(card_trial, "ann@example.com"))
    payment = services.claim_payment_start(trial_id=trial.pk, at=AT)
    with pytest.raises(Exception, match="declined"):  # what Stripe.js shows the customer
        setup_intent_confirm(
            setup_intent_id=payment.setup_intent_id, payment_method_id=card_payment_method(CARD_DECLINED)
        )

    refused(
        "card_declined",
        lambda: services.claim_confirm(trial_id=trial.pk, setup_intent_id=payment.setup_intent_id, at=AT),
    )

    trial.refresh_from_db()
    assert trial.status == Trial.Status.ABANDONED and counters_agree(card_trial) and card_trial.claimed_count == 0


def test_releasing_a_claim_whose_fee_waits_for_the_bank_cancels_the_fee_at_stripe(
    marketer, django_capture_on_commit_callbacks
):
    offer = live_offer(marketer, kind="paid_trial", trial_price=100, slug="paid-club")
    trial = reserve(assigned(offer, "ann@example.com"))
    payment = services.claim_payment_start(trial_id=trial.pk, at=AT)
    setup_intent_confirm(setup_intent_id=payment.setup_intent_id, payment_method_id=card_payment_method(CARD_NEEDS_3DS))
    gateway.client().v1.setup_intents.confirm(payment.setup_intent_id)
    with pytest.raises(services.ClaimPaymentAction) as asked:
        services.claim_confirm(trial_id=trial.pk, setup_intent_id=payment.setup_intent_id, at=AT)

    with django_capture_on_commit_callbacks(execute=True):
        assert services.reservations_release_stale(at=AT + services.RESERVATION_TTL + timedelta(seconds=1)) == 1

    assert gateway.payment_intent_get(payment_intent_id=asked.value.payment_intent_id).status == "canceled"
    assert not Purchase.objects.exists()


def payment_intents_of(stripe_customer: str) -> set[str]:
    intents = gateway.client().v1.payment_intents.list({"limit": 100}).auto_paging_iter()
    return {intent.id for intent in intents if intent.customer == stripe_customer}


def test_a_second_confirm_while_the_first_is_charging_the_fee_waits_and_charges_nothing(marketer):
    offer = live_offer(marketer, kind="paid_trial", trial_price=100, slug="paid-club")
    trial = reserve(assigned(offer, "ann@example.com"))
    payment = services.claim_payment_start(trial_id=trial.pk, at=AT)
    browser_saves_card(payment)
    # The first confirmation has claimed the charge and is calling Stripe.
    Trial.objects.filter(pk=trial.pk).update(stripe_payment_intent_id=services.CHARGING)
    before = payment_intents_of(User.objects.get(pk=trial.customer_id).stripe_customer_id)

    refused(
        "card_pending",
        lambda: services.claim_confirm(trial_id=trial.pk, setup_intent_id=payment.setup_intent_id, at=AT),
    )

    assert payment_intents_of(User.objects.get(pk=trial.customer_id).stripe_customer_id) == before
    trial.refresh_from_db()
    assert trial.status == Trial.Status.RESERVED
