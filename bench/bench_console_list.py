"""The console's offer list with 500 offers: server time per request and the number of queries.

Builds a throw-away test database (SQLite by default; PostgreSQL with DATABASE_URL set), with
500 offers and, for each, 20 assignments of which 5 are claimed trials and 1 converted, so that
every counter on the page has rows to count. Then it times GET /console/ (the first page, 50
offers, as a marketer sees it) and GET /console/?page=10 through Django's test client.

    FORETASTE_ENV=test .venv/bin/python bench/bench_console_list.py
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test FORETASTE_ENV=test .venv/bin/python bench/bench_console_list.py
"""

import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from machine_info import machine  # bench/ is the script's folder, first on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["FORETASTE_ENV"] = "test"

import django

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402

OFFERS, ASSIGNED, CLAIMED, CONVERTED, RUNS = 500, 20, 5, 1, 30


def build():
    from accounts.demo import user_ensure
    from accounts.models import User
    from accounts.roles import MARKETER
    from offers.models import Offer, Product, Variant
    from trials.models import Assignment, Trial

    marketer = user_ensure(email="bench-marketer@example.com", password="x" * 20, role=MARKETER)
    product = Product.objects.create(sku="bench", name="Bench beans", price_amount=2400, currency="EUR")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    offers = Offer.objects.bulk_create(
        Offer(slug=f"offer-{i}", name=f"Offer {i}", kind="sample", product=product, trial_days=14, currency="EUR",
              starts_at=start, ends_at=start + timedelta(days=90), status="live", inventory=1000,
              claimed_count=CLAIMED, reminder_days=[7, 3])
        for i in range(OFFERS)
    )  # fmt: skip
    variants = Variant.objects.bulk_create(Variant(offer=o, name="default") for o in offers)
    customers = User.objects.bulk_create(User(email=f"c{i}@example.com") for i in range(ASSIGNED))
    assignments = Assignment.objects.bulk_create(
        Assignment(offer=o, variant=v, customer=c, arm="default", assigned_at=start)
        for o, v in zip(offers, variants, strict=True)
        for c in customers
    )
    Trial.objects.bulk_create(
        Trial(assignment=a, offer_id=a.offer_id, customer_id=a.customer_id, variant_id=a.variant_id,
              claimed_at=start, ends_at=start + timedelta(days=14),
              status="converted" if i % ASSIGNED < CONVERTED else "active")
        for i, a in enumerate(assignments)
        if i % ASSIGNED < CLAIMED
    )  # fmt: skip
    return marketer


def measure(client, path):
    client.get(path)  # warm up: templates compiled, connection open
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    query_count = len(queries)  # now: the capture reads the connection's log lazily
    assert response.status_code == 200, response.status_code
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        client.get(path)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), min(times), query_count


def main():
    setup_test_environment()
    from django.test import Client

    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    # Keep one connection across requests, as a production worker does (and so that the query
    # capture is not reset by a reconnect).
    connection.settings_dict["CONN_MAX_AGE"] = None
    try:
        marketer = build()
        client = Client()
        client.force_login(marketer)
        print(f"console offer list, {OFFERS} offers ({OFFERS * ASSIGNED} assignments, {OFFERS * CLAIMED} trials)")
        for path in ("/console/", "/console/?page=10"):
            median, best, queries = measure(client, path)
            print(f"  GET {path:<20} median {median:6.1f} ms  best {best:6.1f} ms  {queries} queries  ({RUNS} runs)")
        print(f"  database: {connection.vendor}; machine: {machine()}")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
