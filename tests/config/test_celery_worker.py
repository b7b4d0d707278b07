"""A real Celery worker, on the configured broker (Redis in CI, the embedded filesystem broker
locally), takes a task queued after commit and runs it end to end."""

import os
import subprocess
import sys
import time
import uuid

import pytest
from django.conf import settings
from django.db import transaction

from accounts.emails import email_queue
from config.celery import app
from tests.support import ROOT


@pytest.fixture
def worker_queue(tmp_path):
    """Start a worker on its own queue, mailing to ``tmp_path``; stop it afterwards."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "FORETASTE_ENV": "test",
        "EMAIL_URL": f"file://{tmp_path}",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
    }
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
    monkeypatch.setitem(app.conf, "task_routes", {"accounts.tasks.email_send": {"queue": queue}})

    with transaction.atomic():
        email_queue(to=["ann@example.com"], subject="Your trial ends on Friday", text="We will remind you.")
        assert not list(mail_dir.iterdir()), "nothing may leave before the transaction commits"

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(mail_dir.iterdir()):
        assert worker.poll() is None, worker.stdout.read()
        time.sleep(0.2)

    files = list(mail_dir.iterdir())
    assert len(files) == 1, "the worker did not deliver the message within 60 s"
    message = files[0].read_text()
    assert "Subject: Your trial ends on Friday" in message
    assert "To: ann@example.com" in message


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_queues_nothing(monkeypatch):
    sent = []
    monkeypatch.setattr("accounts.tasks.email_send.delay", lambda **kw: sent.append(kw))

    with pytest.raises(RuntimeError), transaction.atomic():
        email_queue(to=["ann@example.com"], subject="s", text="t")
        raise RuntimeError("the claim failed")

    assert sent == []
