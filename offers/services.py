"""Writes to the catalogue and to offers. Each transition of an offer is one function here."""

import re
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F, ProtectedError
from django.utils import timezone

from offers.models import Offer, OfferChange, Product, Variant, new_salt
from offers.translation import in_main_language, word_columns
from offers.validation import (
    OFFER_FIELDS,
    VARIANT_NAME_TWICE,
    Problems,
    VariantSpec,
    offer_problems,
    offer_values_complete,
    product_problems,
    sku_taken,
    slug_taken,
    variant_in_use,
)

MAX_COPIES = 1000  # slugs tried by offer_duplicate before it gives up


class TransitionNotAllowed(Exception):
    """The offer is not in a state this transition starts from (or another request moved it first)."""


def _raise(problems: Problems) -> None:
    if problems:
        raise ValidationError(problems.by_field)


# --- Races -----------------------------------------------------------------------------------
# The validation's pre-checks ("is this SKU taken?") give the words; the unique constraints are
# the real guard, because two requests can both pass a pre-check before either commits. Each
# insert or update that a constraint may refuse runs in a savepoint, and the violated constraint
# is turned into the pre-check's message on the field, so a race is a field error, not a 500.
def _unique_columns(exc: IntegrityError) -> tuple[str, frozenset[str]] | None:
    """The table and columns of the unique constraint ``exc`` violated, or None for another
    kind of violation. PostgreSQL names the constraint (we look up its columns); SQLite names
    the columns in its message."""
    cause = exc.__cause__
    diag = getattr(cause, "diag", None)
    if diag is not None:
        if getattr(cause, "sqlstate", None) != "23505" or not diag.constraint_name:
            return None
        with connection.cursor() as cursor:
            found = connection.introspection.get_constraints(cursor, diag.table_name).get(diag.constraint_name)
        return (diag.table_name, frozenset(found["columns"])) if found and found["unique"] else None
    match = re.match(r"UNIQUE constraint failed: (.+)", str(cause or exc))
    if match is None:
        return None
    columns = [part.strip().split(".") for part in match.group(1).split(",")]
    return columns[0][0], frozenset(column for _, column in columns)


def _unique_or_raise(exc: IntegrityError, model, field_messages: dict[frozenset[str], tuple[str, str]]) -> None:
    """Raise the field's ValidationError for a violated unique constraint we know; re-raise
    anything else (a check constraint is a bug, not bad input)."""
    violated = _unique_columns(exc)
    if violated is not None and violated[0] == model._meta.db_table and violated[1] in field_messages:
        name, message = field_messages[violated[1]]
        raise ValidationError({name: [message]}) from None
    raise exc


def _product_saved(product: Product, *, create: bool) -> None:
    try:
        with transaction.atomic():
            product.save(force_insert=create)
    except IntegrityError as exc:
        _unique_or_raise(exc, Product, {frozenset({"sku"}): ("sku", sku_taken(product.sku))})


def _offer_saved(offer: Offer, *, create: bool) -> None:
    try:
        with transaction.atomic():
            offer.save(force_insert=create)
    except IntegrityError as exc:
        _unique_or_raise(exc, Offer, {frozenset({"slug"}): ("slug", slug_taken(offer.slug))})


# --- Products --------------------------------------------------------------------------------
@in_main_language
@transaction.atomic
def product_create(
    *, sku: str, name: str, price_amount: int, currency: str, interval: str = "", description: str = "", image=None
) -> Product:
    _raise(
        product_problems(
            sku=sku, name=name, price_amount=price_amount, currency=currency, interval=interval, description=description
        )
    )
    product = Product(
        sku=sku,
        name=name.strip(),
        price_amount=price_amount,
        currency=currency,
        interval=interval,
        description=description,
        image=image or "",
    )
    _product_saved(product, create=True)
    _queue_product_sync(product)
    return product


@in_main_language
@transaction.atomic
def product_update(*, product: Product, **values) -> Product:
    names = ("sku", "name", "price_amount", "currency", "interval", "description")
    merged = {k: values.get(k, getattr(product, k)) for k in names}
    _raise(product_problems(**merged, existing=product))
    for key, value in values.items():
        setattr(product, key, value)
    _product_saved(product, create=False)
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
    """Make the offer's variants match ``variants``, by name: a kept name keeps its row (and the
    assignments and trials that point at it), a new name is a new row, a missing name is
    deleted. The validation refuses to drop a variant in use; PROTECT is the real guard, for an
    import that assigns customers to it meanwhile."""
    rows = {row.name: row for row in Variant.objects.filter(offer=offer)}
    wanted = {spec.name for spec in variants}
    for name, row in rows.items():
        if name not in wanted:
            try:
                with transaction.atomic():
                    row.delete()
            except ProtectedError:
                raise ValidationError({"variants": [variant_in_use(name)]}) from None
    for position, spec in enumerate(variants):
        fields = {
            "weight": spec.weight,
            "kind": spec.kind or "",
            "trial_days": spec.trial_days,
            "trial_price": spec.trial_price,
            "position": position,
        }
        row = rows.get(spec.name)
        if row is not None:
            if any(getattr(row, key) != value for key, value in fields.items()):
                Variant.objects.filter(pk=row.pk).update(**fields)
            continue
        try:
            with transaction.atomic():
                Variant.objects.create(offer=offer, name=spec.name, **fields)
        except IntegrityError as exc:
            _unique_or_raise(exc, Variant, {frozenset({"offer_id", "name"}): ("variants", VARIANT_NAME_TWICE)})


def _variant_specs(offer: Offer) -> list[VariantSpec]:
    return [VariantSpec(v.name, v.weight, v.kind, v.trial_days, v.trial_price) for v in offer.variants.all()]


def _record(offer: Offer, *, actor, action: str, at: datetime, changes: dict | None = None) -> None:
    OfferChange.objects.create(offer=offer, actor=actor, at=at, action=action, changes=changes or {})


@in_main_language
@transaction.atomic
def offer_create(
    *, actor, values: dict, variants: list[VariantSpec] | None = None, at: datetime | None = None
) -> Offer:
    """Create a draft offer. With no variants given it has one, ``default``, of weight 1."""
    at = at or timezone.now()
    full = offer_values_complete(values)
    variants = variants if variants is not None else [VariantSpec("default", 1)]
    _raise(offer_problems(values=full, variants=variants, at=at))
    offer = Offer(**full, created_by=actor)
    _offer_saved(offer, create=True)
    _save_variants(offer, variants)
    _record(offer, actor=actor, action="created", at=at)
    return offer


def _jsonable(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "pk"):
        return str(value)
    return value


@in_main_language
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
    _raise(offer_problems(values=full, variants=variants, existing=offer, at=at))

    changes = {
        name: [_jsonable(current[name]), _jsonable(full[name])] for name in OFFER_FIELDS if current[name] != full[name]
    }
    if variants != old_variants:
        changes["variants"] = [[v.__dict__ for v in old_variants], [v.__dict__ for v in variants]]
    if changes:
        for name, value in full.items():
            setattr(offer, name, value)
        _offer_saved(offer, create=False)
        if "variants" in changes:
            _save_variants(offer, variants)
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
            at=at,
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


@in_main_language
@transaction.atomic
def offer_duplicate(*, offer: Offer, actor, at: datetime | None = None) -> Offer:
    """A new draft with the same configuration, a fresh salt and a free slug."""
    at = at or timezone.now()
    base = f"{offer.slug[:70]}-copy"
    values = {name: getattr(offer, name) for name in OFFER_FIELDS} | {"name": f"{offer.name} (copy)"[:200]}
    values |= {column: getattr(offer, column) for column in word_columns(Offer)}  # and its translations
    # The free slug is found by inserting, not by looking first: a look is stale by the time of
    # the insert when two people duplicate the same offer at once.
    for number in range(1, MAX_COPIES + 1):
        copy = Offer(
            **values | {"slug": base if number == 1 else f"{base}-{number}"}, created_by=actor, salt=new_salt()
        )
        try:
            _offer_saved(copy, create=True)
        except ValidationError:
            continue
        break
    else:
        raise ValidationError({"slug": [f"There are already {MAX_COPIES} copies of this offer; rename one first."]})
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
