"""The metrics engine on raw rows, at an arbitrary as-of time: the p50 and p95 of
``analytics.metrics.offer_metrics`` for one offer, on PostgreSQL.

It fills the database it is given (it must be empty: a scratch one, never a real one) with
``--customers`` customers (100,000 by default), one in ``--every`` (10) of them assigned to one
offer (two variants and a 10% holdout), a third of the variants' customers claiming a trial, and
``--purchases`` purchases per customer on average (10), written by INSERT … SELECT so that
setting up is quick. One in ten is the share of an offer in the issue's scale (1,000,000
customers, 100 offers, 10,000,000 purchases) if each customer meets about ten offers. Then it asks for
the metrics as of 30 moments spread over a year and prints the timings.

    createdb -h 127.0.0.1 -U postgres bench_metrics
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_metrics FORETASTE_ENV=development \\
        .venv/bin/python manage.py migrate
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_metrics FORETASTE_ENV=development \\
        .venv/bin/python bench/bench_metrics.py --customers 100000
"""

import argparse
import os
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

from django.db import connection  # noqa: E402

from analytics.metrics import offer_metrics  # noqa: E402
from offers import services  # noqa: E402
from offers.validation import VariantSpec  # noqa: E402

START = datetime(2025, 1, 1, tzinfo=UTC)
RUNS = 30


def fill(*, customers: int, purchases: int, every: int):
    product = services.product_create(sku="bench-beans", name="Beans", price_amount=2400, currency="EUR", interval="")
    offer = services.offer_create(
        actor=None,
        values={"slug": "bench-sampler", "name": "Bench sampler", "kind": "sample", "product": product,
                "trial_days": 14, "trial_price": 0, "currency": "EUR", "starts_at": START,
                "ends_at": START + timedelta(days=365), "holdout_percent": 10},
        variants=[VariantSpec(name="default", weight=1), VariantSpec(name="long", weight=1, trial_days=28)],
        at=START,
    )  # fmt: skip
    variants = {variant.name: variant.pk for variant in offer.variants.all()}
    with connection.cursor() as cursor:
        insert_customers(cursor, count=customers, joined=START)
        # Arms by id: 10% holdout, the rest split evenly; assigned over the offer's year.
        cursor.execute(
            """INSERT INTO trials_assignment (offer_id, customer_id, variant_id, arm, assigned_at, source)
               SELECT %s, u.id,
                      CASE WHEN k %% 10 = 0 THEN NULL WHEN k %% 2 = 0 THEN %s ELSE %s END,
                      CASE WHEN k %% 10 = 0 THEN 'holdout' WHEN k %% 2 = 0 THEN 'default' ELSE 'long' END,
                      %s + (k %% 365) * interval '1 day' + (k %% 24) * interval '1 hour', 'import'
               FROM (SELECT id, id / %s AS k FROM accounts_user WHERE email LIKE 'bench%%' AND id %% %s = 0) u""",
            [offer.pk, variants["default"], variants["long"], START, every, every],
        )
        insert_trials(cursor)
        insert_purchases(cursor, product_id=product.pk, customers=customers, count=customers * purchases, start=START)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # as autovacuum would: statistics and the visibility map
    return offer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--purchases", type=int, default=10, help="per customer, on average")
    parser.add_argument("--every", type=int, default=10, help="one customer in this many is in the offer")
    arguments = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("Run it on PostgreSQL: set DATABASE_URL to a scratch database.")
    from offers.models import Offer

    offer = Offer.objects.filter(slug="bench-sampler").first()
    if offer is None:
        started = time.perf_counter()
        offer = fill(customers=arguments.customers, purchases=arguments.purchases, every=arguments.every)
        print(f"filled in {time.perf_counter() - started:.1f} s")
    moments = [START + timedelta(days=100 + 12 * i, hours=i) for i in range(RUNS)]
    timings = []
    for as_of in moments:
        started = time.perf_counter()
        offer_metrics(offer=offer, as_of=as_of)
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    p95 = timings[min(len(timings) - 1, round(0.95 * len(timings)) - 1)]
    units = offer.assignments.count()
    print(f"offer_metrics, one offer of {units:,} of {arguments.customers:,} customers, {RUNS} as-of times")
    print(f"p50 {statistics.median(timings):.0f} ms, p95 {p95:.0f} ms, max {timings[-1]:.0f} ms")
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
