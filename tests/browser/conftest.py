"""Playwright driving Debian's Chromium (/usr/bin/chromium). No browser is ever downloaded.

Without Chromium these tests skip with a reason, unless FORETASTE_REQUIRE_BROWSER is set (CI
sets it): then a missing browser is an error, never a silent skip.
"""

import os
import shutil

import pytest

CHROMIUM = os.environ.get("FORETASTE_CHROMIUM", "/usr/bin/chromium")
# Flags that keep Chromium from calling out to the internet, which this machine does not have.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="module")
def browser():
    # Module scope, not session: while Playwright's sync API is open its event loop runs in
    # this thread, and Django would then hand later tests a second, never-closed connection.
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        if os.environ.get("FORETASTE_REQUIRE_BROWSER"):
            pytest.fail(f"FORETASTE_REQUIRE_BROWSER is set but {CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"needs Chromium at {CHROMIUM}: apt-get install chromium chromium-driver")
    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
    # next to it are still synchronous, so Django's async-safety guard is told so.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def phone(browser):
    """A page the size of a phone, with a fresh cookie jar."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)
