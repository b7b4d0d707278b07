"""The rollups and what reads them, on PostgreSQL at the issue's scale:

1. a full ``rebuild_rollups``, as a ratio to ``SELECT count(*)`` over the purchases, in the same run;
2. an incremental refresh after 10,000 new purchases;
3. the metrics API for one offer at an arbitrary ``as_of`` (raw rows): p50 and p95 of 30 requests;
4. the dashboards (if installed), the overview and one offer's page: p50 and p95 of 30 requests each.

It fills the database it is given (a scratch one, never a real one) once, with ``--customers``
customers (1,000,000), ``--offers`` offers (100) and ``--purchases`` purchases per customer on average
(10, so 10,000,000), written by INSERT … SELECT. Each customer is assigned to one offer (10,000 units
an offer at the default scale: ``--offers-per-customer`` raises it), a tenth of each offer in its
holdout, a third of the others claiming a trial. Requests go through Django's test client, logged in
as an executive, so the times are the server's, without the network.

    createdb -h 127.0.0.1 -U postgres bench_rollups
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_rollups FORETASTE_ENV=development
    .venv/bin/python manage.py migrate
    .venv/bin/python bench/bench_rollups.py               # --customers 100000 for a quick run;
    # --steps 34 measures only the API and the dashboards again, on the data already there
"""

import argparse
import os
import secrets
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fill import insert_customers, insert_purchases, insert_trials  # bench/, first on sys.path
from machine_info import cpu_model

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402

from accounts.demo import user_ensure  # noqa: E402
from accounts.roles import EXECUTIVE  # noqa: E402
from analytics import rollups  # noqa: E402
from config import startup  # noqa: E402
from offers import services  # noqa: E402
from offers.models import Offer  # noqa: E402
from offers.validation import VariantSpec  # noqa: E402

START = datetime(2025, 1, 1, tzinfo=UTC)
RUNS = 30
NEW_PURCHASES = 10_000


def fill(*, customers: int, offers: int, purchases: int, offers_per_customer: int) -> None:
    product = services.product_create(sku="bench-beans", name="Beans", price_amount=2400, currency="EUR", interval="")
    for number in range(offers):
        services.offer_create(
            actor=None,
            values={"slug": f"bench-offer-{number}", "name": f"Bench offer {number}", "kind": "sample",
                    "product": product, "trial_days": 14, "trial_price": 0, "currency": "EUR", "starts_at": START,
                    "ends_at": START + timedelta(days=365), "holdout_percent": 10},
            variants=[VariantSpec(name="default", weight=1), VariantSpec(name="long", weight=1, trial_days=28)],
            at=START,
        )  # fmt: skip
    with connection.cursor() as cursor:
        insert_customers(cursor, count=customers, joined=START)
        # Customer i meets offers (i + j) mod offers, j < offers_per_customer. The arm comes from
        # i div offers, which the offer does not fix: 10% holdout, the rest split evenly.
        cursor.execute(
            """WITH o AS (SELECT row_number() OVER (ORDER BY id) - 1 AS n, id FROM offers_offer
                          WHERE slug LIKE 'bench-offer-%%'),
                    c AS (SELECT id, CASE WHEN (id / %(offers)s) %% 10 = 0 THEN 'holdout'
                                          WHEN (id / %(offers)s / 10) %% 2 = 0 THEN 'default'
                                          ELSE 'long' END AS arm
                          FROM accounts_user WHERE email LIKE 'bench%%')
               INSERT INTO trials_assignment (offer_id, customer_id, variant_id, arm, assigned_at, source)
               SELECT o.id, c.id, (SELECT v.id FROM offers_variant v WHERE v.offer_id = o.id AND v.name = c.arm),
                      c.arm, %(start)s + (c.id %% 365) * interval '1 day' + (c.id %% 24) * interval '1 hour',
                      'import'
               FROM c CROSS JOIN generate_series(0, %(each)s - 1) AS j
               JOIN o ON o.n = (c.id + j) %% %(offers)s""",
            {"offers": offers, "start": START, "each": offers_per_customer},
        )
        insert_trials(cursor)
        insert_purchases(cursor, product_id=product.pk, customers=customers, count=customers * purchases, start=START)
        # What autovacuum does to tables that have stopped growing: the statistics, and the
        # visibility map that lets a read take its columns from an index alone.
        cursor.execute("VACUUM ANALYZE")


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def percentiles(timings: list[float]) -> str:
    timings = sorted(timings)
    p95 = timings[min(len(timings) - 1, round(0.95 * len(timings)) - 1)]
    return f"p50 {statistics.median(timings):.0f} ms, p95 {p95:.0f} ms, max {timings[-1]:.0f} ms"


def requests(client: Client, urls: list[str]) -> list[float]:
    timings = []
    for url in urls:
        started = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            sys.exit(f"{url}: {response.status_code} {response.content[:300]!r}")
    return timings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--offers", type=int, default=100)
    parser.add_argument("--purchases", type=int, default=10, help="per customer, on average")
    parser.add_argument("--offers-per-customer", type=int, default=1)
    parser.add_argument("--steps", default="1234", help="which of the figures to measure, e.g. 34 (default: all)")
    arguments = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("Run it on PostgreSQL: set DATABASE_URL to a scratch database.")
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]

    if not Offer.objects.filter(slug="bench-offer-0").exists():
        print(f"filling: {arguments.customers:,} customers, {arguments.offers} offers, …", flush=True)
        seconds = timed(
            lambda: fill(
                customers=arguments.customers,
                offers=arguments.offers,
                purchases=arguments.purchases,
                offers_per_customer=arguments.offers_per_customer,
            )
        )
        print(f"filled in {seconds:.0f} s")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM billing_purchase")
        (purchases,) = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM trials_assignment")
        (units,) = cursor.fetchone()
    print(f"data: {units:,} assignments, {purchases:,} purchases, {Offer.objects.count()} offers")

    # 1. Full rebuild against a count of the purchases, in the same run (the count best of 3,
    # after a first one that warms the cache for both).
    def count():
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM billing_purchase")
            cursor.fetchone()

    if "1" in arguments.steps or rollups.as_of() is None:
        count()
        counting = min(timed(count) for _ in range(3))
        rebuilding = timed(rollups.rebuild)
        ratio = rebuilding / counting
        print(f"1. rebuild {rebuilding:.1f} s; SELECT count(*) {counting * 1000:.0f} ms; ratio {ratio:.1f}")

    # 2. Incremental refresh after 10,000 new purchases (dated in the last 30 days).
    if "2" in arguments.steps:
        refresh(customers=arguments.customers)
    if "3" in arguments.steps or "4" in arguments.steps:
        # What autovacuum does in production after the rebuild's and the refresh's deletes (it is
        # off on some machines, this one included): the reads below then meet no dead rows.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE analytics_unitrollup, billing_purchase")
        requests_as_executive(arguments.steps)
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores")


def refresh(*, customers: int) -> None:
    with connection.cursor() as cursor:
        product_id = Offer.objects.get(slug="bench-offer-0").product_id
        insert_purchases(
            cursor,
            product_id=product_id,
            customers=customers,
            count=NEW_PURCHASES,
            start=datetime.now(UTC) - timedelta(days=30),
        )
    refreshed = {}
    seconds = timed(lambda: refreshed.setdefault("result", rollups.refresh()))
    print(f"2. refresh after {NEW_PURCHASES:,} new purchases: {seconds:.2f} s ({refreshed['result'].units:,} units)")


def requests_as_executive(steps: str) -> None:
    """3. and 4.: the metrics API and the dashboards, through Django's test client, in a process
    prepared as config/wsgi.py prepares the web server's (config/startup.py)."""
    startup.loaded()
    executive = user_ensure(email="bench-executive@example.com", password=secrets.token_urlsafe(), role=EXECUTIVE)
    client = Client()
    client.force_login(executive)
    offer = Offer.objects.get(slug="bench-offer-0")
    moments = [START + timedelta(days=100 + 12 * i, hours=i) for i in range(RUNS)]
    api = [f"/api/v1/offers/{offer.slug}/metrics?as_of={moment.isoformat().replace('+', '%2B')}" for moment in moments]
    if "3" in steps:
        requests(client, api[:2])  # warm up
        print(f"3. metrics API, one offer ({offer.assignments.count():,} units), {RUNS} as-of times: "
              f"{percentiles(requests(client, api))}")  # fmt: skip
    if "4" not in steps:
        return
    pages = {"overview": reverse("dashboard:home"), "offer": reverse("dashboard:offer", args=[offer.slug])}
    for name, url in pages.items():
        requests(client, [url] * 2)
        print(f"4. dashboard {name} ({url}), {RUNS} requests: {percentiles(requests(client, [url] * RUNS))}")
    # The overview keeps its answer for each moment and set of filters (analytics/overview.py):
    # each of these filters is read for the first time.
    first = [f"{pages['overview']}?assigned_from={(START + timedelta(days=i)).date().isoformat()}" for i in range(10)]
    print(f"4. dashboard overview, 10 filters each asked for the first time: {percentiles(requests(client, first))}")


if __name__ == "__main__":
    main()
