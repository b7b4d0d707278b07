"""Another system pushes customers, purchases and assignments in through /api/v1/ with a key:
the same rules as a file, an answer that names every bad record by its index, and nothing half
written."""

from datetime import timedelta

import pytest

from accounts.models import User
from billing import api as billing_api
from billing.models import Purchase
from tests import factories
from tests.factories import NOW
from tests.support import api_as, post
from trials.models import Assignment, Trial

pytestmark = pytest.mark.django_db

CUSTOMER = {
    "external_id": "c-1",
    "email": "ann@example.com",
    "created_at": "2024-03-01T10:00:00+01:00",
    "country": "DE",
}
PURCHASE = {
    "external_id": "o-1",
    "customer_external_id": "c-1",
    "product_sku": "beans-1kg",
    "kind": "regular",
    "amount": "24.00",
    "currency": "EUR",
    "purchased_at": "2026-06-02T10:00:00+02:00",
    "refund_of": None,
}
ASSIGNMENT = {
    "customer_external_id": "c-1",
    "offer_slug": "coffee-sampler",
    "arm": "default",
    "assigned_at": "2026-06-01T09:00:00Z",
    "claimed_at": "2026-06-01T09:05:00Z",
    "trial_ends_at": "2026-06-15T09:05:00Z",
    "outcome": "pending",
    "converted_at": None,
}


@pytest.fixture
def api(marketer):
    return api_as(marketer)


@pytest.fixture
def beans(db):
    return factories.product()


@pytest.fixture
def ann(db):
    return User.objects.create_user(email="ann@example.com", external_id="c-1")


def test_a_system_pushes_customers_and_gets_the_counts(api):
    response = post(api, "/api/v1/customers", [CUSTOMER, {**CUSTOMER, "external_id": "c-2", "email": "bob@x.com"}])

    assert response.status_code == 201, response.json()
    assert response.json() == {
        "kind": "customers",
        "records": 2,
        "created": 2,
        "attached": 0,
        "unchanged": 0,
        "invalid": 0,
        "trials_created": 0,
        "trials_converted": 0,
        "invalid_rows": [],
    }
    assert User.objects.get(external_id="c-1").country == "DE"


def test_pushing_the_same_records_again_is_a_200_that_changes_nothing(api, ann, beans):
    first = post(api, "/api/v1/purchases", [PURCHASE])
    before = list(Purchase.objects.values())

    again = post(api, "/api/v1/purchases", [PURCHASE])

    assert (first.status_code, again.status_code) == (201, 200)
    assert (again.json()["created"], again.json()["unchanged"]) == (0, 1)
    assert list(Purchase.objects.values()) == before
    assert Purchase.objects.get().source == "api"


def test_bad_records_are_named_by_their_index_and_nothing_is_written(api, ann, beans):
    response = post(
        api,
        "/api/v1/purchases",
        [
            PURCHASE,
            {**PURCHASE, "external_id": "o-2", "amount": 24.0},
            {**PURCHASE, "external_id": "o-3", "purchased_at": "2026-06-02T10:00:00"},
            {**PURCHASE, "external_id": "o-4", "customer_external_id": "c-404", "product_sku": "tea"},
        ],
    )

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors["non_field_errors"] == [
        "3 of 4 records are not valid, so nothing was written. Fix them, or send ?skip_invalid=true to write the "
        "valid ones."
    ]
    assert [(row["row"], row["field"]) for row in errors["rows"]] == [
        (1, "amount"),
        (2, "purchased_at"),
        (3, "customer_external_id"),
        (3, "product_sku"),
    ]
    assert "has no offset" in errors["rows"][1]["message"]
    assert not Purchase.objects.exists()


def test_with_skip_invalid_the_valid_records_go_in_and_the_others_are_listed(api, ann, beans):
    response = post(
        api,
        "/api/v1/purchases?skip_invalid=true",
        [PURCHASE, {**PURCHASE, "external_id": "r-1", "amount": "-30.00", "refund_of": "o-1"}],
    )

    assert response.status_code == 201
    body = response.json()
    assert (body["created"], body["invalid"]) == (1, 1)
    assert body["invalid_rows"] == [
        {
            "row": 1,
            "field": "amount",
            "message": "The refund of 30.00 EUR is more than is left to refund of “o-1” (24.00 EUR).",
        }
    ]
    assert list(Purchase.objects.values_list("external_id", flat=True)) == ["o-1"]


def test_refunds_and_conversions_work_as_in_a_file(api, ann, beans):
    offer = factories.offer(product_=beans)
    post(api, "/api/v1/assignments", [ASSIGNMENT])

    response = post(
        api,
        "/api/v1/purchases",
        [PURCHASE, {**PURCHASE, "external_id": "r-1", "amount": "-4.00", "refund_of": "o-1"}],
    )

    assert response.status_code == 201
    assert response.json()["trials_converted"] == 1
    trial = Trial.objects.get(offer=offer)
    assert (trial.status, trial.source) == ("converted", "api")
    assert Purchase.objects.get(external_id="r-1").refund_of.external_id == "o-1"


def test_assignments_go_into_an_ended_offer(api, ann, beans, marketer):
    from offers import services

    offer = factories.offer(product_=beans)
    services.offer_launch(offer=offer, actor=marketer, at=NOW)
    services.offer_end(offer=offer, actor=marketer, at=NOW + timedelta(days=1))

    response = post(api, "/api/v1/assignments", [ASSIGNMENT])

    assert response.status_code == 201, response.json()
    assert response.json()["trials_created"] == 1
    assert Assignment.objects.get().source == "api"


def test_an_existing_account_gets_its_external_id(api, customer):
    response = post(api, "/api/v1/customers", [{**CUSTOMER, "email": "Carla.Customer@example.com"}])

    assert response.status_code == 201
    assert response.json()["attached"] == 1
    customer.refresh_from_db()
    assert customer.external_id == "c-1"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (CUSTOMER, "Send a JSON list of records"),
        ({}, "Send a JSON list of records"),
        ("c-1", "Send a JSON list of records"),
    ],
)
def test_a_body_that_is_not_a_list_is_a_400(api, body, words):
    response = post(api, "/api/v1/customers", body)

    assert response.status_code == 400
    assert words in response.json()["errors"]["non_field_errors"][0]


def test_malformed_json_is_a_400_in_the_same_shape(api):
    response = api.post("/api/v1/customers", data="[{", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["errors"]["non_field_errors"][0].startswith("The body is not valid JSON")


def test_too_many_records_at_once_is_a_400(api, monkeypatch):
    monkeypatch.setattr(billing_api, "MAX_RECORDS", 2)

    response = post(api, "/api/v1/customers", [CUSTOMER] * 3)

    assert response.status_code == 400
    assert "at most 2 records" in response.json()["errors"]["non_field_errors"][0]


@pytest.mark.parametrize("value", ["maybe", "2", "truthy"])
def test_skip_invalid_must_be_true_or_false(api, value):
    response = post(api, f"/api/v1/customers?skip_invalid={value}", [CUSTOMER])

    assert response.status_code == 400
    assert response.json() == {"errors": {"skip_invalid": ["Use true or false."]}}
    assert not User.objects.filter(external_id="c-1").exists()


@pytest.mark.parametrize("value", ["", "%20"])
def test_skip_invalid_given_empty_is_refused_not_read_as_false(api, value):
    response = post(api, f"/api/v1/customers?skip_invalid={value}", [CUSTOMER])

    assert response.status_code == 400
    assert response.json() == {
        "errors": {"skip_invalid": ["Give a value, or leave the parameter out for its default."]}
    }
    assert not User.objects.filter(external_id="c-1").exists()


@pytest.mark.parametrize(("value", "written"), [("true", 1), ("False", 0), ("1", 1), ("no", 0)])
def test_skip_invalid_reads_the_usual_spellings(api, value, written):
    response = post(api, f"/api/v1/customers?skip_invalid={value}", [CUSTOMER, {"external_id": ""}])

    assert response.status_code == (201 if written else 400)
    assert User.objects.filter(external_id="c-1").count() == written


def test_an_empty_list_imports_nothing(api):
    response = post(api, "/api/v1/assignments", [])

    assert response.status_code == 200
    assert response.json()["records"] == 0


@pytest.mark.parametrize("url", ["/api/v1/customers", "/api/v1/purchases", "/api/v1/assignments"])
@pytest.mark.parametrize(
    ("role", "status"),
    [("anonymous", 401), ("customer", 403), ("executive", 403), ("marketer", 200), ("operator", 200)],
)
def test_only_marketers_and_staff_may_import(request, url, role, status):
    client = api_as(None if role == "anonymous" else request.getfixturevalue(role))

    response = post(client, url, [])

    assert response.status_code == status
    if status >= 400:
        assert set(response.json()) == {"errors"}


def test_the_openapi_document_describes_the_imports(client):
    document = client.get("/api/v1/openapi.json").json()

    for path, record in [
        ("/api/v1/customers", "CustomerRecord"),
        ("/api/v1/purchases", "PurchaseRecord"),
        ("/api/v1/assignments", "AssignmentRecord"),
    ]:
        operation = document["paths"][path]["post"]
        assert operation["security"] == [{"tokenAuth": []}]
        assert {"200", "201", "400", "401", "403"} <= set(operation["responses"])
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert schema == {"type": "array", "items": {"$ref": f"#/components/schemas/{record}"}}
        assert [p["name"] for p in operation["parameters"]] == ["skip_invalid"]
    schemas = document["components"]["schemas"]
    assert set(PURCHASE) == set(schemas["PurchaseRecord"]["properties"])
    assert set(ASSIGNMENT) == set(schemas["AssignmentRecord"]["properties"])
    assert set(CUSTOMER) == set(schemas["CustomerRecord"]["properties"])
    assert schemas["ImportErrors"]["properties"]["errors"] == {"$ref": "#/components/schemas/ImportErrorsDetail"}
    assert schemas["ImportErrorsDetail"]["properties"]["rows"]["items"] == {"$ref": "#/components/schemas/RowError"}
    assert {"row", "field", "message"} == set(schemas["RowError"]["properties"])


@pytest.mark.parametrize(
    ("url", "good", "bad", "field"),
    [
        (
            "/api/v1/customers",
            {**CUSTOMER, "external_id": "c-2", "email": "bob@example.com"},
            {**CUSTOMER, "external_id": "c-3", "country": "Germany"},
            "country",
        ),
        ("/api/v1/purchases", PURCHASE, {**PURCHASE, "external_id": "o-2", "currency": "EURO"}, "currency"),
        ("/api/v1/assignments", ASSIGNMENT, {**ASSIGNMENT, "offer_slug": "tea-sampler"}, "offer_slug"),
    ],
)
def test_every_kind_refuses_a_list_with_a_bad_record_and_writes_nothing(api, ann, beans, url, good, bad, field):
    factories.offer(product_=beans)
    before = (User.objects.count(), Purchase.objects.count(), Assignment.objects.count())

    response = post(api, url, [good, bad])

    assert response.status_code == 400
    assert [(row["row"], row["field"]) for row in response.json()["errors"]["rows"]] == [(1, field)]
    assert (User.objects.count(), Purchase.objects.count(), Assignment.objects.count()) == before
