"""The terms a customer agrees to, in their language, generated from the offer's configuration.

The same function writes the landing page, the console's preview and the text a consent record
keeps, so what the customer reads can never disagree with what the system does. It is pure: it
reads attributes of the objects it is given and the clock it is passed, and nothing else, so the
same inputs always give the same text, word for word.

Dates are days in the site's time zone (``settings.TIME_ZONE``). Deadlines are said
conservatively: "cancel before 15 June" while the charge runs during 15 June, so a customer who
takes us at our word is never charged.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from babel.dates import format_date
from babel.lists import format_list
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext, ngettext

from offers.money import money_format
from offers.rules import AUTO_CHARGE_KINDS


@dataclass(frozen=True)
class Terms:
    headline: str
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        """What a consent record stores: the headline, then one line per term."""
        return "\n".join((self.headline, *self.lines))


def supported_language(language: str) -> str:
    """One of ``settings.LANGUAGES`` (``de-at`` gives ``de``); the default for anything else."""
    try:
        return translation.get_supported_language_variant(language or settings.LANGUAGE_CODE)
    except LookupError:
        return settings.LANGUAGE_CODE


def trial_end(*, variant, at: datetime) -> datetime:
    """When a trial claimed at ``at`` ends, and, for the auto-charging kinds, is charged. The claim
    should set the trial's ``ends_at`` from this, so that the date in the terms is the real one."""
    _require_aware(at)
    return at + timedelta(days=variant.effective_trial_days)


def reminder_times(*, offer, variant, at: datetime) -> list[datetime]:
    """When the reminders of a trial claimed at ``at`` go out, earliest first. One that would fall
    at or before the claim is left out. The claim and the reminder job should schedule from this
    same function, so that what the terms promise is what is sent."""
    end = trial_end(variant=variant, at=at)
    times = {end - timedelta(days=days) for days in offer.reminder_days or []}
    return sorted(moment for moment in times if moment > at)


def local_day(moment: datetime) -> date:
    return moment.astimezone(ZoneInfo(settings.TIME_ZONE)).date()


# CLDR's long Russian date ends in the abbreviation of "year" and its full stop, which doubles the
# full stop of every sentence that ends with a date; the same day without the abbreviation is
# just as correct, and "MMMM" is the genitive month the long format uses.
DATE_PATTERNS = {"ru": "d MMMM y"}


def long_date(moment: datetime, language: str) -> str:
    day = local_day(moment)
    text = format_date(day, format=DATE_PATTERNS.get(language, "long"), locale=language)
    if day.day == 1 and text.startswith("1 "):
        # French and Italian write the first of the month as an ordinal; CLDR does not
        if language == "fr":
            text = "1er" + text[1:]
        elif language == "it":
            text = "1º" + text[1:]
    return text


def paid_price(product, language: str) -> str:
    """The paid product's price as the customer reads it: "€9.99 per month", or "€24.00"."""
    amount = money_format(product.price_amount, product.currency, language)
    with translation.override(language):
        if product.interval == "month":
            return gettext("%(amount)s per month") % {"amount": amount}
        if product.interval == "year":
            return gettext("%(amount)s per year") % {"amount": amount}
    return amount


def offer_terms(*, offer, variant, language: str, at: datetime) -> Terms:
    """The terms of ``variant`` of ``offer`` for a customer who claims it at ``at``."""
    _require_aware(at)
    language = supported_language(language)
    kind = variant.effective_kind
    product = offer.product
    end = trial_end(variant=variant, at=at)
    values = {
        "days": variant.effective_trial_days,
        "fee": money_format(variant.effective_trial_price, offer.currency, language),
        "amount": money_format(product.price_amount, product.currency, language),
        "product": _in(language, lambda: product.name),  # the product's own name in that language
        "end": long_date(end, language),
    }
    reminders = [long_date(moment, language) for moment in reminder_times(offer=offer, variant=variant, at=at)]
    with translation.override(language):
        if kind in AUTO_CHARGE_KINDS:
            headline, lines, deadline = _auto_charge(kind, product, values)
        elif kind == "discount":
            headline, lines, deadline = _discount(product, values)
        else:
            headline, lines, deadline = _no_automatic_charge(kind, offer, variant, product, values)
        if reminders:
            lines.append(_reminder_line(kind, reminders, language))
        lines.extend(deadline)
        lines.append(
            gettext(
                "You can cancel at any time in one click from your account page, or from the link in any of our emails."
            )
        )
    return Terms(headline=headline, lines=tuple(lines))


# Each kind gives its headline, the lines before the reminders, and the lines after them.
def _auto_charge(kind: str, product, values: dict) -> tuple[str, list[str], list[str]]:
    """``free_trial`` and ``paid_trial``: the card saved today is charged when the trial ends."""
    days = values["days"]
    if kind == "free_trial":
        headline = ngettext("Free for %(days)d day", "Free for %(days)d days", days)
        today = gettext("Today you pay nothing. We save your card, but we do not charge it now.")
        deadline = gettext("Cancel before %(end)s and you pay nothing.")
    else:
        headline = ngettext("%(fee)s for %(days)d day", "%(fee)s for %(days)d days", days)
        today = gettext("Today you pay %(fee)s for the trial, and we save your card.")
        deadline = gettext("Cancel before %(end)s and you pay nothing more.")
    if product.interval == "month":
        charge = gettext(
            "If you do not cancel, we charge your card %(amount)s for %(product)s on %(end)s, and then "
            "%(amount)s every month until you cancel."
        )
    elif product.interval == "year":
        charge = gettext(
            "If you do not cancel, we charge your card %(amount)s for %(product)s on %(end)s, and then "
            "%(amount)s every year until you cancel."
        )
    else:
        charge = gettext(
            "If you do not cancel, we charge your card %(amount)s for %(product)s on %(end)s. It is a single "
            "payment, not a subscription."
        )
    lines = [today, _lasts(days), charge]
    return headline % values, [line % values for line in lines], [deadline % values]


def _no_automatic_charge(kind: str, offer, variant, product, values: dict) -> tuple[str, list[str], list[str]]:
    """``free_trial_no_card`` and ``sample``: nothing happens at the end unless the customer buys."""
    days = values["days"]
    free = variant.effective_trial_price == 0
    if free:
        today = gettext("Today you pay nothing, and we do not ask for your card.")
    elif kind == "sample":
        today = gettext("Today you pay %(fee)s for the sample.")
    else:  # a no-card trial is free by validation; say what it costs if that ever changes
        today = gettext("Today you pay %(fee)s for the trial.")
    lines = [today]
    if kind == "free_trial_no_card":
        headline = ngettext("Free for %(days)d day, no card needed", "Free for %(days)d days, no card needed", days)
    elif offer.physical:
        headline = gettext("A free sample, shipped to you") if free else gettext("A sample for %(fee)s, shipped to you")
        lines.append(gettext("We ship the sample to the address you give us, at no extra cost."))
    else:
        headline = gettext("A free sample") if free else gettext("A sample for %(fee)s")
    lines.append(_lasts(days))
    lines.append(gettext("When the trial ends, nothing is charged automatically."))
    if product.interval == "month":
        lines.append(gettext("If you like it, you can subscribe to %(product)s afterwards for %(amount)s per month."))
    elif product.interval == "year":
        lines.append(gettext("If you like it, you can subscribe to %(product)s afterwards for %(amount)s per year."))
    else:
        lines.append(gettext("If you like it, you can buy %(product)s afterwards for %(amount)s."))
    return headline % values, [line % values for line in lines], []


def _discount(product, values: dict) -> tuple[str, list[str], list[str]]:
    """``discount``: the first purchase costs the trial price instead of the paid price."""
    if product.interval == "month":
        headline = gettext("Your first month for %(fee)s instead of %(amount)s")
        first = gettext(
            "Your first month of %(product)s costs %(fee)s instead of %(amount)s; after that, %(amount)s per month."
        )
    elif product.interval == "year":
        headline = gettext("Your first year for %(fee)s instead of %(amount)s")
        first = gettext(
            "Your first year of %(product)s costs %(fee)s instead of %(amount)s; after that, %(amount)s per year."
        )
    else:
        headline = gettext("Your first purchase for %(fee)s instead of %(amount)s")
        first = gettext("Your first purchase of %(product)s costs %(fee)s instead of %(amount)s.")
    valid = ngettext(
        "The offer is valid for %(days)d day, until %(end)s.",
        "The offer is valid for %(days)d days, until %(end)s.",
        values["days"],
    )
    lines = [
        gettext("Claiming this offer costs nothing, and we do not ask for your card."),
        first,
        valid,
        gettext("Nothing is charged automatically: you pay only if you decide to buy."),
    ]
    return headline % values, [line % values for line in lines], []


def _lasts(days: int) -> str:
    return ngettext(
        "Your trial lasts %(days)d day and ends on %(end)s.",
        "Your trial lasts %(days)d days and ends on %(end)s.",
        days,
    )


def _reminder_line(kind: str, reminders: list[str], language: str) -> str:
    values = {"dates": format_list(reminders, locale=language)}
    if kind in AUTO_CHARGE_KINDS:
        line = ngettext(
            "We will email you a reminder on %(dates)s, before any charge.",
            "We will email you reminders on %(dates)s, before any charge.",
            len(reminders),
        )
    elif kind == "discount":
        line = ngettext(
            "We will email you a reminder on %(dates)s, before the offer expires.",
            "We will email you reminders on %(dates)s, before the offer expires.",
            len(reminders),
        )
    else:
        line = ngettext(
            "We will email you a reminder on %(dates)s, before your trial ends.",
            "We will email you reminders on %(dates)s, before your trial ends.",
            len(reminders),
        )
    return line % values


def _in(language: str, read):
    with translation.override(language):
        return read()


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("terms are computed for an aware datetime (a moment, not a wall-clock time)")
