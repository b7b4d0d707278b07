"""Claim, cancel and the signed-link pages are rate-limited per IP and per account, in the shared
cache, with a clear page and nothing done once the limit is used up."""

import pytest
from django.core.cache import cache

from config.ratelimit import rate_limited

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.config.urls_ratelimit")]


@pytest.fixture(autouse=True)
def small_limits(settings):
    settings.FORETASTE_RATE_LIMITS = {"claim": "3/10m/ip,2/10m/user", "signed_link": "2/10m/ip"}
    cache.clear()
    yield
    cache.clear()


def post_from(client, ip: str, path: str = "/limited/claim/"):
    return client.post(path, REMOTE_ADDR=ip)


def test_an_account_is_limited_whatever_address_it_comes_from(client, customer):
    client.force_login(customer)

    answers = [post_from(client, f"198.51.100.{n}").status_code for n in range(3)]

    assert answers == [200, 200, 429]


def test_one_address_is_limited_and_another_is_not(client):
    answers = [post_from(client, "203.0.113.7").status_code for _ in range(4)]

    assert answers == [200, 200, 200, 429]
    assert post_from(client, "203.0.113.8").status_code == 200


def test_the_refusal_is_a_clear_page_that_says_nothing_changed(client):
    for _ in range(3):
        post_from(client, "203.0.113.9")

    refused = post_from(client, "203.0.113.9")

    assert refused.status_code == 429
    assert refused["Retry-After"] == "600"
    page = refused.content.decode()
    assert "Too many tries" in page and "Nothing was changed" in page
    assert "claimed" not in page


def test_reading_a_page_is_free_but_a_signed_link_counts_every_visit(client):
    assert all(client.get("/limited/claim/", REMOTE_ADDR="192.0.2.1").status_code == 200 for _ in range(10))

    visits = [client.get("/limited/link/", REMOTE_ADDR="192.0.2.1").status_code for _ in range(3)]

    assert visits == [200, 200, 429]


def test_behind_a_proxy_the_client_address_counts_not_the_proxys(client, settings):
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    proxy = "10.0.0.1"
    for _ in range(3):
        client.post("/limited/claim/", REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="203.0.113.20")

    assert client.post("/limited/claim/", REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="203.0.113.20").status_code == 429
    assert client.post("/limited/claim/", REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="203.0.113.21").status_code == 200


def test_an_action_without_a_limit_is_a_programming_error():
    with pytest.raises(ValueError, match="No rate limit"):
        rate_limited("unheard-of")
