"""Marketers design offers in the console: every bad input is explained on its field and saves
nothing; good input makes a draft they can preview, launch, pause, resume, end and duplicate."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from offers import services
from offers.models import Offer, OfferChange, Product
from tests import factories
from tests.factories import NOW

pytestmark = pytest.mark.django_db


def offer_post(product_, **overrides):
    data = {
        "slug": "coffee-sampler",
        "name": "Coffee sampler",
        "promise": "Our café beans at home for two weeks.",
        "kind": "sample",
        "product": str(product_.pk),
        "trial_days": "14",
        "trial_price": "0.00",
        "currency": "EUR",
        "eligibility": "anyone",
        "starts_at": "2026-06-01T09:00",
        "ends_at": "2026-08-01T09:00",
        "grace_days": "7",
        "sample_cost": "3.50",
        "reminder_days": "",
        "feedback_survey": "on",
        "holdout_percent": "10",
        "variants-TOTAL_FORMS": "3",
        "variants-INITIAL_FORMS": "0",
        "variants-MIN_NUM_FORMS": "0",
        "variants-MAX_NUM_FORMS": "10",
        "variants-0-name": "default",
        "variants-0-weight": "1",
        "variants-1-name": "long",
        "variants-1-weight": "1",
        "variants-1-trial_days": "28",
        "variants-2-name": "",
    }
    data.update(overrides)
    return data


def test_a_marketer_creates_a_product_and_it_is_synced_to_stripe(as_marketer, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = as_marketer.post(
            "/console/products/new/",
            {"sku": "coffee-club", "name": "Coffee club", "price": "15.00", "currency": "eur", "interval": "month"},
        )

    assert response.status_code == 302
    product = Product.objects.get(sku="coffee-club")
    assert (product.price_amount, product.currency, product.interval) == (1500, "EUR", "month")
    assert product.stripe_price_id == "price_coffee-club"


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"price": "12.345", "currency": "EUR"}, "price", "2 decimal places"),
        ({"currency": "XYZ"}, "currency", "not a currency code"),
        ({"sku": "Beans 1kg"}, "sku", "lower-case"),
        ({"price": "0"}, "price", ""),
    ],
)
def test_a_bad_product_is_explained_and_nothing_is_saved(as_marketer, data, field, words):
    post = {"sku": "beans", "name": "Beans", "price": "24.00", "currency": "EUR", "interval": ""} | data

    response = as_marketer.post("/console/products/new/", post)

    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert words in " ".join(response.context["form"].errors[field])
    assert not Product.objects.exists()


def test_a_marketer_creates_a_draft_offer_with_variants(as_marketer, marketer, product):
    response = as_marketer.post("/console/offers/new/", offer_post(product))

    assert response.status_code == 302, response.context and response.context["form"].errors
    offer = Offer.objects.get(slug="coffee-sampler")
    assert offer.status == Offer.Status.DRAFT
    assert offer.sample_cost == 350
    assert offer.reminder_days == [7, 3]
    assert [(v.name, v.weight, v.trial_days) for v in offer.variants.all()] == [("default", 1, None), ("long", 1, 28)]
    assert OfferChange.objects.get(offer=offer).actor == marketer


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"trial_price": "30.00", "kind": "sample"}, "trial_price", "below the paid price"),
        ({"holdout_percent": "100"}, "holdout_percent", "below 100%"),
        ({"variants-0-weight": "0", "variants-1-weight": "0"}, "variants", "add up to zero"),
        ({"ends_at": "2026-05-01T09:00"}, "ends_at", "end after it starts"),
        ({"product": "999999"}, "product", "does not exist"),
        ({"currency": "USD"}, "currency", "priced in EUR"),
        ({"kind": "free_trial", "trial_price": "1.00"}, "trial_price", "costs nothing"),
        ({"kind": "free_trial", "reminder_days": "1"}, "reminder_days", "two or more days before the charge"),
        ({"eligibility": "no_recent_purchase"}, "recent_purchase_days", "how many days"),
        ({"allowed_countries": "DE, XX"}, "allowed_countries", "XX"),
        ({"trial_price": "1.234"}, "trial_price", "2 decimal places"),
        ({"slug": "Coffee Sampler"}, "slug", ""),
        ({"variants-1-name": "holdout"}, "variants", "reserved"),
    ],
)
def test_bad_offer_input_is_explained_on_its_field_and_saves_nothing(as_marketer, product, overrides, field, words):
    response = as_marketer.post("/console/offers/new/", offer_post(product, **overrides))

    assert response.status_code == 400
    form = response.context["form"]
    errors = form.variant_errors if field == "variants" else form.errors.get(field, [])
    assert errors, form.errors
    assert words in " ".join(errors)
    assert not Offer.objects.exists()
    assert not OfferChange.objects.exists()


def test_a_locked_field_of_a_live_offer_cannot_be_changed(as_marketer, marketer):
    offer = factories.offer(actor=marketer, holdout_percent=10)
    services.offer_launch(offer=offer, actor=marketer, at=NOW)
    edit = as_marketer.get(f"/console/offers/{offer.slug}/edit/")
    assert "locked" in edit.content.decode()

    data = offer_post(offer.product, holdout_percent="25", **{"variants-1-name": ""})
    response = as_marketer.post(f"/console/offers/{offer.slug}/edit/", data)

    assert response.status_code == 400
    assert "locked since launch" in " ".join(response.context["form"].errors["holdout_percent"])
    offer.refresh_from_db()
    assert offer.holdout_percent == 10
    assert not offer.changes.filter(action="updated").exists()


def test_an_edit_is_saved_and_shown_in_the_history(as_marketer, marketer):
    offer = factories.offer(actor=marketer)
    data = offer_post(offer.product, name="Coffee sampler, summer", inventory="300", **{"variants-1-name": ""})

    response = as_marketer.post(f"/console/offers/{offer.slug}/edit/", data)

    assert response.status_code == 302
    page = as_marketer.get(f"/console/offers/{offer.slug}/").content.decode()
    assert "Coffee sampler, summer" in page
    assert "inventory" in page and "300" in page


def test_the_actions_walk_the_lifecycle_and_duplicate(as_marketer, marketer):
    offer = factories.offer(actor=marketer, starts_at=NOW - timedelta(days=1), ends_at=None)

    for action, status in [("launch", "live"), ("pause", "paused"), ("resume", "live"), ("end", "ended")]:
        response = as_marketer.post(f"/console/offers/{offer.slug}/{action}/")
        assert response.status_code == 302
        assert Offer.objects.get(pk=offer.pk).status == status

    refused = as_marketer.post(f"/console/offers/{offer.slug}/pause/", follow=True)
    assert "cannot be paused" in refused.content.decode()
    duplicated = as_marketer.post(f"/console/offers/{offer.slug}/duplicate/")
    assert duplicated.status_code == 302
    assert Offer.objects.get(slug="coffee-sampler-copy").status == Offer.Status.DRAFT


def test_an_executive_reads_the_console_but_cannot_change_anything(client, executive, marketer):
    offer = factories.offer(actor=marketer)
    client.force_login(executive)

    assert client.get("/console/").status_code == 200
    assert client.get(f"/console/offers/{offer.slug}/").status_code == 200
    assert "Launch" not in client.get(f"/console/offers/{offer.slug}/").content.decode()
    assert client.post(f"/console/offers/{offer.slug}/launch/").status_code == 403
    assert client.get("/console/offers/new/").status_code == 403
    assert Offer.objects.get(pk=offer.pk).status == Offer.Status.DRAFT


def test_the_offer_list_shows_counters_in_a_constant_number_of_queries(as_marketer, marketer):
    product = factories.product()
    factories.offer(actor=marketer, product_=product, slug="one", inventory=50)

    def queries_for_list():
        with CaptureQueriesContext(connection) as captured:
            assert as_marketer.get("/console/").status_code == 200
        return len(captured)

    few = queries_for_list()
    for n in range(20):
        factories.offer(actor=marketer, product_=product, slug=f"offer-{n}")
    many = queries_for_list()

    assert 0 < few == many
    page = as_marketer.get("/console/").content.decode()
    assert ">50<" in page  # remaining inventory of "one"


def test_the_planning_figures_follow_the_holdout(as_marketer):
    small = as_marketer.get("/console/planning.json", {"weekly": "1000", "baseline": "15", "holdout": "5"}).json()
    large = as_marketer.get("/console/planning.json", {"weekly": "1000", "baseline": "15", "holdout": "30"}).json()
    bad = as_marketer.get("/console/planning.json", {"weekly": "1000", "baseline": "150", "holdout": "5"})

    assert [row["weeks"] for row in small["rows"]] == [4, 8, 12]
    assert large["rows"][0]["mde_absolute"] < small["rows"][0]["mde_absolute"]
    assert small["rows"][2]["mde_absolute"] < small["rows"][0]["mde_absolute"]
    assert bad.status_code == 400


def test_the_preview_shows_each_variant_in_each_language_as_the_customer_sees_it(as_marketer, marketer):
    from offers.terms import offer_terms

    offer = factories.offer(
        actor=marketer, variants=[{"name": "short", "weight": 1}, {"name": "long", "weight": 1, "trial_days": 28}]
    )
    long = offer.variants.get(name="long")

    german = as_marketer.get(f"/console/offers/{offer.slug}/preview/", {"variant": "long", "lang": "de"})

    assert german.status_code == 200
    page = german.content.decode()
    shown = german.context["terms"]
    assert shown.headline == offer_terms(offer=offer, variant=long, language="de", at=NOW).headline
    assert shown.lines
    for line in shown.lines:
        assert line in page
    assert "28 Tage" in page
    english = as_marketer.get(f"/console/offers/{offer.slug}/preview/", {"variant": "short", "lang": "en"})
    assert "14 days" in english.content.decode()


def test_operators_manage_products_and_offers_in_the_admin_with_promises_read_only_after_launch(
    client, operator, marketer
):
    offer = factories.offer(actor=marketer)
    services.offer_launch(offer=offer, actor=marketer, at=NOW)
    client.force_login(operator)

    assert client.get("/admin/offers/product/").status_code == 200
    assert client.get("/admin/offers/offer/").status_code == 200
    change = client.get(f"/admin/offers/offer/{offer.pk}/change/")

    assert change.status_code == 200
    assert 'name="trial_price"' not in change.content.decode()
    assert 'name="holdout_percent"' not in change.content.decode()
    assert 'name="name_en"' in change.content.decode()  # the main text's box, one per language
