"""The Celery app. Its configuration comes from Django settings (``CELERY_*``), and the beat
schedule lives here in code so that it is reviewed like code."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("foretaste")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    # One message at a time per process: a slow task never holds others hostage in a prefetch
    # buffer, and a lost worker loses at most one unacknowledged message.
    worker_prefetch_multiplier=1,
    task_time_limit=300,
    task_soft_time_limit=240,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    timezone="UTC",
    enable_utc=True,
)
app.autodiscover_tasks()

# Every periodic job, in one place. Jobs scan tables for due rows and claim each row with a
# conditional UPDATE, so a run that overlaps or repeats does no harm (no ETA tasks days away).
app.conf.beat_schedule = {
    "sessions-clear-expired": {"task": "accounts.tasks.sessions_clear_expired", "schedule": 24 * 3600},
    # Sends whatever the outbox holds that is due: retries, and messages whose after-commit
    # task never reached a worker (broker down, worker killed). accounts/emails.py.
    "outbox-send-due": {"task": "accounts.tasks.outbox_send_due_task", "schedule": 60},
    "offers-advance": {"task": "offers.tasks.offers_advance_task", "schedule": 60},
    "stripe-events-retry": {"task": "billing.tasks.stripe_events_retry_task", "schedule": 60},
    "stripe-reconcile": {"task": "billing.tasks.stripe_reconcile_task", "schedule": 600},
    # Claims left unconfirmed (the tab closed) give their unit back: trials/services.py.
    "reservations-release-stale": {"task": "trials.tasks.reservations_release_stale_task", "schedule": 300},
    "trial-clock": {"task": "trials.tasks.trial_clock_task", "schedule": 60},
    # The dashboards' rollups: what changed since the last run (analytics/rollups.py).
    "rollups-refresh": {"task": "analytics.tasks.rollups_refresh_task", "schedule": 60},
}
