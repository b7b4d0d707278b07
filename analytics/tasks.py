from celery import shared_task

from analytics import rollups


@shared_task(acks_late=True, reject_on_worker_lost=True)
def rollups_refresh_task():
    # Safe to run twice or side by side: each batch takes the rollup state's lock (analytics/rollups.py).
    rollups.refresh()
