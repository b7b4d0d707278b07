"""Trial transitions. Each is one function: a conditional UPDATE from the states it may start
from, and a TrialEvent row in the same transaction, so no transition can happen twice."""

from datetime import datetime

from django.db import transaction

from trials.models import Trial, TrialEvent


class TrialTransitionNotAllowed(Exception):
    pass


def _move(*, trial_id: int, sources: tuple[str, ...], target: str, at: datetime, note: str = "", **fields) -> bool:
    """Move the trial if it is in one of ``sources``. Returns False (and writes nothing) when
    it is not: another event or job moved it first."""
    with transaction.atomic():
        current = Trial.objects.filter(pk=trial_id).values_list("status", flat=True).first()
        moved = Trial.objects.filter(pk=trial_id, status__in=sources).update(status=target, **fields)
        if moved:
            TrialEvent.objects.create(trial_id=trial_id, at=at, from_status=current or "", to_status=target, note=note)
        return bool(moved)


CONVERTIBLE = (
    Trial.Status.ACTIVE,
    Trial.Status.CONVERTING,
    Trial.Status.PAYMENT_FAILED,
    Trial.Status.EXPIRED,
)


def trial_convert(*, trial_id: int, at: datetime, note: str = "") -> bool:
    """The customer paid the full product: the trial converted at ``at``. A cancelled trial
    stays cancelled; its cancellation was a promise."""
    return _move(
        trial_id=trial_id, sources=CONVERTIBLE, target=Trial.Status.CONVERTED, at=at, note=note, converted_at=at
    )


def trial_payment_failed(*, trial_id: int, at: datetime, note: str = "") -> bool:
    """The conversion charge failed or needs the customer (3-D Secure). Not the same as
    cancelled: the customer can still complete the payment."""
    return _move(
        trial_id=trial_id,
        sources=(Trial.Status.CONVERTING, Trial.Status.ACTIVE),
        target=Trial.Status.PAYMENT_FAILED,
        at=at,
        note=note,
    )


def trials_to_convert(*, customer_id: int, product_id: int, at: datetime) -> list[int]:
    """The customer's open trials of offers leading to this product, claimed before ``at``:
    the trials a full-price purchase at ``at`` converts."""
    return list(
        Trial.objects.filter(
            customer_id=customer_id, offer__product_id=product_id, claimed_at__lte=at, status__in=CONVERTIBLE
        ).values_list("pk", flat=True)
    )
