"""The outbox: every email is a row before it is sent.

``email_queue`` is the one way code sends mail. It writes the message in the caller's transaction
(so a rolled-back change sends nothing, and a committed one cannot lose its message), and after
the commit asks a Celery worker to send it. If the broker is down that request is dropped with a
warning and the page answers at once; the beat job ``outbox_send_due`` (every minute) sends
whatever is due and unsent, so the message goes out once the broker is back.

Storage. The message itself is django-post-office's ``Email`` (from, to, subject, bodies, status
``queued``/``requeued``/``sent``/``failed``, ``scheduled_time`` = when it may next be tried) and
its ``Log`` rows (one per attempt, with the error). post_office has no field for who the message
is for, why, in which language, what it is about, or when it was first due and when it went out,
and reminders, receipts, the "emails we sent you" list on /me/ and the "Promises kept" figures
need exactly those. They live in ``accounts.models.OutboxMessage``, one-to-one with the Email
(``OutboxMessage.email``, ``Email.outbox``): ``user``, ``address``, ``purpose``
(``OutboxPurpose``), ``language``, ``about`` (``about_type`` + ``about_id``), ``key`` (optional,
unique: queueing the same message twice returns the first), ``due_at``, ``sent_at``,
``attempts``. A one-to-one record rather than post_office's ``context`` JSON, because these are
filtered, joined and counted, and need real columns, foreign keys and indexes.

Sending. We do not use post_office's sender. Its ``send_queued`` reads the queued rows without
claiming them and marks them sent only after sending; all that keeps two senders apart is the
lock file of ``send_queued_mail_until_done`` in the local temp directory, which a second machine
or container does not share (and ``send_queued`` alone does not take). Its admin's "requeue"
action and "Resend" button also send mail that was already sent. So ``outbox_send`` claims each
row with a conditional UPDATE (due, not sent, not held by another sender), commits, sends
without holding a lock, and records the result:

- delivered: ``sent``; ``sent_at`` is set. A sent row is never selected or claimed again.
- failed: ``requeued`` with a backoff of 1, 2, 4 … minutes (at most 2 hours), and after
  ``MAX_ATTEMPTS`` failures ``failed``; each error is in the Log, shown in the admin, where
  operators can resend failed messages (``outbox_resend``).
- a sender killed between its claim and its result leaves ``claimed_at`` set. The message may or
  may not have left, so it is not retried (that could send it twice) but marked failed with that
  explanation, for an operator to resend if the recipient did not get it.
"""

import logging
from datetime import datetime, timedelta
from email.utils import make_msgid
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.mail import get_connection
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone, translation
from kombu.exceptions import OperationalError as BrokerError
from post_office.models import PRIORITY, STATUS, Email, Log

from accounts.models import OutboxMessage, OutboxPurpose

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
FIRST_BACKOFF = timedelta(minutes=1)
MAX_BACKOFF = timedelta(hours=2)
# How long a claim keeps other senders away. Far longer than one send can take (EMAIL_TIMEOUT,
# Celery's 300 s hard time limit), so a live sender is never overtaken.
CLAIM_LEASE = timedelta(minutes=15)
DUE_STATUSES = (STATUS.queued, STATUS.requeued)
INTERRUPTED = (
    "The sender stopped while sending this message, so it may have been delivered. It was not "
    "tried again, so that nobody gets it twice: resend it if the recipient did not get it."
)


def email_queue(
    *,
    to: str,
    subject: str,
    text: str,
    purpose: str,
    html: str = "",
    user=None,
    about=None,
    language: str | None = None,
    from_email: str | None = None,
    key: str | None = None,
    due_at: datetime | None = None,
    promised_at: datetime | None = None,
    at: datetime | None = None,
) -> OutboxMessage:
    """Write one message to ``to`` in the current transaction and send it after the commit (or
    at ``due_at``, by the beat job). With a ``key`` already queued, return that message.
    ``promised_at`` is the moment the terms promised the message for, if they did (a reminder)."""
    if purpose not in OutboxPurpose.values:
        raise ValueError(f"Unknown email purpose {purpose!r}; add it to accounts.models.OutboxPurpose.")
    at = at or timezone.now()
    due_at = due_at or at
    if timezone.is_naive(due_at):
        raise ValueError("due_at must be an aware datetime.")
    if key is not None and (existing := OutboxMessage.objects.filter(key=key).first()):
        return existing
    try:
        with transaction.atomic():
            email = Email(
                from_email=from_email or settings.DEFAULT_FROM_EMAIL,
                to=[to],
                subject=subject,
                message=text,
                html_message=html or "",
                status=STATUS.queued,
                priority=PRIORITY.medium,
                scheduled_time=due_at,
                number_of_retries=0,
                message_id=make_msgid(domain=urlsplit(settings.SITE_URL).hostname or "localhost"),
            )
            email.save()  # post_office's save() runs full_clean: a malformed address is refused here
            record = OutboxMessage.objects.create(
                email=email,
                user=user,
                address=to,
                purpose=purpose,
                language=language or translation.get_language() or settings.LANGUAGE_CODE,
                about_type=ContentType.objects.get_for_model(about) if about is not None else None,
                about_id=about.pk if about is not None else None,
                key=key,
                created_at=at,
                due_at=due_at,
                promised_at=promised_at,
            )
    except IntegrityError:
        if key is None:
            raise
        return OutboxMessage.objects.get(key=key)  # queued by someone else in the meantime
    if due_at <= at:
        transaction.on_commit(lambda: _publish(email.pk))
    return record


def _publish(email_id: int) -> None:
    from accounts.tasks import email_send_task

    try:
        # retry=False and the broker timeouts in config/celery.py: a request never waits on an
        # unreachable broker. The row is committed; the beat job sends it.
        email_send_task.apply_async(kwargs={"email_id": email_id}, retry=False)
    except (BrokerError, OSError) as exc:
        logger.warning("Could not queue email %s (%s); the outbox beat job will send it.", email_id, exc)


def _backoff(failures: int) -> timedelta:
    return min(FIRST_BACKOFF * 2 ** (failures - 1), MAX_BACKOFF)


def _claim(*, email_id: int, at: datetime) -> Email | None:
    """Take the message for this sender, or return None if it is not due or another has it."""
    with transaction.atomic():
        # The conditional UPDATE is the claim: on PostgreSQL a second sender blocks on the row
        # and then re-checks the condition against the committed lease, so it matches nothing.
        claimed = (
            Email.objects.filter(pk=email_id, status__in=DUE_STATUSES)
            .filter(Q(scheduled_time__lte=at) | Q(scheduled_time__isnull=True))
            .update(scheduled_time=at + CLAIM_LEASE, last_updated=at)
        )
        if not claimed:
            return None
        held = OutboxMessage.objects.filter(email_id=email_id, claimed_at__isnull=False).exists()
        if held:
            # A sender that claimed it before never recorded a result: it died mid-send.
            Email.objects.filter(pk=email_id).update(status=STATUS.failed, scheduled_time=at, last_updated=at)
            OutboxMessage.objects.filter(email_id=email_id).update(claimed_at=None)
            Log.objects.create(
                email_id=email_id, status=STATUS.failed, message=INTERRUPTED, exception_type="Interrupted"
            )
            return None
        OutboxMessage.objects.filter(email_id=email_id).update(claimed_at=at, attempts=F("attempts") + 1)
    return Email.objects.get(pk=email_id)


def outbox_send(*, email_id: int, at: datetime) -> bool:
    """Send one due message if no other sender has it. True if this call delivered it."""
    email = _claim(email_id=email_id, at=at)
    if email is None:
        return False
    try:
        connection = get_connection(fail_silently=False)
        connection.send_messages([email.email_message()])
    except Exception as exc:  # any failure of the mail server or the message is recorded, not raised
        _record_failure(email=email, error=exc, at=at)
        return False
    with transaction.atomic():
        Email.objects.filter(pk=email.pk).update(status=STATUS.sent, last_updated=at)
        OutboxMessage.objects.filter(email_id=email.pk).update(sent_at=at, claimed_at=None)
        Log.objects.create(email_id=email.pk, status=STATUS.sent, message="")
    return True


def _record_failure(*, email: Email, error: Exception, at: datetime) -> None:
    failures = (email.number_of_retries or 0) + 1
    final = failures >= MAX_ATTEMPTS
    with transaction.atomic():
        Email.objects.filter(pk=email.pk).update(
            status=STATUS.failed if final else STATUS.requeued,
            number_of_retries=failures,
            scheduled_time=at if final else at + _backoff(failures),
            last_updated=at,
        )
        OutboxMessage.objects.filter(email_id=email.pk).update(claimed_at=None)
        Log.objects.create(
            email_id=email.pk,
            status=STATUS.failed,
            message=str(error) or repr(error),
            exception_type=type(error).__name__,
        )
    logger.warning("Email %s failed (attempt %s of %s): %s", email.pk, failures, MAX_ATTEMPTS, error)


def outbox_list_due(*, at: datetime, limit: int = 500) -> list[int]:
    return list(
        Email.objects.filter(status__in=DUE_STATUSES, outbox__isnull=False)
        .filter(Q(scheduled_time__lte=at) | Q(scheduled_time__isnull=True))
        .order_by("scheduled_time", "pk")
        .values_list("pk", flat=True)[:limit]
    )


def outbox_send_due(*, at: datetime, limit: int = 500) -> int:
    """Send every message that is due and not sent (the beat job). Returns how many were delivered."""
    return sum(outbox_send(email_id=email_id, at=at) for email_id in outbox_list_due(at=at, limit=limit))


def outbox_resend(*, email_ids, at: datetime) -> int:
    """Queue failed messages again, with a fresh set of attempts. Sent ones are left alone."""
    with transaction.atomic():
        ids = list(Email.objects.filter(pk__in=email_ids, status=STATUS.failed).values_list("pk", flat=True))
        Email.objects.filter(pk__in=ids, status=STATUS.failed).update(
            status=STATUS.queued, scheduled_time=at, number_of_retries=0, last_updated=at
        )
        for email_id in ids:
            transaction.on_commit(lambda email_id=email_id: _publish(email_id))
    return len(ids)
