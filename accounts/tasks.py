from celery import shared_task
from django.core import management

from accounts.emails import email_deliver


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OSError,),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=8,
)
def email_send(*, to, subject, text, html=None, from_email=None):
    # A retry after a crash between send and ack may send a message twice; for email that is
    # the lesser harm than never sending a verification link or a reminder before a charge.
    email_deliver(to=to, subject=subject, text=text, html=html, from_email=from_email)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def sessions_clear_expired():
    management.call_command("clearsessions")
