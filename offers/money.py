"""Money and places: integer minor units plus an ISO 4217 code, as Stripe has it.

Babel (CLDR) knows each currency's number of decimals, which currencies are legal tender today,
and which country codes exist; we do not keep our own tables of those.
"""

import re
from datetime import date
from decimal import Decimal
from functools import cache, lru_cache

from babel import Locale
from babel.numbers import format_currency, get_currency_precision, get_territory_currencies

from config.limits import INT_MAX


class MoneyError(ValueError):
    pass


@cache
def currencies() -> frozenset[str]:
    """ISO 4217 codes that some country uses as legal tender today."""
    codes = set()
    for territory in countries():
        codes.update(get_territory_currencies(territory, date.today(), tender=True))  # noqa: DTZ011
    return frozenset(codes)


@cache
def countries() -> frozenset[str]:
    """ISO 3166-1 alpha-2 country codes (no regions, no placeholders)."""
    not_countries = {"ZZ", "EU", "EZ", "UN", "QO", "XA", "XB"}
    return frozenset(
        code for code in Locale("en").territories if len(code) == 2 and code.isalpha() and code not in not_countries
    )


def currency_check(code: str) -> str:
    code = (code or "").strip().upper()
    if code not in currencies():
        raise MoneyError(f"“{code or '(empty)'}” is not a currency code in use (ISO 4217, e.g. EUR, USD, GBP).")
    return code


# A decimal string in major units: digits, an optional point and more digits, an optional minus.
# No exponent, no thousands separator, no float: what a person or a file writes for money.
AMOUNT_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
_AMOUNT = re.compile(r"(-?)([0-9]{1,20})(?:\.([0-9]{1,20}))?")


@lru_cache(maxsize=256)  # the importer asks for every row; an error is raised, not kept
def places(currency: str) -> int:
    """How many decimal places the currency has (CLDR): 2 for EUR, 0 for JPY, 3 for KWD."""
    return _places(currency_check(currency))


@cache
def _places(code: str) -> int:
    return get_currency_precision(code)


def to_minor(amount: str | Decimal, currency: str, *, maximum: int = INT_MAX) -> int:
    """Turn a decimal string in major units (``"12.50"``) into integer minor units (1250).

    The one amount parser of the forms, the API and the imports. More decimals than the currency
    has is an error, not a rounding: the caller meant something. So is an amount whose minor
    units exceed ``maximum`` (the column's size) in either direction. It works on the text alone,
    with no Decimal arithmetic, because the importer calls it for millions of rows.
    """
    digits = places(currency)
    if isinstance(amount, Decimal):
        text = format(amount, "f") if amount.is_finite() else str(amount)
    else:
        text = str(amount).strip()
    match = _AMOUNT.fullmatch(text)
    if match is None:
        raise MoneyError(f"“{amount}” is not an amount; write it as a decimal string in major units, like 12.50.")
    sign, whole, fraction = match.groups()
    fraction = (fraction or "").rstrip("0")
    if len(fraction) > digits:
        raise MoneyError(f"{currency} has {digits} decimal places; “{amount}” has more.")
    minor = int(whole) * 10**digits + (int(fraction.ljust(digits, "0")) if fraction else 0)
    if minor > maximum:
        raise MoneyError(f"“{amount}” is too large an amount.")
    return -minor if sign else minor


def to_major(minor: int, currency: str) -> Decimal:
    digits = _places(currency)
    return Decimal(minor).scaleb(-digits).quantize(Decimal(1).scaleb(-digits))


def money_format(minor: int, currency: str, language: str = "en") -> str:
    return format_currency(to_major(minor, currency), currency, locale=_babel_locale(language))


def _babel_locale(language: str) -> str:
    return (language or "en").replace("-", "_")
