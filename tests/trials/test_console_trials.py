"""Marketers see each offer's trials: the list with a status filter, and one trial's page with
its history, the emails about it and its charges."""

from datetime import timedelta

import pytest

from accounts.emails import email_queue
from billing.ledger import purchase_record
from tests import factories
from tests.factories import NOW
from trials.models import Trial

pytestmark = pytest.mark.django_db


@pytest.fixture
def offer(db):
    return factories.offer()


def test_the_list_shows_every_trial_and_filters_by_status(as_marketer, offer, customer, outsider):
    active = factories.trial(customer=customer, offer=offer)
    cancelled = factories.trial(customer=outsider, offer=offer, status=Trial.Status.CANCELLED)

    everything = as_marketer.get(f"/console/offers/{offer.slug}/trials/")
    only_cancelled = as_marketer.get(f"/console/offers/{offer.slug}/trials/?status=cancelled")

    assert list(everything.context["page"].object_list) == [cancelled, active]  # newest claim first (pk breaks the tie)
    assert customer.email in everything.content.decode() and outsider.email in everything.content.decode()
    assert list(only_cancelled.context["page"].object_list) == [cancelled]


def test_an_unknown_status_filter_shows_every_trial_rather_than_an_error(as_marketer, offer, customer):
    factories.trial(customer=customer, offer=offer)

    response = as_marketer.get(f"/console/offers/{offer.slug}/trials/?status=<script>")

    assert response.status_code == 200
    assert len(response.context["page"].object_list) == 1


def test_an_offer_nobody_claimed_says_so(as_marketer, offer):
    response = as_marketer.get(f"/console/offers/{offer.slug}/trials/")

    assert "Nobody has claimed this offer yet." in response.content.decode()


def test_a_trials_page_shows_its_history_the_emails_about_it_and_its_charges(as_marketer, offer, customer):
    trial = factories.trial(customer=customer, offer=offer)
    email_queue(
        to=customer.email, subject="Your sample is on its way", text="…", purpose="receipt", user=customer,
        about=trial,
    )  # fmt: skip
    email_queue(to=customer.email, subject="Unrelated newsletter", text="…", purpose="account_notice", user=customer)
    purchase_record(
        customer=customer, product=offer.product, kind="regular", amount=2400, currency="EUR",
        purchased_at=NOW + timedelta(days=3), source="api", external_id="p-1", trial_id=trial.pk,
    )  # fmt: skip

    page = as_marketer.get(f"/console/offers/{offer.slug}/trials/{trial.pk}/").content.decode()

    assert "active → converted" in page
    assert "Your sample is on its way" in page
    assert "Unrelated newsletter" not in page
    assert "€24.00" in page


def test_a_trial_of_another_offer_is_not_found_under_this_one(as_marketer, offer, customer):
    other = factories.offer(slug="other-offer", product_=offer.product)
    trial = factories.trial(customer=customer, offer=other)

    assert as_marketer.get(f"/console/offers/{offer.slug}/trials/{trial.pk}/").status_code == 404
    assert as_marketer.get(f"/console/offers/{offer.slug}/trials/999999/").status_code == 404


def test_a_claimed_trials_page_shows_its_consent_record_and_the_offer_counts_refusals(as_marketer, marketer):
    from tests.trials.test_claim import assigned, claim, live_offer
    from trials import services

    offer = live_offer(marketer)
    trial = claim(assigned(offer, "ann.b@gmail.com"))
    with pytest.raises(services.ClaimRefused):
        claim(assigned(offer, "annb+again@googlemail.com"))  # the same mailbox: one trial per person

    page = as_marketer.get(f"/console/offers/{offer.slug}/trials/{trial.pk}/").content.decode()
    listing = as_marketer.get(f"/console/offers/{offer.slug}/trials/").content.decode()

    assert trial.consent.terms_sha256 in page
    assert "Consent record" in page
    assert "same_email</code>: 1" in listing


def test_the_pager_keeps_the_status_filter(as_marketer, offer):
    from accounts.models import User

    for n in range(51):
        factories.trial(customer=User.objects.create_user(email=f"c{n}@example.com"), offer=offer)

    first = as_marketer.get(f"/console/offers/{offer.slug}/trials/?status=active").content.decode()
    second = as_marketer.get(f"/console/offers/{offer.slug}/trials/?page=2&status=active")

    assert 'href="?page=2&amp;status=active"' in first
    assert "Page 1 of 2" in first
    assert len(second.context["page"].object_list) == 1
