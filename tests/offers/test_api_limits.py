"""Every limit of the rules holds the same way through the console and the API: the value just
inside is saved, the value just outside is refused on its field, with offers/validation.py's
words, and nothing is written."""

from datetime import timedelta

import pytest
from django.utils import timezone

from offers.models import Offer, Product
from offers.validation import (
    MAX_DESCRIPTION,
    MAX_NAME,
    MAX_PROMISE,
    MAX_REMINDERS,
    MAX_SKU,
    MAX_SLUG,
    MAX_VARIANTS,
)
from tests import factories
from tests.offers.test_api import OFFER, PRODUCT
from tests.offers.test_console import offer_post
from tests.support import api_as, post

pytestmark = pytest.mark.django_db

CONSOLE_PRODUCT = {"sku": "beans-1kg", "name": "Beans 1 kg", "price": "24.00", "currency": "EUR", "interval": ""}


def sku(length: int) -> str:
    return ("b" * length)[:length]


# (field, a value just inside, a value just outside, words of the rules, does the form refuse first?)
PRODUCT_LIMITS = [
    pytest.param("sku", sku(MAX_SKU), sku(MAX_SKU + 1), f"({MAX_SKU} at most)", False, id="sku"),
    pytest.param("name", "n" * MAX_NAME, "n" * (MAX_NAME + 1), f"no more than {MAX_NAME} characters", False, id="name"),
    pytest.param(
        "description", "d" * MAX_DESCRIPTION, "d" * (MAX_DESCRIPTION + 1), "no more than 10,000 characters", False,
        id="description",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("field", "inside", "outside", "words", "form_first"), PRODUCT_LIMITS)
def test_a_product_limit_is_the_same_in_the_api_and_the_console(client, marketer, field, inside, outside, words,
                                                                form_first):  # fmt: skip
    api = api_as(marketer)
    client.force_login(marketer)

    refused_api = post(api, "/api/v1/products", {**PRODUCT, field: outside})
    refused_console = client.post("/console/products/new/", {**CONSOLE_PRODUCT, field: outside})

    assert refused_api.status_code == 400
    assert any(words in message for message in refused_api.json()["errors"][field])
    assert refused_console.status_code == 400
    console_errors = refused_console.context["form"].errors[field]
    assert form_first or any(words in message for message in console_errors), console_errors
    assert not Product.objects.exists()

    assert post(api, "/api/v1/products", {**PRODUCT, "sku": "via-api", field: inside}).status_code == 201
    distinct = sku(MAX_SKU).replace("b", "c") if field == "sku" else inside
    kept = client.post("/console/products/new/", {**CONSOLE_PRODUCT, "sku": "via-console", field: distinct})
    assert kept.status_code == 302, kept.context["form"].errors
    assert Product.objects.count() == 2


def api_variants(count: int) -> list[dict]:
    return [{"name": f"v{n}", "weight": 1} for n in range(count)]


def console_variants(count: int) -> dict:
    data = {"variants-TOTAL_FORMS": str(count), "variants-1-name": "", "variants-1-trial_days": ""}
    for n in range(count):
        data |= {f"variants-{n}-name": f"v{n}", f"variants-{n}-weight": "1"}
    return data


def later(days: int) -> str:
    """A moment ``days`` from now, as the console's field takes it (UTC, no offset)."""
    return (timezone.now() + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M")


def later_utc(days: int) -> str:
    """The same moment as the API takes it."""
    return later(days) + ":00Z"


# (API change inside, API change outside, console change inside, console change outside, field, words, form first)
OFFER_LIMITS = [
    pytest.param({"slug": "s" * MAX_SLUG}, {"slug": "s" * (MAX_SLUG + 1)}, {"slug": "s" * MAX_SLUG},
                 {"slug": "s" * (MAX_SLUG + 1)}, "slug", f"({MAX_SLUG} at most)", False, id="slug"),
    pytest.param({"name": "n" * MAX_NAME}, {"name": "n" * (MAX_NAME + 1)}, {"name": "n" * MAX_NAME},
                 {"name": "n" * (MAX_NAME + 1)}, "name", f"no more than {MAX_NAME} characters", False, id="name"),
    pytest.param({"promise": "p" * MAX_PROMISE}, {"promise": "p" * (MAX_PROMISE + 1)}, {"promise": "p" * MAX_PROMISE},
                 {"promise": "p" * (MAX_PROMISE + 1)}, "promise", f"no more than {MAX_PROMISE} characters", False,
                 id="promise"),
    pytest.param({"variants": api_variants(MAX_VARIANTS)}, {"variants": api_variants(MAX_VARIANTS + 1)},
                 console_variants(MAX_VARIANTS), console_variants(MAX_VARIANTS + 1), "variants",
                 f"at most {MAX_VARIANTS} variants", False, id="variants"),
    pytest.param({"trial_days": 40, "reminder_days": list(range(1, MAX_REMINDERS + 1))},
                 {"trial_days": 40, "reminder_days": list(range(1, MAX_REMINDERS + 2))},
                 {"trial_days": "40", "reminder_days": ", ".join(str(d) for d in range(1, MAX_REMINDERS + 1)),
                  "variants-1-trial_days": ""},
                 {"trial_days": "40", "reminder_days": ", ".join(str(d) for d in range(1, MAX_REMINDERS + 2)),
                  "variants-1-trial_days": ""},
                 "reminder_days", f"at most {MAX_REMINDERS} reminders", False, id="reminders"),
    pytest.param({"starts_at": "2001-01-01T00:00:00Z", "ends_at": "2001-02-01T00:00:00Z"},
                 {"starts_at": "1999-12-31T23:59:59Z", "ends_at": "2001-02-01T00:00:00Z"},
                 {"starts_at": "2001-01-01T00:00", "ends_at": "2001-02-01T00:00"},
                 {"starts_at": "1999-12-31T23:59", "ends_at": "2001-02-01T00:00"},
                 "starts_at", "before 2000-01-01 are not accepted", False, id="start-before-2000"),
    pytest.param({"starts_at": later_utc(1), "ends_at": later_utc(3640)},
                 {"starts_at": later_utc(1), "ends_at": later_utc(3660)},
                 {"starts_at": later(1), "ends_at": later(3640)}, {"starts_at": later(1), "ends_at": later(3660)},
                 "ends_at", "more than 10 years ahead", False, id="end-over-10-years"),
    pytest.param({"starts_at": later_utc(3640), "ends_at": None},
                 {"starts_at": "9999-01-01T00:00:00Z", "ends_at": None},
                 {"starts_at": later(3640), "ends_at": ""}, {"starts_at": "9999-01-01T00:00", "ends_at": ""},
                 "starts_at", "more than 10 years ahead", False, id="start-in-9999"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("api_inside", "api_outside", "console_inside", "console_outside", "field", "words", "form_first"), OFFER_LIMITS
)
def test_an_offer_limit_is_the_same_in_the_api_and_the_console(client, marketer, api_inside, api_outside,
                                                               console_inside, console_outside, field, words,
                                                               form_first):  # fmt: skip
    product = factories.product()
    api = api_as(marketer)
    client.force_login(marketer)

    refused_api = post(api, "/api/v1/offers", {**OFFER, **api_outside})
    refused_console = client.post("/console/offers/new/", offer_post(product, **console_outside))

    assert refused_api.status_code == 400
    assert any(words in message for message in refused_api.json()["errors"][field]), refused_api.json()
    assert refused_console.status_code == 400
    form = refused_console.context["form"]
    if field == "variants":
        console_errors = form.variant_errors + list(refused_console.context["variants"].non_form_errors())
    else:
        console_errors = form.errors.get(field, [])
    assert console_errors, form.errors
    assert form_first or any(words in message for message in console_errors), console_errors
    assert not Offer.objects.exists()

    kept_api = post(api, "/api/v1/offers", {**OFFER, **api_inside, "slug": api_inside.get("slug", "via-api")})
    assert kept_api.status_code == 201, kept_api.json()
    inside = {**console_inside, "slug": console_inside.get("slug", "via-console")}
    if "slug" in console_inside:
        inside["slug"] = "c" * MAX_SLUG
    kept = client.post("/console/offers/new/", offer_post(product, **inside))
    assert kept.status_code == 302, (kept.context["form"].errors, kept.context["form"].variant_errors)
    assert Offer.objects.count() == 2


def test_the_console_edit_page_opens_for_an_offer_with_the_most_variants(client, marketer):
    offer = factories.offer(actor=marketer, variants=[{"name": f"v{n}", "weight": 1} for n in range(MAX_VARIANTS)])
    client.force_login(marketer)

    assert client.get(f"/console/offers/{offer.slug}/edit/").status_code == 200


def test_the_api_refuses_a_thousand_variants_in_the_rules_words(marketer):
    factories.product()

    response = post(api_as(marketer), "/api/v1/offers", {**OFFER, "variants": api_variants(1000)})

    assert response.status_code == 400
    assert response.json()["errors"]["variants"] == [
        f"An offer has at most {MAX_VARIANTS} variants; this one has 1000."
    ]
    assert not Offer.objects.exists()
