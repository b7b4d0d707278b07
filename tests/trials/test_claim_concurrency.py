"""Claims racing on PostgreSQL, at the service level: many threads, each with its own database
connection, start together at a barrier. The limits hold because constraints and conditional
updates hold them, so exactly as many claims succeed as there are units, the counters agree
with the rows, and every other claim is a clear refusal, never an error.

(The HTTP version of these races, with the rate limits in front, comes with the claim pages.)"""

import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection

from accounts.models import User
from offers import services as offer_services
from tests import factories
from tests.factories import NOW
from trials import services
from trials.models import Assignment, ClaimIdentity, ClaimRefusal, DailyClaims, Trial

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
AT = NOW + timedelta(hours=1)
# Connections are shared with the other tests on this server (max_connections is 100), so 200
# claims run on 32 threads, in rounds that start together at the barrier.
THREADS = 32


def race(calls: list) -> list:
    """Run every call, THREADS at a time, each round released together; return each call's
    result or the exception it raised, in order."""
    results: list = [None] * len(calls)
    barrier = threading.Barrier(THREADS)
    rounds = -(-len(calls) // THREADS)

    def worker(index: int) -> None:
        try:
            for round_ in range(rounds):
                position = round_ * THREADS + index
                barrier.wait()
                if position >= len(calls):
                    continue
                try:
                    results[position] = calls[position]()
                except Exception as exc:
                    results[position] = exc
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def claim_call(assignment, customer=None):
    def call():
        trial = services.claim_reserve(
            assignment=assignment, customer=customer or assignment.customer, ip="203.0.113.9", user_agent="race", at=AT
        )
        return services.claim_confirm(trial_id=trial.pk, at=AT + timedelta(seconds=1))

    return call


def assignment_for(offer, customer) -> Assignment:
    variant = offer.variants.get()
    return Assignment.objects.create(offer=offer, customer=customer, variant=variant, arm=variant.name, assigned_at=NOW)


@pytest.fixture
def live(marketer):
    def make(**values):
        offer = factories.offer(actor=marketer, **values)
        return offer_services.offer_launch(offer=offer, actor=marketer, at=NOW)

    return make


def outcomes(results) -> Counter:
    """What happened to each claim: ``active``, a refusal's code, or an unexpected error."""
    counted = Counter()
    for result in results:
        if isinstance(result, Trial):
            counted[result.status] += 1
        elif isinstance(result, services.ClaimRefused):
            counted[result.code] += 1
        else:
            counted[f"error: {result!r}"] += 1
    return counted


def test_200_concurrent_claims_for_50_units_give_exactly_50_trials(live):
    assert connection.vendor == "postgresql"
    offer = live(inventory=50, daily_limit=60)
    customers = [User.objects.create_user(email=f"claimer{n}@example.com") for n in range(200)]
    calls = [claim_call(assignment_for(offer, customer)) for customer in customers]

    results = race(calls)

    assert outcomes(results) == Counter({"active": 50, "sold_out": 150})
    offer.refresh_from_db()
    assert offer.claimed_count == 50 == Trial.objects.filter(offer=offer, status=Trial.Status.ACTIVE).count()
    assert Trial.objects.filter(offer=offer).count() == 50  # the refused kept nothing
    assert DailyClaims.objects.get(offer=offer).claimed == 50
    assert ClaimIdentity.objects.filter(offer=offer).count() == 50
    assert ClaimRefusal.objects.get(offer=offer, reason="sold_out").count == 150


def test_20_concurrent_submits_by_one_customer_make_one_trial(live):
    offer = live(inventory=50)
    customer = User.objects.create_user(email="ann@example.com")
    assignment = assignment_for(offer, customer)

    results = race([claim_call(assignment)] * 20)

    # A submit that found the reservation made gets that trial back; one that came after the
    # confirmation is told the customer already has it. None makes a second trial.
    counted = outcomes(results)
    assert set(counted) <= {"active", "already_claimed"} and counted["active"] >= 1, counted
    assert {r.pk for r in results if isinstance(r, Trial)} == {Trial.objects.get(offer=offer).pk}
    offer.refresh_from_db()
    assert offer.claimed_count == 1 == Trial.objects.filter(offer=offer).count()


def test_20_concurrent_claims_by_one_person_under_20_accounts_make_one_trial(live):
    offer = live(inventory=50)
    # One Gmail mailbox: dots and +tags make 20 accounts of one person.
    accounts = [User.objects.create_user(email=f"ann.b+{n}@gmail.com") for n in range(20)]
    calls = [claim_call(assignment_for(offer, account)) for account in accounts]

    results = race(calls)

    assert outcomes(results) == Counter({"active": 1, "same_email": 19})
    offer.refresh_from_db()
    assert offer.claimed_count == 1 == Trial.objects.filter(offer=offer).count()
    assert ClaimRefusal.objects.get(offer=offer, reason="same_email").count == 19
