"""What the HTTP benches (bench_landing.py, bench_claim.py) share: gunicorn on this machine (the
product's WSGI app under the bench's settings module, on a free loopback port, against the
database the bench built, until the block ends), and the live offer they measure."""

import os
import subprocess
import sys
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from django.db import connection
from django.utils import timezone

from tests.support import free_port, wait_for_http

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
PATIENCE = 60


def database_url() -> str:
    """The URL of the database this process is connected to (the bench's throw-away one)."""
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@contextmanager
def gunicorn(*, workers: int, settings_module: str = "landing_bench_settings", env: dict | None = None):
    """Start gunicorn with ``workers`` sync workers; yield its base URL once /bench/hello/
    answers; stop it."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "-w", str(workers), "-b", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": settings_module,
            "DATABASE_URL": database_url(),
            "PYTHONPATH": f"{BENCH}{os.pathsep}{ROOT}",
            **(env or {}),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/bench/hello/", timeout=PATIENCE, process=server)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def live_offer(*, slug: str, kind: str = "free_trial", inventory: int | None = None):
    """A live offer, open since yesterday, of a monthly coffee club, with one variant and no
    holdout, so every visitor sees the landing page proper."""
    from offers.models import Offer, Product, Variant

    now = timezone.now()
    product = Product.objects.create(
        sku=f"bench-{slug}", name="Coffee club", price_amount=999, currency="EUR", interval="month"
    )
    offer = Offer.objects.create(
        slug=slug,
        name="Coffee club, first month free",
        promise="The same beans our cafés brew, at home, for a month.",
        kind=kind,
        product=product,
        status=Offer.Status.LIVE,
        trial_days=30,
        currency="EUR",
        starts_at=now - timedelta(days=1),
        ends_at=now + timedelta(days=60),
        reminder_days=[7, 3],
        launched_at=now - timedelta(days=1),
        inventory=inventory,
    )
    Variant.objects.create(offer=offer, name="month", weight=1, position=0)
    return offer
