"""A new customer signs up on a phone, verifies their email, and reaches their page."""

import re

import pytest
from django.core import mail

from tests.browser.journey import fits_the_screen


@pytest.mark.django_db(transaction=True)
def test_a_customer_signs_up_verifies_and_lands_on_their_page(live_server, phone):
    phone.goto(f"{live_server.url}/")
    assert fits_the_screen(phone)
    phone.get_by_role("link", name="Sign up").click()

    phone.get_by_label("Email").fill("lena@example.com")
    phone.get_by_label("Password:", exact=True).fill("a-long-and-unusual-password")
    phone.get_by_label("Password (again):").fill("a-long-and-unusual-password")
    phone.get_by_role("button", name="Sign up").click()

    phone.wait_for_url(re.compile(r"/accounts/confirm-email/$"))
    assert "Verify your email address" in phone.content()
    assert fits_the_screen(phone)
    assert len(mail.outbox) == 1
    link = re.search(r"https?://[^/\s]+(/accounts/confirm-email/\S+/)", mail.outbox[0].body).group(1)

    phone.goto(f"{live_server.url}{link}")
    phone.get_by_role("button", name="Confirm").click()

    phone.goto(f"{live_server.url}/me/")
    assert phone.get_by_role("heading", name="My trials").is_visible()
    assert phone.get_by_text("lena@example.com").is_visible()


@pytest.mark.django_db(transaction=True)
def test_the_keyboard_reaches_the_skip_link_first(live_server, phone):
    phone.goto(f"{live_server.url}/")

    phone.keyboard.press("Tab")

    focused = phone.evaluate("document.activeElement.textContent.trim()")
    assert focused == "Skip to content"
