"""Claims racing over real HTTP on PostgreSQL: concurrent POSTs to the live server (a thread per
request, each with its own database connection), with the whole stack in front of the services —
sessions, CSRF, the rate limits on the shared cache. Exactly as many claims succeed as there are
units, the counters agree with the rows, and every other answer is a clear refusal: never a 5xx.

The customers come through a proxy that the app trusts (``ALLAUTH_TRUSTED_PROXY_COUNT``), each
with their own address, so the per-IP limit counts each of them, as it would in production; the
product's limits are left as they are."""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.cache import cache

from tests.trials.http_claim import Browser, card_number, card_step, claim_post, session_cookie, verified_customer
from tests.trials.test_claim import assigned
from tests.trials.test_claim_concurrency import race
from tests.trials.test_claim_web import live
from trials.models import ClaimIdentity, ClaimRefusal, ConsentRecord, DailyClaims, Trial

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
SOLD_OUT = "All samples have been claimed."


@pytest.fixture(autouse=True)
def behind_a_proxy(settings, live_server):
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    # Django's live server listens with a backlog of 10 (WSGIServer.request_queue_size): 32
    # clients connecting at once overflow it and some are reset, a limit of the test server
    # (gunicorn's backlog is 2048). Listening again on the same socket raises it.
    live_server.thread.httpd.socket.listen(128)
    cache.clear()  # the rate limits' counts, from earlier tests
    yield
    cache.clear()


def browsers(live_server, offer, count: int) -> list[Browser]:
    """``count`` verified customers, logged in and assigned, each behind its own address."""
    made = []
    for n in range(count):
        customer = verified_customer(f"claimer{n}@example.com")
        assigned(offer, customer=customer)
        made.append(
            Browser(live_server.url, cookie=session_cookie(customer), forwarded_for=f"198.18.{n // 250}.{n % 250 + 1}")
        )
    return made


def landings(browsers_: list[Browser], slug: str) -> list:
    """Each browser's landing page (with its form and CSRF token), 20 at a time."""
    with ThreadPoolExecutor(max_workers=20) as pool:
        pages = list(pool.map(lambda browser: browser.get(f"/o/{slug}/"), browsers_))
    assert {page.status for page in pages} == {200}
    return pages


def answers(results) -> Counter:
    """Each claim's answer: its status, and for a 302 where it leads."""
    counted = Counter()
    for result in results:
        if isinstance(result, Exception):
            counted[f"error: {result!r}"] += 1
        else:
            counted[f"{result.status} {result.location}" if result.status == 302 else result.status] += 1
    return counted


def test_200_concurrent_claim_posts_for_50_units_give_exactly_50_trials(live_server, marketer):
    offer = live(marketer, inventory=50, daily_limit=60)
    customers = browsers(live_server, offer, 200)
    pages = landings(customers, offer.slug)

    results = race(
        [
            lambda b=browser, p=page: claim_post(b, offer.slug, landing=p)
            for browser, page in zip(customers, pages, strict=True)
        ]
    )

    assert answers(results) == Counter({"302 /me/": 50, 409: 150})
    assert all(SOLD_OUT in result.body for result in results if result.status == 409)
    offer.refresh_from_db()
    assert offer.claimed_count == 50 == Trial.objects.filter(offer=offer, status=Trial.Status.ACTIVE).count()
    assert Trial.objects.filter(offer=offer).count() == 50 == ConsentRecord.objects.filter(trial__offer=offer).count()
    assert DailyClaims.objects.get(offer=offer).claimed == 50
    assert ClaimIdentity.objects.filter(offer=offer).count() == 50
    assert ClaimRefusal.objects.get(offer=offer, reason="sold_out").count == 150


def test_20_concurrent_claim_posts_by_one_customer_make_one_trial(live_server, marketer):
    offer = live(marketer, inventory=50)
    (browser,) = browsers(live_server, offer, 1)
    (page,) = landings([browser], offer.slug)

    results = race([lambda: claim_post(browser, offer.slug, landing=page)] * 20)

    # The account's limit (10 claims in 10 minutes) answers at least 10 of them with a 429
    # before any work; of the rest, those that found the claim made are led to /me/ or told the
    # customer has it already. None makes a second trial.
    counted = answers(results)
    assert set(counted) <= {"302 /me/", 409, 429} and counted["302 /me/"] >= 1 and counted[429] >= 10, counted
    offer.refresh_from_db()
    assert offer.claimed_count == 1 == Trial.objects.filter(offer=offer, status=Trial.Status.ACTIVE).count()
    assert ConsentRecord.objects.filter(trial__offer=offer).count() == 1


def test_10_concurrent_card_claims_for_3_units_give_3_trials_with_their_cards(live_server, marketer):
    offer = live(marketer, kind="free_trial", slug="club-trial", inventory=3)
    customers = browsers(live_server, offer, 10)
    pages = landings(customers, offer.slug)

    claimed = race(
        [
            lambda b=browser, p=page: claim_post(b, offer.slug, landing=p)
            for browser, page in zip(customers, pages, strict=True)
        ]
    )
    # The 3 holding a unit go on to the card page; the card steps race too.
    holding = [(browser, answer) for browser, answer in zip(customers, claimed, strict=True) if answer.status == 302]
    confirmed = race(
        [
            lambda b=browser, a=answer, n=n: card_step(b, a, number=card_number(n))
            for n, (browser, answer) in enumerate(holding)
        ]
    )

    assert answers(claimed) == Counter({409: 7, **{f"302 {answer.location}": 1 for _, answer in holding}})
    assert all(answer.location.endswith("/card/") for _, answer in holding) and len(holding) == 3
    assert answers(confirmed) == Counter({"302 /me/": 3})
    offer.refresh_from_db()
    assert offer.claimed_count == 3 == Trial.objects.filter(offer=offer, status=Trial.Status.ACTIVE).count()
    assert set(ConsentRecord.objects.filter(trial__offer=offer).values_list("card_last4", flat=True)) == {
        card_number(n)[-4:] for n in range(3)
    }
