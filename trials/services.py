"""Trial transitions, the only place a trial changes state. Each is one function, for one trial
or for many at once (the imports), with the same guarantees: the trials are locked, only those
in a state the transition may start from move, and each move writes a TrialEvent naming the
state it really left, in the same transaction. So no transition happens twice, and the history
is true even when two writers race."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, connection, transaction
from django.db.models import Case, DateTimeField, Value, When

from config.batches import batches
from offers import rules
from trials.models import Assignment, Trial, TrialEvent
from trials.selectors import assignment_get

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


# --- Assignments ---------------------------------------------------------------------------------
def customer_key(customer_id: int) -> str:
    """What the arm of a logged-in customer is hashed from: their id (DESIGN.md, "Experiments")."""
    return str(customer_id)


def visitor_key(visitor: str) -> str:
    """What the arm of an anonymous visitor is hashed from. Prefixed, so that no cookie id can
    ever hash like a customer id."""
    return f"visitor:{visitor}"


class NoArms(Exception):
    """The offer has no variant with a weight, so there is no arm to assign."""


def assignment_for_visitor(
    *, offer, customer=None, visitor: str | None = None, at: datetime, new_visitor: bool = False
) -> Assignment:
    """The visitor's assignment to ``offer``, written now if this is their first view.

    ``customer`` is the logged-in customer, else ``visitor`` is the anonymous visitor's cookie
    id. The row is read first (a returning visitor writes nothing); a first view inserts it with
    the unique constraints as the guard, so two first views racing end with one row, and the
    loser reads the winner's. Whatever is returned has been committed before the caller shows
    anything. ``new_visitor`` says the visitor id was just drawn, so there is nothing to read."""
    if customer is None and not visitor:
        raise ValueError("an assignment needs a customer or a visitor")
    known = None
    if not (new_visitor and customer is None):
        known = assignment_get(offer_id=offer.pk, customer_id=customer.pk if customer else None, visitor=visitor)
    if known is not None:
        if known.first_seen_at is None:
            # Imported before the customer ever saw the page: this view is the first exposure.
            Assignment.objects.filter(pk=known.pk, first_seen_at__isnull=True).update(first_seen_at=at)
            known.first_seen_at = at
        return known
    variants = list(offer.variants.all())
    if not any(variant.weight > 0 for variant in variants):
        raise NoArms(offer.slug)
    key = customer_key(customer.pk) if customer else visitor_key(visitor)
    arm = rules.arm_for(
        salt=offer.salt,
        customer_key=key,
        holdout_percent=offer.holdout_percent,
        variants=[(variant.name, variant.weight) for variant in variants],
    )
    variant = None if arm == rules.HOLDOUT else next(v for v in variants if v.name == arm)
    row = Assignment(
        offer=offer,
        customer=customer,
        visitor=None if customer else visitor,
        variant=variant,
        arm=arm,
        assigned_at=at,
        first_seen_at=at,
        source=Assignment.Source.WEB,
    )
    try:
        if connection.in_atomic_block:
            with transaction.atomic():  # a savepoint, so a lost race leaves the caller's transaction usable
                row.save(force_insert=True)
        else:
            # One INSERT in autocommit is its own transaction: BEGIN and COMMIT around it would
            # only add two round trips to every first view.
            row.save(force_insert=True)
    except IntegrityError:
        # Another request of the same visitor inserted first: theirs stands, and it has the same
        # arm (the same hash), so what this visitor sees does not depend on who won.
        known = assignment_get(offer_id=offer.pk, customer_id=customer.pk if customer else None, visitor=visitor)
        if known is None:
            raise
        return known
    return row


@dataclass(frozen=True)
class Joined:
    joined: int  # anonymous assignments that now belong to the account
    superseded: int  # anonymous assignments left aside, the account's own standing


def assignments_join(*, customer, visitor: str) -> Joined:
    """At signup or login: the visitor's anonymous assignments join the account.

    Where the account already has an assignment for the same offer, that one stands (it may
    carry a trial, and its arm is what the customer saw logged in); the anonymous row keeps its
    visitor and is marked ``superseded_by`` it, so a unit is counted once per person and offer.
    Each row moves by a conditional update (only while it still has no customer), and the
    unique (offer, customer) constraint settles a race with a first view in another tab."""
    if not visitor:
        return Joined(0, 0)
    with transaction.atomic():
        return _join(customer, visitor)


def _join(customer, visitor: str) -> Joined:
    joined = superseded = 0
    anonymous = list(
        Assignment.objects.filter(visitor=visitor, customer__isnull=True, superseded_by__isnull=True).values_list(
            "pk", "offer_id"
        )
    )
    if not anonymous:
        return Joined(0, 0)
    held = dict(
        Assignment.objects.filter(customer=customer, offer_id__in=[offer_id for _, offer_id in anonymous]).values_list(
            "offer_id", "pk"
        )
    )
    for pk, offer_id in anonymous:
        unclaimed = Assignment.objects.filter(pk=pk, customer__isnull=True, superseded_by__isnull=True)
        if offer_id not in held:
            try:
                with transaction.atomic():
                    if unclaimed.update(customer=customer):
                        joined += 1
                    continue
            except IntegrityError:
                held[offer_id] = Assignment.objects.get(offer_id=offer_id, customer=customer).pk
        superseded += unclaimed.update(superseded_by_id=held[offer_id])
    return Joined(joined, superseded)
