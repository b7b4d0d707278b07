"""A real Celery worker, on the configured broker (CELERY_BROKER_URL: Redis in CI, the embedded
filesystem broker locally), takes an email queued after commit and delivers it: the message
file appears in the worker's mail folder and the outbox row is marked sent.

(The rolled-back-transaction test that used to live here ran no worker and would have passed if
queueing did nothing; it is now tests/accounts/test_outbox.py::test_a_rolled_back_change_…,
which checks the rows and has a committed control.)"""

import subprocess
import sys
import time
import uuid

import pytest
from django.conf import settings
from django.db import transaction
from post_office.models import STATUS

from accounts.emails import email_queue
from accounts.models import OutboxMessage, OutboxPurpose
from config.celery import app
from tests.accounts.processes import child_env
from tests.support import ROOT


@pytest.fixture
def worker_queue(tmp_path):
    """Start a worker on its own queue, mailing to ``tmp_path``; stop it afterwards."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    # The worker reads and marks the outbox row, so it works on this test's database.
    env = child_env(EMAIL_URL=f"file://{tmp_path}", CELERY_BROKER_URL=settings.CELERY_BROKER_URL)
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-Q",
            queue,
            "--pool=solo",
            "--without-gossip",
            "--without-mingle",
            "--loglevel=WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield queue, tmp_path, worker
    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_sends_an_email_queued_after_commit(worker_queue, monkeypatch):
    queue, mail_dir, worker = worker_queue
    monkeypatch.setitem(app.conf, "task_always_eager", False)
    monkeypatch.setitem(app.conf, "task_routes", {"accounts.tasks.email_send_task": {"queue": queue}})

    with transaction.atomic():
        record = email_queue(
            to="ann@example.com",
            subject="Your trial ends on Friday",
            text="We will remind you.",
            purpose=OutboxPurpose.REMINDER,
        )
        assert not list(mail_dir.iterdir()), "nothing may leave before the transaction commits"

    # Wait for the row to be marked sent: the worker marks it only after the file backend has
    # written and closed the message, so the file is whole by then (its mere existence is not
    # enough: it appears as soon as the backend opens it).
    def delivered() -> bool:
        return OutboxMessage.objects.filter(pk=record.pk, sent_at__isnull=False).exists()

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not delivered():
        assert worker.poll() is None, worker.stdout.read()
        time.sleep(0.2)

    files = list(mail_dir.iterdir())
    assert len(files) == 1, "the worker did not deliver the message within 60 s"
    message = files[0].read_text()
    assert "Subject: Your trial ends on Friday" in message
    assert "To: ann@example.com" in message

    record = OutboxMessage.objects.select_related("email").get(pk=record.pk)
    assert record.email.status == STATUS.sent
    assert record.sent_at is not None
    assert record.attempts == 1
