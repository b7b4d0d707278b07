"""/healthz reports the database, the broker and Stripe, and names what is down."""

import pytest

from tests.support import free_port


@pytest.mark.django_db
def test_healthz_is_200_when_everything_answers(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["down"] == []
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "database": "ok",
        "broker": "ok",
        "stripe": "ok",
    }


@pytest.mark.django_db
def test_healthz_is_503_and_names_stripe_when_stripe_is_unreachable(client, settings):
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["down"] == ["stripe"]


@pytest.mark.django_db
def test_healthz_is_503_and_names_the_broker_when_it_is_unreachable(client, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["down"] == ["broker"]
    assert response.json()["checks"]["database"]["status"] == "ok"


@pytest.mark.django_db
def test_healthz_only_answers_get(client):
    assert client.post("/healthz").status_code == 405
