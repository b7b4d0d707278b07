from celery import shared_task

from analytics import overview, rollups


@shared_task(acks_late=True, reject_on_worker_lost=True)
def rollups_refresh_task():
    # Safe to run twice or side by side: each batch takes the rollup state's lock (analytics/rollups.py).
    rollups.refresh()
    # The overview at the new moment, read now rather than by the next executive to open it.
    overview.warm()
