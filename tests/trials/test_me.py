"""The customer's own page shows exactly their trials, with the days left and the next charge,
their receipts, every email we sent them, and lets them download all of it."""

import json
from datetime import timedelta

import pytest
import time_machine

from accounts.emails import email_queue
from billing.ledger import purchase_record, refund_record
from tests import factories
from tests.factories import NOW
from trials.models import Trial

pytestmark = pytest.mark.django_db


@pytest.fixture
def card_trial_offer(db):
    product = factories.product(sku="club", name="Coffee club", price_amount=999, interval="month")
    return factories.offer(slug="club-trial", name="Coffee club trial", kind="free_trial", product_=product)


@time_machine.travel(NOW + timedelta(days=3, hours=1), tick=False)
def test_an_active_card_trial_shows_its_days_left_and_the_date_and_amount_of_the_first_charge(
    client, customer, card_trial_offer
):
    factories.trial(customer=customer, offer=card_trial_offer)  # claimed at NOW, ends NOW + 14 days
    client.force_login(customer)

    page = client.get("/me/").content.decode()

    assert "Coffee club trial" in page
    assert "Active" in page
    assert "11 days" in page  # 10 days and 23 hours left: rounded up, never "0 days" on the last day
    assert "€9.99 on June 15, 2026" in page


@time_machine.travel(NOW + timedelta(days=1), tick=False)
def test_a_sample_or_a_cancelled_trial_promises_no_charge(client, customer, card_trial_offer):
    sample = factories.offer(slug="espresso-sample", kind="sample")
    factories.trial(customer=customer, offer=sample)
    factories.trial(customer=customer, offer=card_trial_offer, status=Trial.Status.CANCELLED)
    client.force_login(customer)

    response = client.get("/me/")

    lines = {line.offer_name: line for line in response.context["trials"]}
    assert lines["Coffee sampler"].next_charge is None
    assert lines["Coffee sampler"].days_left == 13
    assert lines["Coffee club trial"].next_charge is None
    assert lines["Coffee club trial"].days_left is None
    assert lines["Coffee club trial"].status == "Cancelled"


def test_nobody_sees_another_customers_trials_purchases_or_emails(client, customer, outsider):
    offer = factories.offer()
    factories.trial(customer=outsider, offer=offer)
    purchase_record(
        customer=outsider, product=offer.product, kind="regular", amount=2400, currency="EUR",
        purchased_at=NOW, source="api", external_id="theirs",
    )  # fmt: skip
    email_queue(to=outsider.email, subject="Your secret receipt", text="…", purpose="receipt", user=outsider)
    client.force_login(customer)

    response = client.get("/me/")

    assert response.context["trials"] == []
    assert response.context["purchases"] == []
    assert response.context["emails"] == []
    assert "Your secret receipt" not in response.content.decode()
    data = client.get("/me/data.json").json()
    assert data["trials"] == [] and data["purchases"] == [] and data["emails"] == []


def test_receipts_and_refunds_and_every_email_are_listed(client, customer):
    product = factories.product()
    bought = purchase_record(
        customer=customer, product=product, kind="regular", amount=2400, currency="EUR",
        purchased_at=NOW, source="api", external_id="p-1",
    ).purchase  # fmt: skip
    refund_record(original=bought, amount=400, refunded_at=NOW + timedelta(days=2), source="api", external_id="r-1")
    email_queue(to=customer.email, subject="Two days left on your trial", text="…", purpose="reminder", user=customer)
    client.force_login(customer)

    page = client.get("/me/").content.decode()

    assert "€24.00" in page and "-€4.00" in page
    assert "Refund" in page
    assert "Two days left on your trial" in page


def test_download_my_data_holds_the_account_the_trials_with_their_history_and_the_purchases(client, customer):
    offer = factories.offer()
    factories.trial(customer=customer, offer=offer)
    purchase_record(
        customer=customer, product=offer.product, kind="regular", amount=2400, currency="EUR",
        purchased_at=NOW + timedelta(days=5), source="api", external_id="p-1",
    )  # fmt: skip
    client.force_login(customer)

    response = client.get("/me/data.json")

    assert response["Content-Disposition"].startswith("attachment")
    data = json.loads(response.content)
    assert data["account"]["email"] == customer.email
    assert data["assignments"][0]["offer"] == "coffee-sampler"
    (trial,) = data["trials"]
    assert trial["offer"] == "coffee-sampler"
    # The purchase converted the open trial, and the history says so.
    assert trial["status"] == "converted"
    assert [(e["from"], e["to"]) for e in trial["history"]] == [("active", "converted")]
    assert data["purchases"] == [
        {"product": "beans-1kg", "kind": "regular", "amount": "24.00", "currency": "EUR",
         "purchased_at": (NOW + timedelta(days=5)).isoformat(), "refund": False}
    ]  # fmt: skip


@pytest.mark.parametrize("path", ["/me/", "/me/data.json"])
def test_a_visitor_who_is_not_logged_in_is_sent_to_log_in(client, path):
    response = client.get(path)

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]
