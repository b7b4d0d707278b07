from celery import shared_task
from django.utils import timezone

from trials import services


@shared_task(acks_late=True, reject_on_worker_lost=True)
def reservations_release_stale_task():
    # Safe to run twice or overlapping: each reservation is released by a conditional update.
    services.reservations_release_stale(at=timezone.now())


@shared_task(acks_late=True, reject_on_worker_lost=True)
def trial_clock_task():
    # Safe to run twice or overlapping: a reminder is keyed in the outbox, an expiry is a
    # conditional update, a charge's retry claims its trial with one.
    from trials import clock

    at = timezone.now()
    clock.reminders_send_due(at=at)
    clock.trials_expire_due(at=at)
    clock.trials_convert_due(at=at)
    clock.trials_converting_retry(at=at)
    clock.surveys_send_due(at=at)
