"""Settings fail loudly, naming the variable, and production is locked down."""

import os
import subprocess
import sys

import pytest

from tests.support import ROOT

GOOD_PRODUCTION = {
    "FORETASTE_ENV": "production",
    "SECRET_KEY": "k" * 20 + "9f8e7d6c5b4a3z2y1x0w" + "q" * 20,
    "ALLOWED_HOSTS": "foretaste.example.com",
    "DATABASE_URL": "postgres://u:p@db.internal:5432/foretaste",
    "CACHE_URL": "redis://127.0.0.1:6379/1",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    "EMAIL_URL": "smtp://u:p@smtp.internal:587/?tls=True",
    "STRIPE_SECRET_KEY": "sk_live_x",
    "STRIPE_PUBLISHABLE_KEY": "pk_live_x",
    "STRIPE_WEBHOOK_SECRET": "whsec_x",
}
PRINT_SETTINGS = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({k: getattr(s, k, None) for k in ["
    "'DEBUG','SECURE_SSL_REDIRECT','SESSION_COOKIE_SECURE','CSRF_COOKIE_SECURE','SECURE_HSTS_SECONDS',"
    "'SECURE_HSTS_INCLUDE_SUBDOMAINS','MIDDLEWARE','STORAGES','CONTENT_SECURITY_POLICY']}, default=repr))"
)


def _start(env_overrides: dict, *, drop: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in GOOD_PRODUCTION and k != "DEBUG"}
    env.update(GOOD_PRODUCTION)
    env.update(env_overrides)
    for name in drop:
        env.pop(name, None)
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    return subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_production_settings_with_every_variable_start():
    result = _start({})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", ["SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "CACHE_URL", "STRIPE_SECRET_KEY"])
def test_production_refuses_to_start_without_a_required_variable(name):
    result = _start({}, drop=(name,))

    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert name in last_line
    assert "ImproperlyConfigured" in last_line


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SECRET_KEY", "short"),
        ("SECRET_KEY", "django-insecure-" + "a1b2c3d4e5" * 5),
        ("ALLOWED_HOSTS", "*"),
        ("DATABASE_URL", "mysql://u:p@db/foretaste"),
        ("DATABASE_URL", "postgres://u:p@db.internal:5432/"),
        ("DEBUG", "maybe"),
        ("DEBUG", "1"),
        ("FORETASTE_ENV", "staging"),
        ("EMAIL_URL", "carrier-pigeon://coop"),
        ("SECURE_HSTS_SECONDS", "a year"),
        ("CELERY_BROKER_URL", "kafka://broker"),
    ],
)
def test_production_refuses_a_malformed_variable_and_names_it(name, value):
    result = _start({name: value})

    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert name in last_line


def test_production_turns_on_secure_cookies_hsts_ssl_redirect_csp_and_whitenoise():
    import json

    result = _start({})
    values = json.loads(result.stdout)

    assert values["DEBUG"] is False
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 31536000
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert "whitenoise.middleware.WhiteNoiseMiddleware" in values["MIDDLEWARE"]
    assert "csp.middleware.CSPMiddleware" in values["MIDDLEWARE"]
    assert "CompressedManifestStaticFilesStorage" in values["STORAGES"]["staticfiles"]["BACKEND"]
    assert values["CONTENT_SECURITY_POLICY"]["DIRECTIVES"]["default-src"] == ["'self'"]


def test_pages_carry_a_content_security_policy(client, db):
    response = client.get("/")

    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "object-src 'none'" in policy
