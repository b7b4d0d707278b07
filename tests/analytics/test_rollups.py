"""The rollups (analytics/rollups.py) give exactly the engine's figures at their ``as_of``, and a
refresh leaves them as a rebuild from scratch would, writing only the units that changed."""

import math
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics import metrics, queries, rollups
from analytics.models import RollupState, UnitRollup
from billing.models import ExchangeRate
from config.celery import app
from tests import factories
from tests.analytics.test_metrics_oracle import (  # the same offer, rates and random histories
    histories,
    hours,
    rated_offer,
    rolled_back,
    write_history,
)
from trials.models import Assignment, TrialEvent

pytestmark = pytest.mark.django_db

TOLERANCE = {"rel": 1e-9, "abs": 1e-9}
COUNTRIES = ("IT", "PL")


def agree(got, want, path="$"):
    """Two JSON documents equal, numbers to ``TOLERANCE`` (SQLite sums money as floats)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), path
        for key in want:
            agree(got[key], want[key], f"{path}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), path
        for index, (a, b) in enumerate(zip(got, want, strict=True)):
            agree(a, b, f"{path}[{index}]")
    elif isinstance(want, float) and not isinstance(want, bool):
        assert got is not None and (math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)), (path, got, want)
    else:
        assert got == want, (path, got, want)


@pytest.fixture
def offer(marketer):
    return rated_offer(marketer)


def write(offer, people, *, first: int = 0):
    write_history(offer, people, first=first, countries=COUNTRIES)


def engine_figures(offer, selection: rollups.Slice, as_of):
    start, end = selection.bounds()
    return metrics.offer_metrics(
        offer=offer,
        as_of=as_of,
        window_days=rollups.WINDOW_DAYS,
        variant=selection.variant,
        country=selection.country,
        assigned_from=start,
        assigned_to=end,
    )


def unit_filter(offer, selection):
    start, end = selection.bounds()
    return metrics.unit_filter(
        offer=offer, variant=selection.variant, country=selection.country, assigned_from=start, assigned_to=end
    )


SLICES = [
    rollups.Slice(),
    rollups.Slice(variant="long"),
    rollups.Slice(country="IT"),
    rollups.Slice(assigned_from=hours(50 * 24).date(), assigned_to=hours(150 * 24).date()),
]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories())
def test_the_rollups_give_the_engines_figures_at_their_as_of_time(offer, history):
    people, as_of, _window, grace = history
    with rolled_back():
        offer.grace_days = grace
        offer.save(update_fields=["grace_days"])
        write(offer, people)
        with time_machine.travel(as_of, tick=False):
            rollups.rebuild()
        assert rollups.as_of() == as_of
        for selection in SLICES:
            agree(rollups.offer_metrics(offer, selection).as_json(), engine_figures(offer, selection, as_of).as_json())
            units = unit_filter(offer, selection)
            grace_ = timedelta(days=grace)
            claims = queries.claim_times(units=units, as_of=as_of, grace=grace_)
            assert _claims(rollups.claim_times(offer, selection)) == _claims(claims)
            # The overview's curve: the offer's variants together.
            by_offer = rollups.claim_times_by_offer([offer], selection)
            assert pooled(by_offer.get(offer.pk, [])) == pooled(c for arm, cs in claims.items() for c in cs)
            assert {
                (w.week, w.arm): w.outcomes for w in rollups.claim_weeks([offer], selection)
            } == queries.claim_weeks(units=units, as_of=as_of)
            assert list(rollups.cohorts([offer], selection).rows) == queries.repeat_cohorts(
                units=units, as_of=as_of, weeks=rollups.COHORT_WEEKS
            )
        overview = rollups.overview([offer]).offers[0].metrics.as_json()
        engine = engine_figures(offer, rollups.Slice(), as_of).as_json()
        agree(overview["uplift"], engine["uplift"])
        for arm, want in zip(overview["arms"], engine["arms"], strict=True):
            # The overview leaves out the time to convert (rollups.overview); all else is the same.
            agree(
                {k: v for k, v in arm.items() if k != "time_to_convert"},
                {k: v for k, v in want.items() if k != "time_to_convert"},
            )


def pooled(claims) -> Counter:
    """How many claims of each (time, outcome), whichever arm they are in."""
    counts = Counter()
    for claim in claims:
        counts[(claim.observed, claim.converted, claim.on_time)] += claim.count
    return counts


def _claims(by_arm):
    return {arm: sorted(claims, key=repr) for arm, claims in by_arm.items()}


def rows():
    """Every unit row, its revenue to 1e-9 of a minor unit: on SQLite a converted amount is a
    float, and a sum of floats differs in its last bit with the order the rows came in (a
    refresh and a rebuild read them in different orders). PostgreSQL's sums are exact."""
    revenue = ("itt_revenue", "post_revenue")
    return {
        row.pop("assignment_id"): {name: round(value, 9) if name in revenue else value for name, value in row.items()}
        for row in UnitRollup.objects.order_by().values(*[c for c in rollups.COLUMNS if c != "folded_at"])
    }


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=histories(), after=histories(), moves=st.lists(st.sampled_from(["converted", "cancelled"]), max_size=4))
def test_a_refresh_leaves_the_rows_a_rebuild_makes(offer, before, after, moves):
    first, as_of, _window, _grace = before
    later, _as_of, _window, _grace = after
    with rolled_back():
        write(offer, first)
        with time_machine.travel(hours(100 * 24), tick=False):
            rollups.rebuild()
        write(offer, later, first=len(first))
        # Trials move (every move writes a history row), a visitor's assignment joins an account,
        # and a rate comes into force that applies to rows already counted.
        for trial, status in zip(offer.trials.filter(status="active"), moves, strict=False):
            trial.status = status
            trial.converted_at = trial.ends_at if status == "converted" else None
            trial.save()
            TrialEvent.objects.create(trial=trial, at=trial.ends_at, from_status="active", to_status=status)
        visitor = Assignment.objects.create(
            offer=offer, visitor="cookie", variant=offer.variants.first(), arm="default", assigned_at=hours(10)
        )
        Assignment.objects.filter(pk=visitor.pk).update(customer=factories.customer(email="joined@example.com"))
        ExchangeRate.objects.create(currency="GBP", to_currency="EUR", rate=Decimal("1.1"), valid_from=hours(0))
        with time_machine.travel(max(as_of, hours(101 * 24)), tick=False):
            rollups.refresh(batch=3)
            refreshed = rows()
            rollups.rebuild()
        assert refreshed == rows()
        assert visitor.pk in refreshed


def test_a_refresh_writes_only_the_units_that_changed(offer):
    people = [factories.customer(email=f"c{n}@example.com") for n in range(3)]
    units = [factories.assignment(offer=offer, customer=person, assigned_at=hours(0)) for person in people]
    with time_machine.travel(hours(24), tick=False):
        rollups.rebuild()
    factories.purchase(customer=people[1], product=offer.product, amount=500, at=hours(30))
    with time_machine.travel(hours(48), tick=False):
        refreshed = rollups.refresh()
    folded = dict(UnitRollup.objects.values_list("pk", "folded_at"))
    assert refreshed.units == 1
    assert folded == {units[0].pk: hours(24), units[1].pk: hours(48), units[2].pk: hours(24)}
    assert UnitRollup.objects.get(pk=units[1].pk).itt_purchases == 1
    assert RollupState.objects.get().as_of == hours(48)
    # Nothing new: a second run writes nothing and only moves the as-of time.
    with time_machine.travel(hours(72), tick=False):
        assert rollups.refresh().units == 0
    assert rollups.as_of() == hours(72)


def test_an_assignment_deleted_through_django_takes_its_rollup_row_with_it(offer):
    """The rollup's keys are not checked by the database (analytics.models.UnitRollup): Django's
    own cascade still keeps no row without its unit."""
    units = [
        factories.assignment(offer=offer, customer=factories.customer(email=f"d{n}@example.com"), assigned_at=hours(0))
        for n in range(2)
    ]
    with time_machine.travel(hours(24), tick=False):
        rollups.rebuild()
    units[0].delete()

    assert list(UnitRollup.objects.values_list("pk", flat=True)) == [units[1].pk]


def test_a_refund_whose_time_comes_after_the_fold_undoes_the_purchase_at_the_next_refresh(offer):
    customer = factories.customer(email="r@example.com")
    unit = factories.assignment(offer=offer, customer=customer, assigned_at=hours(0))
    bought = factories.purchase(customer=customer, product=offer.product, amount=500, at=hours(10))
    factories.refund(original=bought, at=hours(60))  # recorded now, dated later
    with time_machine.travel(hours(24), tick=False):
        rollups.rebuild()
    assert UnitRollup.objects.get(pk=unit.pk).itt_purchases == 1
    with time_machine.travel(hours(72), tick=False):
        assert rollups.refresh().units == 1
    assert UnitRollup.objects.get(pk=unit.pk).itt_purchases == 0


def test_an_id_that_commits_after_a_later_one_is_still_folded(offer):
    """A transaction that took id n but commits after id n + 1 was folded leaves a gap the
    watermark passed; the gap is remembered and folded when the row appears."""
    people = [factories.customer(email=f"g{n}@example.com") for n in range(2)]
    units = [factories.assignment(offer=offer, customer=person, assigned_at=hours(0)) for person in people]
    factories.purchase(customer=people[1], product=offer.product, amount=100, at=hours(0))
    with time_machine.travel(hours(24), tick=False):
        rollups.rebuild()
    late = factories.purchase(customer=people[0], product=offer.product, amount=100, at=hours(1))
    factories.purchase(customer=people[1], product=offer.product, amount=100, at=hours(2))
    late_row = {field.attname: getattr(late, field.attname) for field in late._meta.concrete_fields}
    late.delete()  # not committed yet, as far as the refresh can see
    with time_machine.travel(hours(30), tick=False):
        rollups.refresh()
    assert RollupState.objects.get().gaps == {"purchase_id": {str(late_row["id"]): hours(30).isoformat()}}
    type(late).objects.create(**late_row)
    with time_machine.travel(hours(31), tick=False):
        rollups.refresh()
    assert RollupState.objects.get().gaps == {}
    assert UnitRollup.objects.get(pk=units[0].pk).itt_purchases == 1
    # A gap that never fills (a rolled-back insert) is forgotten after a day.
    factories.purchase(customer=people[1], product=offer.product, amount=100, at=hours(3)).delete()
    factories.purchase(customer=people[1], product=offer.product, amount=100, at=hours(4))
    with time_machine.travel(hours(40), tick=False):
        rollups.refresh()
    assert RollupState.objects.get().gaps["purchase_id"]
    with time_machine.travel(hours(40 + 25), tick=False):
        rollups.refresh()
    assert RollupState.objects.get().gaps == {}


def test_a_stopped_refresh_resumes_where_it_stopped(offer):
    people = [factories.customer(email=f"s{n}@example.com") for n in range(5)]
    with time_machine.travel(hours(24), tick=False):
        rollups.rebuild()
    units = [factories.assignment(offer=offer, customer=person, assigned_at=hours(0)) for person in people]
    calls = []

    def stop_after_two(*args, **kwargs):
        calls.append(args)
        if len(calls) > 2:
            raise KeyboardInterrupt
        return real_fold(*args, **kwargs)

    real_fold = rollups.fold
    rollups.fold = stop_after_two
    try:
        with time_machine.travel(hours(30), tick=False), pytest.raises(KeyboardInterrupt):
            rollups.refresh(batch=2)
    finally:
        rollups.fold = real_fold
    assert UnitRollup.objects.count() == 4
    assert RollupState.objects.get().assignment_id == units[3].pk
    with time_machine.travel(hours(31), tick=False):
        assert rollups.refresh(batch=2).units == 1
    assert UnitRollup.objects.count() == 5


def test_reading_rollups_never_built_says_how_to_build_them(offer):
    assert rollups.as_of() is None
    with pytest.raises(rollups.NotBuilt, match="rebuild_rollups"):
        rollups.offer_metrics(offer)


def test_the_command_rebuilds_with_a_progress_bar(offer, capsys):
    factories.assignment(offer=offer, customer=factories.customer(email="x@example.com"), assigned_at=hours(0))
    call_command("rebuild_rollups")
    out, err = capsys.readouterr()
    assert "1 unit" in out and "as of" in out
    assert "100%" in err
    assert UnitRollup.objects.count() == 1


def test_beat_refreshes_the_rollups_every_minute(offer):
    from analytics.tasks import rollups_refresh_task

    entry = app.conf.beat_schedule["rollups-refresh"]
    assert entry == {"task": rollups_refresh_task.name, "schedule": 60}
    factories.assignment(offer=offer, customer=factories.customer(email="b@example.com"), assigned_at=hours(0))
    rollups_refresh_task.apply().get()  # never built: the first run builds them
    assert UnitRollup.objects.count() == 1 and rollups.as_of() is not None
