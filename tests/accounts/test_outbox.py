"""Every email is a row before it is sent; it is sent once, after the commit, retried with
backoff when the mail server fails, and visible to operators when it keeps failing."""

import itertools
import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.test import override_settings
from post_office.models import STATUS, Email, Log

from accounts.emails import (
    CLAIM_LEASE,
    INTERRUPTED,
    MAX_ATTEMPTS,
    _claim,
    email_queue,
    outbox_resend,
    outbox_send,
    outbox_send_due,
)
from accounts.models import OutboxMessage, OutboxPurpose
from tests.factories import NOW

REFUSING = "tests.accounts.mail_backends.RefusingBackend"


def _queue(**values):
    defaults = {
        "to": "ann@example.com",
        "subject": "Your trial ends on Friday",
        "text": "We will remind you.",
        "purpose": OutboxPurpose.REMINDER,
        "at": NOW,
    }
    return email_queue(**{**defaults, **values})


@pytest.mark.django_db(transaction=True)
def test_a_message_is_a_row_with_what_it_is_about_and_is_sent_after_the_commit(customer):
    with transaction.atomic():
        record = email_queue(
            to=customer.email,
            subject="Ihre Probezeit endet am Freitag",
            text="Wir erinnern Sie.",
            html="<p>Wir erinnern Sie.</p>",
            purpose=OutboxPurpose.REMINDER,
            user=customer,
            about=customer,
            language="de",
        )
        assert Email.objects.get(pk=record.email_id).status == STATUS.queued
        assert mail.outbox == [], "nothing may leave before the transaction commits"

    record.refresh_from_db()
    assert record.user == customer
    assert record.address == customer.email
    assert record.purpose == "reminder"
    assert record.language == "de"
    assert record.about == customer
    assert record.sent_at is not None and record.sent_at >= record.due_at
    assert record.attempts == 1
    assert record.email.status == STATUS.sent
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [customer.email]
    assert mail.outbox[0].subject == "Ihre Probezeit endet am Freitag"
    assert mail.outbox[0].alternatives[0].content == "<p>Wir erinnern Sie.</p>"


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_change_leaves_no_row_and_sends_nothing_while_a_committed_one_sends():
    with pytest.raises(RuntimeError), transaction.atomic():
        _queue(subject="about a claim that failed", at=None)
        raise RuntimeError("the claim failed")

    assert not Email.objects.exists()
    assert not OutboxMessage.objects.exists()
    assert mail.outbox == []

    with transaction.atomic():
        _queue(subject="about a claim that worked", at=None)

    assert [m.subject for m in mail.outbox] == ["about a claim that worked"]


@pytest.mark.django_db
def test_a_message_due_later_waits_for_its_time():
    record = _queue(due_at=NOW + timedelta(days=3))

    assert outbox_send_due(at=NOW + timedelta(days=3) - timedelta(seconds=1)) == 0
    assert mail.outbox == []
    assert outbox_send_due(at=NOW + timedelta(days=3)) == 1

    record.refresh_from_db()
    assert record.sent_at == NOW + timedelta(days=3)
    assert record.due_at == NOW + timedelta(days=3)


@pytest.mark.django_db
def test_a_sent_message_is_never_sent_again_by_any_path():
    record = _queue()
    assert outbox_send_due(at=NOW) == 1

    later = NOW + CLAIM_LEASE * 10
    assert outbox_send(email_id=record.email_id, at=later) is False
    assert outbox_send_due(at=later) == 0
    assert outbox_resend(email_ids=[record.email_id], at=later) == 0
    assert outbox_send_due(at=later + timedelta(hours=1)) == 0
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_a_failing_mail_server_is_retried_with_backoff_then_the_message_is_failed_with_its_error():
    record = _queue()
    moments = []
    with override_settings(EMAIL_BACKEND=REFUSING):
        at = NOW
        for _ in range(MAX_ATTEMPTS):
            assert outbox_send_due(at=at) == 0
            moments.append(at)
            email = Email.objects.get(pk=record.email_id)
            at = email.scheduled_time
            assert outbox_send_due(at=at - timedelta(seconds=1)) == 0, "not before its backoff is over"

    gaps = [b - a for a, b in itertools.pairwise(moments)]
    assert gaps == [timedelta(minutes=2**n) for n in range(MAX_ATTEMPTS - 1)]
    email = Email.objects.get(pk=record.email_id)
    assert email.status == STATUS.failed
    record.refresh_from_db()
    assert record.attempts == MAX_ATTEMPTS
    assert record.sent_at is None
    errors = Log.objects.filter(email=email, status=STATUS.failed)
    assert errors.count() == MAX_ATTEMPTS
    assert {(log.exception_type, log.message) for log in errors} == {
        ("SMTPServerDisconnected", "Connection unexpectedly closed")
    }
    assert outbox_send_due(at=at + timedelta(days=1)) == 0, "a failed message waits for an operator"

    assert outbox_resend(email_ids=[email.pk], at=at + timedelta(days=1)) == 1
    assert outbox_send_due(at=at + timedelta(days=1)) == 1
    assert len(mail.outbox) == 1
    record.refresh_from_db()
    assert record.sent_at == at + timedelta(days=1)
    assert record.attempts == MAX_ATTEMPTS + 1


@pytest.mark.django_db
def test_a_sender_that_died_mid_send_leaves_a_failed_message_not_a_second_copy():
    record = _queue()
    assert _claim(email_id=record.email_id, at=NOW) is not None  # ...and the process is killed

    assert outbox_send_due(at=NOW + CLAIM_LEASE - timedelta(seconds=1)) == 0, "its claim still holds"
    assert outbox_send_due(at=NOW + CLAIM_LEASE) == 0

    email = Email.objects.get(pk=record.email_id)
    assert email.status == STATUS.failed
    assert email.logs.get().message == INTERRUPTED
    assert mail.outbox == []
    assert outbox_resend(email_ids=[email.pk], at=NOW + CLAIM_LEASE) == 1
    assert outbox_send_due(at=NOW + CLAIM_LEASE) == 1
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_the_same_key_queues_one_message():
    first = _queue(key="reminder:trial:42:7")
    second = _queue(key="reminder:trial:42:7", subject="a second try")

    assert second.pk == first.pk
    assert OutboxMessage.objects.count() == Email.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"purpose": "newsletter"}, ValueError),
        ({"to": "not an address"}, ValidationError),
        ({"to": "ann@example.com, bob@example.com"}, ValidationError),
    ],
)
def test_a_bad_message_is_refused_and_writes_nothing(values, error):
    with pytest.raises(error):
        _queue(**values)

    assert not Email.objects.exists()
    assert not OutboxMessage.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_senders_deliver_each_message_exactly_once():
    due = NOW + timedelta(days=1)  # queued for later, so that only the racing senders send them
    records = [_queue(subject=f"message {n}", due_at=due) for n in range(40)]
    senders = 4
    start = threading.Barrier(senders)
    delivered = []
    errors = []

    def sender():
        try:
            start.wait()
            delivered.append(outbox_send_due(at=due))
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sum(delivered) == len(records)
    subjects = sorted(m.subject for m in mail.outbox)
    assert subjects == sorted(f"message {n}" for n in range(40))
    assert not OutboxMessage.objects.filter(sent_at__isnull=True).exists()
    assert Log.objects.filter(status=STATUS.sent).count() == len(records)
