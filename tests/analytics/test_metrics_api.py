"""Executives and marketers read an offer's metrics, and every offer's headline figures, through
/api/v1/ with a key or their session; customers are refused; bad parameters get a 400 that says
what is wrong, and an unknown offer a 404."""

from datetime import timedelta

import pytest
import time_machine
from rest_framework.test import APIClient

from analytics import metrics
from tests import factories
from tests.factories import NOW
from tests.support import api_as

pytestmark = pytest.mark.django_db

URL = "/api/v1/offers/coffee-sampler/metrics"
OVERVIEW = "/api/v1/metrics/offers"
AS_OF = "2026-09-15T00:00:00+00:00"


@pytest.fixture
def offer(marketer):
    offer = factories.offer(actor=marketer, holdout_percent=50)
    for number in range(4):
        person = factories.customer(email=f"c{number}@example.com", country="IT" if number < 2 else "PL")
        assignment = factories.assignment(offer=offer, customer=person, arm="holdout" if number % 2 else "default")
        if not number % 2:
            factories.claim(assignment=assignment, status="converted", converted_at=NOW + timedelta(days=14))
        factories.purchase(
            customer=person, product=offer.product, amount=1250 * (number + 1), at=NOW + timedelta(days=5)
        )
    return offer


def errors(response, status: int = 400) -> dict:
    assert response.status_code == status, response.content[:500]
    return response.json()["errors"]


@time_machine.travel(NOW + timedelta(days=120), tick=False)
def test_an_executive_reads_an_offers_metrics_with_a_key(offer, executive):
    response = api_as(executive).get(URL, {"as_of": AS_OF, "window_days": 90, "grace_days": 7})

    assert response.status_code == 200, response.content
    body = response.json()
    from datetime import datetime

    engine = metrics.offer_metrics(offer=offer, as_of=datetime.fromisoformat(AS_OF), window_days=90, grace_days=7)
    assert body == engine.as_json()
    assert (body["offer"], body["as_of"], body["currency"]) == ("coffee-sampler", AS_OF, "EUR")
    default, holdout = body["arms"]
    assert (default["assigned"], default["claimed"], default["conversion"]["converted"]) == (2, 2, 2)
    # Money in major units: 12.50 and 37.50 for the two default customers.
    assert default["itt"]["revenue_per_customer"] == 25.0
    assert holdout["conversion"] is None
    assert [entry["metric"] for entry in body["uplift"]] == list(metrics.UPLIFT_METRICS)


@time_machine.travel(NOW + timedelta(days=120), tick=False)
def test_the_defaults_are_now_90_days_and_the_offers_grace(offer, marketer):
    body = api_as(marketer).get(URL).json()

    assert body["as_of"] == (NOW + timedelta(days=120)).isoformat()
    assert (body["window_days"], body["grace_days"]) == (90, offer.grace_days)


@time_machine.travel(NOW + timedelta(days=120), tick=False)
def test_a_marketer_reads_them_with_a_session_and_filters(offer, client, marketer):
    client.force_login(marketer)

    italians = client.get(URL, {"as_of": AS_OF, "country": "it"})
    holdout = client.get(URL, {"as_of": AS_OF, "variant": "holdout"})

    assert italians.status_code == 200
    assert [arm["assigned"] for arm in italians.json()["arms"]] == [1, 1]
    assert [arm["arm"] for arm in holdout.json()["arms"]] == ["holdout"]
    assert holdout.json()["uplift"] == [] and holdout.json()["srm"] == {"p_value": None, "flag": False}


@time_machine.travel(NOW + timedelta(days=120), tick=False)
def test_the_overview_lists_every_offer(offer, executive):
    response = api_as(executive).get(OVERVIEW, {"as_of": AS_OF, "window_days": 30})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["as_of"], body["window_days"], body["grace_days"]) == (AS_OF, 30, None)
    (headline,) = body["offers"]
    assert headline["offer"] == "coffee-sampler" and headline["status"] == "draft"
    assert [entry["metric"] for entry in headline["uplift"]] == ["repeat_rate"]
    assert headline["arms"][0]["conversion"]["rate"] == 1.0


@pytest.mark.parametrize("url", [URL, OVERVIEW])
def test_customers_are_refused_and_strangers_asked_for_a_key(offer, customer, client, url):
    client.force_login(customer)

    assert errors(api_as(customer).get(url), 403)
    assert errors(client.get(url), 403)
    assert errors(APIClient().get(url), 401)


def test_an_unknown_offer_is_a_404(offer, executive):
    assert (
        "tea-sampler" in errors(api_as(executive).get("/api/v1/offers/tea-sampler/metrics"), 404)["non_field_errors"][0]
    )


@pytest.mark.parametrize("url", [URL, OVERVIEW])
def test_metrics_are_read_only(offer, marketer, url):
    response = api_as(marketer).post(url, data={}, format="json")

    assert errors(response, 405)


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(
    ("query", "field", "words"),
    [
        ({"as_of": "yesterday"}, "as_of", "ISO 8601"),
        ({"as_of": "2026-06-01T09:00:00"}, "as_of", "no offset"),
        ({"as_of": "2026-06-02T09:00:01+00:00"}, "as_of", "more than a day in the future"),
        ({"window_days": "0"}, "window_days", "from 1 to 3650"),
        ({"window_days": "3651"}, "window_days", "from 1 to 3650"),
        ({"window_days": "ninety"}, "window_days", "whole number"),
        ({"grace_days": "0"}, "grace_days", "from 1 to 3650"),
        ({"grace_days": "3651"}, "grace_days", "from 1 to 3650"),
        ({"variant": "nope"}, "variant", "has no arm “nope”; its arms are default, holdout"),
        ({"country": "Italy"}, "country", "not a country code"),
        ({"as_of": ""}, "as_of", "Give a value, or leave the parameter out"),
        ({"window_days": " "}, "window_days", "Give a value, or leave the parameter out"),
    ],
)
def test_a_bad_parameter_is_a_400_that_says_why(offer, executive, query, field, words):
    response = api_as(executive).get(URL, query)

    assert words in " ".join(errors(response)[field])
    if field in ("as_of", "window_days", "grace_days"):
        assert field in errors(api_as(executive).get(OVERVIEW, query))


@time_machine.travel(NOW, tick=False)
def test_a_plus_sign_sent_unencoded_is_still_an_offset(offer, executive):
    # "?as_of=2026-06-01T11:00:00+02:00" typed into a URL arrives with a space for the "+".
    response = api_as(executive).get(f"{URL}?as_of=2026-06-01T11:00:00+02:00")

    assert response.status_code == 200, response.content
    assert response.json()["as_of"] == "2026-06-01T09:00:00+00:00"


@time_machine.travel(NOW, tick=False)
def test_up_to_a_day_ahead_is_allowed(offer, executive):
    response = api_as(executive).get(URL, {"as_of": "2026-06-02T09:00:00+00:00"})

    assert response.status_code == 200


def test_the_openapi_document_describes_both_routes_with_an_example(client):
    schema = client.get("/api/v1/openapi.json").json()

    one = schema["paths"]["/api/v1/offers/{slug}/metrics"]["get"]
    every = schema["paths"]["/api/v1/metrics/offers"]["get"]
    assert {parameter["name"] for parameter in one["parameters"]} == {
        "slug", "as_of", "window_days", "grace_days", "variant", "country"
    }  # fmt: skip
    example = next(iter(one["responses"]["200"]["content"]["application/json"]["examples"].values()))
    assert example["value"]["arms"][1]["arm"] == "holdout"
    assert set(every["responses"]) >= {"200", "400", "401", "403"}
    assert "404" in one["responses"]
