"""Writing to the purchases ledger. Every write is idempotent by (source, external id): the
same record again is a no-op; the same id with different content is an error, never an
overwrite (the ledger is append-only)."""

from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Sum

from accounts.models import User
from billing.models import Purchase
from offers.models import Product
from offers.rules import canonical_email
from trials import services as trial_services


class LedgerError(ValueError):
    """A purchase or refund that cannot be recorded as given; the message says why."""


@dataclass(frozen=True)
class Recorded:
    purchase: Purchase
    created: bool


def _same(existing: Purchase, **values) -> bool:
    return all(getattr(existing, name) == value for name, value in values.items())


def _recorded_before(*, source: str, external_id: str, values: dict, what: str) -> Recorded | None:
    """The row already recorded under this id, if any; an error if its content differs, because
    the ledger is append-only and never overwritten."""
    existing = Purchase.objects.filter(source=source, external_id=external_id).first()
    if existing is None:
        return None
    if not _same(existing, **values):
        raise LedgerError(f"{source} {what} “{external_id}” was already recorded with different content.")
    return Recorded(existing, False)


def customer_match(*, stripe_customer_id: str | None = None, email: str | None = None) -> User | None:
    """Our customer for a Stripe customer id, or failing that for a canonical email."""
    if stripe_customer_id:
        user = User.objects.filter(stripe_customer_id=stripe_customer_id).first()
        if user is not None:
            return user
    if email:
        return User.objects.filter(canonical_email=canonical_email(email)).order_by("pk").first()
    return None


def purchase_record(
    *,
    customer: User,
    product: Product,
    kind: str,
    amount: int,
    currency: str,
    purchased_at: datetime,
    source: str,
    external_id: str,
    trial_id: int | None = None,
) -> Recorded:
    """Record a payment (a positive amount). A ``regular`` purchase converts the customer's open
    trials of offers that lead to this product (the first paid purchase after the claim)."""
    if amount <= 0:
        raise LedgerError("A purchase must have a positive amount; a refund needs refund_of.")
    if kind not in Purchase.Kind.values:
        raise LedgerError(f"Unknown kind “{kind}”: use regular, trial_fee or sample.")
    values = {
        "customer": customer,
        "product": product,
        "kind": kind,
        "amount": amount,
        "currency": currency,
        "purchased_at": purchased_at,
    }
    before = _recorded_before(source=source, external_id=external_id, values=values, what="purchase")
    if before is not None:
        return before
    try:
        with transaction.atomic():
            purchase = Purchase.objects.create(**values, source=source, external_id=external_id, trial_id=trial_id)
            if kind == Purchase.Kind.REGULAR:
                for trial in trial_services.trials_to_convert(
                    customer_id=customer.pk, product_id=product.pk, at=purchased_at
                ):
                    trial_services.trial_convert(trial_id=trial, at=purchased_at, note=f"purchase {purchase.pk}")
    except IntegrityError:
        # Another delivery of the same record won the race; it is the same record or an error.
        before = _recorded_before(source=source, external_id=external_id, values=values, what="purchase")
        if before is None:
            raise
        return before
    return Recorded(purchase, True)


def refund_record(*, original: Purchase, amount: int, refunded_at: datetime, source: str, external_id: str) -> Recorded:
    """Record a refund of ``amount`` (positive, in minor units) of ``original`` as a negative row.

    The original row is locked while the refunds are added up, so two refunds racing cannot
    together refund more than was paid.
    """
    if amount <= 0:
        raise LedgerError("A refund amount must be positive (it is stored as a negative row).")
    if original.refund_of_id is not None:
        raise LedgerError("A refund cannot itself be refunded.")
    values = {"customer_id": original.customer_id, "product_id": original.product_id, "amount": -amount,
              "currency": original.currency, "refund_of_id": original.pk}  # fmt: skip
    before = _recorded_before(source=source, external_id=external_id, values=values, what="refund")
    if before is not None:
        return before
    try:
        with transaction.atomic():
            Purchase.objects.select_for_update().get(pk=original.pk)
            refunded = -(original.refunds.aggregate(total=Sum("amount"))["total"] or 0)
            if refunded + amount > original.amount:
                left = original.amount - refunded
                raise LedgerError(
                    f"The refund of {amount} is more than is left to refund of “{original.external_id}” ({left})."
                )
            refund = Purchase.objects.create(
                **values, kind=original.kind, purchased_at=refunded_at, source=source, external_id=external_id
            )
    except IntegrityError:
        before = _recorded_before(source=source, external_id=external_id, values=values, what="refund")
        if before is None:
            raise
        return before
    return Recorded(refund, True)
