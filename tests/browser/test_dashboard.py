"""An executive opens the dashboards on the demo data: plotly.js, from our own static files,
draws every chart under the site's Content-Security-Policy with no console error, the pages fit
a phone, and the README's screenshots are taken from them (docs/screenshots/)."""

import pytest
from django.core.management import call_command
from django.test import Client

from accounts.demo_story import PLANTED_OFFER
from accounts.models import User
from tests.browser.journey import fits_the_screen, watch_the_console
from tests.support import ROOT

SCREENSHOTS = ROOT / "docs" / "screenshots"
# Enough customers for the planted offer's effect to show; small enough to seed in seconds.
CUSTOMERS = 8_000


@pytest.fixture
def executive_cookie(live_server):
    call_command("seed_demo", customers=CUSTOMERS, progress=False, stdout=open("/dev/null", "w"))  # noqa: SIM115
    client = Client()
    client.force_login(User.objects.get(email="executive@demo.test"))
    return {"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}


def drawn_charts(page) -> int:
    page.wait_for_function(
        "document.querySelectorAll('.js-chart').length > 0 && "
        "document.querySelectorAll('.js-chart').length === document.querySelectorAll('.js-plotly-plot').length"
    )
    return page.locator(".js-plotly-plot").count()


@pytest.mark.django_db(transaction=True)
def test_an_executive_sees_every_chart_drawn_on_the_demo_data(live_server, page, phone, executive_cookie):
    page.context.add_cookies([executive_cookie])
    errors = watch_the_console(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    page.goto(f"{live_server.url}/dashboard/")
    assert drawn_charts(page) == 7  # funnel, conversion, outcomes, KM, cohorts, uplift, value
    assert page.locator("#chart-offers").get_by_text("No holdout: observational only.").count() >= 1
    assert page.locator("#chart-offers").get_by_text("Raised repeat buyers by").count() >= 1
    page.screenshot(path=str(SCREENSHOTS / "dashboard-overview.png"), full_page=True)

    page.goto(f"{live_server.url}/dashboard/offers/{PLANTED_OFFER}/")
    assert drawn_charts(page) == 7
    verdicts = page.locator(".verdict-lines").inner_text()
    assert "sample: Raised repeat buyers by" in verdicts
    assert page.locator("#promises-title").inner_text() == "Promises kept"
    assert page.locator(".promises").get_by_text("Reminders delivered on time").count() == 1
    # Every curve Plotly drew is an SVG with content, not an empty frame.
    assert page.locator("#chart-km .js-plotly-plot path.js-line").count() >= 2
    assert (
        page.locator("#chart-cohorts .js-plotly-plot .hm image, #chart-cohorts .js-plotly-plot .heatmaplayer").count()
        >= 1
    )
    page.screenshot(path=str(SCREENSHOTS / "dashboard-offer.png"), full_page=True)
    assert errors == []

    phone.context.add_cookies([executive_cookie])
    phone_errors = watch_the_console(phone)
    phone.goto(f"{live_server.url}/dashboard/offers/{PLANTED_OFFER}/")
    assert drawn_charts(phone) == 7
    assert fits_the_screen(phone)
    assert phone_errors == []
