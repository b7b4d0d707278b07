"""Stripe webhooks: how many events per second the endpoint accepts, and how many one Celery
worker handles.

(a) Intake: distinct, signed events posted through Django's test client to /stripe/webhook/.
    Each post checks the signature, stores the event and queues its processing task on Redis;
    the task is not run (eager mode off), so this is the endpoint alone.
(b) Processing: then one real Celery worker (``celery -A config worker -c 1``) on Redis works
    through the queue. The rate comes from the events' ``processed_at`` times, so the worker's
    start-up is not counted. Two kinds of event, reported apart:
    - ``customer.updated``, which has no handler: the pipeline itself (claim, dispatch, mark
      processed), with no Stripe call;
    - ``payment_intent.succeeded`` for real payments in a localstripe the bench starts: each
      re-fetches the PaymentIntent and its refunds from localstripe (loopback) and writes a
      ledger row.

Builds a throw-away test database (PostgreSQL with DATABASE_URL set, SQLite otherwise) and
passes its name to the worker. Needs Redis (CELERY_BROKER_URL, default
redis://127.0.0.1:6379/0); without it, only the intake is measured.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test FORETASTE_ENV=test .venv/bin/python bench/bench_webhooks.py

The worker reuses its database connection for CELERY_DB_REUSE_MAX tasks (1000 by default);
prefix BENCH_CELERY_DB_REUSE_MAX=0 to see the cost of a new connection per task.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from machine_info import machine  # bench/ is the script's folder, first on sys.path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["FORETASTE_ENV"] = "test"
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

UNKNOWN_EVENTS, PAYMENT_EVENTS, CUSTOMERS = 2000, 300, 10
PATIENCE = 600


def signed_post(client, event: dict):
    from tests.billing.stripe_world import WEBHOOK, signature

    payload = json.dumps(event).encode()
    started = time.perf_counter()
    response = client.post(
        WEBHOOK, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature(payload)
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.content
    return elapsed


def intake(client, events: list[dict]) -> tuple[float, float]:
    """Events per second, and the median milliseconds per post."""
    started = time.perf_counter()
    times = [signed_post(client, event) for event in events]
    return len(events) / (time.perf_counter() - started), statistics.median(times) * 1000


def payment_events(count: int) -> list[dict]:
    """Real payments in localstripe, and the payment_intent.succeeded events it recorded."""
    from accounts.models import User
    from billing import gateway
    from offers.models import Product
    from tests.billing.stripe_world import charge_off_session, customer_get_or_create, saved_card
    from tests.support import CARD_OK

    Product.objects.create(sku="beans", name="Beans 1 kg", price_amount=2400, currency="EUR")
    since = int(time.time()) - 1
    cards = []
    for i in range(CUSTOMERS):
        user = User.objects.create(email=f"bench-{i}@example.com")
        stripe_id = customer_get_or_create(our_id=f"bench-{i}", email=user.email)
        User.objects.filter(pk=user.pk).update(stripe_customer_id=stripe_id)
        cards.append((stripe_id, saved_card(customer_id=stripe_id, number=CARD_OK, key=f"bench-{i}")))
    for i in range(count):
        stripe_id, card = cards[i % CUSTOMERS]
        charge_off_session(
            customer_id=stripe_id, payment_method_id=card, amount=2400, currency="EUR",
            idempotency_key=f"bench-{i}", metadata={"product_sku": "beans"},
        )  # fmt: skip
    events = [e for e in gateway.events_since(created_after=since) if e["type"] == "payment_intent.succeeded"]
    assert len(events) == count, len(events)
    return events


def worker_database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def worker_settings(folder: Path) -> dict:
    """BENCH_CELERY_DB_REUSE_MAX=N runs the worker with CELERY_DB_REUSE_MAX=N (0: a new database
    connection around every task, which is Celery's own default)."""
    reuse = os.environ.get("BENCH_CELERY_DB_REUSE_MAX")
    return {"CELERY_DB_REUSE_MAX": str(int(reuse))} if reuse else {}


def worker_start(queue: str, stripe_base: str, folder: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        # Development mode with DEBUG off: persistent database connections, as in production
        # (the test mode closes the connection after every task).
        "FORETASTE_ENV": "development",
        "DEBUG": "0",
        "LOG_LEVEL": "WARNING",
        "DATABASE_URL": worker_database_url(),
        "STRIPE_API_BASE": stripe_base,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        **worker_settings(folder),
    }
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-c", "1", "-Q", queue,
               "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=WARNING"]  # fmt: skip
    log = (folder / "worker.log").open("w")
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def processing_rates(worker: subprocess.Popen, groups: dict[str, list[str]]) -> dict[str, tuple[float, int]]:
    """Wait until every event is handled; per group, events per second and how many failed."""
    from billing.models import StripeEvent

    total = sum(len(ids) for ids in groups.values())
    deadline = time.monotonic() + PATIENCE
    while StripeEvent.objects.filter(status__in=("processed", "failed")).count() < total:
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with {worker.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not finish {total} events within {PATIENCE}s")
        time.sleep(0.5)
    rates = {}
    for name, ids in groups.items():
        rows = StripeEvent.objects.filter(event_id__in=ids)
        times = sorted(t for t in rows.values_list("processed_at", flat=True) if t is not None)
        span = (times[-1] - times[0]).total_seconds() if len(times) > 1 else 0
        rates[name] = ((len(times) - 1) / span if span else float("nan"), rows.filter(status="failed").count())
    return rates


def broker_reachable(app) -> bool:
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:  # any failure means: no broker to measure with
        return False


def main():
    setup_test_environment()
    from django.test import Client

    from config.celery import app
    from tests.billing.stripe_world import event_for
    from tests.support import localstripe_running

    app.conf.task_always_eager = False
    queue = f"bench-webhooks-{uuid.uuid4().hex[:8]}"
    app.conf.task_routes = {"billing.tasks.stripe_event_process_task": {"queue": queue}}
    with_worker = broker_reachable(app)

    if connection.vendor == "postgresql":
        # Its own name, so that a test run using the default test database is not disturbed.
        connection.settings_dict["TEST"]["NAME"] = "test_bench_webhooks"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    connection.settings_dict["CONN_MAX_AGE"] = None
    worker = None
    scratch = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    try:
        with localstripe_running() as stripe_base:
            settings.STRIPE_API_BASE = stripe_base
            payments = payment_events(PAYMENT_EVENTS)
            unknown = [
                event_for("customer.updated", {"id": f"cus_bench_{i}", "object": "customer"}, event_id=f"evt_bench_{i}")
                for i in range(UNKNOWN_EVENTS)
            ]
            client = Client()
            if not with_worker:
                # Without a broker the task cannot even be queued: the intake measures the
                # endpoint with queueing replaced by nothing.
                from billing import webhooks

                webhooks._queue_processing = lambda event_pk: None
            print("Stripe webhooks: intake and processing")
            rate, median = intake(client, unknown)
            print(f"  (a) intake, {UNKNOWN_EVENTS} distinct signed customer.updated events through the view:")
            steps = "verify, store, queue on Redis" if with_worker else "verify, store; no broker, so not queued"
            print(f"      {rate:7.0f} events/s, median {median:.2f} ms per post ({steps}; no processing)")
            rate, median = intake(client, payments)
            print(
                f"      {PAYMENT_EVENTS} payment_intent.succeeded events: {rate:7.0f} events/s, median {median:.2f} ms"
            )
            if not with_worker:
                print(f"  (b) processing: skipped, no broker at {settings.CELERY_BROKER_URL}")
                return
            worker = worker_start(queue, stripe_base, scratch)
            started = time.perf_counter()
            try:
                rates = processing_rates(
                    worker, {"unknown": [e["id"] for e in unknown], "payments": [e["id"] for e in payments]}
                )
            except RuntimeError:
                print((scratch / "worker.log").read_text()[-3000:])
                raise
            drained = time.perf_counter() - started
            reuse = os.environ.get("BENCH_CELERY_DB_REUSE_MAX") or settings.CELERY_DB_REUSE_MAX
            reuse_note = f"CELERY_DB_REUSE_MAX={reuse}" if int(reuse) else "a new database connection per task"
            print(f"  (b) processing, one Celery worker (-c 1, prefork) on Redis, acks_late, prefetch 1, {reuse_note}:")
            print(f"      {rates['unknown'][0]:7.0f} events/s  customer.updated (no handler: claim, dispatch, mark; "
                  f"no Stripe call), {rates['unknown'][1]} failed")  # fmt: skip
            print(f"      {rates['payments'][0]:7.0f} events/s  payment_intent.succeeded (re-fetch from localstripe "
                  f"on loopback, ledger row), {rates['payments'][1]} failed")  # fmt: skip
            print(f"      queue of {UNKNOWN_EVENTS + PAYMENT_EVENTS} drained {drained:.1f} s after the worker started")
    finally:
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        if with_worker:
            with app.connection_for_write() as conn:
                conn.default_channel.queue_delete(queue)
        print(f"  database: {connection.vendor}; broker: {settings.CELERY_BROKER_URL}; machine: {machine()}")
        connection.creation.destroy_test_db(old_name, verbosity=0)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
