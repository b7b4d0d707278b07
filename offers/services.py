"""Writes to the catalogue and to offers. Each transition of an offer is one function here."""

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from offers.models import Offer, OfferChange, Product, Variant, new_salt
from offers.validation import (
    OFFER_FIELDS,
    Problems,
    VariantSpec,
    offer_problems,
    offer_values_complete,
    product_problems,
)


class TransitionNotAllowed(Exception):
    """The offer is not in a state this transition starts from (or another request moved it first)."""


def _raise(problems: Problems) -> None:
    if problems:
        raise ValidationError(problems.by_field)


# --- Products --------------------------------------------------------------------------------
@transaction.atomic
def product_create(
    *, sku: str, name: str, price_amount: int, currency: str, interval: str = "", description: str = "", image=None
) -> Product:
    _raise(product_problems(sku=sku, name=name, price_amount=price_amount, currency=currency, interval=interval))
    product = Product.objects.create(
        sku=sku,
        name=name.strip(),
        price_amount=price_amount,
        currency=currency,
        interval=interval,
        description=description,
        image=image or "",
    )
    _queue_product_sync(product)
    return product


@transaction.atomic
def product_update(*, product: Product, **values) -> Product:
    merged = {k: values.get(k, getattr(product, k)) for k in ("sku", "name", "price_amount", "currency", "interval")}
    _raise(product_problems(**merged, existing=product))
    for key, value in values.items():
        setattr(product, key, value)
    product.save()
    _queue_product_sync(product)
    return product


def _queue_product_sync(product: Product) -> None:
    from offers.tasks import product_sync_task

    # robust: a broker that is down must not turn a saved product into an error page. Launch
    # syncs a product that has no price yet, so a lost sync is caught up there.
    transaction.on_commit(lambda: product_sync_task.delay(product_id=product.pk), robust=True)


def product_sync(*, product_id: int) -> Product:
    """Make Stripe's copy of the product and its price match ours. Safe to run any number of
    times; no database lock is held while Stripe is called."""
    from billing import gateway

    product = Product.objects.get(pk=product_id)
    price_id = gateway.price_sync(
        sku=product.sku,
        name=product.name,
        amount=product.price_amount,
        currency=product.currency,
        interval=product.interval or None,
    )
    Product.objects.filter(pk=product.pk).update(stripe_price_id=price_id, stripe_synced_at=timezone.now())
    product.stripe_price_id = price_id
    return product


# --- Offers ----------------------------------------------------------------------------------
def _save_variants(offer: Offer, variants: list[VariantSpec]) -> None:
    offer.variants.all().delete()
    Variant.objects.bulk_create(
        Variant(
            offer=offer,
            name=v.name,
            weight=v.weight,
            kind=v.kind or "",
            trial_days=v.trial_days,
            trial_price=v.trial_price,
            position=i,
        )
        for i, v in enumerate(variants)
    )


def _variant_specs(offer: Offer) -> list[VariantSpec]:
    return [VariantSpec(v.name, v.weight, v.kind, v.trial_days, v.trial_price) for v in offer.variants.all()]


def _record(offer: Offer, *, actor, action: str, at: datetime, changes: dict | None = None) -> None:
    OfferChange.objects.create(offer=offer, actor=actor, at=at, action=action, changes=changes or {})


@transaction.atomic
def offer_create(
    *, actor, values: dict, variants: list[VariantSpec] | None = None, at: datetime | None = None
) -> Offer:
    """Create a draft offer. With no variants given it has one, ``default``, of weight 1."""
    at = at or timezone.now()
    full = offer_values_complete(values)
    variants = variants if variants is not None else [VariantSpec("default", 1)]
    _raise(offer_problems(values=full, variants=variants))
    offer = Offer.objects.create(**full, created_by=actor)
    _save_variants(offer, variants)
    _record(offer, actor=actor, action="created", at=at)
    return offer


def _jsonable(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "pk"):
        return str(value)
    return value


@transaction.atomic
def offer_update(
    *, offer: Offer, actor, values: dict, variants: list[VariantSpec] | None = None, at: datetime | None = None
) -> Offer:
    """Change an offer's configuration, keeping a record of each changed field."""
    at = at or timezone.now()
    offer = Offer.objects.select_for_update().get(pk=offer.pk)
    current = {name: getattr(offer, name) for name in OFFER_FIELDS}
    full = offer_values_complete({**current, **values})
    old_variants = _variant_specs(offer)
    variants = variants if variants is not None else old_variants
    _raise(offer_problems(values=full, variants=variants, existing=offer))

    changes = {
        name: [_jsonable(current[name]), _jsonable(full[name])] for name in OFFER_FIELDS if current[name] != full[name]
    }
    if variants != old_variants:
        changes["variants"] = [[v.__dict__ for v in old_variants], [v.__dict__ for v in variants]]
        _save_variants(offer, variants)
    if changes:
        for name, value in full.items():
            setattr(offer, name, value)
        offer.save()
        _record(offer, actor=actor, action="updated", at=at, changes=changes)
    return offer


def _transition(
    offer: Offer, *, sources: tuple[str, ...], target: str, actor, action: str, at: datetime, **fields
) -> Offer:
    """Move the offer with a conditional update: of two concurrent requests only one moves it."""
    with transaction.atomic():
        moved = Offer.objects.filter(pk=offer.pk, status__in=sources).update(status=target, updated_at=at, **fields)
        if moved != 1:
            current = Offer.objects.filter(pk=offer.pk).values_list("status", flat=True).first()
            raise TransitionNotAllowed(f"A {current} offer cannot be {action}.")
        offer.refresh_from_db()
        _record(offer, actor=actor, action=action, at=at)
    return offer


def _status_for_window(offer: Offer, at: datetime) -> str:
    if offer.ends_at is not None and offer.ends_at <= at:
        return Offer.Status.ENDED
    return Offer.Status.LIVE if offer.starts_at <= at else Offer.Status.SCHEDULED


def offer_launch(*, offer: Offer, actor, at: datetime | None = None) -> Offer:
    """Launch a draft: scheduled if it starts later, live if it has started, ended at once if
    its whole window is in the past (so that history can be imported into it). Weights, holdout
    and salt lock from here on."""
    at = at or timezone.now()
    _raise(
        offer_problems(
            values=offer_values_complete({n: getattr(offer, n) for n in OFFER_FIELDS}),
            variants=_variant_specs(offer),
            existing=offer,
        )
    )
    if offer.status != Offer.Status.DRAFT:
        raise TransitionNotAllowed(f"A {offer.status} offer cannot be launched.")
    if not offer.product.stripe_price_id:
        # Before the transition, outside any transaction: never hold a lock while calling Stripe.
        product_sync(product_id=offer.product_id)
    target = _status_for_window(offer, at)
    extra = {"launched_at": at}
    if target == Offer.Status.ENDED:
        extra["ended_at"] = at
    return _transition(
        offer, sources=(Offer.Status.DRAFT,), target=target, actor=actor, action="launched", at=at, **extra
    )


def offer_pause(*, offer: Offer, actor, at: datetime | None = None) -> Offer:
    return _transition(
        offer,
        sources=(Offer.Status.LIVE,),
        target=Offer.Status.PAUSED,
        actor=actor,
        action="paused",
        at=at or timezone.now(),
    )


def offer_resume(*, offer: Offer, actor, at: datetime | None = None) -> Offer:
    at = at or timezone.now()
    target = _status_for_window(offer, at)
    extra = {"ended_at": at} if target == Offer.Status.ENDED else {}
    return _transition(
        offer, sources=(Offer.Status.PAUSED,), target=target, actor=actor, action="resumed", at=at, **extra
    )


def offer_end(*, offer: Offer, actor, at: datetime | None = None, action: str = "ended") -> Offer:
    at = at or timezone.now()
    return _transition(
        offer,
        sources=(Offer.Status.SCHEDULED, Offer.Status.LIVE, Offer.Status.PAUSED),
        target=Offer.Status.ENDED,
        actor=actor,
        action=action,
        at=at,
        ended_at=at,
    )


@transaction.atomic
def offer_duplicate(*, offer: Offer, actor, at: datetime | None = None) -> Offer:
    """A new draft with the same configuration, a fresh salt and a free slug."""
    at = at or timezone.now()
    base = f"{offer.slug[:70]}-copy"
    slug, number = base, 1
    while Offer.objects.filter(slug=slug).exists():
        number += 1
        slug = f"{base}-{number}"
    values = {name: getattr(offer, name) for name in OFFER_FIELDS} | {"slug": slug, "name": f"{offer.name} (copy)"}
    copy = Offer.objects.create(**values, created_by=actor, salt=new_salt())
    _save_variants(copy, _variant_specs(offer))
    _record(copy, actor=actor, action="created", at=at, changes={"duplicated_from": offer.slug})
    return copy


def offers_advance(*, at: datetime) -> dict[str, int]:
    """The beat job: start scheduled offers whose time has come, end live ones whose window
    closed or whose inventory is gone. Each move is a conditional update, so a job that runs
    twice, or two that overlap, move each offer once."""
    moved = {"started": 0, "ended": 0, "sold_out": 0}
    for offer in Offer.objects.filter(status=Offer.Status.SCHEDULED, starts_at__lte=at):
        target = _status_for_window(offer, at)
        extra = {"ended_at": at} if target == Offer.Status.ENDED else {}
        try:
            _transition(
                offer, sources=(Offer.Status.SCHEDULED,), target=target, actor=None, action="started", at=at, **extra
            )
            moved["started"] += 1
        except TransitionNotAllowed:
            pass
    for offer in Offer.objects.filter(status=Offer.Status.LIVE, ends_at__lte=at):
        try:
            offer_end(offer=offer, actor=None, at=at)
            moved["ended"] += 1
        except TransitionNotAllowed:
            pass
    for offer in Offer.objects.filter(
        status=Offer.Status.LIVE, inventory__isnull=False, claimed_count__gte=F("inventory")
    ):
        try:
            offer_end(offer=offer, actor=None, at=at, action="sold out")
            moved["sold_out"] += 1
        except TransitionNotAllowed:
            pass
    return moved
