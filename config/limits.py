"""The limits every way in (console, API, imports) applies alike: the columns' sizes, so that no
value the rules accept can overflow the database, and the range of dates the product accepts, so
that no accepted date can overflow the date arithmetic built on it (a trial's end, a reminder)."""

from datetime import UTC, datetime, timedelta

# Column sizes (PostgreSQL's, which SQLite does not enforce).
SMALLINT_MAX = 32_767
INT_MAX = 2_147_483_647
BIGINT_MAX = 2**63 - 1
MAX_EXTERNAL_ID = 255  # external ids and Stripe ids are varchar(255)

# Dates. History goes back to 2000; plans go at most ten years ahead. Both are instants, checked
# in UTC: 9998-12-31T23:59:59-14:00 is in the year 9999.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
YEARS_AHEAD = 10


def latest(at: datetime) -> datetime:
    """The latest instant the product accepts, seen from ``at``."""
    return at + timedelta(days=365 * YEARS_AHEAD + YEARS_AHEAD // 4)


def moment_problem(moment: datetime, *, at: datetime) -> str:
    """The reason an aware datetime is outside the accepted range, or ""."""
    if moment < EARLIEST:
        return f"Dates before {EARLIEST:%Y-%m-%d} are not accepted."
    if moment > latest(at):
        return f"Dates more than {YEARS_AHEAD} years ahead (after {latest(at):%Y-%m-%d}) are not accepted."
    return ""
