"""Money and places: integer minor units plus an ISO 4217 code, as Stripe has it.

Babel (CLDR) knows each currency's number of decimals, which currencies are legal tender today,
and which country codes exist; we do not keep our own tables of those.
"""

from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import cache

from babel import Locale
from babel.numbers import format_currency, get_currency_precision, get_territory_currencies


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


def to_minor(amount: str | Decimal, currency: str) -> int:
    """Turn a decimal string in major units (``"12.50"``) into integer minor units (1250).

    More decimals than the currency has is an error, not a rounding: the caller meant something.
    """
    digits = get_currency_precision(currency_check(currency))
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation:
        raise MoneyError(f"“{amount}” is not an amount; write it like 12.50.") from None
    if not value.is_finite():
        raise MoneyError(f"“{amount}” is not an amount; write it like 12.50.")
    scaled = value.scaleb(digits)
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"{currency} has {digits} decimal places; “{amount}” has more.")
    return int(scaled.to_integral_value(rounding=ROUND_HALF_EVEN))


def to_major(minor: int, currency: str) -> Decimal:
    digits = get_currency_precision(currency)
    return Decimal(minor).scaleb(-digits).quantize(Decimal(1).scaleb(-digits))


def money_format(minor: int, currency: str, language: str = "en") -> str:
    return format_currency(to_major(minor, currency), currency, locale=_babel_locale(language))


def _babel_locale(language: str) -> str:
    return (language or "en").replace("-", "_")
