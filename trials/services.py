"""Trial transitions, the only place a trial changes state. Each is one function, for one trial
or for many at once (the imports), with the same guarantees: the trials are locked, only those
in a state the transition may start from move, and each move writes a TrialEvent naming the
state it really left, in the same transaction. So no transition happens twice, and the history
is true even when two writers race."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Case, DateTimeField, Value, When

from config.batches import batches
from trials.models import Trial, TrialEvent

BATCH = 500  # trials locked and moved per statement


class TrialTransitionNotAllowed(Exception):
    pass


@dataclass(frozen=True)
class Move:
    """One trial to move: at ``at``, with ``note`` on its event."""

    trial_id: int
    at: datetime
    note: str = ""


def _moves(*, moves: Iterable[Move], sources: tuple[str, ...], target: str, stamp: str = "") -> list[int]:
    """Move each trial that is in one of ``sources`` to ``target`` (and set its ``stamp`` field,
    if given, to the move's time). Returns the ids of the trials moved; the others were moved
    first by someone else, and nothing is written for them.

    The rows are locked (in primary-key order, so two batches cannot deadlock) before their
    status is read, so the status an event names as its ``from_status`` is the one the update
    moved it from: a read then a separate update could name a state another writer had already
    left. On SQLite, where there are no row locks, the IMMEDIATE transaction holds the database's
    write lock from BEGIN, which serializes writers the same way."""
    by_id = {move.trial_id: move for move in moves}
    moved: list[int] = []
    with transaction.atomic():
        for part in batches(sorted(by_id), BATCH):
            leaving = dict(
                Trial.objects.select_for_update()
                .filter(pk__in=part, status__in=sources)
                .order_by("pk")
                .values_list("pk", "status")
            )
            if not leaving:
                continue
            fields = {"status": target}
            if stamp:
                fields[stamp] = Case(
                    *[When(pk=pk, then=Value(by_id[pk].at)) for pk in leaving], output_field=DateTimeField()
                )
            Trial.objects.filter(pk__in=leaving).update(**fields)
            TrialEvent.objects.bulk_create(
                TrialEvent(
                    trial_id=pk, at=by_id[pk].at, from_status=status, to_status=target, note=by_id[pk].note[:200]
                )
                for pk, status in leaving.items()
            )
            moved.extend(leaving)
    return moved


CONVERTIBLE = (
    Trial.Status.ACTIVE,
    Trial.Status.CONVERTING,
    Trial.Status.PAYMENT_FAILED,
    Trial.Status.EXPIRED,
)


def trial_convert(*, trial_id: int, at: datetime, note: str = "") -> bool:
    """The customer paid the full product: the trial converted at ``at``. A cancelled trial
    stays cancelled; its cancellation was a promise."""
    return bool(trials_convert(moves=[Move(trial_id, at, note)]))


def trials_convert(*, moves: Iterable[Move]) -> list[int]:
    """``trial_convert`` for many trials at once (an import's purchases), each at its own time."""
    return _moves(moves=moves, sources=CONVERTIBLE, target=Trial.Status.CONVERTED, stamp="converted_at")


def trial_payment_failed(*, trial_id: int, at: datetime, note: str = "") -> bool:
    """The conversion charge failed or needs the customer (3-D Secure). Not the same as
    cancelled: the customer can still complete the payment."""
    moved = _moves(
        moves=[Move(trial_id, at, note)],
        sources=(Trial.Status.CONVERTING, Trial.Status.ACTIVE),
        target=Trial.Status.PAYMENT_FAILED,
    )
    return bool(moved)


def trials_to_convert(*, customer_id: int, product_id: int, at: datetime) -> list[int]:
    """The customer's open trials of offers leading to this product, claimed before ``at``:
    the trials a full-price purchase at ``at`` converts."""
    return list(
        Trial.objects.filter(
            customer_id=customer_id, offer__product_id=product_id, claimed_at__lte=at, status__in=CONVERTIBLE
        ).values_list("pk", flat=True)
    )


# --- Trials written whole, with their history (imports) ------------------------------------------
IMPORTED = "imported"


def trials_import(*, trials: list[Trial]) -> None:
    """Create trials that happened elsewhere (an import from before Foretaste), each as it ended
    up, with its history: the claim, then, for a trial no longer active, its move to where it
    is. The time of a cancellation is not known; the claim is the latest it can be sure of."""
    Trial.objects.bulk_create(trials, batch_size=BATCH)
    events = []
    for trial in trials:
        events.append(TrialEvent(trial=trial, at=trial.claimed_at, to_status=Trial.Status.ACTIVE, note=IMPORTED))
        if trial.status != Trial.Status.ACTIVE:
            at = {Trial.Status.CONVERTED: trial.converted_at, Trial.Status.CANCELLED: trial.claimed_at}.get(
                trial.status, trial.ends_at
            )
            events.append(
                TrialEvent(trial=trial, at=at, from_status=Trial.Status.ACTIVE, to_status=trial.status, note=IMPORTED)
            )
    TrialEvent.objects.bulk_create(events, batch_size=BATCH)
