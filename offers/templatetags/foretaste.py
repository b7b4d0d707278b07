"""Formatting for templates: money is stored in minor units and formatted only here."""

from django import template
from django.utils import translation

from offers.money import money_format

register = template.Library()


@register.filter
def money(minor, currency):
    if minor is None or not currency:
        return ""
    return money_format(int(minor), currency, translation.get_language() or "en")


@register.filter
def points(share):
    """0.032 → "3.2 pp": a difference of two rates, in percentage points."""
    if share is None:
        return "—"
    return f"{share * 100:.1f} pp"


@register.filter
def percent(share, digits=1):
    if share is None:
        return "—"
    return f"{share * 100:.{int(digits)}f}%"
