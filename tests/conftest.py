"""The shared cast and the real parts every test can lean on.

- ``localstripe``: the offline Stripe, one per test session, on a free loopback port. Settings
  point the gateway at it for the whole session.
- The cast: a customer, a marketer, an executive, an operator (staff) and an outsider.
- ``postgres``-marked tests are skipped on SQLite with a reason, unless FORETASTE_REQUIRE_POSTGRES
  is set (CI sets it), in which case running on SQLite is an error, not a skip.
"""

import os

import pytest
from django.conf import settings
from django.db import connection

from accounts.demo import user_ensure
from accounts.roles import EXECUTIVE, MARKETER
from tests.support import localstripe_as_stripe

PASSWORD = "correct-horse-battery"


def pytest_collection_modifyitems(config, items):
    on_postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    if on_postgres:
        return
    if os.environ.get("FORETASTE_REQUIRE_POSTGRES"):
        raise pytest.UsageError("FORETASTE_REQUIRE_POSTGRES is set but DATABASE_URL is not PostgreSQL.")
    skip = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://… to run it")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def default_language():
    """Each test starts in the default language. Django leaves the last request's language active
    in the thread, and django-modeltranslation writes ``offer.name = ...`` in the active language,
    so a language left over from an earlier test would change where a test's data is written."""
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def empty_cache():
    """Each test starts with an empty cache: what one test kept (a rate limit's count, a
    dashboard panel) is not another's."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(scope="session", autouse=True)
def localstripe():
    with localstripe_as_stripe() as base:
        yield base


@pytest.fixture
def customer(db):
    return user_ensure(email="carla.customer@example.com", password=PASSWORD)


@pytest.fixture
def outsider(db):
    return user_ensure(email="oscar.outsider@example.com", password=PASSWORD)


@pytest.fixture
def marketer(db):
    return user_ensure(email="mia.marketer@example.com", password=PASSWORD, role=MARKETER)


@pytest.fixture
def as_marketer(client, marketer):
    """The test client, logged in as the marketer."""
    client.force_login(marketer)
    return client


@pytest.fixture
def executive(db):
    return user_ensure(email="eve.executive@example.com", password=PASSWORD, role=EXECUTIVE)


@pytest.fixture
def operator(db):
    return user_ensure(email="otto.operator@example.com", password=PASSWORD, is_staff=True, is_superuser=True)


def pytest_report_header(config):
    return f"database: {connection.vendor} ({settings.DATABASES['default']['NAME']})"
