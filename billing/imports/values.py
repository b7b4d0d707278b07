"""Parsing one value of a row. Each parser returns the value or the plain reason it is not one,
in the words a person fixing the file needs."""

from datetime import UTC, datetime

from config.limits import BIGINT_MAX, MAX_EXTERNAL_ID, moment_problem
from offers.money import MoneyError, currency_check, to_major, to_minor


def moment(value: str, *, at: datetime) -> datetime | str:
    """An aware datetime in UTC within the product's range (config.limits, seen from ``at``), or
    the reason the text is not one. The range is checked on the instant, not on the text's own
    year: 9998-12-31T23:59:59-14:00 is already in 9999."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return f"“{value}” is not an ISO 8601 timestamp; write it like 2026-06-01T09:00:00+02:00."
    if parsed.tzinfo is None:
        return f"“{value}” has no offset, so it could mean several moments; add one, like +02:00 or Z."
    try:
        instant = parsed.astimezone(UTC)
    except OverflowError:  # its offset takes it past year 1 or 9999
        return f"“{value}” is out of range: it is not a moment any calendar here can hold."
    if problem := moment_problem(instant, at=at):
        return f"“{value}” is out of range. {problem}"
    return instant


def external_id_problem(value: str, what: str) -> str:
    """The reason an external id is not usable, or ""."""
    if not value:
        return f"Give the {what}."
    if len(value) > MAX_EXTERNAL_ID:
        return f"An external id has {MAX_EXTERNAL_ID} characters at most; this one has {len(value)}."
    if "\x00" in value:
        return "An external id cannot contain a NUL character."
    return ""


class Currencies(dict):
    """Currency code → the reason it is not one ("" when it is), filled as codes are first seen,
    so that a million rows check a handful of codes."""

    def __missing__(self, code: str) -> str:
        try:
            currency_check(code)
        except MoneyError as exc:
            problem = str(exc)
        else:
            problem = ""
        self[code] = problem
        return problem


def amount(value: str, currency: str) -> int | str:
    """Integer minor units of a decimal string in major units (offers.money.to_minor, up to the
    ledger's bigint), or the reason it is not an amount."""
    try:
        return to_minor(value, currency, maximum=BIGINT_MAX)
    except MoneyError as exc:
        return str(exc)


def money(minor: int, currency: str) -> str:
    return f"{to_major(minor, currency)} {currency}"
