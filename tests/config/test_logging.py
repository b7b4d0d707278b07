"""A refused request is logged as one line, not as a traceback; a real fault keeps its traceback."""

import logging

import pytest
from django.conf import settings as django_settings

from config.log_filters import ForbiddenWithoutTraceback


def _formatted(record: logging.LogRecord) -> str:
    return logging.Formatter(django_settings.LOGGING["formatters"]["plain"]["format"]).format(record)


@pytest.mark.django_db
def test_a_permission_denied_is_logged_as_one_line(client, customer, caplog):
    client.force_login(customer)

    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.get("/console/")

    assert response.status_code == 403
    records = [r for r in caplog.records if r.name == "django.request"]
    assert len(records) == 1
    record = records[0]
    assert record.status_code == 403
    assert record.exc_info is None
    line = _formatted(record)
    assert "Forbidden" in line and "/console/" in line
    assert "\n" not in line and "Traceback" not in line


@pytest.mark.django_db
def test_an_unexpected_error_is_still_logged_with_its_traceback(client, settings, caplog):
    settings.ROOT_URLCONF = "tests.config.urls_boom"
    client.raise_request_exception = False

    with caplog.at_level(logging.ERROR, logger="django.request"):
        assert client.get("/boom/").status_code == 500

    record = next(r for r in caplog.records if r.name == "django.request")
    assert record.exc_info is not None
    assert "Traceback" in _formatted(record)


def test_the_filter_keeps_every_record_and_strips_only_a_403s_traceback():
    try:
        raise PermissionError("refused")
    except PermissionError:
        import sys

        exc_info = sys.exc_info()
    forbidden = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "Forbidden", (), exc_info)
    forbidden.status_code = 403
    other = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "Not Found", (), exc_info)
    other.status_code = 404

    assert ForbiddenWithoutTraceback().filter(forbidden) and ForbiddenWithoutTraceback().filter(other)
    assert forbidden.exc_info is None
    assert other.exc_info is not None
