"""After logging in, each role lands where it works: a marketer (and a staff operator) on the
console, an executive on the dashboard, a customer back where they were, else on /me/."""

import pytest

PASSWORD = "correct-horse-battery"


def _log_in(client, user, **query):
    path = "/accounts/login/"
    if query:
        path += "?" + "&".join(f"{key}={value}" for key, value in query.items())
    response = client.post(path, {"login": user.email, "password": PASSWORD})
    assert response.status_code == 302, response.content.decode()[:500]
    return response.url


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "landing"),
    [("marketer", "/console/"), ("executive", "/dashboard/"), ("customer", "/me/"), ("operator", "/console/")],
)
def test_each_role_lands_where_it_works(client, request, who, landing):
    user = request.getfixturevalue(who)

    assert _log_in(client, user) == landing
    assert client.get(landing).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["customer", "marketer", "executive"])
def test_a_login_with_a_next_page_goes_back_there(client, request, who):
    user = request.getfixturevalue(who)

    assert _log_in(client, user, next="/o/coffee-sampler/") == "/o/coffee-sampler/"


@pytest.mark.django_db
def test_a_customer_sent_to_log_in_from_a_page_returns_to_it(client, customer):
    sent = client.get("/me/")
    assert sent.status_code == 302
    assert sent.url.startswith("/accounts/login/?next=/me/")

    assert client.post(sent.url, {"login": customer.email, "password": PASSWORD}).url == "/me/"


@pytest.mark.django_db
@pytest.mark.parametrize("next_url", ["https://evil.example/", "//evil.example/me/", "javascript:alert(1)"])
def test_a_next_page_on_another_site_is_ignored(client, customer, next_url):
    assert _log_in(client, customer, next=next_url) == "/me/"
