"""Factories for the catalogue and offers, going through the services so every object made in a
test passed the same validation a marketer's would."""

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
