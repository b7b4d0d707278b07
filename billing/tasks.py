"""Background work for Stripe events and history imports. Each task takes ids (or nothing), calls one service, and
is safe to run twice: the services claim their rows with conditional updates."""

from celery import shared_task
from django.utils import timezone

from billing import reconciliation, webhooks
from billing.imports import jobs as import_jobs


@shared_task(acks_late=True, reject_on_worker_lost=True)
def stripe_event_process_task(*, event_pk):
    # No Celery retries: a failure is written on the event, with its next attempt time, and
    # the retry job below queues it again (so retries survive a broker restart, and show).
    return webhooks.event_process(event_pk=event_pk, at=timezone.now())


@shared_task(acks_late=True, reject_on_worker_lost=True)
def stripe_events_retry_task():
    return webhooks.events_retry_due(at=timezone.now())


@shared_task(acks_late=True, reject_on_worker_lost=True)
def stripe_reconcile_task():
    return reconciliation.reconciliation_run(at=timezone.now()).stored


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=import_jobs.TIME_LIMIT,
    soft_time_limit=import_jobs.TIME_LIMIT - 60,
)
def history_import_job_task(*, job_pk):
    # Safe to run twice: the job is claimed with a conditional update (and its lease).
    return import_jobs.import_job_run(job_pk=job_pk, at=timezone.now())
