"""A marketer uploads a large history file in Chromium, under the real Content-Security-Policy:
the job's page waits for a worker, and once the import is done it shows the result by itself
(static JavaScript polling the job's state; no inline script)."""

import re

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from billing import console_views
from billing.imports import COLUMNS, jobs

ROWS = ["c-1,ann@example.com,2024-01-01T00:00:00Z,DE", "c-2,bob@example.com,2024-01-01T00:00:00Z,"]


@pytest.mark.django_db(transaction=True)
def test_the_job_page_follows_a_background_import_to_its_result(live_server, browser, marketer, tmp_path, monkeypatch):
    monkeypatch.setattr(settings, "MEDIA_ROOT", tmp_path)
    monkeypatch.setattr(console_views, "INLINE_MAX", 0)
    queued = []  # the broker: the test plays the worker below
    monkeypatch.setattr("billing.tasks.history_import_job_task.delay", lambda **kwargs: queued.append(kwargs))
    client = Client()
    client.force_login(marketer)
    context = browser.new_context()
    context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": live_server.url,
            }
        ]
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))

    page.goto(f"{live_server.url}/console/imports/")
    page.get_by_label("Customers").check()
    content = "\n".join((",".join(COLUMNS["customers"]), *ROWS)).encode() + b"\n"
    page.set_input_files(
        "input[type=file]", files=[{"name": "customers.csv", "mimeType": "text/csv", "buffer": content}]
    )
    page.get_by_role("button", name="Import").click()

    page.wait_for_url(re.compile(r"/console/imports/\?job=\d+$"))
    assert page.get_by_role("heading", name="Waiting for a worker…").is_visible()
    assert len(queued) == 1

    jobs.import_job_run(job_pk=queued[0]["job_pk"], at=timezone.now())

    page.get_by_text("2 new, 0 already there").wait_for()
    assert page.get_by_role("heading", name=re.compile("^Imported")).is_visible()
    # The page changed by itself, so the script ran; and the CSP refused nothing on the way.
    assert not [problem for problem in problems if "Content Security Policy" in problem or "Refused" in problem]
    context.close()
