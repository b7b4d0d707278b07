"""Two health endpoints, one for people and one for load balancers.

``/healthz`` is the full report: is each part Foretaste depends on (the database, the broker,
Stripe) reachable right now? It answers 200 with every check "ok", or 503 naming what is down.

``/healthz/ready`` answers one question for a load balancer: can this web process serve pages?
Only the database decides that. A Stripe or broker outage is the same for every web process, so
failing readiness on it would take them all out of rotation at once and turn a degraded site
(no new payments, webhooks stored and queued later) into no site at all. It makes no Stripe or
broker call, so it stays fast when they hang.

No check waits long: a hung dependency must show as down, not hang the probe."""

import logging
import time

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from kombu import Connection

from billing import gateway

logger = logging.getLogger(__name__)
PROBE_TIMEOUT_SECONDS = 2.0


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _broker() -> None:
    with Connection(
        settings.CELERY_BROKER_URL,
        transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        connect_timeout=PROBE_TIMEOUT_SECONDS,
    ) as conn:
        conn.ensure_connection(max_retries=1, timeout=PROBE_TIMEOUT_SECONDS)


def _stripe() -> None:
    gateway.ping(timeout=PROBE_TIMEOUT_SECONDS)


CHECKS = {"database": _database, "broker": _broker, "stripe": _stripe}
READY_CHECKS = {"database": _database}


def _report(checks: dict) -> JsonResponse:
    results = {}
    down = []
    for name, check in checks.items():
        started = time.monotonic()
        try:
            check()
        except Exception as exc:  # any failure means "down"; the log keeps the detail
            logger.warning("healthz: %s is down: %s", name, exc)
            results[name] = {"status": "down", "error": type(exc).__name__}
            down.append(name)
        else:
            results[name] = {"status": "ok", "ms": round((time.monotonic() - started) * 1000, 1)}
    body = {"status": "ok" if not down else "down", "down": down, "checks": results}
    return JsonResponse(body, status=200 if not down else 503)


@never_cache
@require_GET
def healthz(request):
    return _report(CHECKS)


@never_cache
@require_GET
def healthz_ready(request):
    return _report(READY_CHECKS)
