"""The overview's data: every offer's figures, and the claim weeks, cohorts and curves the
cross-offer charts draw, read from the rollups in a handful of queries.

At scale that read is the page's cost (about a second for a hundred offers of ten thousand
customers each; bench/bench_rollups.py), and its answer only changes when the rollups move on.
So each answer is kept in the cache under the rollups' moment and folds, the filters and the
offers as edited; a new moment is a new key. What the key leaves out is read live or at the next
moment: offer names are put in at each request, in the reader's language (they are translated),
and a customer's changed country counts from the next moment. While someone has looked at the
overview in the last hour, the beat job that refreshes the rollups reads the unfiltered
overview's data, and its "Promises kept" panel, for the new moment at once (``warm``); the
figures are then drawn by the first request in each language (analytics/views.py).
"""

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime

from django.core.cache import cache

from analytics import charts, promises, queries, rollups
from analytics.models import RollupState
from analytics.rollups import ClaimWeek, Cohorts
from offers import selectors
from offers.models import Offer

KEPT_SECONDS = 600
SHAPE = 1  # in every key: raise it when OverviewData or the figures' HTML change shape
WATCHED_SECONDS = 3600
WATCHED_KEY = "dashboard:overview:watched"


@dataclass(frozen=True)
class OverviewData:
    key: str  # in the cache: this moment of the rollups, these offers as edited, these filters
    offers: list[charts.OfferData]  # those with someone assigned in the selection
    window_days: int
    claim_weeks: list[ClaimWeek]
    cohorts: Cohorts
    curves: dict[str, list[queries.ClaimTimes]]  # claims of the offers whose curves are drawn, by slug

    def named(self, names: dict[str, str]) -> "OverviewData":
        """This answer with each offer's name as ``names`` has it (by slug): the request's."""
        return replace(self, offers=[replace(data, name=names.get(data.slug, data.name)) for data in self.offers])

    def curves_by_name(self) -> dict[str, list[queries.ClaimTimes]]:
        names = {data.slug: data.name for data in self.offers}
        return {names[slug]: claims for slug, claims in self.curves.items()}


def overview_data(chosen: list[Offer], selection: rollups.Slice, *, moment: datetime) -> OverviewData:
    """``read`` of these offers, from the cache when it was read for this moment already, with
    the offers' names in the language of the request."""
    key = _key(chosen, selection, moment)
    data = cache.get_or_set(key, lambda: read(chosen, selection, moment=moment, key=key), KEPT_SECONDS)
    return data.named({offer.slug: offer.name for offer in chosen})


def read(chosen: list[Offer], selection: rollups.Slice, *, moment: datetime, key: str) -> OverviewData:
    """The overview of ``chosen`` at ``moment``: one query for every offer's figures, one each
    for the claim weeks and the cohorts of them all, and one for the curves of the offers with
    the most claims (``charts.KM_OVERVIEW_OFFERS``)."""
    overview = rollups.overview(chosen, selection, moment=moment)
    shown = [
        (offer, charts.OfferData(slug=offer.slug, name=offer.name, headline=headline, sample_cost=offer.sample_cost))
        for offer, headline in zip(chosen, overview.offers, strict=True)
        # An offer nobody was assigned to in this selection has nothing to show.
        if any(arm.assigned for arm in headline.metrics.arms)
    ]
    offers = [offer for offer, _data in shown]
    drawn = [offer for offer, data in sorted(shown, key=lambda pair: -pair[1].claimed) if data.claimed]
    drawn = drawn[: charts.KM_OVERVIEW_OFFERS]
    times = rollups.claim_times_by_offer(drawn, selection, moment=moment)
    return OverviewData(
        key=key,
        offers=[data for _offer, data in shown],
        window_days=overview.window_days,
        claim_weeks=rollups.claim_weeks(offers, selection, moment=moment),
        cohorts=rollups.cohorts(offers, selection, moment=moment),
        curves={offer.slug: times.get(offer.pk, []) for offer in drawn},
    )


def watched() -> None:
    """Someone opened the overview: keep warming it for the next hour."""
    cache.set(WATCHED_KEY, True, WATCHED_SECONDS)


@queries.analytic_read()
def warm() -> bool:
    """Read the unfiltered overview at the rollups' moment into the cache, if someone looked at
    the overview lately and it is not there yet. Returns whether it read it."""
    moment = rollups.as_of()
    if moment is None or not cache.get(WATCHED_KEY):
        return False
    every = list(selectors.offer_list())
    key = _key(every, rollups.Slice(), moment)
    if cache.get(key) is not None:
        return False
    cache.set(key, read(every, rollups.Slice(), moment=moment, key=key), KEPT_SECONDS)
    promises.panel(offer=None, as_of=moment)
    return True


def _key(chosen: list[Offer], selection: rollups.Slice, moment: datetime) -> str:
    # Another moment is another key; so is any fold since (the state's watermarks and gaps, which
    # a refresh within the same second still moves) and an offer edited since (its name, grace
    # or cost).
    state = (
        RollupState.objects.filter(pk=1)
        .values("built_at", "assignment_id", "purchase_id", "event_id", "rate_id", "gaps")
        .first()
    )
    offers = ",".join(f"{offer.pk}@{offer.updated_at.isoformat()}" for offer in chosen)
    digest = hashlib.sha256(f"{state}|{offers}|{selection!r}".encode()).hexdigest()
    return f"dashboard:overview:{SHAPE}:{moment.isoformat()}:{digest}"
