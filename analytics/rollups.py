"""What the dashboards read (PROVISIONAL: this first version reads the raw rows through the
engine at the moment of the request; the rollup tables that replace the bodies, with the same
signatures, are being built in analytics/rollups.py on another branch).

Filters are a ``Slice``: a variant (with the holdout it is measured against), a country, and the
days of assignment ``assigned_from`` to ``assigned_to`` inclusive (UTC days). The window is
``WINDOW_DAYS`` and the grace each offer's own.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.utils import timezone

from analytics import metrics, queries
from offers.models import Offer

WINDOW_DAYS = 90
COHORT_WEEKS = 13  # weeks since the trial's end in the cohort heatmap: 0 to 12


@dataclass(frozen=True)
class Slice:
    variant: str | None = None
    country: str | None = None
    assigned_from: date | None = None  # first day, inclusive
    assigned_to: date | None = None  # last day, inclusive

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        """``[start, end)`` in time for the engine's ``assigned_from``/``assigned_to``."""
        start = None if self.assigned_from is None else datetime.combine(self.assigned_from, time(), tzinfo=UTC)
        end = None
        if self.assigned_to is not None:
            end = datetime.combine(self.assigned_to + timedelta(days=1), time(), tzinfo=UTC)
        return start, end


@dataclass(frozen=True)
class ClaimWeek:
    """The claimed trials of one arm whose claim fell in the week starting ``week`` (a Monday,
    UTC), by their current outcome (METRICS.md's ``outcomes``)."""

    week: date
    arm: str
    outcomes: dict[str, int]


@dataclass(frozen=True)
class Cohorts:
    as_of: datetime
    rows: tuple[queries.CohortRow, ...]


def as_of() -> datetime | None:
    """The moment the rollups' data is as of; None when they were never built."""
    return timezone.now()


def offer_metrics(offer: Offer, selection: Slice = Slice()) -> metrics.OfferMetrics:
    start, end = selection.bounds()
    return metrics.offer_metrics(
        offer=offer,
        as_of=as_of(),
        window_days=WINDOW_DAYS,
        variant=selection.variant,
        country=selection.country,
        assigned_from=start,
        assigned_to=end,
    )


def overview(offers: Iterable[Offer], selection: Slice = Slice()) -> metrics.OffersOverview:
    moment = as_of()
    every = [(offer, offer_metrics(offer, selection)) for offer in offers]
    return metrics.overview_of(every, as_of=moment, window_days=WINDOW_DAYS, grace_days=None)


def claim_times(offer: Offer, selection: Slice = Slice()) -> dict[str, list[queries.ClaimTimes]]:
    """Each arm's claimed trials' times, for the Kaplan-Meier curve (analytics.stats)."""
    start, end = selection.bounds()
    units = metrics.unit_filter(
        offer=offer, variant=selection.variant, country=selection.country, assigned_from=start, assigned_to=end
    )
    return queries.claim_times(units=units, as_of=as_of(), grace=timedelta(days=offer.grace_days))


def cohorts(offer: Offer, selection: Slice = Slice()) -> Cohorts:
    start, end = selection.bounds()
    units = metrics.unit_filter(
        offer=offer, variant=selection.variant, country=selection.country, assigned_from=start, assigned_to=end
    )
    moment = as_of()
    return Cohorts(as_of=moment, rows=tuple(queries.repeat_cohorts(units=units, as_of=moment, weeks=COHORT_WEEKS)))


def claim_weeks(offer: Offer, selection: Slice = Slice()) -> list[ClaimWeek]:
    """The "outcomes by claim week" chart: every week with a claim, per arm, oldest first."""
    start, end = selection.bounds()
    units = metrics.unit_filter(
        offer=offer, variant=selection.variant, country=selection.country, assigned_from=start, assigned_to=end
    )
    return [
        ClaimWeek(week=week, arm=arm, outcomes=outcomes)
        for (week, arm), outcomes in queries.claim_weeks(units=units, as_of=as_of()).items()
    ]
