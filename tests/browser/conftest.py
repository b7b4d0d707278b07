"""Playwright driving Debian's Chromium (/usr/bin/chromium). No browser is ever downloaded.

Without Chromium these tests skip with a reason, unless FORETASTE_REQUIRE_BROWSER is set (CI
sets it): then a missing browser is an error, never a silent skip.

When a test fails, every page it had open is kept: a screenshot and the HTML, in
var/browser-failures/ (git-ignored), and the paths are printed with the failure.
"""

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.support import ROOT

FAILURES = ROOT / "var" / "browser-failures"

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


@pytest.fixture
def page(browser):
    """A desktop-sized page, with a fresh cookie jar."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and report.failed:
        kept = _keep_the_pages(item)
        if kept:
            report.sections.append(("browser pages kept", "\n".join(str(path) for path in kept)))
    return report


def _keep_the_pages(item) -> list[Path]:
    """Save a screenshot and the HTML of each page the failed test used. Runs before the
    fixtures' teardown closes them; whatever fixture made the page (page, phone, one of a
    test's own), it is found among the test's arguments."""
    from playwright.sync_api import Error, Page

    pages = {name: value for name, value in getattr(item, "funcargs", {}).items() if isinstance(value, Page)}
    stem = re.sub(r"[^\w.-]+", "_", item.name).strip("_")
    kept = []
    for name, page in pages.items():
        base = stem if len(pages) == 1 else f"{stem}.{name}"
        png, html = FAILURES / f"{base}.png", FAILURES / f"{base}.html"
        FAILURES.mkdir(parents=True, exist_ok=True)
        try:
            page.screenshot(path=str(png), full_page=True)
            html.write_text(page.content(), encoding="utf-8")
        except Error as exc:  # the page crashed or was closed: say so, keep the failure as it is
            html.write_text(f"<!-- the page could not be saved: {exc} -->", encoding="utf-8")
        kept += [path for path in (png, html) if path.exists()]
    return kept


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)
