from celery import shared_task
from django.core import management
from django.utils import timezone

from accounts.emails import outbox_send, outbox_send_due


@shared_task(acks_late=True, reject_on_worker_lost=True)
def email_send_task(*, email_id):
    # No Celery retries: a failure is recorded on the row with its backoff, and the beat job
    # below tries again when it is due. Running this twice is harmless (the claim).
    outbox_send(email_id=email_id, at=timezone.now())


@shared_task(acks_late=True, reject_on_worker_lost=True)
def outbox_send_due_task():
    outbox_send_due(at=timezone.now())


@shared_task(acks_late=True, reject_on_worker_lost=True)
def sessions_clear_expired():
    management.call_command("clearsessions")
