"""`import_history purchases` against PostgreSQL's own COPY of the same rows.

Builds a throw-away PostgreSQL test database with the customers and products the rows need (one
customer per ten purchases, 20 products, and an open trial for one customer in a hundred, so the
conversion step has work), writes 1,000,000 purchase rows to a temporary CSV file (about 2% of
them refunds of earlier rows), then times, in the same run:

1. ``call_command("import_history", "purchases", FILE)``: checking, COPY into the ledger and the
   trial conversions, in one transaction, committed;
2. PostgreSQL's own ``COPY ... FROM STDIN (FORMAT csv, HEADER)`` of the same file into a plain
   table with the file's columns (no keys, no indexes);
3. for reference, a COPY of the same rows already resolved (customer and product ids, minor units)
   into the ledger table itself, with its indexes, unique and check constraints and foreign keys
   (checked at once), rolled back: what any insert into the ledger costs, whoever writes it.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/bench_import.py
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/bench_import.py --rows 100000
"""

import argparse
import csv
import io
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from machine_info import machine  # bench/ is the script's folder, first on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["FORETASTE_ENV"] = "test"

import django

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

START = datetime(2025, 1, 1, tzinfo=UTC)
UNUSABLE = "!"  # no usable password, as the import makes them
PRODUCTS = 20
REFUND_SHARE = 0.02


def build(rows: int) -> int:
    """Customers, products and a few open trials; returns the number of customers."""
    from accounts.models import User
    from offers.models import Offer, Product, Variant
    from trials.models import Assignment, Trial

    customers = max(rows // 10, 10)
    products = Product.objects.bulk_create(
        Product(sku=f"sku-{i}", name=f"Product {i}", price_amount=1000 + i, currency="EUR") for i in range(PRODUCTS)
    )
    users = User.objects.bulk_create(
        (
            User(email=f"c{i}@example.com", canonical_email=f"c{i}@example.com", external_id=f"cust-{i:07d}",
                 date_joined=START, password=UNUSABLE)
            for i in range(customers)
        ),
        batch_size=5000,
    )  # fmt: skip
    offers = Offer.objects.bulk_create(
        Offer(slug=f"offer-{p.sku}", name=f"Offer {p.sku}", kind="sample", product=p, trial_days=14,
              currency="EUR", starts_at=START, status="ended")
        for p in products
    )  # fmt: skip
    variants = Variant.objects.bulk_create(Variant(offer=o, name="default") for o in offers)
    trial_users = users[::100]
    assignments = Assignment.objects.bulk_create(
        Assignment(offer=offers[i % PRODUCTS], variant=variants[i % PRODUCTS], customer=u, arm="default",
                   assigned_at=START, source="import")
        for i, u in enumerate(trial_users)
    )  # fmt: skip
    Trial.objects.bulk_create(
        Trial(assignment=a, offer_id=a.offer_id, customer_id=a.customer_id, variant_id=a.variant_id,
              claimed_at=START, ends_at=START + timedelta(days=14), status="active", source="import")
        for a in assignments
    )  # fmt: skip
    return customers


def write_csv(path: Path, rows: int, customers: int) -> None:
    """Purchases in time order; a refund returns part of a purchase made a little earlier."""
    rng = random.Random(7)
    kinds = ["regular"] * 8 + ["trial_fee", "sample"]
    recent: list[tuple[str, str, str, str, int]] = []
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(
            ["external_id", "customer_external_id", "product_sku", "kind", "amount", "currency", "purchased_at",
             "refund_of"]
        )  # fmt: skip
        for i in range(rows):
            at = (START + timedelta(seconds=30 * i)).isoformat()
            if recent and rng.random() < REFUND_SHARE:
                original, customer, sku, kind, cents = recent.pop(rng.randrange(len(recent)))
                refund = rng.randint(1, cents)
                writer.writerow([f"ord-{i:08d}", customer, sku, kind, f"-{refund // 100}.{refund % 100:02d}", "EUR",
                                 at, original])  # fmt: skip
                continue
            customer = f"cust-{rng.randrange(customers):07d}"
            sku = f"sku-{rng.randrange(PRODUCTS)}"
            kind = rng.choice(kinds)
            cents = rng.randint(100, 20000)
            writer.writerow([f"ord-{i:08d}", customer, sku, kind, f"{cents // 100}.{cents % 100:02d}", "EUR", at, ""])
            recent.append((f"ord-{i:08d}", customer, sku, kind, cents))
            if len(recent) > 1000:
                recent.pop(0)


def time_import(path: Path) -> tuple[float, str]:
    from django.core.management import call_command

    out = io.StringIO()
    started = time.perf_counter()
    call_command("import_history", "purchases", str(path), progress=False, stdout=out)
    return time.perf_counter() - started, out.getvalue().strip().splitlines()[-1]


def time_raw_copy(path: Path) -> float:
    """PostgreSQL parsing the same CSV itself, into a plain table with the file's columns."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE bench_raw_purchases (external_id text, customer_external_id text, product_sku text, "
            "kind text, amount numeric, currency text, purchased_at timestamptz, refund_of text)"
        )
    started = time.perf_counter()
    statement = "COPY bench_raw_purchases FROM STDIN (FORMAT csv, HEADER true)"
    with (
        transaction.atomic(),
        connection.cursor() as cursor,
        path.open("rb") as source,
        cursor.cursor.copy(statement) as copy,
    ):
        while block := source.read(1 << 20):
            copy.write(block)
    return time.perf_counter() - started


def time_ledger_copy() -> float:
    """The same rows, resolved, COPYed into billing_purchase itself; foreign keys checked at
    once, then rolled back."""
    columns = (
        "customer_id, product_id, kind, amount, currency, purchased_at, source, external_id, refund_of_id, recorded_at"
    )
    # The same rows under another source, so that they do not collide with the imported ones.
    select = columns.replace("source", "'api'")
    buffer = io.BytesIO()
    with connection.cursor() as cursor:
        query = f"SELECT {select} FROM billing_purchase WHERE source = 'import' ORDER BY id"  # noqa: S608 (constants)
        with cursor.cursor.copy(f"COPY ({query}) TO STDOUT") as copy:
            for block in copy:
                buffer.write(block)
    data = buffer.getvalue()
    checkpoint()  # after the read above, which may have dirtied the rows' pages
    started = time.perf_counter()
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            with cursor.cursor.copy(f"COPY billing_purchase ({columns}) FROM STDIN") as copy:
                for offset in range(0, len(data), 1 << 20):
                    copy.write(data[offset : offset + (1 << 20)])
            elapsed = time.perf_counter() - started
            raise _RollBack(elapsed)
    except _RollBack as done:
        return done.elapsed


def checkpoint() -> None:
    """Write out the dirty pages and the WAL of what ran before, so that each timed part starts
    from the same state instead of paying for a checkpoint that the one before set off. Needs a
    superuser or the pg_checkpoint role."""
    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")


class _RollBack(Exception):
    def __init__(self, elapsed: float):
        self.elapsed = elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="purchase rows to import (default 1,000,000)")
    rows = parser.parse_args().rows
    if connection.vendor != "postgresql":
        print("bench_import: needs PostgreSQL; set DATABASE_URL=postgres://postgres@127.0.0.1:5432/test (skipped)")
        return
    setup_test_environment()
    # A database of its own, so that a test run on the same server keeps its test database.
    connection.settings_dict["TEST"]["NAME"] = "test_bench_import"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            server = cursor.fetchone()[0]
        customers = build(rows)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "purchases.csv"
            write_csv(path, rows, customers)
            size = path.stat().st_size
            checkpoint()
            imported, summary = time_import(path)
            checkpoint()
            raw = time_raw_copy(path)
        ledger = time_ledger_copy()
        print(f"import_history purchases: {rows:,} rows ({size / 1e6:.0f} MB CSV, {customers:,} customers)")
        print(f"  {summary}")
        print(f"  import_history purchases   {imported:7.2f} s  {rows / imported:10,.0f} rows/s")
        print(f"  COPY into a plain table    {raw:7.2f} s  {rows / raw:10,.0f} rows/s")
        print(f"  ratio import / COPY        {raw / imported:7.2f}   (target: at least 0.25)")
        print("  for reference, COPY of the resolved rows into billing_purchase itself (indexes, constraints,")
        print(f"  foreign keys): {ledger:.2f} s, {rows / ledger:,.0f} rows/s; import / that: {ledger / imported:.2f}")
        print(f"  database: PostgreSQL {server}; machine: {machine()}")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
