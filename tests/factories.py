"""Factories for the catalogue and offers, going through the services so every object made in a
test passed the same validation a marketer's would."""

import itertools
from datetime import UTC, datetime, timedelta

from offers import services
from offers.validation import VariantSpec

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def product(*, sku="beans-1kg", name="Beans 1 kg", price_amount=2400, currency="EUR", interval=""):
    return services.product_create(sku=sku, name=name, price_amount=price_amount, currency=currency, interval=interval)


def offer(*, actor=None, product_=None, variants=None, **values):
    defaults = {
        "slug": "coffee-sampler",
        "name": "Coffee sampler",
        "promise": "The same beans our cafés brew, at home, for two weeks.",
        "kind": "sample",
        "trial_days": 14,
        "trial_price": 0,
        "currency": "EUR",
        "starts_at": NOW,
        "ends_at": NOW + timedelta(days=60),
    }
    values = {**defaults, **values}
    values["product"] = product_ or product()
    specs = [VariantSpec(**v) if isinstance(v, dict) else v for v in variants] if variants else None
    return services.offer_create(actor=actor, values=values, variants=specs, at=NOW)


def trial(*, customer, offer, claimed_at=NOW, status="active", save=True, **fields):
    """A trial of the offer's first variant, claimed at ``claimed_at`` and lasting 14 days, with its
    assignment; left unsaved with ``save=False`` (for services that write trials themselves)."""
    from trials.models import Assignment, Trial

    variant = offer.variants.order_by("pk").first()
    assignment = Assignment.objects.create(
        offer=offer, customer=customer, variant=variant, arm=variant.name, assigned_at=claimed_at
    )
    made = Trial(
        assignment=assignment,
        offer=offer,
        customer=customer,
        variant=variant,
        status=status,
        claimed_at=claimed_at,
        ends_at=claimed_at + timedelta(days=14),
        **fields,
    )
    if save:
        made.save()
    return made


# --- Histories for the metrics (tests/analytics) -------------------------------------------------
_external_ids = itertools.count(1)


def customer(*, email: str, country: str = ""):
    from accounts.models import User

    return User.objects.create(email=email, country=country)


def assignment(*, offer, customer, arm: str = "default", assigned_at=NOW, **fields):
    """The customer's assignment to ``arm`` (a variant's name, or ``holdout``)."""
    from trials.models import Assignment

    variant = None if arm == Assignment.HOLDOUT else offer.variants.get(name=arm)
    return Assignment.objects.create(
        offer=offer, customer=customer, variant=variant, arm=arm, assigned_at=assigned_at, **fields
    )


def claim(*, assignment, claimed_at=None, days: int = 14, status: str = "active", **fields):
    """The trial an assignment's customer claimed, ``days`` long."""
    from trials.models import Trial

    claimed_at = claimed_at or assignment.assigned_at
    return Trial.objects.create(
        assignment=assignment,
        offer=assignment.offer,
        customer=assignment.customer,
        variant=assignment.variant,
        status=status,
        claimed_at=claimed_at,
        ends_at=claimed_at + timedelta(days=days),
        **fields,
    )


def purchase(
    *, customer, product, amount: int, at, kind: str = "regular", currency: str = "EUR", refund_of=None, trial=None
):
    """A ledger row as an import writes it (no conversion of trials, unlike billing.ledger); with
    ``trial``, a charge of that trial written directly."""
    from billing.models import Purchase

    return Purchase.objects.create(
        customer=customer,
        product=product,
        kind=kind,
        amount=amount,
        currency=currency,
        purchased_at=at,
        source=Purchase.Source.IMPORT,
        external_id=f"row-{next(_external_ids)}",
        refund_of=refund_of,
        trial=trial,
    )


def refund(*, original, at, amount: int | None = None):
    """A refund of ``amount`` (all of it by default) of ``original``: a negative row pointing at it."""
    return purchase(
        customer=original.customer,
        product=original.product,
        amount=-(original.amount if amount is None else amount),
        at=at,
        kind=original.kind,
        currency=original.currency,
        refund_of=original,
    )
