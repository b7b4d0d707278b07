"""Unknown URLs and unexpected errors get styled pages that leak nothing."""

import pytest


@pytest.mark.django_db
def test_an_unknown_url_gets_a_styled_404(client):
    response = client.get("/no/such/page/")

    assert response.status_code == 404
    html = response.content.decode()
    assert "We could not find that page" in html
    assert "foretaste.css" in html


@pytest.mark.django_db
def test_an_unexpected_error_gets_a_styled_500_without_settings(client, settings):
    settings.ROOT_URLCONF = "tests.config.urls_boom"
    settings.DEBUG = False
    client.raise_request_exception = False

    response = client.get("/boom/")

    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong on our side" in html
    assert "foretaste.css" in html
    for secret in ("SECRET_KEY", settings.SECRET_KEY, "Traceback", "RuntimeError", "DATABASES"):
        assert secret not in html
