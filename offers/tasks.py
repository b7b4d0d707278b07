from celery import shared_task
from django.utils import timezone

from billing.gateway import GatewayUnavailable
from offers import services


@shared_task(acks_late=True, reject_on_worker_lost=True, autoretry_for=(GatewayUnavailable,), retry_backoff=True,
             max_retries=10)  # fmt: skip
def product_sync_task(*, product_id):
    services.product_sync(product_id=product_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def offers_advance_task():
    return services.offers_advance(at=timezone.now())
