"""The rules an offer or a product must satisfy, in plain words, keyed by field.

The console's forms, the API and the services all call these, so a marketer gets the same
answer whichever way they come in. Values arrive already parsed (amounts in minor units,
aware datetimes); parsing errors are the caller's, with the same field names.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from config.limits import INT_MAX, SMALLINT_MAX, moment_problem
from offers import rules
from offers.models import Offer, Product
from offers.money import countries, currencies, money_format

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_VARIANT_NAME = 40
VARIANT_NAME = re.compile(rf"^[a-z0-9][a-z0-9_-]{{0,{MAX_VARIANT_NAME - 1}}}$")
MAX_TRIAL_DAYS = 366
# Kinds whose trial costs nothing (not the same set as rules.AUTO_CHARGE_KINDS: a no-card trial
# is free and never charges).
FREE_KINDS = {"free_trial", "free_trial_no_card"}

# Every text's and list's size, for the console and the API alike (the columns hold the names;
# the description is a TextField, bounded so that a page and a Stripe product stay readable).
MAX_SKU = 64
MAX_SLUG = 80
MAX_NAME = 200
MAX_PROMISE = 200
MAX_DESCRIPTION = 10_000
MAX_VARIANTS = 10  # the console's formset shows at most this many, and the edit page must open
MAX_REMINDERS = 10


def sku_taken(sku: str) -> str:
    """The words for a taken SKU, from the pre-check and from the unique constraint alike."""
    return f"There is already a product with the SKU “{sku}”."


def slug_taken(slug: str) -> str:
    return f"The address /o/{slug}/ is taken by another offer; choose another slug."


VARIANT_NAME_TWICE = "Two variants have the same name."


OFFER_FIELDS = (
    "slug",
    "name",
    "promise",
    "kind",
    "physical",
    "product",
    "trial_days",
    "trial_price",
    "currency",
    "eligibility",
    "recent_purchase_days",
    "allowed_countries",
    "inventory",
    "daily_limit",
    "starts_at",
    "ends_at",
    "grace_days",
    "sample_cost",
    "reminder_days",
    "feedback_survey",
    "holdout_percent",
)
OFFER_DEFAULTS = {
    "promise": "",
    "physical": False,
    "eligibility": Offer.Eligibility.ANYONE,
    "recent_purchase_days": None,
    "allowed_countries": [],
    "inventory": None,
    "daily_limit": None,
    "ends_at": None,
    "grace_days": 7,
    "sample_cost": 0,
    "reminder_days": None,
    "feedback_survey": True,
    "holdout_percent": 0,
    "trial_price": 0,
}


def offer_values_complete(values: dict) -> dict:
    full = {**OFFER_DEFAULTS, **{k: v for k, v in values.items() if k in OFFER_FIELDS}}
    full["allowed_countries"] = sorted({c.strip().upper() for c in full.get("allowed_countries") or [] if c.strip()})
    if full.get("reminder_days") is None and isinstance(full.get("trial_days"), int):
        full["reminder_days"] = rules.default_reminder_days(trial_days=full["trial_days"])
    if full.get("reminder_days") is not None:
        full["reminder_days"] = sorted(set(full["reminder_days"]), reverse=True)
    return full


@dataclass
class VariantSpec:
    name: str
    weight: int = 1
    kind: str = ""
    trial_days: int | None = None
    trial_price: int | None = None


@dataclass
class Problems:
    """Errors by field; ``__all__`` for those that belong to no one field."""

    by_field: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        self.by_field.setdefault(name, []).append(message)

    def __bool__(self) -> bool:
        return bool(self.by_field)


def product_problems(
    *,
    sku: str,
    name: str,
    price_amount: int | None,
    currency: str,
    interval: str,
    description: str = "",
    existing: Product | None = None,
) -> Problems:
    problems = Problems()
    if not sku or not SLUG.fullmatch(sku) or len(sku) > MAX_SKU:
        problems.add("sku", f"Use lower-case letters, digits and single hyphens, like beans-1kg ({MAX_SKU} at most).")
    elif Product.objects.filter(sku=sku).exclude(pk=getattr(existing, "pk", None)).exists():
        problems.add("sku", sku_taken(sku))
    if not (name or "").strip():
        problems.add("name", "Give the product a name customers will recognise.")
    elif len(name) > MAX_NAME:
        problems.add("name", f"The name can have no more than {MAX_NAME} characters.")
    if len(description or "") > MAX_DESCRIPTION:
        problems.add("description", f"The description can have no more than {MAX_DESCRIPTION:,} characters.")
    if price_amount is None or price_amount <= 0:
        problems.add("price", "The paid price must be more than zero.")
    elif price_amount > INT_MAX:
        problems.add("price", "That price is too large.")
    if currency not in currencies():
        problems.add("currency", f"“{currency}” is not a currency code in use (ISO 4217, e.g. EUR).")
    if interval not in ("", "month", "year"):
        problems.add("interval", "Choose one-off, month or year.")
    return problems


def offer_problems(
    *, values: dict, variants: Sequence[VariantSpec], existing: Offer | None = None, at: datetime | None = None
) -> Problems:
    """Everything wrong with an offer's configuration. ``values`` holds model field values;
    ``at`` is the moment the dates are judged from (now by default)."""
    problems = Problems()
    product: Product | None = values.get("product")
    kind = values.get("kind")
    trial_days = values.get("trial_days")
    trial_price = values.get("trial_price")
    currency = values.get("currency")

    slug = values.get("slug") or ""
    if not SLUG.fullmatch(slug) or len(slug) > MAX_SLUG:
        problems.add(
            "slug", f"Use lower-case letters, digits and single hyphens, like coffee-sampler ({MAX_SLUG} at most)."
        )
    elif Offer.objects.filter(slug=slug).exclude(pk=getattr(existing, "pk", None)).exists():
        problems.add("slug", slug_taken(slug))
    if not (values.get("name") or "").strip():
        problems.add("name", "Give the offer a name.")
    elif len(values["name"]) > MAX_NAME:
        problems.add("name", f"The name can have no more than {MAX_NAME} characters.")
    if len(values.get("promise") or "") > MAX_PROMISE:
        problems.add("promise", f"Keep the promise to one line of no more than {MAX_PROMISE} characters.")
    if kind not in Offer.Kind.values:
        problems.add("kind", "Choose one of the offer kinds.")
    if product is None:
        problems.add("product", "Choose the paid product this offer leads to; that product does not exist.")
    if currency not in currencies():
        problems.add("currency", f"“{currency}” is not a currency code in use (ISO 4217, e.g. EUR).")
    elif product is not None and currency != product.currency:
        problems.add(
            "currency",
            f"The product is priced in {product.currency}; the offer must use the same currency, not {currency}.",
        )
    if values.get("physical") and kind != "sample":
        problems.add("physical", "Only a sample can be physical.")

    if not isinstance(trial_days, int) or not 1 <= trial_days <= MAX_TRIAL_DAYS:
        problems.add("trial_days", f"The trial must last from 1 to {MAX_TRIAL_DAYS} days.")
    _price_problems(problems, "trial_price", kind=kind, price=trial_price, product=product)

    _schedule_problems(problems, values, at or timezone.now())
    _eligibility_problems(problems, values)
    _limit_problems(problems, values, existing)

    holdout = values.get("holdout_percent")
    if not isinstance(holdout, int) or not 0 <= holdout < 100:
        problems.add("holdout_percent", "The holdout is a share of customers: at least 0% and below 100%.")
    if values.get("grace_days") is None or not 0 <= values["grace_days"] <= 90:
        problems.add("grace_days", "The conversion grace is from 0 to 90 days.")
    if values.get("sample_cost") is None or values["sample_cost"] < 0:
        problems.add("sample_cost", "The cost of one sample cannot be negative.")
    elif values["sample_cost"] > INT_MAX:
        problems.add("sample_cost", "That cost is too large.")

    _variant_problems(problems, values, variants)
    if existing is not None:
        _kept_variant_problems(problems, variants, existing)
        _locked_problems(problems, values, variants, existing)
    return problems


def _price_problems(problems: Problems, name: str, *, kind, price, product, label: str = "") -> None:
    if price is None or price < 0:
        problems.add(name, f"{label}The trial price cannot be negative.")
        return
    if kind in FREE_KINDS and price != 0:
        problems.add(name, f"{label}A free trial costs nothing: set the trial price to 0, or choose a paid trial.")
    if kind == "paid_trial" and price == 0:
        problems.add(name, f"{label}A paid trial has a fee above 0; for no fee choose a free trial.")
    if product is not None and price >= product.price_amount:
        paid = money_format(product.price_amount, product.currency)
        problems.add(
            name,
            f"{label}The trial price must be below the paid price of {product.name} ({paid}); "
            "otherwise it is not a trial.",
        )


def _schedule_problems(problems: Problems, values: dict, at: datetime) -> None:
    # Bounded, so that no date computed from an accepted one (a trial's end, a reminder) can
    # overflow: the latest start plus the longest trial is still far from the year 9999.
    starts_at, ends_at = values.get("starts_at"), values.get("ends_at")
    for name, moment in (("starts_at", starts_at), ("ends_at", ends_at)):
        if moment is not None and (why := moment_problem(moment, at=at)):
            problems.add(name, why)
    if starts_at is None:
        problems.add("starts_at", "Give the date and time the offer starts.")
    elif ends_at is not None and ends_at <= starts_at:
        problems.add("ends_at", "The offer must end after it starts.")


def _eligibility_problems(problems: Problems, values: dict) -> None:
    eligibility = values.get("eligibility")
    if eligibility not in Offer.Eligibility.values:
        problems.add("eligibility", "Choose who may claim the offer.")
    days = values.get("recent_purchase_days")
    if days is not None and not 0 <= days <= SMALLINT_MAX:
        problems.add("recent_purchase_days", f"Give a number of days from 1 to {SMALLINT_MAX}.")
    elif eligibility == "no_recent_purchase" and (days is None or days < 1):
        problems.add(
            "recent_purchase_days", "Say how many days without a purchase make a customer eligible (1 or more)."
        )
    unknown = [code for code in values.get("allowed_countries") or [] if code not in countries()]
    if unknown:
        problems.add("allowed_countries", f"Not country codes (ISO 3166, e.g. DE, FR): {', '.join(unknown)}.")


def _limit_problems(problems: Problems, values: dict, existing: Offer | None) -> None:
    inventory, daily = values.get("inventory"), values.get("daily_limit")
    if inventory is not None and not 1 <= inventory <= INT_MAX:
        problems.add("inventory", "Leave the inventory empty for no limit, or give 1 or more (2,147,483,647 at most).")
    if existing is not None and inventory is not None and inventory < existing.claimed_count:
        problems.add("inventory", f"{existing.claimed_count} have already claimed; the inventory cannot be lower.")
    if daily is not None and not 1 <= daily <= INT_MAX:
        problems.add(
            "daily_limit", "Leave the daily limit empty for no limit, or give 1 or more (2,147,483,647 at most)."
        )


def _variant_problems(problems: Problems, values: dict, variants: Sequence[VariantSpec]) -> None:
    if not variants:
        problems.add("variants", "An offer needs at least one variant.")
        return
    if len(variants) > MAX_VARIANTS:
        problems.add("variants", f"An offer has at most {MAX_VARIANTS} variants; this one has {len(variants)}.")
        return
    names = [v.name for v in variants]
    for name in names:
        if name == rules.HOLDOUT:
            problems.add("variants", "“holdout” is reserved for the holdout; give the variant another name.")
        elif not VARIANT_NAME.fullmatch(name or ""):
            problems.add("variants", f"“{name}” is not a usable variant name: lower-case letters, digits, - and _.")
    if len(set(names)) != len(names):
        problems.add("variants", VARIANT_NAME_TWICE)
    if any(v.weight is None or v.weight < 0 for v in variants):
        problems.add("variants", "Weights cannot be negative.")
    elif any(v.weight > INT_MAX for v in variants):
        problems.add("variants", "A weight is too large; weights only matter relative to each other.")
    elif sum(v.weight for v in variants) <= 0:
        problems.add(
            "variants", "The weights add up to zero, so nobody would see any variant. Give one a weight above 0."
        )

    product = values.get("product")
    reminders = values.get("reminder_days")
    if reminders is not None and len(reminders) > MAX_REMINDERS:
        problems.add("reminder_days", f"Give at most {MAX_REMINDERS} reminders.")
        reminders = None
    for variant in variants:
        label = f"Variant “{variant.name}”: " if len(variants) > 1 else ""
        kind = variant.kind or values.get("kind")
        days = variant.trial_days if variant.trial_days is not None else values.get("trial_days")
        if variant.kind and variant.kind not in Offer.Kind.values:
            problems.add("variants", f"{label}unknown kind “{variant.kind}”.")
            continue
        if variant.trial_days is not None and not 1 <= variant.trial_days <= MAX_TRIAL_DAYS:
            problems.add("variants", f"{label}the trial must last from 1 to {MAX_TRIAL_DAYS} days.")
        if variant.trial_price is not None or variant.kind:
            price = variant.trial_price if variant.trial_price is not None else values.get("trial_price")
            _price_problems(problems, "variants", kind=kind, price=price, product=product, label=label)
        if isinstance(days, int) and reminders is not None:
            for message in rules.reminder_problems(kind=kind, trial_days=days, reminder_days=reminders):
                problems.add("reminder_days", label + message)


def variant_in_use(name: str) -> str:
    """Why a variant cannot go: the check below, and the database's PROTECT, give these words."""
    return (
        f"The variant “{name}” has customers assigned to it (imported history counts), so it cannot be "
        "removed or renamed; keep it under its name."
    )


def _kept_variant_problems(problems: Problems, variants: Sequence[VariantSpec], existing: Offer) -> None:
    """Variants are kept by name: one that customers are assigned to, or that a trial points
    at, cannot be removed or renamed, or their history would lose its arm."""
    from trials.models import Assignment, Trial

    gone = set(existing.variants.values_list("name", flat=True)) - {v.name for v in variants}
    if not gone:
        return
    used = set(
        Assignment.objects.filter(offer=existing, variant__name__in=gone).values_list("variant__name", flat=True)
    ) | set(
        Trial.objects.filter(variant__offer=existing, variant__name__in=gone).values_list("variant__name", flat=True)
    )
    for name in sorted(used):
        problems.add("variants", variant_in_use(name))


LOCKED_NAMES = {
    "kind": "The kind",
    "product": "The paid product",
    "trial_days": "The trial length",
    "trial_price": "The trial price",
    "currency": "The currency",
    "holdout_percent": "The holdout",
    "salt": "The salt that assigns customers to variants",
    "variants": "The variants and their weights",
}


def _locked_value(name: str, source) -> object:
    """A locked field's value, comparable between an Offer and the values a caller gives."""
    if name == "variants":
        return [(v.name, v.weight, v.kind or "", v.trial_days, v.trial_price) for v in source]
    if isinstance(source, Offer):
        return source.product_id if name == "product" else getattr(source, name)
    value = source.get(name)
    return getattr(value, "pk", value)


def _locked_problems(problems: Problems, values: dict, variants: Sequence[VariantSpec], existing: Offer) -> None:
    if existing.status == Offer.Status.ENDED:
        problems.add("__all__", "This offer has ended; duplicate it to run it again.")
    if not existing.is_locked:
        return
    experiment = "is locked since launch: changing it would start a new experiment. Duplicate the offer instead."
    promise = "is locked since launch: customers were promised it. Duplicate the offer to offer other terms."
    for name in Offer.LOCKED_AT_LAUNCH:
        if name == "variants":
            given, current = _locked_value(name, variants), _locked_value(name, existing.variants.all())
        elif name not in values:
            continue  # not given: unchanged (the salt is never a value callers pass)
        else:
            given, current = _locked_value(name, values), _locked_value(name, existing)
        if given != current:
            why = experiment if name in ("holdout_percent", "salt", "variants") else promise
            problems.add(name, f"{LOCKED_NAMES[name]} {why}")
