"""A marketer who gets several things wrong hears about all of them at once: every field's
problem in one round, listed in a red "Nothing was saved" banner that links to each field, and
each field marked invalid and pointed at its error text."""

import re

import pytest

from offers.models import Offer, Product
from tests.offers.test_console import offer_post

pytestmark = pytest.mark.django_db

GOOD_PRODUCT = {"sku": "beans", "name": "Beans", "price": "24.00", "currency": "EUR", "interval": ""}


def control(html: str, element_id: str) -> str:
    """The opening tag of the form control with this id."""
    match = re.search(rf'<(?:input|select|textarea)\b[^>]*\bid="{re.escape(element_id)}"[^>]*>', html)
    assert match, f"no control #{element_id}"
    return match.group(0)


def banner(html: str) -> str:
    match = re.search(r'<div class="message message--error error-summary".*?</div>', html, re.S)
    assert match, "no error banner"
    return match.group(0)


def assert_marked_invalid(html: str, element_id: str) -> None:
    tag = control(html, element_id)
    assert 'aria-invalid="true"' in tag, tag
    described = re.search(r'aria-describedby="([^"]*)"', tag)
    assert described and f"{element_id}_error" in described.group(1).split(), tag
    assert f'id="{element_id}_error"' in html
    assert f'href="#{element_id}"' in banner(html)


def assert_not_marked(html: str, element_id: str) -> None:
    assert 'aria-invalid="true"' not in control(html, element_id)
    assert f'href="#{element_id}"' not in banner(html)


# --- Products ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        # A bad SKU used to show only once the price was fixed.
        ({"sku": "Beans 1kg", "price": "12.345"}, {"sku": "lower-case", "price": "2 decimal places"}),
        ({"sku": "Beans 1kg", "price": "0", "name": ""}, {"sku": "lower-case", "price": "", "name": ""}),
        (
            {"currency": "XYZ", "sku": "-bean", "interval": "week"},
            {"currency": "not a currency", "sku": "", "interval": ""},
        ),
        ({"price": "abc", "currency": "EURO"}, {"price": "", "currency": ""}),
    ],
)  # fmt: skip
def test_every_product_problem_is_reported_in_one_round(as_marketer, changes, fields):
    response = as_marketer.post("/console/products/new/", GOOD_PRODUCT | changes)

    assert response.status_code == 400
    errors = response.context["form"].errors
    assert set(errors) == set(fields)
    for field, words in fields.items():
        assert words in " ".join(errors[field])
    html = response.content.decode()
    assert "Nothing was saved." in banner(html)
    for field in fields:
        assert_marked_invalid(html, f"id_{field}")
    assert not Product.objects.exists()


def test_a_taken_sku_and_a_bad_price_are_reported_together(as_marketer, product):
    response = as_marketer.post("/console/products/new/", GOOD_PRODUCT | {"sku": product.sku, "price": "-1"})

    errors = response.context["form"].errors
    assert "already a product" in " ".join(errors["sku"])
    assert "price" in errors
    assert Product.objects.count() == 1


# --- Offers ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        # A bad reminder list used to hide every other error on the form.
        (
            {"reminder_days": "seven", "slug": "Coffee Sampler", "trial_price": "30.00", "holdout_percent": "100"},
            {"reminder_days": "whole numbers", "slug": "", "trial_price": "below the", "holdout_percent": "below 100"},
        ),
        (
            {"trial_days": "2 weeks", "ends_at": "2026-05-01T09:00", "allowed_countries": "DE, XX", "inventory": "-3"},
            {"trial_days": "", "ends_at": "end after it starts", "allowed_countries": "XX", "inventory": "1 or more"},
        ),
        (
            {"starts_at": "tomorrow", "name": "", "sample_cost": "1.234", "grace_days": "500"},
            {"starts_at": "", "name": "", "sample_cost": "2 decimal places", "grace_days": "0 to 90"},
        ),
        (
            {"product": "999999", "eligibility": "no_recent_purchase", "daily_limit": "x", "name": "x" * 201},
            {"product": "does not exist", "recent_purchase_days": "how many days", "daily_limit": "", "name": "200"},
        ),
        (
            {"kind": "free_trial", "trial_price": "1.00", "physical": "on"},
            {"trial_price": "costs nothing", "physical": "Only a sample"},
        ),
    ],
)  # fmt: skip
def test_every_offer_problem_is_reported_in_one_round(as_marketer, product, changes, fields):
    response = as_marketer.post("/console/offers/new/", offer_post(product, **changes))

    assert response.status_code == 400
    errors = response.context["form"].errors
    assert set(errors) == set(fields), errors
    for field, words in fields.items():
        assert words in " ".join(errors[field]), (field, errors[field])
    html = response.content.decode()
    assert f"Please correct these {len(fields)} fields" in banner(html)
    for field in fields:
        assert_marked_invalid(html, f"id_{field}")
    assert_not_marked(html, "id_promise")
    assert not Offer.objects.exists()


def test_the_variants_problems_come_with_the_offers_own(as_marketer, product):
    data = offer_post(
        product,
        slug="Coffee Sampler",
        reminder_days="3, x",
        **{"variants-0-weight": "heavy", "variants-1-trial_days": "0", "variants-1-trial_price": "1.234"},
    )

    response = as_marketer.post("/console/offers/new/", data)

    assert response.status_code == 400
    html = response.content.decode()
    for element_id in ("id_slug", "id_reminder_days", "id_variants-0-weight", "id_variants-1-trial_days"):
        assert_marked_invalid(html, element_id)
    assert "weight of variant 1" in banner(html).lower()
    assert not Offer.objects.exists()


def test_a_variant_rule_and_field_rules_are_reported_together_and_the_banner_links_to_the_variants(
    as_marketer, product
):
    data = offer_post(product, name="", holdout_percent="-1", **{"variants-1-name": "default"})

    response = as_marketer.post("/console/offers/new/", data)

    assert response.status_code == 400
    form = response.context["form"]
    assert "same name" in " ".join(form.variant_errors)
    assert {"name", "holdout_percent"} <= set(form.errors)
    html = response.content.decode()
    assert 'href="#variants-errors"' in banner(html)
    assert 'id="variants-errors"' in html
    assert_marked_invalid(html, "id_name")
    assert_marked_invalid(html, "id_holdout_percent")


def test_a_rule_that_rests_on_a_field_that_did_not_parse_waits_instead_of_guessing(as_marketer, product):
    # The kind did not parse, so "only a sample can be physical" would be a guess.
    response = as_marketer.post("/console/offers/new/", offer_post(product, kind="bogus", physical="on"))

    errors = response.context["form"].errors
    assert "kind" in errors
    assert "physical" not in errors
    assert "trial_price" not in errors


def test_a_good_offer_still_saves(as_marketer, product):
    assert as_marketer.post("/console/offers/new/", offer_post(product)).status_code == 302
    assert Offer.objects.count() == 1


def test_a_form_without_errors_shows_no_banner(as_marketer, product):
    html = as_marketer.get("/console/offers/new/").content.decode()

    assert "Nothing was saved" not in html
    assert 'aria-invalid="true"' not in html
