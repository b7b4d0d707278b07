"""/healthz reports the database, the broker and Stripe, and names what is down; /healthz/ready
tells a load balancer whether this process can serve pages, which only the database decides."""

import json
import os
import socket
import subprocess
import sys
from contextlib import contextmanager

import pytest
from django.db import connection

from tests.config.test_settings import GOOD_PRODUCTION
from tests.support import ROOT, free_port


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


# --- /healthz/ready: can this web process serve pages? -------------------------------------------
@contextmanager
def listening_but_never_answering():
    """A loopback port that accepts connections into its backlog and never answers; yields the
    port and a function telling whether anything connected to it."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.setblocking(False)

        def connected() -> bool:
            try:
                server.accept()[0].close()
            except BlockingIOError:
                return False
            return True

        yield server.getsockname()[1], connected


@pytest.mark.django_db
def test_ready_is_200_when_the_database_answers(client):
    response = client.get("/healthz/ready")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "down": [],
        "checks": {"database": {"status": "ok", "ms": response.json()["checks"]["database"]["ms"]}},
    }


@pytest.mark.django_db
def test_ready_is_200_while_stripe_is_unreachable_and_healthz_still_names_stripe(client, settings):
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"

    assert client.get("/healthz/ready").status_code == 200
    full = client.get("/healthz")
    assert full.status_code == 503
    assert full.json()["down"] == ["stripe"]


@pytest.mark.django_db
def test_ready_is_200_while_the_broker_is_unreachable(client, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}

    assert client.get("/healthz/ready").status_code == 200
    assert client.get("/healthz").json()["down"] == ["broker"]


@pytest.mark.django_db
def test_ready_does_not_even_connect_to_stripe_or_the_broker(client, settings):
    with (
        listening_but_never_answering() as (stripe_port, stripe_called),
        listening_but_never_answering() as (
            broker_port,
            broker_called,
        ),
    ):
        settings.STRIPE_API_BASE = f"http://127.0.0.1:{stripe_port}"
        settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{broker_port}/0"
        settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}

        assert client.get("/healthz/ready").status_code == 200

        assert not stripe_called()
        assert not broker_called()


@contextmanager
def database_unreachable():
    """Point the default connection at a database that is not there (a closed port for
    PostgreSQL, a file in a missing folder for SQLite), then put it back."""
    saved = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "postgresql":
        connection.settings_dict.update(HOST="127.0.0.1", PORT=str(free_port()))
    else:
        connection.settings_dict["NAME"] = "/nonexistent-foretaste-folder/db.sqlite3"
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


@pytest.mark.django_db(transaction=True)
def test_ready_is_503_and_names_the_database_when_it_is_unreachable(client):
    with database_unreachable():
        ready = client.get("/healthz/ready")
        full = client.get("/healthz")

    assert ready.status_code == 503
    assert ready.json()["down"] == ["database"]
    assert full.status_code == 503
    assert "database" in full.json()["down"]


@pytest.mark.django_db
def test_ready_only_answers_get(client):
    assert client.post("/healthz/ready").status_code == 405


def _production_redirect_exempt() -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in GOOD_PRODUCTION and k != "DEBUG"}
    env.update(GOOD_PRODUCTION, DJANGO_SETTINGS_MODULE="config.settings")
    script = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps(s.SECURE_REDIRECT_EXEMPT))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.django_db
def test_both_health_endpoints_are_exempt_from_the_production_ssl_redirect(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_REDIRECT_EXEMPT = _production_redirect_exempt()

    assert client.get("/healthz/ready").status_code == 200
    assert client.get("/healthz").status_code == 200
    assert client.get("/healthz/readyx").status_code == 301
    assert client.get("/").status_code == 301
