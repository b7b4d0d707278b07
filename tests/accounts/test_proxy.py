"""Behind the reverse proxy every request comes from the proxy's address; allauth's rate limits
must count the client the proxy names in X-Forwarded-For (TRUSTED_PROXY_COUNT), or ten failed
logins from one attacker lock every user out."""

import os
import subprocess
import sys

import pytest
from django.test import override_settings

from tests.support import ROOT

PROXY = "10.0.0.2"  # REMOTE_ADDR of every request: the proxy in front of gunicorn
ATTACKER = "203.0.113.7"
USER = "198.51.100.9"
PASSWORD = "correct-horse-battery"


def _log_in(client, *, email, password, forwarded_for):
    return client.post(
        "/accounts/login/",
        {"login": email, "password": password},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=forwarded_for,
    )


def _attack(client, *, forwarded_for=ATTACKER, tries=12):
    """Failed logins for many accounts from one address, past the per-IP limit (10 a minute)."""
    answers = [
        _log_in(client, email=f"victim{n}@example.com", password="guess", forwarded_for=forwarded_for)
        for n in range(tries)
    ]
    assert "Too many failed login attempts" in answers[-1].content.decode(), "the attacker was not limited"


@pytest.mark.django_db
@override_settings(ALLAUTH_TRUSTED_PROXY_COUNT=1)
def test_one_attackers_failed_logins_do_not_lock_out_another_user(client, customer):
    _attack(client)

    response = _log_in(client, email=customer.email, password=PASSWORD, forwarded_for=USER)

    assert response.status_code == 302
    assert "_auth_user_id" in client.session


@pytest.mark.django_db
@override_settings(ALLAUTH_TRUSTED_PROXY_COUNT=1)
def test_an_attacker_cannot_put_his_failures_on_someone_elses_address(client, customer):
    # The proxy appends the address it saw; what the client wrote before it is not trusted.
    _attack(client, forwarded_for=f"{USER}, {ATTACKER}")

    assert _log_in(client, email=customer.email, password=PASSWORD, forwarded_for=USER).status_code == 302


@pytest.mark.django_db
@override_settings(ALLAUTH_TRUSTED_PROXY_COUNT=0)
def test_without_the_setting_behind_a_proxy_everybody_shares_the_attackers_limit(client, customer):
    """Why the setting exists: with 0 every request counts as the proxy's address."""
    _attack(client)

    response = _log_in(client, email=customer.email, password=PASSWORD, forwarded_for=USER)

    assert response.status_code == 200
    assert "Too many failed login attempts" in response.content.decode()


def _setting(value: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRUSTED_PROXY_COUNT"}
    env.update({"FORETASTE_ENV": "development", "DJANGO_SETTINGS_MODULE": "config.settings"})
    if value is not None:
        env["TRUSTED_PROXY_COUNT"] = value
    code = (
        "import django; django.setup(); from django.conf import settings; print(settings.ALLAUTH_TRUSTED_PROXY_COUNT)"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("value", "count"), [(None, "0"), ("", "0"), ("1", "1"), ("2", "2")])
def test_the_trusted_proxy_count_is_read_from_the_environment(value, count):
    result = _setting(value)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == count


@pytest.mark.parametrize("value", ["-1", "one", "1.5"])
def test_a_bad_trusted_proxy_count_stops_startup_naming_it(value):
    result = _setting(value)

    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last_line
    assert "TRUSTED_PROXY_COUNT" in last_line
