"""A claim over HTTP, and a flash crowd, against 4 sync gunicorn workers (DEBUG=0, PostgreSQL, the
cache and the broker on Redis) and a localstripe the script starts, all on this machine.

1. Latency of a whole claim, one customer at a time (SAMPLES of each, after WARMUP not counted):
   - a card trial: the landing page (GET, which assigns) → the claim POST (reserve, then a
     SetupIntent at localstripe) → the card page (GET) → the card saved on the SetupIntent at
     localstripe through the stripe library, standing in for Stripe.js in the browser → the
     confirm POST (the card checked at localstripe, the consent record written);
   - a no-card sample: the landing page → the claim POST, which reserves and confirms at once.
   p50 and p99 of each step and of the whole.
2. A flash crowd: CROWD distinct customers, IN_FLIGHT at a time, each loading the landing page and
   claiming an offer with UNITS units. Counts the successes (which must be exactly UNITS), the
   clean "sold out" answers, the 5xx (which must be none) and anything else, then the database's
   counters against its rows.

Every customer is verified and logged in beforehand (a user, a verified EmailAddress, a session
written with Django's SessionStore, its cookie set), so signup is not in the figures.

Rate limits: the claim is limited per IP (20 in 10 minutes) and per account. Here thousands of
customers come from one machine, so gunicorn runs as it would behind one trusted proxy
(TRUSTED_PROXY_COUNT=1, the product's own setting) and each customer sends its own address in
X-Forwarded-For, as the proxy would. The product's limits are unchanged and apply in full.

Builds a throw-away PostgreSQL database (test_bench_claim) from DATABASE_URL and drops it at the
end, and purges the tasks the claims queued (receipt emails) from the broker; needs Redis
(CACHE_URL, and CELERY_BROKER_URL, both default redis://127.0.0.1:6379/0). Loopback only.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres CACHE_URL=redis://127.0.0.1:6379/7 \\
        CELERY_BROKER_URL=redis://127.0.0.1:6379/7 .venv/bin/python bench/bench_claim.py
"""

import os
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["FORETASTE_ENV"] = "development"
os.environ["DEBUG"] = "0"
os.environ.setdefault("CACHE_URL", "redis://127.0.0.1:6379/0")
os.environ.setdefault("CELERY_BROKER_URL", os.environ["CACHE_URL"])

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from machine_info import machine  # noqa: E402 (bench/ is the script's folder, first on sys.path)
from serve import gunicorn, live_offer  # noqa: E402

WORKERS = 4
SAMPLES = 200
WARMUP = 20
CROWD = 1000
UNITS = 100
IN_FLIGHT = 150
SOLD_OUT = "All samples have been claimed."


_addresses = iter(range(1, 250 * 250))


def customers(base: str, prefix: str, count: int) -> list:
    """``count`` verified, logged-in customers' browsers, each with its own client address."""
    from tests.trials.http_claim import Browser, session_cookie, verified_customer

    made = []
    for n in range(count):
        address = next(_addresses)
        cookie = session_cookie(verified_customer(f"{prefix}{n}@example.com"))
        made.append(Browser(base, cookie=cookie, forwarded_for=f"198.18.{address // 250}.{address % 250}", timeout=60))
    return made


def card_claim(browser, slug: str, n: int) -> dict[str, float]:
    """One whole card claim; the seconds each step took."""
    from tests.trials.http_claim import card_number, card_step, claim_post

    steps = {}
    start = time.perf_counter()
    landing = browser.get(f"/o/{slug}/")
    steps["landing GET"] = time.perf_counter() - start
    claimed = claim_post(browser, slug, landing=landing)
    steps["claim POST"] = time.perf_counter() - start - sum(steps.values())
    assert claimed.status == 302 and claimed.location.endswith("/card/"), (claimed.status, claimed.location)
    confirmed = card_step(browser, claimed, number=card_number(n))
    steps["card page, card saved, confirm POST"] = time.perf_counter() - start - sum(steps.values())
    assert (confirmed.status, confirmed.location) == (302, "/me/"), (confirmed.status, confirmed.body[:300])
    steps["whole claim"] = time.perf_counter() - start
    return steps


def no_card_claim(browser, slug: str, n: int) -> dict[str, float]:
    from tests.trials.http_claim import claim_post

    start = time.perf_counter()
    landing = browser.get(f"/o/{slug}/")
    steps = {"landing GET": time.perf_counter() - start}
    claimed = claim_post(browser, slug, landing=landing)
    steps["claim POST"] = time.perf_counter() - start - steps["landing GET"]
    assert (claimed.status, claimed.location) == (302, "/me/"), (claimed.status, claimed.body[:300])
    steps["whole claim"] = time.perf_counter() - start
    return steps


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def latency(name: str, claim, browsers: list, slug: str) -> None:
    runs = [claim(browser, slug, n) for n, browser in enumerate(browsers)][WARMUP:]
    print(f"  {name}, {len(runs)} claims one at a time (after {WARMUP} not counted):")
    for step in runs[0]:
        values = [run[step] * 1000 for run in runs]
        p50, p99 = statistics.median(values), percentile(values, 0.99)
        print(f"    {step:38} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms")


def crowd_claim(browser, slug: str) -> tuple[str, float]:
    """What one customer of the crowd got (success, sold out, 5xx, or what else), and the
    seconds its landing page and claim took, queueing for a worker included."""
    from tests.trials.http_claim import claim_post

    start = time.perf_counter()
    try:
        answer = claim_post(browser, slug)
    except OSError as exc:
        return f"no answer ({type(exc).__name__})", time.perf_counter() - start
    took = time.perf_counter() - start
    if answer.status == 302 and answer.location == "/me/":
        return "success", took
    if answer.status == 409 and SOLD_OUT in answer.body:
        return "sold out", took
    if answer.status >= 500:
        return "5xx", took
    return f"other ({answer.status} {answer.location})", took


def flash_crowd(base: str) -> None:
    from trials.models import ClaimIdentity, ClaimRefusal, ConsentRecord, Trial

    crowd_offer = live_offer(slug="bench-crowd", kind="sample", inventory=UNITS)
    browsers = customers(base, "crowd", CROWD)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=IN_FLIGHT) as pool:
        results = list(pool.map(lambda browser: crowd_claim(browser, crowd_offer.slug), browsers))
    took = time.perf_counter() - start
    answers = Counter(outcome for outcome, _ in results)
    waits = [seconds * 1000 for _, seconds in results]
    print(
        f"  flash crowd: {CROWD} customers (landing GET + claim POST each), {IN_FLIGHT} in flight, "
        f"for {UNITS} units, in {took:.1f} s ({2 * CROWD / took:.0f} requests/s); each customer's "
        f"GET + POST p50 {statistics.median(waits):.0f} ms, p99 {percentile(waits, 0.99):.0f} ms:"
    )
    for outcome in ("success", "sold out", "5xx"):
        print(f"    {outcome:10} {answers.pop(outcome, 0):5}")
    print(f"    {'other':10} {sum(answers.values()):5}  {dict(answers) or ''}")
    crowd_offer.refresh_from_db()
    trials = Trial.objects.filter(offer=crowd_offer)
    rows = {
        "offer.claimed_count": crowd_offer.claimed_count,
        "trials": trials.count(),
        "active trials": trials.filter(status=Trial.Status.ACTIVE).count(),
        "consent records": ConsentRecord.objects.filter(trial__offer=crowd_offer).count(),
        "identity rows": ClaimIdentity.objects.filter(offer=crowd_offer).count(),
    }
    refused = ClaimRefusal.objects.filter(offer=crowd_offer, reason="sold_out").first()
    print("    database: " + ", ".join(f"{name} {count}" for name, count in rows.items()))
    print(f"    sold-out refusals counted: {refused.count if refused else 0}")
    print(f"    counters agree with the rows: {'yes' if len(set(rows.values())) == 1 else 'NO'}")


def main():
    # Skipped, saying so, where it cannot run (`make bench` runs every script).
    if connection.vendor != "postgresql":
        print("bench_claim: skipped, it needs PostgreSQL (set DATABASE_URL=postgres://...).")
        return
    from django.conf import settings

    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        print("bench_claim: skipped, it needs Redis for the broker (CELERY_BROKER_URL=redis://...).")
        return
    from config.celery import app as celery_app
    from tests.support import localstripe_as_stripe

    connection.settings_dict["TEST"]["NAME"] = "test_bench_claim"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        with localstripe_as_stripe() as stripe_base:
            env = {
                "STRIPE_API_BASE": stripe_base,
                "STRIPE_JS_URL": f"{stripe_base}/js.stripe.com/v3/",
                "TRUSTED_PROXY_COUNT": "1",
            }
            with gunicorn(workers=WORKERS, env=env) as base:
                card = live_offer(slug="bench-card")
                no_card = live_offer(slug="bench-sample", kind="sample")
                print(
                    f"claims over HTTP: {WORKERS} sync gunicorn workers, DEBUG=0, PostgreSQL, Redis, localstripe; "
                    "client addresses in X-Forwarded-For behind TRUSTED_PROXY_COUNT=1, product rate limits unchanged"
                )
                print(f"machine: {machine()}")
                latency("card trial", card_claim, customers(base, "card", SAMPLES + WARMUP), card.slug)
                latency("no-card sample", no_card_claim, customers(base, "sample", SAMPLES + WARMUP), no_card.slug)
                flash_crowd(base)
    finally:
        celery_app.control.purge()  # the receipt emails the claims queued; no worker runs here
        connection.close()
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
