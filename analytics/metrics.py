"""The metrics engine: METRICS.md's figures for an offer, as of a moment, as frozen dataclasses.

The database reduces the raw rows to counts and sufficient statistics (analytics/queries.py);
this module turns them into rates, means, intervals and tests with analytics/stats.py, and
``OfferMetrics.as_json()`` gives the metrics API's document (METRICS.md, "Metrics API"). A
figure whose denominator is zero is None (``null``), never 0.

Choices the definitions leave open, stated in docs/metrics.md too:

- ``time_to_convert`` is over the trials counted in ``conversion.converted`` (mature, converted
  on time), so that ``converters`` equals that count.
- ``km_cumulative`` at ``t`` is None when no claim was observed for ``t`` days (every trial
  censored or converted before), unless the curve had already reached 1.
- Revenue converted from another currency uses the rate in force at the row's ``purchased_at``;
  a purchase left out of revenue for want of a rate still counts as a purchase.
- ``p_value_bh`` of one offer adjusts that offer's uplift entries; the overview adjusts each
  offer's repeat-rate entries across all offers.
"""

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from analytics import queries, stats
from offers.models import Offer
from offers.money import places
from offers.rules import HOLDOUT

KM_DAYS = (7, 14, 30, 60, 90)
DAY_SECONDS = 86400
# The uplift entries of each variant, in this order: the proportions with Newcombe's interval
# and the pooled z-test, then the means with Welch's.
PROPORTION_METRICS = ("repeat_rate", "buyer_rate")
MEAN_METRICS = ("purchases_per_customer", "revenue_per_customer")
UPLIFT_METRICS = PROPORTION_METRICS + MEAN_METRICS
HEADLINE_METRIC = "repeat_rate"

Interval = tuple[float, float]


@dataclass(frozen=True)
class Conversion:
    mature: int
    converted: int
    pending: int
    rate: float | None
    ci95: Interval | None


@dataclass(frozen=True)
class Outcomes:
    converted: int
    cancelled: int
    expired: int
    payment_failed: int
    pending: int


@dataclass(frozen=True)
class TimeToConvert:
    converters: int
    median_days: float | None
    p25_days: float | None
    p75_days: float | None
    km_cumulative: dict[int, float | None]  # days after the claim → F(t)


@dataclass(frozen=True)
class WindowFigures:
    """Repeat-purchase figures over one kind of window (``itt`` from the assignment,
    ``post_trial`` from the trial's end). ``purchases`` and ``revenue`` are the sufficient
    statistics behind the means, per mature unit, ``revenue`` in minor units of the offer's
    currency; the ``*_per_customer`` and ``revenue_sd`` figures are in major units."""

    mature: int
    buyers: int
    buyer_rate: float | None
    buyer_rate_ci95: Interval | None
    repeat_buyers: int
    repeat_rate: float | None
    repeat_rate_ci95: Interval | None
    purchases_per_customer: float | None
    revenue_per_customer: float | None
    revenue_sd: float | None
    purchases: stats.Moments
    revenue: stats.Moments


@dataclass(frozen=True)
class ArmMetrics:
    """One arm's figures. The holdout's ``conversion``, ``outcomes``, ``time_to_convert`` and
    ``post_trial`` are None: nobody in it was offered anything to claim."""

    arm: str
    is_holdout: bool
    weight: float  # the configured share of units, holdout included (they add up to 1)
    assigned: int
    claimed: int
    claim_rate: float | None
    conversion: Conversion | None
    outcomes: Outcomes | None
    time_to_convert: TimeToConvert | None
    itt: WindowFigures
    post_trial: WindowFigures | None


@dataclass(frozen=True)
class Uplift:
    """One variant against the holdout on one ``itt`` metric; money in major units."""

    arm: str
    vs: str
    metric: str
    diff: float | None
    ci95: Interval | None
    p_value: float | None
    p_value_bh: float | None
    per_claimer: float | None


@dataclass(frozen=True)
class SampleRatio:
    p_value: float | None
    flag: bool


@dataclass(frozen=True)
class OfferMetrics:
    offer: str  # the slug
    as_of: datetime
    window_days: int
    grace_days: int
    currency: str
    unconverted_rows: int
    arms: tuple[ArmMetrics, ...]
    uplift: tuple[Uplift, ...]
    srm: SampleRatio
    observational: bool  # no holdout: no randomized uplift, only comparisons labelled observational

    def arm(self, name: str) -> ArmMetrics | None:
        return next((arm for arm in self.arms if arm.arm == name), None)

    def as_json(self) -> dict:
        """The metrics API's document (METRICS.md, "Metrics API")."""
        return {
            "offer": self.offer,
            "as_of": self.as_of.isoformat(),
            "window_days": self.window_days,
            "grace_days": self.grace_days,
            "currency": self.currency,
            "unconverted_rows": self.unconverted_rows,
            "arms": [_arm_json(arm) for arm in self.arms],
            "uplift": [_uplift_json(uplift) for uplift in self.uplift],
            "srm": {"p_value": self.srm.p_value, "flag": self.srm.flag},
            "observational": self.observational,
        }


@dataclass(frozen=True)
class OfferHeadline:
    """One offer's line in the overview: its metrics, and its repeat-rate uplift entries with
    ``p_value_bh`` adjusted across every offer of the overview."""

    name: str
    status: str
    metrics: OfferMetrics
    uplift: tuple[Uplift, ...]

    def as_json(self) -> dict:
        metrics = self.metrics
        return {
            "offer": metrics.offer,
            "name": self.name,
            "status": self.status,
            "currency": metrics.currency,
            "grace_days": metrics.grace_days,
            "observational": metrics.observational,
            "srm": {"p_value": metrics.srm.p_value, "flag": metrics.srm.flag},
            "arms": [_headline_arm_json(arm) for arm in metrics.arms],
            "uplift": [_uplift_json(uplift) for uplift in self.uplift],
        }


@dataclass(frozen=True)
class OffersOverview:
    as_of: datetime
    window_days: int
    grace_days: int | None  # None: each offer's own
    offers: tuple[OfferHeadline, ...]

    def as_json(self) -> dict:
        return {
            "as_of": self.as_of.isoformat(),
            "window_days": self.window_days,
            "grace_days": self.grace_days,
            "offers": [headline.as_json() for headline in self.offers],
        }


# --- The engine ------------------------------------------------------------------------------
def offer_metrics(
    *,
    offer: Offer,
    as_of: datetime,
    window_days: int = 90,
    grace_days: int | None = None,
    variant: str | None = None,
    country: str | None = None,
    assigned_from: datetime | None = None,
    assigned_to: datetime | None = None,
) -> OfferMetrics:
    """Every figure of METRICS.md for ``offer`` as of ``as_of``.

    ``variant`` keeps that arm and the holdout it is measured against; ``country`` keeps the
    customers of one country; ``assigned_from``/``assigned_to`` keep the units assigned in
    ``[assigned_from, assigned_to)``. The sample-ratio check needs every arm, so it is None
    under a ``variant`` filter.
    """
    grace = offer.grace_days if grace_days is None else grace_days
    units = unit_filter(
        offer=offer, variant=variant, country=country, assigned_from=assigned_from, assigned_to=assigned_to
    )
    tally = queries.offer_tally(units=units, as_of=as_of, window_days=window_days, grace_days=grace)
    return metrics_from_tally(
        offer=offer, tally=tally, as_of=as_of, window_days=window_days, grace_days=grace, variant=variant
    )


def unit_filter(
    *,
    offer: Offer,
    variant: str | None = None,
    country: str | None = None,
    assigned_from: datetime | None = None,
    assigned_to: datetime | None = None,
) -> queries.UnitFilter:
    """The units ``offer_metrics`` reads: a ``variant`` keeps that arm and the holdout."""
    arms = None if variant is None else tuple(dict.fromkeys((variant, HOLDOUT)))
    return queries.UnitFilter(
        offer=offer, arms=arms, country=country, assigned_from=assigned_from, assigned_to=assigned_to
    )


def metrics_from_tally(
    *, offer: Offer, tally: queries.OfferTally, as_of: datetime, window_days: int, grace_days: int, variant: str | None
) -> OfferMetrics:
    """The figures of one offer's tally, however it was counted: from the raw rows
    (``offer_metrics``) or from the rollups (analytics.rollups)."""
    grace = grace_days
    weights = _weights(offer)
    arms = None if variant is None else tuple(dict.fromkeys((variant, HOLDOUT)))
    names = [name for name in weights if arms is None or name in arms]
    names += sorted(name for name in tally.arms if name not in weights)
    has_holdout = offer.holdout_percent > 0 or HOLDOUT in tally.arms
    if not has_holdout and HOLDOUT in names:
        names.remove(HOLDOUT)
    scale = 10 ** places(offer.currency)
    figures = tuple(
        _arm_metrics(
            tally.arms.get(name) or queries.ArmTally(arm=name),
            weight=weights.get(name, 0.0),
            scale=scale,
        )
        for name in names
    )
    holdout = next((arm for arm in figures if arm.is_holdout), None)
    uplift = () if holdout is None else _uplift(figures, holdout, scale=scale)
    if variant is None:
        p_value = stats.srm_p([arm.assigned for arm in figures], [arm.weight for arm in figures])
    else:
        p_value = None
    return OfferMetrics(
        offer=offer.slug,
        as_of=as_of,
        window_days=window_days,
        grace_days=grace,
        currency=offer.currency,
        unconverted_rows=tally.unconverted_rows,
        arms=figures,
        uplift=uplift,
        srm=SampleRatio(p_value=p_value, flag=p_value is not None and p_value < stats.SRM_ALPHA),
        observational=holdout is None,
    )


def offers_overview(*, as_of: datetime, window_days: int = 90, grace_days: int | None = None) -> OffersOverview:
    """Every offer's metrics, newest first, with the repeat-rate uplift of each variant and its
    Benjamini-Hochberg adjusted p-value across all the offers' entries."""
    from offers import selectors

    every = [
        (offer, offer_metrics(offer=offer, as_of=as_of, window_days=window_days, grace_days=grace_days))
        for offer in selectors.offer_list()
    ]
    return overview_of(every, as_of=as_of, window_days=window_days, grace_days=grace_days)


def overview_of(
    every: list[tuple[Offer, OfferMetrics]], *, as_of: datetime, window_days: int, grace_days: int | None
) -> OffersOverview:
    """The overview of these offers' metrics, with the BH adjustment across all of them."""
    headlines = [[entry for entry in metrics.uplift if entry.metric == HEADLINE_METRIC] for _offer, metrics in every]
    adjusted = iter(stats.benjamini_hochberg([entry.p_value for entries in headlines for entry in entries]))
    return OffersOverview(
        as_of=as_of,
        window_days=window_days,
        grace_days=grace_days,
        offers=tuple(
            OfferHeadline(
                name=offer.name,
                status=offer.status,
                metrics=metrics,
                uplift=tuple(replace(entry, p_value_bh=next(adjusted)) for entry in entries),
            )
            for (offer, metrics), entries in zip(every, headlines, strict=True)
        ),
    )


# --- Arms --------------------------------------------------------------------------------------
def _weights(offer: Offer) -> dict[str, float]:
    """Each arm's configured share of the units, in the offer's order, the holdout last: the
    holdout takes ``holdout_percent`` and the variants split the rest by weight
    (offers.rules.arm_for)."""
    holdout = offer.holdout_percent / 100
    variants = list(offer.variants.all())
    total = sum(variant.weight for variant in variants)
    shares = {variant.name: (1 - holdout) * variant.weight / total if total else 0.0 for variant in variants}
    shares[HOLDOUT] = holdout
    return shares


def _arm_metrics(tally: queries.ArmTally, *, weight: float, scale: int) -> ArmMetrics:
    holdout = tally.arm == HOLDOUT
    conversion = outcomes = time_to_convert = post_trial = None
    if not holdout:
        conversion = Conversion(
            mature=tally.conversion_mature,
            converted=tally.converted,
            pending=tally.pending,
            rate=_rate(tally.converted, tally.conversion_mature),
            ci95=stats.wilson(tally.converted, tally.conversion_mature),
        )
        outcomes = Outcomes(**dict(tally.outcomes))
        time_to_convert = _time_to_convert(tally)
        post_trial = _window(tally.post_trial, scale=scale)
    return ArmMetrics(
        arm=tally.arm,
        is_holdout=holdout,
        weight=weight,
        assigned=tally.assigned,
        claimed=tally.claimed,
        claim_rate=_rate(tally.claimed, tally.assigned),
        conversion=conversion,
        outcomes=outcomes,
        time_to_convert=time_to_convert,
        itt=_window(tally.itt, scale=scale),
        post_trial=post_trial,
    )


def _window(tally: queries.WindowTally, *, scale: int) -> WindowFigures:
    purchases = stats.Moments(n=tally.mature, total=tally.purchases_sum, total_sq=tally.purchases_sq)
    revenue = stats.Moments(n=tally.mature, total=_exact(tally.revenue_sum), total_sq=_exact(tally.revenue_sq))
    return WindowFigures(
        mature=tally.mature,
        buyers=tally.buyers,
        buyer_rate=_rate(tally.buyers, tally.mature),
        buyer_rate_ci95=stats.wilson(tally.buyers, tally.mature),
        repeat_buyers=tally.repeat_buyers,
        repeat_rate=_rate(tally.repeat_buyers, tally.mature),
        repeat_rate_ci95=stats.wilson(tally.repeat_buyers, tally.mature),
        purchases_per_customer=_float(purchases.mean),
        revenue_per_customer=_major(revenue.mean, scale),
        revenue_sd=_major(revenue.sd, scale),
        purchases=purchases,
        revenue=revenue,
    )


def _time_to_convert(tally: queries.ArmTally) -> TimeToConvert:
    # The converters of ``conversion.converted``: decided by T, and converted by D.
    durations = [_days(claim.observed) for claim in tally.claims if claim.on_time for _ in range(claim.count)]
    p25, median, p75 = stats.quantiles(durations, (0.25, 0.5, 0.75))
    # One (time, events, censored) row per time: a censoring at an event's time is still at risk.
    tallies: dict[float, list[int]] = {}
    for claim in tally.claims:
        tallies.setdefault(_days(claim.observed), [0, 0])[0 if claim.converted else 1] += claim.count
    curve = stats.kaplan_meier_tallied((t, events, censored) for t, (events, censored) in tallies.items())
    observed = max((_days(claim.observed) for claim in tally.claims), default=None)
    km = {}
    for t in KM_DAYS:
        if observed is None:
            km[t] = None
            continue
        cumulative = stats.km_cumulative_at(curve, t)
        # Past the longest observed time the curve says nothing, unless everyone had converted.
        km[t] = cumulative if t <= observed or cumulative >= 1 else None
    return TimeToConvert(converters=len(durations), median_days=median, p25_days=p25, p75_days=p75, km_cumulative=km)


# --- Uplift ------------------------------------------------------------------------------------
def _uplift(arms: tuple[ArmMetrics, ...], holdout: ArmMetrics, *, scale: int) -> tuple[Uplift, ...]:
    entries = []
    control = holdout.itt
    for arm in arms:
        if arm.is_holdout:
            continue
        treated = arm.itt
        for metric in UPLIFT_METRICS:
            diff = ci95 = p_value = None
            if metric in PROPORTION_METRICS:
                counted = "repeat_buyers" if metric == "repeat_rate" else "buyers"
                x1, x2 = getattr(treated, counted), getattr(control, counted)
                compared = stats.newcombe(x1, treated.mature, x2, control.mature)
                if compared is not None:
                    diff, low, high = compared
                    ci95 = (low, high)
                p_value = stats.two_proportion_p(x1, treated.mature, x2, control.mature)
            else:
                unit = 1 if metric == "purchases_per_customer" else scale
                a, b = (treated.purchases, control.purchases) if unit == 1 else (treated.revenue, control.revenue)
                # Welch needs two customers an arm; below that the comparison is null throughout.
                compared = stats.welch(a, b)
                if compared is not None:
                    diff = float(compared.diff) / unit
                    if compared.ci95 is not None:
                        ci95 = (compared.ci95[0] / unit, compared.ci95[1] / unit)
                    p_value = compared.p_value
            entries.append(
                Uplift(
                    arm=arm.arm,
                    vs=HOLDOUT,
                    metric=metric,
                    diff=diff,
                    ci95=ci95,
                    p_value=p_value,
                    p_value_bh=None,
                    per_claimer=stats.per_claimer(diff, arm.claim_rate),
                )
            )
    adjusted = stats.benjamini_hochberg([entry.p_value for entry in entries])
    return tuple(replace(entry, p_value_bh=q) for entry, q in zip(entries, adjusted, strict=True))


# --- JSON --------------------------------------------------------------------------------------
def _arm_json(arm: ArmMetrics) -> dict:
    return {
        "arm": arm.arm,
        "is_holdout": arm.is_holdout,
        "weight": arm.weight,
        "assigned": arm.assigned,
        "claimed": arm.claimed,
        "claim_rate": arm.claim_rate,
        "conversion": _conversion_json(arm.conversion),
        "outcomes": None if arm.outcomes is None else _fields(arm.outcomes, Outcomes),
        "time_to_convert": None if arm.time_to_convert is None else _time_json(arm.time_to_convert),
        "itt": _window_json(arm.itt, ITT_JSON),
        "post_trial": None if arm.post_trial is None else _window_json(arm.post_trial, POST_TRIAL_JSON),
    }


def _conversion_json(conversion: Conversion | None) -> dict | None:
    if conversion is None:
        return None
    return {
        "mature": conversion.mature,
        "converted": conversion.converted,
        "pending": conversion.pending,
        "rate": conversion.rate,
        "ci95": _pair(conversion.ci95),
    }


def _time_json(time: TimeToConvert) -> dict:
    return {
        "converters": time.converters,
        "median_days": time.median_days,
        "p25_days": time.p25_days,
        "p75_days": time.p75_days,
        "km_cumulative": {str(days): value for days, value in time.km_cumulative.items()},
    }


# The window figures each part of the JSON shows (METRICS.md, "Metrics API"): all of them from
# assignment, fewer after the trial, and the headline's three in the overview.
ITT_JSON = (
    "mature", "buyers", "buyer_rate", "buyer_rate_ci95", "repeat_buyers", "repeat_rate", "repeat_rate_ci95",
    "purchases_per_customer", "revenue_per_customer", "revenue_sd",
)  # fmt: skip
POST_TRIAL_JSON = ("mature", "buyers", "repeat_buyers", "repeat_rate", "purchases_per_customer", "revenue_per_customer")
HEADLINE_ITT_JSON = ("mature", "repeat_rate", "repeat_rate_ci95")


def _window_json(window: WindowFigures, names: tuple[str, ...]) -> dict:
    """The named figures of a window; an interval (a name ending in ``_ci95``) as a list."""
    return {name: _pair(getattr(window, name)) if name.endswith("_ci95") else getattr(window, name) for name in names}


def _uplift_json(uplift: Uplift) -> dict:
    return {
        "arm": uplift.arm,
        "vs": uplift.vs,
        "metric": uplift.metric,
        "diff": uplift.diff,
        "ci95": _pair(uplift.ci95),
        "p_value": uplift.p_value,
        "p_value_bh": uplift.p_value_bh,
        "per_claimer": uplift.per_claimer,
    }


def _headline_arm_json(arm: ArmMetrics) -> dict:
    return {
        "arm": arm.arm,
        "is_holdout": arm.is_holdout,
        "assigned": arm.assigned,
        "claimed": arm.claimed,
        "claim_rate": arm.claim_rate,
        "conversion": _conversion_json(arm.conversion),
        "itt": _window_json(arm.itt, HEADLINE_ITT_JSON),
    }


def _fields(value, cls) -> dict:
    return {name: getattr(value, name) for name in cls.__dataclass_fields__}


def _pair(interval: Interval | None) -> list[float] | None:
    return None if interval is None else [interval[0], interval[1]]


# --- Numbers -----------------------------------------------------------------------------------
def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


def _days(delta) -> float:
    return delta.total_seconds() / DAY_SECONDS


def _exact(value: int | Decimal | float) -> int | float:
    """Sums of whole minor units stay exact ints; a converted sum (a Decimal on PostgreSQL) is a
    float, since stats works in floats."""
    return float(value) if isinstance(value, Decimal) else value


def _float(value) -> float | None:
    return None if value is None else float(value)


def _major(value, scale: int) -> float | None:
    return None if value is None else float(value) / scale
