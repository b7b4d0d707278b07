"""The shared cast and the real parts every test can lean on.

- ``localstripe``: the offline Stripe, one per test session, on a free loopback port. Settings
  point the gateway at it for the whole session.
- ``ids_of_their_own``: on SQLite, ids that no earlier test of the session had.
- The cast: a customer, a marketer, an executive, an operator (staff) and an outsider.
- ``postgres``-marked tests are skipped on SQLite with a reason, unless FORETASTE_REQUIRE_POSTGRES
  is set (CI sets it), in which case running on SQLite is an error, not a skip.
"""

import itertools
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


_ID_BLOCKS = itertools.count(1)


@pytest.fixture(autouse=True)
def ids_of_their_own(request):
    """On SQLite each test's rows get ids no earlier test had. Its AUTOINCREMENT counters live in
    a table that the test's rollback puts back, so the next test would be given the same ids
    again, and with them the same ids in what the session's one localstripe keeps (a customer
    found by ``user-<pk>``, an idempotency key naming a trial): one test would meet another's
    Stripe customer, subscriptions and charges. PostgreSQL's sequences never go back."""
    if connection.vendor != "sqlite" or not (
        request.node.get_closest_marker("django_db") or {"db", "transactional_db"} & set(request.fixturenames)
    ):
        yield
        return
    request.getfixturevalue("db")
    start = next(_ID_BLOCKS) * 100_000
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO sqlite_sequence (name, seq) SELECT name, 0 FROM sqlite_master WHERE type = 'table' "
            "AND sql LIKE '%AUTOINCREMENT%' AND name NOT IN (SELECT name FROM sqlite_sequence)"
        )
        cursor.execute("UPDATE sqlite_sequence SET seq = %s WHERE seq < %s", [start, start])
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
