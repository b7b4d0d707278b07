"""A marketer on a phone sends the offer form with mistakes: the banner lists them, each link
reaches its field, and the page fits the screen, with wide tables scrolling inside their box."""

import os
from pathlib import Path

import pytest
from django.test import Client

from tests import factories
from tests.browser.journey import fits_the_screen


@pytest.mark.django_db(transaction=True)
def test_the_offer_form_with_errors_on_a_phone(live_server, phone, marketer, tmp_path):
    factories.product()
    client = Client()
    client.force_login(marketer)
    phone.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )

    phone.goto(f"{live_server.url}/console/offers/new/")
    # A phone lays the page out wider than its screen (and shrinks it) when anything overflows.
    assert fits_the_screen(phone)
    phone.get_by_label("Name").first.fill("Coffee sampler")
    phone.get_by_label("Slug").fill("Coffee Sampler")
    phone.get_by_label("Reminders (days before the end)").fill("seven")
    phone.get_by_label("Starts (UTC)").fill("2026-06-01T09:00")
    phone.get_by_role("button", name="Save draft").click()

    banner = phone.locator("#form-errors")
    assert banner.is_visible()
    assert "Nothing was saved." in banner.inner_text()
    for field in ("id_slug", "id_reminder_days"):
        assert banner.locator(f'a[href="#{field}"]').count() == 1
        assert phone.locator(f"#{field}").get_attribute("aria-invalid") == "true"
    assert fits_the_screen(phone)

    # The variants table is wider than the phone: it scrolls inside its box, which takes focus.
    box = phone.locator(".table-wrap", has=phone.locator("table.variants"))
    assert box.evaluate("el => el.scrollWidth > el.clientWidth")
    assert box.evaluate("el => getComputedStyle(el).overflowX") == "auto"
    assert box.get_attribute("tabindex") == "0"

    folder = Path(os.environ.get("FORETASTE_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    phone.screenshot(path=str(folder / "offer_form_errors_phone.png"), full_page=False)

    banner.locator('a[href="#id_reminder_days"]').click()
    assert phone.evaluate("location.hash") == "#id_reminder_days"
    assert phone.locator("#id_reminder_days").is_visible()
