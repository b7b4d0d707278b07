"""The claim on the web, through the Django client: the landing page's form, reserve, the card
page, confirm, and every refusal with nothing kept."""

from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.utils import timezone

from offers import services as offer_services
from offers.models import Offer
from tests import factories
from tests.trials.test_claim import browser_saves_card
from trials import services
from trials.models import Assignment, ConsentRecord, Trial

pytestmark = pytest.mark.django_db
CONSENT = "I have read the terms above and agree to them."


def live(marketer, **values) -> Offer:
    now = timezone.now()
    values = {"starts_at": now - timedelta(hours=1), "ends_at": now + timedelta(days=60), **values}
    offer = factories.offer(actor=marketer, **values)
    offer = offer_services.offer_launch(offer=offer, actor=marketer, at=now - timedelta(minutes=30))
    offer.holdout_percent = 0
    return offer


@pytest.fixture(autouse=True)
def fresh_counts(settings):
    # The claim's rate limit counts in the cache, across tests; each test starts with none used.
    from django.core.cache import cache

    cache.clear()
    settings.FORETASTE_RATE_LIMITS = {"claim": "1000/10m/ip,1000/10m/user"}


@pytest.fixture
def logged_in(client, customer):
    client.force_login(customer)
    return client


def landing(client, offer):
    return client.get(f"/o/{offer.slug}/")


def test_the_consent_box_starts_unticked_and_missing_consent_writes_nothing(logged_in, marketer):
    offer = live(marketer)
    page = landing(logged_in, offer).content.decode()
    assert CONSENT in page and 'name="consent"' in page
    box = page[page.index('name="consent"') - 200 : page.index('name="consent"') + 200]
    assert "checked" not in box

    refused = logged_in.post(f"/o/{offer.slug}/claim/", {})
    assert refused.status_code == 400
    assert "Please tick the box to agree to the terms." in refused.content.decode()
    assert not Trial.objects.exists()


def test_an_unverified_email_cannot_claim(logged_in, customer, marketer):
    offer = live(marketer)
    EmailAddress.objects.filter(user=customer).update(verified=False)
    page = landing(logged_in, offer).content.decode()
    assert "Please verify your email address" in page and 'name="consent"' not in page
    response = logged_in.post(f"/o/{offer.slug}/claim/", {"consent": "on"})
    assert response.status_code == 400 and not Trial.objects.exists()


def test_a_no_card_sample_claim_ends_active_with_a_consent_record_on_me(logged_in, customer, marketer):
    offer = live(marketer, variants=[{"name": "a"}, {"name": "b", "trial_days": 10}])
    landing(logged_in, offer)
    assignment = Assignment.objects.get(offer=offer, customer=customer)
    other = offer.variants.exclude(pk=assignment.variant_id).first()

    response = logged_in.post(
        f"/o/{offer.slug}/claim/", {"consent": "on", "arm": other.name, "variant": other.pk}, follow=True
    )

    assert response.redirect_chain[-1][0] == "/me/"
    trial = Trial.objects.get(customer=customer)
    assert trial.status == Trial.Status.ACTIVE and trial.variant_id == assignment.variant_id  # forged arm ignored
    assert ConsentRecord.objects.filter(trial=trial).exists()
    page = response.content.decode()
    assert "Your trial has started" in page and offer.name in page
    again = logged_in.post(f"/o/{offer.slug}/claim/", {"consent": "on"})  # a double submit
    assert again.status_code == 409 and Trial.objects.count() == 1 and ConsentRecord.objects.count() == 1


def test_behind_a_trusted_proxy_the_consent_records_the_clients_address(logged_in, customer, marketer, settings):
    # The same address the rate limits count, not the proxy's, which every claim would share.
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    offer = live(marketer)
    landing(logged_in, offer)

    response = logged_in.post(
        f"/o/{offer.slug}/claim/", {"consent": "on"}, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.44"
    )

    assert response.status_code == 302
    assert ConsentRecord.objects.get(trial__customer=customer).ip == "203.0.113.44"


def test_sold_out_while_the_form_was_open_and_paused_are_refused_plainly(logged_in, customer, marketer):
    offer = live(marketer, inventory=1)
    landing(logged_in, offer)
    Offer.objects.filter(pk=offer.pk).update(claimed_count=1)
    response = logged_in.post(f"/o/{offer.slug}/claim/", {"consent": "on"})
    assert response.status_code == 409 and "All samples have been claimed." in response.content.decode()
    assert not Trial.objects.exists()

    Offer.objects.filter(pk=offer.pk).update(claimed_count=0, status=Offer.Status.PAUSED)
    response = logged_in.post(f"/o/{offer.slug}/claim/", {"consent": "on"})
    assert response.status_code == 409 and not Trial.objects.exists()


@pytest.mark.parametrize(
    ("country", "code", "ok"),
    [
        ("DE", "10115", True), ("DE", "1011", False), ("FR", "75001", True), ("FR", "7500A", False),
        ("IT", "00100", True), ("IT", "001000", False), ("PL", "00-950", True), ("PL", "00950", False),
        ("GB", "SW1A 1AA", True), ("GB", "12345", False), ("US", "10001-1234", True), ("US", "1000", False),
        ("RU", "101000", True), ("RU", "10100", False),
    ],
)  # fmt: skip
def test_a_physical_sample_checks_the_postal_code_per_country(logged_in, customer, marketer, country, code, ok):
    offer = live(marketer, physical=True)
    landing(logged_in, offer)
    address = {"line1": "Street 1", "postal_code": code, "city": "Town", "country": country, "consent": "on"}
    response = logged_in.post(f"/o/{offer.slug}/claim/", address)
    if ok:
        assert response.status_code == 302
        assert Trial.objects.get(customer=customer).shipping_address["postal_code"] == code
    else:
        assert response.status_code == 400
        assert "This postal code does not look right" in response.content.decode()
        assert not Trial.objects.exists()


def test_the_postal_code_example_is_in_the_pages_language(logged_in, marketer, monkeypatch):
    # Any translation at all, told apart from the English it stands for: the example was once a
    # plain string, shown in English on every page.
    from django.utils import translation

    english = translation._trans.gettext
    monkeypatch.setattr(translation._trans, "gettext", lambda message: f"«{english(message)}»")
    offer = live(marketer, physical=True)
    landing(logged_in, offer)
    address = {"line1": "Street 1", "postal_code": "1011", "city": "Town", "country": "DE", "consent": "on"}
    response = logged_in.post(f"/o/{offer.slug}/claim/", address)
    assert response.status_code == 400
    assert "«Expected: «5 digits, e.g. 10115».»" in response.content.decode()


def test_a_physical_sample_names_each_missing_field(logged_in, marketer):
    offer = live(marketer, physical=True)
    landing(logged_in, offer)
    response = logged_in.post(f"/o/{offer.slug}/claim/", {"consent": "on"})
    assert response.status_code == 400
    assert response.content.decode().count("This field is required.") == 4 and not Trial.objects.exists()


def test_a_card_trial_goes_through_the_card_page_to_active(logged_in, customer, marketer, outsider, client):
    offer = live(marketer, kind="free_trial", slug="club-trial")
    landing(logged_in, offer)
    response = logged_in.post(f"/o/{offer.slug}/claim/", {"consent": "on"})
    trial = Trial.objects.get(customer=customer)
    assert response.status_code == 302 and response["Location"] == f"/o/{offer.slug}/claim/{trial.pk}/card/"

    card = logged_in.get(response["Location"])
    trial.refresh_from_db()
    payment = services.ClaimPayment(trial_id=trial.pk, setup_intent_id=trial.stripe_setup_intent_id,
                                    setup_client_secret="")  # fmt: skip
    page = card.content.decode()
    assert card.status_code == 200 and 'data-client-secret="seti_' in page and "js/claim.js" in page
    assert logged_in.get(response["Location"]).status_code == 200  # a reload
    browser_saves_card(payment)

    confirm = {"setup_intent_id": trial.stripe_setup_intent_id}
    done = logged_in.post(f"/o/{offer.slug}/claim/{trial.pk}/confirm/", confirm)
    assert done.status_code == 302 and done["Location"] == "/me/"
    again = logged_in.post(f"/o/{offer.slug}/claim/{trial.pk}/confirm/", confirm)
    assert again.status_code == 302
    trial.refresh_from_db()
    assert trial.status == Trial.Status.ACTIVE and ConsentRecord.objects.filter(trial=trial).count() == 1

    client.force_login(outsider)
    assert client.get(f"/o/{offer.slug}/claim/{trial.pk}/card/").status_code == 404
    assert client.post(f"/o/{offer.slug}/claim/{trial.pk}/confirm/", confirm).status_code == 404


def test_stripe_down_at_payment_start_gives_a_503_and_releases(logged_in, customer, marketer, settings):
    offer = live(marketer, kind="free_trial", slug="club-trial")
    landing(logged_in, offer)
    settings.STRIPE_API_BASE = "http://127.0.0.1:1"
    response = logged_in.post(f"/o/{offer.slug}/claim/", {"consent": "on"})
    assert response.status_code == 503 and "nothing was charged" in response.content.decode().lower()
    offer.refresh_from_db()
    assert Trial.objects.get(customer=customer).status == Trial.Status.ABANDONED and offer.claimed_count == 0


def test_the_claim_is_rate_limited(logged_in, marketer, settings):
    settings.FORETASTE_RATE_LIMITS = {"claim": "2/10m/user"}
    offer = live(marketer)
    landing(logged_in, offer)
    assert [logged_in.post(f"/o/{offer.slug}/claim/", {}).status_code for _ in range(3)] == [400, 400, 429]
