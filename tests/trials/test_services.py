"""Trial transitions: a trial moves only from the states a transition may start from, once,
with an event naming the state it really left; one at a time or many at once, alike."""

import threading
from datetime import timedelta
from itertools import pairwise

import pytest
from django.db import connection

from accounts.models import User
from tests import factories
from tests.factories import NOW
from trials import services
from trials.models import Trial, TrialEvent

pytestmark = pytest.mark.django_db


def claimed(offer, email: str, *, status=Trial.Status.ACTIVE) -> Trial:
    trial = factories.trial(customer=User.objects.create_user(email=email), offer=offer, status=status)
    TrialEvent.objects.create(trial=trial, at=NOW, to_status=status)
    return trial


def history_is_a_chain(trial: Trial) -> bool:
    """Each event leaves the state the previous one entered."""
    events = list(trial.events.order_by("id").values_list("from_status", "to_status"))
    return all(before[1] == after[0] for before, after in pairwise(events))


@pytest.fixture
def offer(db):
    return factories.offer(product_=factories.product())


def test_a_conversion_moves_an_open_trial_once_with_an_event(offer):
    trial = claimed(offer, "ann@example.com")

    assert services.trial_convert(trial_id=trial.pk, at=NOW + timedelta(days=2), note="purchase 7")
    assert not services.trial_convert(trial_id=trial.pk, at=NOW + timedelta(days=3))

    trial.refresh_from_db()
    assert (trial.status, trial.converted_at) == ("converted", NOW + timedelta(days=2))
    assert list(trial.events.values_list("from_status", "to_status", "note")) == [
        ("", "active", ""),
        ("active", "converted", "purchase 7"),
    ]


def test_a_payment_in_the_same_second_as_the_claim_converts_it(offer):
    # Stripe's times are whole seconds: a purchase made 0.4 s after a claim at .6 s past the
    # second carries the time of the second itself, before the claim.
    claim_time = NOW.replace(microsecond=600_000)
    trial = factories.trial(customer=User.objects.create_user(email="ann@example.com"), offer=offer,
                            claimed_at=claim_time)  # fmt: skip
    paid_at = claim_time.replace(microsecond=0) + timedelta(seconds=1)
    found = services.trials_to_convert(customer_id=trial.customer_id, product_id=offer.product_id, at=paid_at)
    assert found == [trial.pk]
    stripe_time = claim_time.replace(microsecond=0)
    found = services.trials_to_convert(customer_id=trial.customer_id, product_id=offer.product_id, at=stripe_time)
    assert found == [trial.pk]
    # A payment a whole second or more before the claim is not the claim's.
    earlier = stripe_time - timedelta(seconds=1)
    assert services.trials_to_convert(customer_id=trial.customer_id, product_id=offer.product_id, at=earlier) == []


def test_a_cancelled_trial_stays_cancelled(offer):
    trial = claimed(offer, "ann@example.com", status=Trial.Status.CANCELLED)

    assert not services.trial_convert(trial_id=trial.pk, at=NOW)
    assert services.trials_convert(moves=[services.Move(trial.pk, NOW)]) == []
    assert not services.trial_payment_failed(trial_id=trial.pk, at=NOW)

    trial.refresh_from_db()
    assert trial.status == "cancelled" and trial.events.count() == 1


def test_many_trials_convert_at_once_each_at_its_own_time_from_its_own_state(offer, monkeypatch):
    monkeypatch.setattr(services, "BATCH", 2)
    active = claimed(offer, "ann@example.com")
    failed = claimed(offer, "bob@example.com", status=Trial.Status.PAYMENT_FAILED)
    expired = claimed(offer, "cleo@example.com", status=Trial.Status.EXPIRED)
    cancelled = claimed(offer, "dan@example.com", status=Trial.Status.CANCELLED)
    moves = [
        services.Move(trial.pk, NOW + timedelta(days=i), f"purchase {i}")
        for i, trial in enumerate([active, failed, expired, cancelled], start=1)
    ]

    moved = services.trials_convert(moves=moves)

    assert sorted(moved) == sorted([active.pk, failed.pk, expired.pk])
    rows = {t.pk: (t.status, t.converted_at) for t in Trial.objects.all()}
    assert rows[active.pk] == ("converted", NOW + timedelta(days=1))
    assert rows[failed.pk] == ("converted", NOW + timedelta(days=2))
    assert rows[expired.pk] == ("converted", NOW + timedelta(days=3))
    assert rows[cancelled.pk] == ("cancelled", None)
    last = {e.trial_id: (e.from_status, e.note) for e in TrialEvent.objects.filter(to_status="converted")}
    assert last == {
        active.pk: ("active", "purchase 1"),
        failed.pk: ("payment_failed", "purchase 2"),
        expired.pk: ("expired", "purchase 3"),
    }


def test_imported_trials_are_written_with_the_history_of_their_outcome(offer):
    trials = [
        factories.trial(
            customer=User.objects.create_user(email=f"c{index}@example.com"),
            offer=offer,
            status=status,
            converted_at=NOW + timedelta(days=5) if status == "converted" else None,
            save=False,
        )
        for index, status in enumerate(["active", "converted", "cancelled", "expired"])
    ]

    services.trials_import(trials=trials)

    events = {t.status: list(t.events.values_list("from_status", "to_status", "at")) for t in Trial.objects.all()}
    assert events == {
        "active": [("", "active", NOW)],
        "converted": [("", "active", NOW), ("active", "converted", NOW + timedelta(days=5))],
        "cancelled": [("", "active", NOW), ("active", "cancelled", NOW)],
        "expired": [("", "active", NOW), ("active", "expired", NOW + timedelta(days=14))],
    }


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_racing_transitions_leave_a_true_history(offer):
    """A payment failure and a conversion of the same trial, at the same moment, from two
    connections: whichever goes second names the state the first one left it in."""
    trials = [claimed(offer, f"c{index}@example.com") for index in range(20)]
    assert connection.vendor == "postgresql"

    for trial in trials:
        barrier = threading.Barrier(2)
        errors = []

        def run(transition, trial=trial, barrier=barrier, errors=errors):
            try:
                barrier.wait()
                transition(trial_id=trial.pk, at=NOW + timedelta(days=1))
            except Exception as exc:  # reported below, in the test's thread
                errors.append(exc)
            finally:
                connection.close()  # this thread's own connection

        threads = [
            threading.Thread(target=run, args=(services.trial_payment_failed,)),
            threading.Thread(target=run, args=(services.trial_convert,)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []

    for trial in trials:
        trial.refresh_from_db()
        assert trial.status == "converted"  # a conversion follows a failed payment, or wins outright
        assert history_is_a_chain(trial), list(trial.events.values_list("from_status", "to_status"))
