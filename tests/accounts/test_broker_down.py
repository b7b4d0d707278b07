"""A request never waits on the broker: with the broker unreachable, signup answers, its
verification email is kept in the outbox, and the beat job sends it once the broker is back.

The signup runs in another process whose CELERY_BROKER_URL points at a closed port, with eager
mode off, so kombu really tries (and fails) to connect; nothing of ours is patched."""

import json
import subprocess
import sys

import pytest
from django.core import mail
from django.utils import timezone
from post_office.models import STATUS

from accounts.emails import outbox_send_due
from accounts.models import OutboxMessage, OutboxPurpose
from tests.accounts.processes import child_env
from tests.support import ROOT

SIGNUP = """
import json, django
django.setup()
from config.celery import app
app.conf.task_always_eager = False  # go through the (unreachable) broker, as in production
from django.test import Client
password = "a-long-and-unusual-password"
form = {"email": "nina@example.com", "password1": password, "password2": password}
response = Client().post("/accounts/signup/", form)
print(json.dumps({"status": response.status_code, "location": response.get("Location")}))
"""


@pytest.mark.django_db(transaction=True)
def test_signup_answers_with_the_broker_down_and_its_email_goes_out_when_it_is_back(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", SIGNUP],
        cwd=ROOT,
        env=child_env(CELERY_BROKER_URL="redis://127.0.0.1:1/0", EMAIL_URL=f"file://{tmp_path}"),
        capture_output=True,
        text=True,
        timeout=120,  # a bound on a hang, not a measurement: the publish gives up at once
    )

    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer == {"status": 302, "location": "/accounts/confirm-email/"}
    assert "Could not queue email" in result.stderr, "the publish must really have been tried and failed"
    assert list(tmp_path.iterdir()) == [], "nothing was sent while the broker was down"
    record = OutboxMessage.objects.get()
    assert record.purpose == OutboxPurpose.VERIFICATION
    assert record.address == "nina@example.com"
    assert record.email.status == STATUS.queued
    assert record.sent_at is None

    # The broker is back: beat's next run of the outbox job sends it.
    assert outbox_send_due(at=timezone.now()) == 1

    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["nina@example.com"]
    assert "/accounts/confirm-email/" in mail.outbox[0].body
    record.refresh_from_db()
    assert record.sent_at is not None
