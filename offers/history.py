"""An offer's history as people read it: field labels instead of column names, and values
formatted as the console shows them (money, dates, kinds, yes/no, lists).

OfferChange rows keep the raw values ({"trial_days": [14, 10]}, amounts in minor units); this
module only formats them for the offer's page.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from offers.models import Offer, OfferChange
from offers.money import money_format

FIELD_LABELS = {
    "slug": gettext_lazy("Address"),
    "name": gettext_lazy("Name"),
    "promise": gettext_lazy("Promised experience"),
    "kind": gettext_lazy("Kind"),
    "physical": gettext_lazy("Physical sample"),
    "product": gettext_lazy("Paid product"),
    "trial_days": gettext_lazy("Trial length"),
    "trial_price": gettext_lazy("Trial price"),
    "currency": gettext_lazy("Currency"),
    "eligibility": gettext_lazy("Who may claim"),
    "recent_purchase_days": gettext_lazy("Days without a purchase"),
    "allowed_countries": gettext_lazy("Allowed countries"),
    "inventory": gettext_lazy("Inventory (total claims)"),
    "daily_limit": gettext_lazy("Claims per day"),
    "starts_at": gettext_lazy("Starts"),
    "ends_at": gettext_lazy("Ends"),
    "grace_days": gettext_lazy("Conversion grace"),
    "sample_cost": gettext_lazy("Cost of one sample"),
    "reminder_days": gettext_lazy("Reminders"),
    "feedback_survey": gettext_lazy("Feedback survey"),
    "holdout_percent": gettext_lazy("Holdout"),
    "variants": gettext_lazy("Variants"),
    "duplicated_from": gettext_lazy("Copied from"),
}
ACTION_LABELS = {
    "created": gettext_lazy("Created"),
    "updated": gettext_lazy("Changed"),
    "launched": gettext_lazy("Launched"),
    "scheduled": gettext_lazy("Scheduled"),
    "started": gettext_lazy("Started"),
    "paused": gettext_lazy("Paused"),
    "resumed": gettext_lazy("Resumed"),
    "ended": gettext_lazy("Ended"),
    "sold out": gettext_lazy("Ended: sold out"),
}
DAY_FIELDS = {"trial_days", "recent_purchase_days", "grace_days"}
MONEY_FIELDS = {"trial_price", "sample_cost"}


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    actor: str
    action: str
    lines: list[str]


def history_entries(changes, *, offer: Offer) -> list[HistoryEntry]:
    return [
        HistoryEntry(
            at=change.at,
            actor=change.actor.email if change.actor else _("the system"),
            action=str(ACTION_LABELS.get(change.action, change.action.replace("_", " ").capitalize())),
            lines=change_lines(change, offer=offer),
        )
        for change in changes
    ]


def change_lines(change: OfferChange, *, offer: Offer) -> list[str]:
    """One line per changed field: "Trial length: 14 → 10 days"."""
    # The amounts were in the currency of that moment; it is in the change when it changed too.
    currency = offer.currency
    if isinstance(change.changes.get("currency"), list):
        currency = change.changes["currency"][1] or currency
    lines = []
    for name, diff in change.changes.items():
        label = FIELD_LABELS.get(name, name.replace("_", " ").capitalize())
        if name == "duplicated_from":
            lines.append(f"{label}: {diff}")
        elif isinstance(diff, list) and len(diff) == 2:
            lines.append(f"{label}: {_change_text(name, diff[0], diff[1], currency)}")
    return lines


def _change_text(name: str, old, new, currency: str) -> str:
    if name in DAY_FIELDS and isinstance(old, int) and isinstance(new, int):
        return ngettext("%(old)s → %(new)s day", "%(old)s → %(new)s days", new) % {"old": old, "new": new}
    return f"{value_text(name, old, currency)} → {value_text(name, new, currency)}"


def value_text(name: str, value, currency: str) -> str:
    if name == "variants":
        return _variants_text(value or [], currency)
    if value is None or value == "":
        return {
            "ends_at": _("open"),
            "inventory": _("no limit"),
            "daily_limit": _("no limit"),
            "reminder_days": _("the default"),
        }.get(name, "—")
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if name in MONEY_FIELDS and isinstance(value, int):
        return money_format(value, currency, translation.get_language() or "en")
    if name in DAY_FIELDS and isinstance(value, int):
        return ngettext("%(days)s day", "%(days)s days", value) % {"days": value}
    if name == "holdout_percent":
        return f"{value}%"
    if name == "kind":
        return str(dict(Offer.Kind.choices).get(value, value))
    if name == "eligibility":
        return str(dict(Offer.Eligibility.choices).get(value, value))
    if name in ("starts_at", "ends_at"):
        return _moment_text(value)
    if name == "reminder_days" and isinstance(value, list):
        if not value:
            return _("none")
        days = ", ".join(str(day) for day in value)
        return ngettext("%(days)s day before the end", "%(days)s days before the end", value[-1]) % {"days": days}
    if name == "allowed_countries" and isinstance(value, list):
        return ", ".join(value) if value else _("everywhere")
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


def _moment_text(value) -> str:
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        if moment.utcoffset() is None:
            return str(value)
        return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    except (TypeError, ValueError, AttributeError):
        return str(value)


def _variants_text(variants: list, currency: str) -> str:
    parts = []
    for variant in variants:
        if not isinstance(variant, dict):
            continue
        overrides = []
        if variant.get("kind"):
            overrides.append(value_text("kind", variant["kind"], currency))
        if variant.get("trial_days") is not None:
            overrides.append(value_text("trial_days", variant["trial_days"], currency))
        if variant.get("trial_price") is not None:
            overrides.append(value_text("trial_price", variant["trial_price"], currency))
        weight = _("weight %(weight)s") % {"weight": variant.get("weight")}
        parts.append(f"{variant.get('name')} ({', '.join([weight, *overrides])})")
    return "; ".join(parts) if parts else _("none")
