"""Other systems manage the catalogue and offers through /api/v1/ with a key, get the same answers
as a marketer in the console, and never leave half a change behind."""

from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from rest_framework.test import APIClient

from accounts.models import User
from offers.models import Offer, OfferChange, Product, Variant
from tests import factories
from tests.factories import NOW
from tests.support import api_as, free_port, post

pytestmark = pytest.mark.django_db

PRODUCT = {"sku": "beans-1kg", "name": "Beans 1 kg", "price": "24.00", "currency": "EUR", "interval": None}
OFFER = {
    "slug": "coffee-sampler",
    "name": "Coffee sampler",
    "kind": "sample",
    "product_sku": "beans-1kg",
    "trial_days": 14,
    "trial_price": "0.00",
    "currency": "EUR",
    "holdout_percent": 10,
    "variants": [{"name": "default", "weight": 1}, {"name": "long", "weight": 1, "trial_days": 28}],
    "starts_at": "2026-06-01T09:00:00+00:00",
    "ends_at": "2026-07-31T09:00:00+00:00",
}


def saved() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in (Product, Offer, Variant, OfferChange)}


@pytest.fixture
def api(marketer):
    return api_as(marketer)


@pytest.fixture
def beans(db):
    return factories.product()


# --- Products ----------------------------------------------------------------------------------
def test_a_marketer_adds_a_product_and_reads_it_back(api):
    created = post(api, "/api/v1/products", PRODUCT)

    assert created.status_code == 201, created.json()
    assert created["Location"] == "/api/v1/products/beans-1kg"
    body = created.json()
    assert {key: body[key] for key in PRODUCT} == PRODUCT
    assert body["description"] == ""
    product = Product.objects.get(sku="beans-1kg")
    assert (product.price_amount, product.currency, product.interval) == (2400, "EUR", "")

    read = api.get("/api/v1/products/beans-1kg")
    assert read.status_code == 200
    assert read.json() == body


def test_a_subscription_product_keeps_its_interval_and_zero_decimal_currencies_work(api):
    monthly = post(api, "/api/v1/products", {**PRODUCT, "sku": "beans-monthly", "interval": "month"})
    yen = post(api, "/api/v1/products", {**PRODUCT, "sku": "beans-jp", "price": "2400", "currency": "JPY"})

    assert monthly.status_code == 201
    assert monthly.json()["interval"] == "month"
    assert yen.status_code == 201
    assert yen.json()["price"] == "2400"
    assert Product.objects.get(sku="beans-jp").price_amount == 2400


def test_an_unknown_product_is_a_404_in_the_same_error_shape(api):
    response = api.get("/api/v1/products/no-such-thing")

    assert response.status_code == 404
    assert response.json() == {"errors": {"non_field_errors": ["There is no product with the SKU “no-such-thing”."]}}


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"sku": "Beans 1kg"}, "sku", "lower-case"),
        ({"name": "  "}, "name", "name"),
        ({"price": "0.00"}, "price", "more than zero"),
        ({"price": "-3.00"}, "price", "more than zero"),
        ({"price": "24.001"}, "price", "decimal places"),
        ({"price": "twenty"}, "price", "decimal string"),
        ({"price": 24.0}, "price", "decimal string"),
        ({"price": "99999999999.00"}, "price", "too large"),
        ({"currency": "EURO"}, "currency", "not a currency code"),
        ({"interval": "week"}, "interval", "not a valid choice"),
        ({"sku": None}, "sku", "may not be null"),
        ({"name": ["Beans"]}, "name", "Not a valid string"),
    ],
)
def test_a_bad_product_is_refused_on_its_field_and_nothing_is_saved(api, change, field, words):
    before = saved()

    response = post(api, "/api/v1/products", {**PRODUCT, **change})

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert field in errors, errors
    assert any(words in message for message in errors[field]), errors
    assert saved() == before


def test_a_second_product_with_the_same_sku_is_refused(api, beans):
    before = saved()

    response = post(api, "/api/v1/products", PRODUCT)

    assert response.status_code == 400
    assert response.json()["errors"]["sku"] == ["There is already a product with the SKU “beans-1kg”."]
    assert saved() == before


def test_missing_fields_are_each_named(api):
    response = post(api, "/api/v1/products", {})

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"sku", "name", "price", "currency"}


# --- Offers: create and read -------------------------------------------------------------------
def test_a_marketer_creates_a_draft_offer_exactly_as_in_the_contract(api, beans, marketer):
    response = post(api, "/api/v1/offers", OFFER)

    assert response.status_code == 201, response.json()
    assert response["Location"] == "/api/v1/offers/coffee-sampler"
    body = response.json()
    assert body["status"] == "draft"
    assert body["product_sku"] == "beans-1kg"
    assert (body["trial_price"], body["currency"], body["holdout_percent"]) == ("0.00", "EUR", 10)
    assert body["starts_at"] == "2026-06-01T09:00:00Z"
    assert body["ends_at"] == "2026-07-31T09:00:00Z"
    assert [(v["name"], v["weight"], v["trial_days"], v["effective_trial_days"]) for v in body["variants"]] == [
        ("default", 1, None, 14),
        ("long", 1, 28, 28),
    ]
    assert (body["launched_at"], body["claimed_count"], body["remaining"]) == (None, 0, None)
    offer = Offer.objects.get(slug="coffee-sampler")
    assert offer.created_by == marketer
    assert offer.changes.get().action == "created"


def test_an_offer_reads_back_with_every_setting(api, beans):
    body = {
        **OFFER,
        "kind": "paid_trial",
        "trial_price": "1.50",
        "promise": "The beans our cafés brew, at home.",
        "physical": False,
        "eligibility": "no_recent_purchase",
        "recent_purchase_days": 90,
        "allowed_countries": ["de", "FR"],
        "inventory": 500,
        "daily_limit": 50,
        "grace_days": 10,
        "sample_cost": "3.20",
        "reminder_days": [3, 7],
        "feedback_survey": False,
        "variants": [
            {"name": "cheap", "weight": 2, "trial_price": "0.50"},
            {"name": "discount", "weight": 1, "kind": "discount", "trial_price": "5.00"},
        ],
    }
    assert post(api, "/api/v1/offers", body).status_code == 201

    offer = api.get("/api/v1/offers/coffee-sampler").json()

    assert offer["trial_price"] == "1.50"
    assert offer["sample_cost"] == "3.20"
    assert offer["allowed_countries"] == ["DE", "FR"]
    assert offer["reminder_days"] == [7, 3]
    assert (offer["inventory"], offer["remaining"], offer["daily_limit"]) == (500, 500, 50)
    assert (offer["eligibility"], offer["recent_purchase_days"], offer["grace_days"]) == ("no_recent_purchase", 90, 10)
    assert offer["feedback_survey"] is False
    assert [(v["name"], v["kind"], v["trial_price"], v["effective_kind"]) for v in offer["variants"]] == [
        ("cheap", None, "0.50", "paid_trial"),
        ("discount", "discount", "5.00", "discount"),
    ]
    assert Offer.objects.get().sample_cost == 320


def test_without_variants_an_offer_gets_one_default_variant(api, beans):
    body = {key: value for key, value in OFFER.items() if key != "variants"}

    response = post(api, "/api/v1/offers", body)

    assert response.status_code == 201
    assert [(v["name"], v["weight"]) for v in response.json()["variants"]] == [("default", 1)]


def test_an_unknown_offer_is_a_404(api):
    response = api.get("/api/v1/offers/no-such-offer")

    assert response.status_code == 404
    assert response.json()["errors"]["non_field_errors"] == ["There is no offer with the slug “no-such-offer”."]


# --- Offers: every kind of bad input -----------------------------------------------------------
BAD_OFFERS = [
    pytest.param({"trial_price": "30.00"}, "trial_price", "below the paid price", id="trial-price-above-paid-price"),
    pytest.param({"trial_price": "24.00"}, "trial_price", "below the paid price", id="trial-price-equal-paid-price"),
    pytest.param({"kind": "free_trial", "trial_price": "1.00"}, "trial_price", "free trial", id="paid-free-trial"),
    pytest.param({"holdout_percent": 100}, "holdout_percent", "below 100%", id="holdout-100"),
    pytest.param({"holdout_percent": 250}, "holdout_percent", "below 100%", id="holdout-250"),
    pytest.param({"holdout_percent": -1}, "holdout_percent", "at least 0%", id="holdout-negative"),
    pytest.param(
        {"variants": [{"name": "a", "weight": 0}, {"name": "b", "weight": 0}]},
        "variants",
        "add up to zero",
        id="weights-zero",
    ),
    pytest.param({"variants": [{"name": "a", "weight": -1}]}, "variants", "negative", id="weight-negative"),
    pytest.param({"variants": []}, "variants", "at least one variant", id="no-variants"),
    pytest.param({"variants": [{"name": "holdout"}]}, "variants", "reserved", id="variant-named-holdout"),
    pytest.param({"variants": [{"name": "a"}, {"name": "a"}]}, "variants", "same name", id="variant-names-twice"),
    pytest.param(
        {"variants": [{"name": "a", "trial_price": "99.00"}]},
        "variants",
        "below the paid price",
        id="variant-price-above-paid-price",
    ),
    pytest.param({"ends_at": "2026-05-01T09:00:00+00:00"}, "ends_at", "end after it starts", id="end-before-start"),
    pytest.param({"ends_at": OFFER["starts_at"]}, "ends_at", "end after it starts", id="end-at-start"),
    pytest.param({"product_sku": "tea-500g"}, "product_sku", "does not exist", id="unknown-product"),
    pytest.param({"currency": "USD"}, "currency", "priced in EUR", id="currency-mismatch"),
    pytest.param({"currency": "XYZ"}, "currency", "not a currency code", id="unknown-currency"),
    pytest.param({"starts_at": "2026-06-01T09:00:00"}, "starts_at", "no offset", id="naive-start"),
    pytest.param({"ends_at": "2026-07-31 09:00"}, "ends_at", "no offset", id="naive-end"),
    pytest.param({"starts_at": "2026-06-01"}, "starts_at", "no offset", id="date-without-time"),
    pytest.param({"starts_at": "next tuesday"}, "starts_at", "ISO 8601", id="not-a-timestamp"),
    pytest.param({"starts_at": "2026-13-01T09:00:00Z"}, "starts_at", "ISO 8601", id="month-13"),
    pytest.param({"starts_at": "0001-01-01T00:00:00+01:00"}, "starts_at", "out of range", id="before-year-1"),
    pytest.param({"starts_at": 1780304400}, "starts_at", "ISO 8601", id="epoch-number"),
    pytest.param({"trial_days": "fourteen"}, "trial_days", "valid integer", id="days-as-words"),
    pytest.param({"trial_days": 0}, "trial_days", "from 1 to 366", id="zero-days"),
    pytest.param({"trial_days": 10**30}, "trial_days", "from 1 to 366", id="huge-days"),
    pytest.param({"holdout_percent": True}, "holdout_percent", "valid integer", id="holdout-boolean"),
    pytest.param({"trial_price": 0}, "trial_price", "decimal string", id="price-as-number"),
    pytest.param({"trial_price": "0.001"}, "trial_price", "decimal places", id="price-too-precise"),
    pytest.param({"kind": "lottery"}, "kind", "not a valid choice", id="unknown-kind"),
    pytest.param({"variants": "default"}, "variants", "list", id="variants-not-a-list"),
    pytest.param({"variants": [{"name": "a", "weight": "heavy"}]}, "variants", "Item 1, weight", id="weight-word"),
    pytest.param({"allowed_countries": "DE"}, "allowed_countries", "list", id="countries-not-a-list"),
    pytest.param({"allowed_countries": ["XX"]}, "allowed_countries", "XX", id="unknown-country"),
    pytest.param({"reminder_days": [0]}, "reminder_days", "1 or more", id="reminder-at-the-end"),
    pytest.param({"reminder_days": ["soon"]}, "reminder_days", "Item 1", id="reminder-word"),
    pytest.param({"inventory": 0}, "inventory", "1 or more", id="inventory-zero"),
    pytest.param({"inventory": 2**40}, "inventory", "less than or equal", id="inventory-huge"),
    pytest.param({"recent_purchase_days": -5}, "recent_purchase_days", "greater than", id="negative-recent-days"),
    pytest.param({"grace_days": 365}, "grace_days", "0 to 90", id="long-grace"),
    pytest.param({"sample_cost": "-1.00"}, "sample_cost", "negative", id="negative-sample-cost"),
    pytest.param({"physical": True, "kind": "discount"}, "physical", "Only a sample", id="physical-discount"),
    pytest.param({"slug": "Coffee Sampler!"}, "slug", "lower-case", id="bad-slug"),
    pytest.param({"name": "x" * 201}, "name", "no more than 200", id="long-name"),
    pytest.param({"name": "\x00"}, "name", "Null characters", id="nul-name"),
    pytest.param({"kind": "\ud800"}, "kind", "\\ud800", id="lone-surrogate-quoted-back"),
]


@pytest.mark.parametrize(("change", "field", "words"), BAD_OFFERS)
def test_a_bad_offer_is_refused_on_its_field_and_nothing_is_saved(api, beans, change, field, words):
    before = saved()

    response = post(api, "/api/v1/offers", {**OFFER, **change})

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert field in errors, errors
    assert any(words in message for message in errors[field]), errors
    assert saved() == before


def test_an_unknown_product_says_which_sku_does_not_exist(api, beans):
    response = post(api, "/api/v1/offers", {**OFFER, "product_sku": "tea-500g"})

    assert response.json()["errors"]["product_sku"] == [
        "The product “tea-500g” does not exist; create it with POST /api/v1/products first."
    ]


def test_every_problem_the_rules_find_is_reported_at_once(api, beans):
    body = {**OFFER, "trial_price": "30.00", "holdout_percent": 100, "ends_at": "2026-05-01T00:00:00Z"}

    errors = post(api, "/api/v1/offers", body).json()["errors"]

    assert {"trial_price", "holdout_percent", "ends_at"} <= set(errors)


def test_a_taken_slug_is_refused(api, beans):
    assert post(api, "/api/v1/offers", OFFER).status_code == 201
    before = saved()

    response = post(api, "/api/v1/offers", OFFER)

    assert response.status_code == 400
    assert "taken" in response.json()["errors"]["slug"][0]
    assert saved() == before


@pytest.mark.parametrize(
    ("raw", "content_type", "words"),
    [
        (b'{"slug": "coffee-sampler",', "application/json", "not valid JSON"),
        (b"", "application/json", "required"),
        (b"[1, 2, 3]", "application/json", "Expected a dictionary"),
        (b'"coffee"', "application/json", "Expected a dictionary"),
        (b"null", "application/json", "No data provided"),
        (b'{"trial_days": NaN}', "application/json", "not valid JSON"),
        (b"\xff\xfe{}", "application/json", "not valid JSON"),
        (b"[" * 100_000, "application/json", "nested too deeply"),
        (b"{}", "application/json; charset=no-such-charset", "required"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_a_400_with_a_clear_message(api, beans, raw, content_type, words):
    before = saved()

    response = api.post("/api/v1/offers", data=raw, content_type=content_type)

    assert response.status_code == 400
    messages = [message for field in response.json()["errors"].values() for message in field]
    assert any(words in message for message in messages), messages
    assert saved() == before


def test_a_body_that_is_not_json_at_all_is_refused_with_415(api, beans):
    response = api.post("/api/v1/offers", data="slug=coffee-sampler", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 415
    assert "non_field_errors" in response.json()["errors"]


def test_a_window_in_the_past_is_allowed_for_history(api, beans):
    body = {**OFFER, "starts_at": "2024-01-01T00:00:00+01:00", "ends_at": "2024-03-01T00:00:00+01:00"}

    response = post(api, "/api/v1/offers", body)

    assert response.status_code == 201
    assert response.json()["starts_at"] == "2023-12-31T23:00:00Z"


# --- Offers: launch and change -----------------------------------------------------------------
def test_launching_a_draft_makes_it_live_and_a_second_launch_is_a_conflict(api, beans):
    post(api, "/api/v1/offers", OFFER)

    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        launched = api.post("/api/v1/offers/coffee-sampler/launch")
        again = api.post("/api/v1/offers/coffee-sampler/launch")

    assert launched.status_code == 200, launched.json()
    assert launched.json()["status"] == "live"
    assert launched.json()["launched_at"] == "2026-06-01T10:00:00Z"
    assert again.status_code == 409
    assert again.json() == {"errors": {"status": ["A live offer cannot be launched."]}}
    assert list(OfferChange.objects.values_list("action", flat=True).order_by("id")) == ["created", "launched"]


def test_launching_before_the_start_schedules_and_after_the_end_ends_at_once(api, beans):
    post(api, "/api/v1/offers", OFFER)
    post(api, "/api/v1/offers", {**OFFER, "slug": "last-year", "starts_at": "2025-01-01T00:00:00Z",
                                 "ends_at": "2025-02-01T00:00:00Z"})  # fmt: skip

    with time_machine.travel(NOW - timedelta(days=1), tick=False):
        scheduled = api.post("/api/v1/offers/coffee-sampler/launch")
        history = api.post("/api/v1/offers/last-year/launch")

    assert scheduled.json()["status"] == "scheduled"
    assert history.json()["status"] == "ended"


def test_launching_an_unknown_offer_is_a_404(api):
    assert api.post("/api/v1/offers/no-such-offer/launch").status_code == 404


def test_a_draft_can_be_changed_through_patch(api, beans):
    post(api, "/api/v1/offers", OFFER)

    response = api.patch(
        "/api/v1/offers/coffee-sampler",
        data={"holdout_percent": 20, "trial_price": "1.00", "variants": [{"name": "only"}]},
        format="json",
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["holdout_percent"], body["trial_price"]) == (20, "1.00")
    assert [(v["name"], v["weight"]) for v in body["variants"]] == [("only", 1)]
    assert OfferChange.objects.filter(action="updated").count() == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"holdout_percent": 20}, "holdout_percent"),
        ({"variants": [{"name": "default", "weight": 3}, {"name": "long", "weight": 1, "trial_days": 28}]}, "variants"),
    ],
)
def test_a_locked_field_of_a_live_offer_cannot_change(api, beans, change, field):
    post(api, "/api/v1/offers", OFFER)
    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        assert api.post("/api/v1/offers/coffee-sampler/launch").status_code == 200
    before = saved()

    response = api.patch("/api/v1/offers/coffee-sampler", data=change, format="json")

    assert response.status_code == 400
    assert any("locked since launch" in message for message in response.json()["errors"][field])
    assert saved() == before
    assert Offer.objects.get().holdout_percent == 10


def test_a_patch_with_bad_input_changes_nothing(api, beans):
    post(api, "/api/v1/offers", OFFER)
    before = saved()

    naive = api.patch("/api/v1/offers/coffee-sampler", data={"ends_at": "2026-08-01T00:00:00"}, format="json")
    mismatch = api.patch("/api/v1/offers/coffee-sampler", data={"currency": "GBP"}, format="json")
    unknown = api.patch("/api/v1/offers/coffee-sampler", data={"product_sku": "tea-500g"}, format="json")

    assert "ends_at" in naive.json()["errors"]
    assert "currency" in mismatch.json()["errors"]
    assert "does not exist" in unknown.json()["errors"]["product_sku"][0]
    assert {naive.status_code, mismatch.status_code, unknown.status_code} == {400}
    assert saved() == before


# --- Who may do what ---------------------------------------------------------------------------
NEW_PRODUCT = {**PRODUCT, "sku": "beans-2kg", "name": "Beans 2 kg", "price": "44.00"}
NEW_OFFER = {**OFFER, "slug": "second-sampler"}
# (method, url, body, success status; None for reads)
ENDPOINTS = [
    ("post", "/api/v1/products", NEW_PRODUCT, 201),
    ("get", "/api/v1/products/beans-1kg", None, 200),
    ("post", "/api/v1/offers", NEW_OFFER, 201),
    ("get", "/api/v1/offers/coffee-sampler", None, 200),
    ("patch", "/api/v1/offers/coffee-sampler", {"name": "Coffee sampler, renamed"}, 200),
    ("post", "/api/v1/offers/coffee-sampler/launch", None, 200),
    ("post", "/api/v1/customers", [{"external_id": "shop-2", "email": "shop2@example.com",
                                    "created_at": "2026-05-01T10:00:00+02:00", "country": "DE"}], 201),
    ("post", "/api/v1/purchases", [{"external_id": "order-1", "customer_external_id": "shop-1",
                                    "product_sku": "beans-1kg", "kind": "regular", "amount": "24.00",
                                    "currency": "EUR", "purchased_at": "2026-05-02T10:00:00+02:00"}], 201),
    ("post", "/api/v1/assignments", [{"customer_external_id": "shop-1", "offer_slug": "coffee-sampler",
                                      "arm": "default", "assigned_at": "2026-06-01T09:30:00+00:00"}], 201),
    ("get", "/api/v1/offers/coffee-sampler/metrics", None, 200),
    ("get", "/api/v1/metrics/offers", None, 200),
]  # fmt: skip
# Who gets what: 401 without a valid key, 403 for a role that may not, success otherwise.
MAY_READ = {"anonymous": 401, "bad-key": 401, "customer": 403, "executive": None, "marketer": None, "operator": None}
MAY_WRITE = {"anonymous": 401, "bad-key": 401, "customer": 403, "executive": 403, "marketer": None, "operator": None}


def test_the_rights_table_names_every_api_route():
    from django.urls import resolve

    from config import api_urls

    walked = {resolve(url).url_name for _, url, _, _ in ENDPOINTS}
    assert {pattern.name for pattern in api_urls.urlpatterns} <= walked


@pytest.mark.parametrize(("method", "url", "body", "success"), ENDPOINTS, ids=[f"{e[0]} {e[1]}" for e in ENDPOINTS])
@pytest.mark.parametrize("role", list(MAY_READ))
def test_each_role_gets_exactly_its_rights_on_every_endpoint(request, beans, method, url, body, success, role):
    factories.offer(product_=beans, starts_at=NOW, ends_at=NOW + timedelta(days=60))
    User.objects.create_user(email="shop1@example.com", external_id="shop-1")  # for the history imports
    if role == "anonymous":
        client = api_as(None)
    elif role == "bad-key":
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")
    else:
        client = api_as(request.getfixturevalue(role))
    before = saved()

    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        response = getattr(client, method)(url, data=body, format="json")

    expected = (MAY_READ if method == "get" else MAY_WRITE)[role] or success
    assert response.status_code == expected, response.json()
    if expected == 401:
        assert response["WWW-Authenticate"] == "Token"
    if expected >= 400:
        assert set(response.json()) == {"errors"}
        assert saved() == before


def test_an_inactive_users_key_stops_working(marketer, beans):
    client = api_as(marketer)
    marketer.is_active = False
    marketer.save(update_fields=["is_active"])

    assert client.get("/api/v1/products/beans-1kg").status_code == 401


def test_a_logged_in_browser_session_is_not_an_api_key(client, marketer, beans):
    client.force_login(marketer)

    assert client.get("/api/v1/products/beans-1kg").status_code == 401


# --- The OpenAPI document ----------------------------------------------------------------------
def test_the_openapi_document_describes_every_operation_and_the_token_auth(client):
    response = client.get("/api/v1/openapi.json", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    document = response.json()
    operations = {(path, method): op for path, item in document["paths"].items() for method, op in item.items()}
    for path, method in [
        ("/api/v1/products", "post"),
        ("/api/v1/products/{sku}", "get"),
        ("/api/v1/offers", "post"),
        ("/api/v1/offers/{slug}", "get"),
        ("/api/v1/offers/{slug}/launch", "post"),
    ]:
        operation = operations[(path, method)]
        assert operation["security"] == [{"tokenAuth": []}]
        assert {"200", "201"} & set(operation["responses"])
    assert operations[("/api/v1/offers", "post")]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OfferInput"
    }
    assert document["components"]["securitySchemes"]["tokenAuth"]["name"] == "Authorization"
    assert set(OFFER) <= set(document["components"]["schemas"]["OfferInput"]["properties"])
    assert set(PRODUCT) <= set(document["components"]["schemas"]["ProductInput"]["properties"])


def test_the_openapi_document_is_valid_and_complete(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))


def test_the_openapi_document_is_json_without_asking(client):
    response = client.get("/api/v1/openapi.json")

    assert response["Content-Type"].startswith(("application/json", "application/vnd.oai.openapi+json"))


def test_when_stripe_cannot_be_reached_a_launch_is_a_503_and_the_offer_stays_a_draft(api, beans, settings):
    post(api, "/api/v1/offers", OFFER)
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"
    settings.STRIPE_MAX_NETWORK_RETRIES = 0

    response = api.post("/api/v1/offers/coffee-sampler/launch")

    assert response.status_code == 503
    assert "could not be reached" in response.json()["errors"]["non_field_errors"][0]
    assert Offer.objects.get().status == Offer.Status.DRAFT
