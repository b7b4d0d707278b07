"""What the dashboards read: the rollup tables, kept fresh by a beat job, so that a dashboard never
scans the purchases ledger.

**Why one row per unit.** The suggested key, (offer, arm, day of assignment), cannot be exact:
maturity is decided per unit (``assigned_at + N ≤ T`` for the purchase windows, ``ends_at + G ≤ T``
for a conversion), and a day's units do not mature together with their trials; "buyers" and
"repeat buyers" need each unit's own purchase count, which a sum over a day has lost; and every
filter (country, variant, date range) must still give METRICS.md's numbers. So the rollup keeps
each unit's sufficient statistics instead (``analytics.models.UnitRollup``): its arm and times, its
trial's times and state, and its purchase count, revenue and rate-less rows over each window.
A dashboard then reduces those rows, in one aggregate query per offer, to exactly the per-arm
counts, sums and sums of squares the engine's raw-row queries give (``analytics.queries.OfferTally``),
and the same ``analytics.metrics.metrics_from_tally`` turns them into figures. Maturity, the
offer's grace and every filter are applied when reading, so time passing changes no row; only new
ledger rows, trial moves, assignments and exchange rates do. A unit row is a few dozen bytes: a
million customers and a hundred offers make a table far smaller than the ledger it replaces.

The window is fixed at ``WINDOW_DAYS``; the metrics API, which takes any ``window_days``, any
``grace_days`` and any ``as_of``, reads the raw rows through the engine instead.

**Keeping fresh** (``refresh``, every minute from beat). Each source table is read forward from a
watermark, its last id folded: new assignments, the units of customers with new ledger rows, the
units of trials with new history rows (every move of a trial writes one, trials/services.py), the
units of offers in a currency that got a new rate, and visitors' assignments that joined an
account. Each batch is one transaction that takes the state row's lock, folds each dirty unit once
(delete and insert its row) and moves the watermarks on, so a refresh that is stopped resumes
where it stopped, and two that overlap wait for each other and never fold the same change twice.
An id the watermark passed that was not there yet (its transaction still open) is remembered in
``gaps`` and folded when it appears, or forgotten after ``GAP_PATIENCE`` (a rolled-back insert).
Last, the data's moment ``as_of`` moves to now: a refund whose time has come since a unit was
folded undoes that unit's purchase (METRICS.md), so those units are folded again first.

Reading is exact against the engine at the rollups' ``as_of`` (tests/analytics/test_rollups.py
checks it on random histories).
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

from django.db import connection, transaction
from django.db.models import (
    Case,
    Count,
    DecimalField,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import TruncWeek
from django.utils import timezone

import config.lookups  # noqa: F401 (field__any)
from accounts.models import User
from analytics import metrics, queries
from analytics.models import RollupState, UnitRollup
from billing.models import ExchangeRate, Purchase
from offers.models import Offer
from offers.rules import HOLDOUT
from trials.models import Assignment, Trial, TrialEvent

WINDOW_DAYS = 90
COHORT_WEEKS = 13  # weeks since the trial's end in the cohort heatmap: 0 to 12
GAP_PATIENCE = timedelta(days=1)
OPEN_GAPS = 200  # at most this many missing ids in one batch are taken for open transactions
# Units per INSERT … SELECT: fewer, larger statements pay the fixed cost (planning, the scans of
# the trials) fewer times. Each names its ids four times, as one parameter each
# (config/lookups.py).
FOLD_CHUNK = 20_000
MONEY = DecimalField(max_digits=40, decimal_places=12)


class NotBuilt(Exception):
    """The rollups were never built: ``manage.py rebuild_rollups`` builds them."""


# --- Reading -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Slice:
    """The dashboards' filters: a variant (kept with the holdout it is measured against), a
    country, and the UTC days of assignment ``assigned_from`` to ``assigned_to``, inclusive."""

    variant: str | None = None
    country: str | None = None
    assigned_from: date | None = None  # first day, inclusive
    assigned_to: date | None = None  # last day, inclusive

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        """``[start, end)`` in time."""
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
    return RollupState.objects.filter(pk=1).values_list("as_of", flat=True).first()


def offer_metrics(
    offer: Offer,
    selection: Slice = Slice(),
    *,
    moment: datetime | None = None,
    claims: dict[str, list[queries.ClaimTimes]] | None = None,
) -> metrics.OfferMetrics:
    """Every figure of METRICS.md for ``offer``, as the engine gives it at ``moment`` (by default
    ``as_of()``; a page passes the one it read, so that all its parts are of one moment) with the
    window ``WINDOW_DAYS`` and the offer's grace. ``claims`` are ``claim_times`` of the same
    offer, selection and moment, when the caller has read them already (the offer's page, for
    its curve); they are read otherwise."""
    moment = moment or _moment()
    claims = claim_times(offer, selection, moment=moment) if claims is None else claims
    tally = _tallies([offer], selection, moment)[offer.pk]
    arms = dict(tally.arms)
    for arm, times in claims.items():
        arms[arm] = replace(arms.get(arm) or queries.ArmTally(arm=arm), claims=tuple(times))
    return _figures(offer, replace(tally, arms=arms), selection, moment)


def overview(
    offers: Iterable[Offer], selection: Slice = Slice(), *, moment: datetime | None = None
) -> metrics.OffersOverview:
    """Every offer's figures with the Benjamini-Hochberg adjustment across them. One query for
    all the offers; the overview has no time-to-convert figures (``time_to_convert`` has
    ``converters`` 0 and no quantiles), which need every claim: the offer's own page has them."""
    moment = moment or _moment()
    offers = list(offers)
    tallies = _tallies(offers, selection, moment)
    every = [(offer, _figures(offer, tallies[offer.pk], selection, moment)) for offer in offers]
    return metrics.overview_of(every, as_of=moment, window_days=WINDOW_DAYS, grace_days=None)


def claim_times(
    offer: Offer, selection: Slice = Slice(), *, moment: datetime | None = None
) -> dict[str, list[queries.ClaimTimes]]:
    """Each arm's claimed trials' times, for the Kaplan-Meier curve (analytics.stats)."""
    moment = moment or _moment()
    rows = _rows([offer], selection, moment).filter(claimed_at__lte=moment)
    return queries.claim_times_of(rows, arm="arm", as_of=moment, grace=timedelta(days=offer.grace_days))


def claim_times_by_offer(
    offers: Sequence[Offer], selection: Slice = Slice(), *, moment: datetime | None = None
) -> dict[int, list[queries.ClaimTimes]]:
    """Each offer's claimed trials' times, its variants together (keyed by offer id), for the
    overview's Kaplan-Meier curve per offer: one query per distinct grace, not one per offer."""
    moment = moment or _moment()
    claims: dict[int, list[queries.ClaimTimes]] = {}
    for grace_days in sorted({offer.grace_days for offer in offers}):
        same_grace = [offer for offer in offers if offer.grace_days == grace_days]
        rows = _rows(same_grace, selection, moment).filter(claimed_at__lte=moment).exclude(arm=HOLDOUT)
        claims |= queries.claim_times_of(rows, arm="offer_id", as_of=moment, grace=timedelta(days=grace_days))
    return claims


def claim_weeks(
    offers: Sequence[Offer], selection: Slice = Slice(), *, moment: datetime | None = None
) -> list[ClaimWeek]:
    """The "outcomes by claim week" chart: every week with a claim, per arm, oldest first, in one
    query for all of ``offers`` (arms of the same name in several offers are added up)."""
    moment = moment or _moment()
    rows = _rows(list(offers), selection, moment).filter(claimed_at__lte=moment)
    return [
        ClaimWeek(week=week, arm=arm, outcomes=outcomes)
        for (week, arm), outcomes in queries.claim_weeks_of(rows, arm="arm").items()
    ]


def cohorts(offers: Sequence[Offer], selection: Slice = Slice(), *, moment: datetime | None = None) -> Cohorts:
    """The cohort heatmap of ``offers`` together, in one query: claimers by the week their trial
    ended, and how many bought in each week since; weeks not over for the whole cohort are None."""
    moment = moment or _moment()
    bits = {f"bit{k}": F("cohort_weeks").bitand(1 << k) for k in range(COHORT_WEEKS)}
    grouped = (
        _rows(list(offers), selection, moment)
        .filter(claimed_at__lte=moment, ends_at__lte=moment)
        .alias(**bits)
        .values(week=TruncWeek("ends_at"))
        .annotate(n=Count("pk"), **{f"w{k}": Count("pk", filter=Q(**{f"bit{k}__gt": 0})) for k in range(COHORT_WEEKS)})
    )
    claimers, bought = {}, {}
    for row in grouped:
        monday = queries.day_of(row["week"])
        claimers[monday] = row["n"]
        bought[monday] = [row[f"w{k}"] for k in range(COHORT_WEEKS)]
    rows = queries.cohort_rows(claimers, bought, as_of=moment, weeks=COHORT_WEEKS)
    return Cohorts(as_of=moment, rows=tuple(rows))


def _moment() -> datetime:
    moment = as_of()
    if moment is None:
        raise NotBuilt("The rollups were never built: run `python manage.py rebuild_rollups`.")
    return moment


def _figures(offer: Offer, tally: queries.OfferTally, selection: Slice, moment: datetime) -> metrics.OfferMetrics:
    return metrics.metrics_from_tally(
        offer=offer,
        tally=tally,
        as_of=moment,
        window_days=WINDOW_DAYS,
        grace_days=offer.grace_days,
        variant=selection.variant,
    )


def _rows(offers: list[Offer], selection: Slice, moment: datetime) -> QuerySet[UnitRollup]:
    rows = UnitRollup.objects.filter(offer__in=offers, assigned_at__lte=moment)
    if selection.variant is not None:
        rows = rows.filter(arm__in=(selection.variant, HOLDOUT))
    if selection.country is not None:
        # Read through the customer, not copied into the row: a changed country shows at once
        # (on the overview, at the next moment of the rollups: analytics/overview.py).
        rows = rows.filter(assignment__customer__country=selection.country)
    start, end = selection.bounds()
    if start is not None:
        rows = rows.filter(assigned_at__gte=start)
    if end is not None:
        rows = rows.filter(assigned_at__lt=end)
    return rows.order_by()


def _tallies(offers: list[Offer], selection: Slice, moment: datetime) -> dict[int, queries.OfferTally]:
    """Each offer's tally, as ``analytics.queries.offer_tally`` counts it from the raw rows: one
    aggregate query per distinct grace (usually one for all the offers)."""
    window = timedelta(days=WINDOW_DAYS)
    tallies = {offer.pk: queries.OfferTally(arms={}, unconverted_rows=0) for offer in offers}
    for grace_days in sorted({offer.grace_days for offer in offers}):
        same_grace = [offer for offer in offers if offer.grace_days == grace_days]
        grace = timedelta(days=grace_days)
        rows = _rows(same_grace, selection, moment).values("offer_id", "arm").annotate(**_sums(moment, window, grace))
        arms: dict[int, dict[str, queries.ArmTally]] = {offer.pk: {} for offer in same_grace}
        unconverted = dict.fromkeys(arms, 0)
        for row in rows:
            offer_id, arm = row["offer_id"], row["arm"]
            unconverted[offer_id] += int(row["unconverted"] or 0)
            arms[offer_id][arm] = queries.ArmTally(
                arm=arm,
                assigned=row["assigned"],
                claimed=row["claimed"],
                conversion_mature=row["conversion_mature"],
                converted=row["converted"],
                pending=row["pending"],
                outcomes=tuple((name, row[f"outcome_{name}"]) for name in queries.OUTCOMES),
                itt=_window_tally(row, "itt"),
                post_trial=_window_tally(row, "post"),
            )
        for offer in same_grace:
            tallies[offer.pk] = queries.OfferTally(arms=arms[offer.pk], unconverted_rows=unconverted[offer.pk])
    return tallies


def _sums(moment: datetime, window: timedelta, grace: timedelta) -> dict:
    """The aggregates of one arm's unit rows: the engine's counts and sufficient statistics, with
    maturity decided here, at reading, per unit."""
    claimed = Q(claimed_at__lte=moment)
    decided = Q(ends_at__lte=moment - grace)  # D = ends_at + G ≤ T
    on_time = Q(converted_at__lte=F("ends_at") + grace)
    not_converted_by_t = Q(converted_at__isnull=True) | Q(converted_at__gt=moment)
    itt = Q(assigned_at__lte=moment - window)
    post = claimed & Q(ends_at__lte=moment - window)
    sums = {
        "assigned": Count("pk"),
        "claimed": Count("pk", filter=claimed),
        "conversion_mature": Count("pk", filter=claimed & decided),
        "converted": Count("pk", filter=claimed & decided & on_time),
        "pending": Count("pk", filter=claimed & ~decided & not_converted_by_t),
        **{
            f"outcome_{name}": Count("pk", filter=claimed & Q(status__in=statuses))
            for name, statuses in queries.OUTCOMES.items()
        },
        # A row outside a mature unit's itt window is counted once, in its post-trial window.
        "unconverted": Sum("itt_unconverted", filter=itt, default=0)
        + Sum("post_unconverted", filter=post & ~itt, default=0)
        + Sum("post_unconverted_outside", filter=post & itt, default=0),
    }
    for prefix, mature in (("itt", itt), ("post", post)):
        purchases, revenue = F(f"{prefix}_purchases"), F(f"{prefix}_revenue")
        sums |= {
            f"{prefix}_mature": Count("pk", filter=mature),
            f"{prefix}_buyers": Count("pk", filter=mature & Q(**{f"{prefix}_purchases__gte": 1})),
            f"{prefix}_repeat_buyers": Count("pk", filter=mature & Q(**{f"{prefix}_purchases__gte": 2})),
            f"{prefix}_purchases_sum": Sum(purchases, filter=mature),
            f"{prefix}_purchases_sq": Sum(purchases * purchases, filter=mature),
            f"{prefix}_revenue_sum": Sum(revenue, filter=mature, output_field=MONEY),
            f"{prefix}_revenue_sq": Sum(revenue * revenue, filter=mature, output_field=MONEY),
        }
    return sums


def _window_tally(row: dict, prefix: str) -> queries.WindowTally:
    return queries.WindowTally(
        mature=row[f"{prefix}_mature"],
        buyers=row[f"{prefix}_buyers"],
        repeat_buyers=row[f"{prefix}_repeat_buyers"],
        purchases_sum=int(row[f"{prefix}_purchases_sum"] or 0),
        purchases_sq=int(row[f"{prefix}_purchases_sq"] or 0),
        revenue_sum=queries.number(row[f"{prefix}_revenue_sum"]),
        revenue_sq=queries.number(row[f"{prefix}_revenue_sq"]),
    )


# --- Folding: raw rows into unit rows -------------------------------------------------------------
def fold(units: list[int] | range, *, moment: datetime) -> int:
    """Compute again, as of ``moment``, the rows of these units (assignment ids; a range is read
    as ids ``start ≤ id < stop``), in the caller's transaction. An id that is not (or no longer)
    a unit loses its row. Returns how many rows were written."""
    if isinstance(units, range):
        scopes = [Q(id__gte=units.start, id__lt=units.stop)]
    else:
        ordered = sorted(set(units))
        scopes = [Q(id__any=ordered[i : i + FOLD_CHUNK]) for i in range(0, len(ordered), FOLD_CHUNK)]
    if connection.vendor == "postgresql" and connection.in_atomic_block:
        with connection.cursor() as cursor:
            # The JIT compiles this statement afresh each time (about 0.2 s), more than a
            # refresh's fold takes to run; for the transaction only.
            cursor.execute("SET LOCAL jit = off")
    written = 0
    for scope in scopes:
        UnitRollup.objects.filter(_prefixed(scope, "assignment__")).delete()
        sql, params = _fold_sql(scope, moment)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            written += cursor.rowcount
    return written


def _prefixed(scope: Q, prefix: str) -> Q:
    """The condition on an assignment's id, said of an assignment reached through ``prefix``."""
    return Q(*[(f"{prefix}{name}", value) for name, value in scope.children])


COLUMNS = (
    "assignment_id",
    "offer_id",
    "arm",
    "assigned_at",
    "status",
    "claimed_at",
    "ends_at",
    "converted_at",
    "itt_purchases",
    "itt_revenue",
    "itt_unconverted",
    "post_purchases",
    "post_revenue",
    "post_unconverted",
    "post_unconverted_outside",
    "cohort_weeks",
    "folded_at",
)


def _fold_sql(scope: Q, moment: datetime) -> tuple[str, list]:
    """One INSERT … SELECT: the units, each joined once to its customer's regular ledger rows in
    any of its windows (the itt window, the post-trial window, the cohort's weeks since the
    trial's end), reduced per unit (``queries.per_unit_sql``) by sums over what each row is to
    that unit. The queries are the ORM's, so each backend gets its own datetime arithmetic.
    Rows go in by offer and time of assignment, the order the dashboards read them in: an
    offer's rows of one fold then sit together on disk, not one a page."""
    window, week = timedelta(days=WINDOW_DAYS), timedelta(days=7)
    claimed = Q(trial__status__in=queries.CLAIMED_STATUSES)

    def trial_field(name: str):
        return Case(When(claimed, then=F(f"trial__{name}")), default=Value(None))

    base = (
        Assignment.objects.filter(scope, customer__isnull=False, superseded_by__isnull=True)
        .order_by()
        .values(
            unit=F("id"),
            unit_offer=F("offer_id"),
            unit_arm=F("arm"),
            unit_assigned=F("assigned_at"),
            unit_status=Case(When(claimed, then=F("trial__status")), default=Value("")),
            unit_claimed=trial_field("claimed_at"),
            unit_ends=trial_field("ends_at"),
            unit_converted=trial_field("converted_at"),
        )
    )
    at_unit = _prefixed(scope, "customer__assignments__") & Q(customer__assignments__superseded_by__isnull=True)
    assigned, ends = F("customer__assignments__assigned_at"), F("customer__assignments__trial__ends_at")
    has_trial = Q(customer__assignments__trial__status__in=queries.CLAIMED_STATUSES)
    in_itt = Q(purchased_at__gte=assigned, purchased_at__lt=assigned + window)
    in_post = has_trial & Q(purchased_at__gte=ends, purchased_at__lt=ends + window)
    in_week = [
        has_trial & Q(purchased_at__gte=ends + week * k, purchased_at__lt=ends + week * (k + 1))
        for k in range(COHORT_WEEKS)
    ]

    rows = (
        Purchase.objects.filter(
            at_unit,
            # The itt window, or the longer of the post-trial window and the cohort's weeks.
            in_itt | (has_trial & Q(purchased_at__gte=ends, purchased_at__lt=ends + max(window, week * COHORT_WEEKS))),
            kind=Purchase.Kind.REGULAR,
        )
        .order_by()
        .values(
            unit_id=F("customer__assignments__id"),
            row_id=F("id"),
            positive=queries.flag(Q(amount__gt=0)),
            value=queries.revenue_expression(F("customer__assignments__offer__currency")),
            itt=queries.flag(in_itt),
            post=queries.flag(in_post),
            # 2^k for a row in week k since the trial's end, 0 outside those weeks.
            bit=Case(*[When(in_week[k], then=Value(1 << k)) for k in range(COHORT_WEEKS)], default=Value(0)),
        )
    )
    # What only the rollups keep: every rate-less post-trial row (the reading decides which
    # count), and a unit's bitmask, the sum of its distinct bits, which is their OR.
    kept = {
        "post_unconverted": "SUM(CASE WHEN r.post = 1 AND r.value IS NULL THEN 1 ELSE 0 END)",
        "bits": f"SUM(DISTINCT CASE WHEN {queries.PURCHASE} THEN r.bit ELSE 0 END)",
    }
    per_unit, per_unit_params = queries.per_unit_sql(
        rows,
        queries.refunded_rows(Assignment.objects.filter(scope), moment),
        group="r.unit_id",
        sums=queries.WINDOW_SUMS | kept,
    )
    base_sql, base_params = base.query.sql_with_params()
    sql = f"""
        INSERT INTO {UnitRollup._meta.db_table} ({", ".join(COLUMNS)})
        SELECT b.unit, b.unit_offer, b.unit_arm, b.unit_assigned, b.unit_status, b.unit_claimed, b.unit_ends,
               b.unit_converted, COALESCE(a.itt_n, 0), COALESCE(a.itt_revenue, 0), COALESCE(a.itt_unconverted, 0),
               COALESCE(a.post_n, 0), COALESCE(a.post_revenue, 0), COALESCE(a.post_unconverted, 0),
               COALESCE(a.post_outside, 0), COALESCE(a.bits, 0), %s
        FROM ({base_sql}) b
        LEFT JOIN ({per_unit}) a ON a.unit_id = b.unit
        ORDER BY b.unit_offer, b.unit_assigned
    """  # noqa: S608 (every part is the ORM's, its parameters passed apart)
    folded_at = connection.ops.adapt_datetimefield_value(moment)
    return sql, [folded_at, *base_params, *per_unit_params]


# --- Building and refreshing ------------------------------------------------------------------
@dataclass(frozen=True)
class Refreshed:
    units: int  # unit rows written
    batches: int
    as_of: datetime


def rebuild(*, progress: Callable[[int, int], None] | None = None, step: int = 250_000) -> Refreshed:
    """Every unit row made again from the raw rows, in one transaction (the dashboards read the old
    rows until it commits). ``progress(done, total)`` is told the assignment ids done."""
    with transaction.atomic():
        state = _state_locked()
        moment = timezone.now()
        marks = {
            "assignment_id": _last_id(Assignment),
            "purchase_id": _last_id(Purchase),
            "event_id": _last_id(TrialEvent),
            "rate_id": _last_id(ExchangeRate),
        }
        if connection.vendor == "postgresql":
            # Fresh statistics first: on tables just filled (a restore, an import, the demo data)
            # the planner's guesses can make the fold's joins nested loops over whole tables.
            with connection.cursor() as cursor:
                for model in (Assignment, Purchase, TrialEvent, ExchangeRate, User, Trial):
                    cursor.execute(f"ANALYZE {model._meta.db_table}")
        UnitRollup.objects.all().delete()
        first = Assignment.objects.order_by("pk").values_list("pk", flat=True).first() or 1
        last = marks["assignment_id"]
        written = batches = 0
        for start in range(first, last + 1, step):
            written += fold(range(start, min(start + step, last + 1)), moment=moment)
            batches += 1
            if progress is not None:
                progress(min(start + step, last + 1) - first, last + 1 - first)
        if state is None:
            state = RollupState(pk=1)
        for name, value in marks.items():
            setattr(state, name, value)
        state.gaps = {}
        state.as_of = state.built_at = moment
        state.save()
    return Refreshed(units=written, batches=batches, as_of=moment)


def refresh(*, batch: int = 20_000) -> Refreshed:
    """Fold what changed since the last refresh, in batches of at most ``batch`` ids of each
    source, each batch its own transaction; then move ``as_of`` to now. Builds the rollups when
    they were never built."""
    if as_of() is None:
        return rebuild()
    written = batches = 0
    while True:
        with transaction.atomic():
            state = _state_locked()
            moment = timezone.now()
            dirty = _next_batch(state, batch=batch, moment=moment)
            if dirty is None:
                state.save(update_fields=["gaps"])  # the gaps it gave up on
                break
            written += fold(dirty, moment=moment)
            batches += 1
            state.save()
    with transaction.atomic():
        state = _state_locked()
        moment = timezone.now()
        written += fold(_refunds_come_due(state.as_of, moment), moment=moment)
        state.as_of = moment
        state.save(update_fields=["as_of"])
    return Refreshed(units=written, batches=batches, as_of=moment)


def _state_locked() -> RollupState | None:
    return RollupState.objects.select_for_update().filter(pk=1).first()


def _last_id(model) -> int:
    return model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


SOURCES = {
    # watermark field: (table, the units that a row of it changes, given the rows' ids)
    "assignment_id": (Assignment, lambda ids: Assignment.objects.filter(pk__any=ids)),
    # From the purchases' customers straight to their assignments, not through the users' table.
    "purchase_id": (
        Purchase,
        lambda ids: Assignment.objects.filter(customer__in=Purchase.objects.filter(pk__any=ids).values("customer")),
    ),
    "event_id": (TrialEvent, lambda ids: Assignment.objects.filter(trial__events__id__any=ids)),
    "rate_id": (
        ExchangeRate,
        lambda ids: Assignment.objects.filter(
            offer__currency__in=ExchangeRate.objects.filter(pk__any=ids).values("to_currency")
        ),
    ),
}


def _next_batch(state: RollupState, *, batch: int, moment: datetime) -> set[int] | None:
    """The units changed by the next ``batch`` rows of each source past its watermark (and by
    rows that filled a gap), with the watermarks and gaps moved on in ``state``; None when
    nothing is left."""
    dirty: set[int] = set()
    moved = False
    gaps = {name: dict(state.gaps.get(name, {})) for name in SOURCES}
    for name, (model, units_of) in SOURCES.items():
        mark = getattr(state, name)
        ids = list(model.objects.filter(pk__gt=mark).order_by("pk").values_list("pk", flat=True)[:batch])
        filled = list(model.objects.filter(pk__in=[int(gap) for gap in gaps[name]]).values_list("pk", flat=True))
        for gap in filled:
            del gaps[name][str(gap)]
        for gap, first_missed in list(gaps[name].items()):
            if moment - datetime.fromisoformat(first_missed) > GAP_PATIENCE:
                del gaps[name][gap]
        if ids:
            present = set(ids)
            # With no row seen yet there is no position to count from (PostgreSQL's sequences
            # do not start again at 1): the first id seen is the start.
            start = mark + 1 if mark else ids[0]
            missing = [gap for gap in range(start, ids[-1]) if gap not in present]
            # A few missing ids are inserts not committed yet; many are deleted rows, a
            # sequence that started higher (PostgreSQL keeps counting after a rollback or a
            # flush) or a sequence's cache: those are no gap to wait for.
            if len(missing) <= OPEN_GAPS:
                for gap in missing:
                    gaps[name].setdefault(str(gap), moment.isoformat())
            setattr(state, name, ids[-1])
        changed = ids + filled
        if changed:
            moved = True
            dirty.update(units_of(changed).values_list("pk", flat=True))
    # A visitor's row that joined an account since (its id was passed before it had a customer).
    # Only a row made for a visitor can join later, so the search stays among those.
    joined = list(
        Assignment.objects.filter(
            visitor__isnull=False,
            customer__isnull=False,
            superseded_by__isnull=True,
            pk__lte=state.assignment_id,
            rollup__isnull=True,
        ).values_list("pk", flat=True)[:batch]
    )
    if joined:
        moved = True
        dirty.update(joined)
    state.gaps = {name: value for name, value in gaps.items() if value}
    return dirty if moved else None


def _refunds_come_due(since: datetime, moment: datetime) -> set[int]:
    """Units with a refund dated in ``(since, moment]`` after their row was folded: as of
    ``moment`` it undoes a purchase that their row still counts."""
    due = UnitRollup.objects.filter(
        assignment__customer__in=refunds_between(since, moment).values("customer"),
        folded_at__lt=Subquery(
            refunds_between(since, moment)
            .filter(customer=OuterRef("assignment__customer"))
            .order_by("-purchased_at")
            .values("purchased_at")[:1]
        ),
    )
    return set(due.values_list("pk", flat=True))


def refunds_between(since: datetime, moment: datetime) -> QuerySet[Purchase]:
    """The ledger's refunds dated in ``(since, moment]``: a few percent of its rows, found through
    their own partial index (billing.models.Purchase)."""
    return Purchase.objects.filter(refund_of__isnull=False, purchased_at__gt=since, purchased_at__lte=moment)
