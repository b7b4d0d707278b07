"""Dates at the edge of the accepted range (config.limits), in every timestamp column of every
kind of import: the range is checked on the instant, whatever offset the text carries, so a
value whose own year looks fine but whose instant is outside is refused, one whose year looks
wrong but whose instant is inside is taken, and one past what a calendar holds is an error on
its row, never a crash."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from accounts.models import User
from billing.imports import history_import_csv
from billing.models import Purchase
from config import limits
from tests.billing.test_imports import assignment, csv_file, purchase
from tests.factories import NOW
from trials.models import Assignment, Trial

pytestmark = pytest.mark.django_db

EAST, WEST = timezone(timedelta(hours=14)), timezone(timedelta(hours=-14))
HOUR = timedelta(hours=1)
LATEST = limits.latest(NOW)


def text(instant: datetime, offset: timezone) -> str:
    return instant.astimezone(offset).isoformat()


OUTSIDE = {
    # Inside the range in the text's own time, outside it as an instant.
    "just before the earliest, written east": text(limits.EARLIEST - HOUR, EAST),
    "just after the latest, written west": text(LATEST + HOUR, WEST),
    # Past what a datetime holds once moved to UTC.
    "the last second of 9999, written west": "9999-12-31T23:59:59-14:00",
    "the first second of year 1, written east": "0001-01-01T00:00:00+14:00",
    "the year 9998's last second, written west": "9998-12-31T23:59:59-14:00",
}
INSIDE = {
    # Outside the range in the text's own time, inside it as an instant.
    "just after the earliest, written west": limits.EARLIEST + HOUR,
    "just before the latest, written east": LATEST - HOUR,
}
INSIDE_TEXT = {"just after the earliest, written west": WEST, "just before the latest, written east": EAST}


@pytest.fixture
def world(db):
    from offers import services
    from tests import factories

    beans = factories.product()
    User.objects.create_user(email="ann@example.com", external_id="c-1")
    offer = factories.offer(product_=beans, variants=[{"name": "default"}])
    services.offer_launch(offer=offer, actor=None, at=NOW)


def row_with(kind: str, column: str, value: str) -> str:
    if kind == "customers":
        return f"c-9,zoe@example.com,{value},"
    if kind == "purchases":
        return purchase("o-9", at=value)
    claimed = {"claimed": "2026-06-01T10:00:00Z", "ends": "2026-06-15T10:00:00Z", "outcome": "expired"}
    if column == "assigned_at":
        return assignment(assigned=value)
    if column == "claimed_at":
        return assignment(**{**claimed, "claimed": value})
    if column == "trial_ends_at":
        return assignment(**{**claimed, "ends": value})
    return assignment(**{**claimed, "outcome": "converted", "converted": value})


COLUMNS = [
    ("customers", "created_at"),
    ("purchases", "purchased_at"),
    ("assignments", "assigned_at"),
    ("assignments", "claimed_at"),
    ("assignments", "trial_ends_at"),
    ("assignments", "converted_at"),
]


@pytest.mark.parametrize(("kind", "column"), COLUMNS)
@pytest.mark.parametrize("value", OUTSIDE.values(), ids=OUTSIDE.keys())
def test_an_instant_outside_the_range_is_refused_whatever_its_offset(world, kind, column, value):
    result = history_import_csv(kind=kind, file=csv_file(kind, row_with(kind, column, value)), at=NOW)

    assert result.refused
    assert [(error.row, error.field) for error in result.errors] == [(2, column)]
    assert "out of range" in result.errors[0].message
    assert f"“{value}”" in result.errors[0].message
    assert not Purchase.objects.exists() and not Assignment.objects.exists()
    assert not User.objects.filter(external_id="c-9").exists()


@pytest.mark.parametrize("edge", INSIDE.keys())
def test_an_instant_inside_the_range_is_taken_whatever_its_offset(world, edge):
    instant, value = INSIDE[edge], text(INSIDE[edge], INSIDE_TEXT[edge])

    customers = history_import_csv(
        kind="customers", file=csv_file("customers", row_with("customers", "", value)), at=NOW
    )
    purchases = history_import_csv(kind="purchases", file=csv_file("purchases", purchase("o-9", at=value)), at=NOW)
    every = {"assigned": value, "claimed": value, "ends": value, "outcome": "converted", "converted": value}
    assignments = history_import_csv(kind="assignments", file=csv_file("assignments", assignment(**every)), at=NOW)

    assert [r.created for r in (customers, purchases, assignments)] == [1, 1, 1], [
        r.errors for r in (customers, purchases, assignments)
    ]
    assert User.objects.get(external_id="c-9").date_joined == instant
    assert Purchase.objects.get().purchased_at == instant
    trial = Trial.objects.get()
    assert (trial.assignment.assigned_at, trial.claimed_at, trial.ends_at, trial.converted_at) == (instant,) * 4
    assert instant.tzinfo is UTC
