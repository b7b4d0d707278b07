"""The purchases ledger loses nothing and counts nothing twice: writes are idempotent by
(source, external id), refunds are bounded negative rows, and a paid purchase converts the
customer's open trials of that product."""

from datetime import timedelta

import pytest

from accounts.demo import user_ensure
from billing import ledger
from billing.models import Purchase
from tests import factories
from tests.factories import NOW
from trials.models import Assignment, Trial, TrialEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def beans(db):
    return factories.product()


def buy(customer, product, *, external_id="pi_1", amount=2400, kind="regular", at=NOW, source="stripe"):
    return ledger.purchase_record(
        customer=customer, product=product, kind=kind, amount=amount, currency="EUR", purchased_at=at,
        source=source, external_id=external_id,
    )  # fmt: skip


def test_the_same_purchase_recorded_twice_is_one_row(customer, beans):
    first = buy(customer, beans)
    again = buy(customer, beans)

    assert first.created and not again.created
    assert again.purchase == first.purchase
    assert Purchase.objects.count() == 1


def test_the_same_external_id_with_other_content_is_refused_not_overwritten(customer, beans):
    buy(customer, beans, amount=2400)

    with pytest.raises(ledger.LedgerError, match="different content"):
        buy(customer, beans, amount=2500)
    assert Purchase.objects.get().amount == 2400


def test_the_same_external_id_from_another_source_is_another_purchase(customer, beans):
    buy(customer, beans, source="stripe")
    buy(customer, beans, source="import")

    assert Purchase.objects.count() == 2


def test_a_purchase_must_be_positive(customer, beans):
    with pytest.raises(ledger.LedgerError, match="positive"):
        buy(customer, beans, amount=-100)
    assert not Purchase.objects.exists()


def test_refunds_are_negative_rows_that_never_exceed_the_original(customer, beans):
    original = buy(customer, beans, amount=2400).purchase

    ledger.refund_record(original=original, amount=400, refunded_at=NOW, source="stripe", external_id="re_1")
    again = ledger.refund_record(original=original, amount=400, refunded_at=NOW, source="stripe", external_id="re_1")
    with pytest.raises(ledger.LedgerError, match="more than is left"):
        ledger.refund_record(original=original, amount=2001, refunded_at=NOW, source="stripe", external_id="re_2")
    ledger.refund_record(original=original, amount=2000, refunded_at=NOW, source="stripe", external_id="re_3")

    assert not again.created
    assert sorted(Purchase.objects.values_list("amount", flat=True)) == [-2000, -400, 2400]
    assert set(original.refunds.values_list("refund_of", flat=True)) == {original.pk}


def test_a_refund_cannot_be_refunded(customer, beans):
    original = buy(customer, beans).purchase
    refund = ledger.refund_record(original=original, amount=100, refunded_at=NOW, source="stripe", external_id="re_1")

    with pytest.raises(ledger.LedgerError, match="cannot itself"):
        ledger.refund_record(original=refund.purchase, amount=50, refunded_at=NOW, source="stripe", external_id="re_2")


def _claimed_trial(offer, customer, *, status=Trial.Status.ACTIVE, claimed_at=NOW):
    variant = offer.variants.get()
    assignment = Assignment.objects.create(
        offer=offer, customer=customer, variant=variant, arm=variant.name, assigned_at=claimed_at
    )
    return Trial.objects.create(
        assignment=assignment, offer=offer, customer=customer, variant=variant, status=status,
        claimed_at=claimed_at, ends_at=claimed_at + timedelta(days=14),
    )  # fmt: skip


def test_the_first_paid_purchase_after_the_claim_converts_the_trial_once(customer, beans, marketer):
    trial = _claimed_trial(factories.offer(actor=marketer, product_=beans), customer)

    buy(customer, beans, external_id="pi_1", at=NOW + timedelta(days=15))
    buy(customer, beans, external_id="pi_2", at=NOW + timedelta(days=45))

    trial.refresh_from_db()
    assert trial.status == Trial.Status.CONVERTED
    assert trial.converted_at == NOW + timedelta(days=15)
    assert TrialEvent.objects.filter(trial=trial, to_status="converted").count() == 1


def test_trial_fees_samples_and_purchases_before_the_claim_do_not_convert(customer, beans, marketer):
    trial = _claimed_trial(factories.offer(actor=marketer, product_=beans), customer)

    buy(customer, beans, external_id="fee", kind="trial_fee", amount=100, at=NOW + timedelta(days=1))
    buy(customer, beans, external_id="sample", kind="sample", amount=200, at=NOW + timedelta(days=1))
    buy(customer, beans, external_id="before", at=NOW - timedelta(days=1))

    trial.refresh_from_db()
    assert trial.status == Trial.Status.ACTIVE


def test_a_cancelled_trial_stays_cancelled_when_the_customer_buys_later(customer, beans, marketer):
    trial = _claimed_trial(factories.offer(actor=marketer, product_=beans), customer, status=Trial.Status.CANCELLED)

    buy(customer, beans, at=NOW + timedelta(days=20))

    trial.refresh_from_db()
    assert trial.status == Trial.Status.CANCELLED


def test_customers_are_matched_by_stripe_id_then_by_canonical_email(db):
    ann = user_ensure(email="ann.lee@gmail.com", password="x" * 12)
    bob = user_ensure(email="bob@example.com", password="x" * 12)
    type(bob).objects.filter(pk=bob.pk).update(stripe_customer_id="cus_bob")

    assert ledger.customer_match(stripe_customer_id="cus_bob", email="ann.lee@gmail.com") == bob
    assert ledger.customer_match(stripe_customer_id="cus_unknown", email="AnnLee+shop@googlemail.com") == ann
    assert ledger.customer_match(email="nobody@example.com") is None
