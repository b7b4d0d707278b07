"""Every answer under /api/v1/ that is not a success is JSON in the one error shape,
``{"errors": {"<field>": ["message", ...]}}``: unknown paths, wrong methods, missing keys,
forbidden roles, bodies that are not JSON or too large. Never Django's HTML pages."""

import json

import pytest
from rest_framework.test import APIClient

from billing import api as billing_api
from tests import factories
from tests.support import api_as

pytestmark = pytest.mark.django_db


def assert_error_shape(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"errors"}
    assert body["errors"] and all(isinstance(messages, list) for messages in body["errors"].values())
    return body["errors"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1",
        "/api/v1/",
        "/api/v1/nothing-here",
        "/api/v1/offers/",
        "/api/v1/products/beans-1kg/",
        "/api/v1/products/Not%20a%20SKU!",
        "/api/v1/offers/coffee-sampler/launch/",
        "/api/v1/offers/coffee-sampler/pause",
        "/api/v1/offers/a/b/c/d",
        "/api/v2/offers",  # not under /api/v1/: the site's own 404 (checked separately below)
    ],
)
@pytest.mark.parametrize("method", ["get", "post", "patch", "delete", "put"])
def test_an_unknown_api_path_is_a_json_404_for_every_method(marketer, path, method):
    response = getattr(api_as(marketer), method)(path, data={}, format="json")

    if path.startswith("/api/v2"):
        assert response.status_code == 404
        return
    errors = assert_error_shape(response, 404)
    assert "nothing at this address" in errors["non_field_errors"][0]


def test_the_api_404_does_not_need_a_key():
    assert_error_shape(APIClient().get("/api/v1/nothing-here"), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("delete", "/api/v1/offers/coffee-sampler"),
        ("put", "/api/v1/offers/coffee-sampler"),
        ("get", "/api/v1/offers"),
        ("get", "/api/v1/products"),
        ("delete", "/api/v1/products/beans-1kg"),
        ("get", "/api/v1/offers/coffee-sampler/launch"),
        ("get", "/api/v1/customers"),
        ("patch", "/api/v1/purchases"),
    ],
)
def test_a_method_a_route_does_not_have_is_a_json_405(marketer, method, path):
    factories.offer()

    response = getattr(api_as(marketer), method)(path, data={}, format="json")

    assert_error_shape(response, 405)
    assert response["Allow"]


@pytest.mark.parametrize("path", ["/api/v1/offers", "/api/v1/products", "/api/v1/customers", "/api/v1/assignments"])
def test_401_403_415_and_400_are_in_the_error_shape(customer, marketer, path):
    anonymous = APIClient().post(path, data="{}", content_type="application/json")
    forbidden = api_as(customer).post(path, data="{}", content_type="application/json")
    not_json = api_as(marketer).post(path, data="a=b", content_type="application/x-www-form-urlencoded")
    broken = api_as(marketer).post(path, data="{", content_type="application/json")

    assert_error_shape(anonymous, 401)
    assert_error_shape(forbidden, 403)
    assert_error_shape(not_json, 415)
    assert "not valid JSON" in assert_error_shape(broken, 400)["non_field_errors"][0]


def test_a_body_over_djangos_limit_is_a_json_413_on_the_catalogue(marketer, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"sku": "beans-1kg", "name": "x" * 2000})

    response = api_as(marketer).post("/api/v1/products", data=body, content_type="application/json")

    assert "too large" in assert_error_shape(response, 413)["non_field_errors"][0]


def customers(count: int) -> list[dict]:
    return [
        {"external_id": f"C-{n}", "email": f"c{n}@example.com", "created_at": "2024-03-01T10:00:00+01:00",
         "country": "DE"}
        for n in range(count)
    ]  # fmt: skip


def test_an_import_larger_than_djangos_upload_limit_goes_through(marketer, settings):
    """The documented limit is 100,000 records, far above DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB):
    the import endpoints read their body themselves, with their own cap."""
    records = customers(30_000)
    body = json.dumps(records)
    assert len(body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    response = api_as(marketer).post("/api/v1/customers", data=body, content_type="application/json")

    assert response.status_code == 201, response.content[:300]
    assert response.json()["created"] == 30_000


def test_an_import_over_its_own_cap_is_a_json_413_and_writes_nothing(marketer, monkeypatch):
    from accounts.models import User

    monkeypatch.setattr(billing_api._ImportView, "max_body_bytes", 10 * 1024 * 1024 // 1024)  # 10 kB
    before = User.objects.count()

    response = api_as(marketer).post(
        "/api/v1/customers", data=json.dumps(customers(200)), content_type="application/json"
    )

    assert "at most" in assert_error_shape(response, 413)["non_field_errors"][0]
    assert User.objects.count() == before


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"[", "not valid JSON"),
        (b"[NaN]", "not valid JSON"),
        (b"\xff\xfe[]", "not valid JSON"),
        (b"[" * 100_000, "nested too deeply"),
    ],
)
def test_the_import_parser_refuses_bad_json_like_the_others(marketer, raw, words):
    response = api_as(marketer).post("/api/v1/customers", data=raw, content_type="application/json")

    assert words in assert_error_shape(response, 400)["non_field_errors"][0]


def test_an_import_body_in_an_unknown_charset_is_read_as_utf8(marketer):
    body = json.dumps(customers(1)).encode()

    response = api_as(marketer).post("/api/v1/customers", data=body, content_type="application/json; charset=nope")

    assert response.status_code == 201


@pytest.mark.parametrize(
    "record",
    [
        "not an object",
        {"external_id": 5, "email": "a@example.com", "created_at": "2024-03-01T10:00:00+01:00"},
        {"external_id": "C-9", "email": ["a@example.com"], "created_at": "2024-03-01T10:00:00+01:00"},
    ],
)
def test_with_skip_invalid_a_record_not_shaped_as_documented_refuses_the_request(marketer, record):
    """skip_invalid leaves out records whose values break the rules; a record that is not what
    the OpenAPI document describes is the client's bug, so the whole request is refused."""
    from accounts.models import User

    before = User.objects.count()

    response = api_as(marketer).post(
        "/api/v1/customers?skip_invalid=true", data=json.dumps([*customers(1), record]), content_type="application/json"
    )

    errors = assert_error_shape(response, 400)
    assert "not shaped as documented" in errors["non_field_errors"][0]
    assert [row["row"] for row in errors["rows"]] == [1]
    assert User.objects.count() == before


def test_with_skip_invalid_a_missing_key_is_empty_and_left_out_as_documented(marketer):
    response = api_as(marketer).post(
        "/api/v1/customers?skip_invalid=true",
        data=json.dumps([*customers(1), {"external_id": "C-9"}]),
        content_type="application/json",
    )

    assert response.status_code == 201
    assert (response.json()["created"], response.json()["invalid"]) == (1, 1)
