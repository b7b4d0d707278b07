"""The metrics' SQL: one offer's assignments, trials and purchases reduced, in the database, to
per-arm counts and sufficient statistics (count, sum, sum of squares) that analytics/metrics.py
turns into rates, means, intervals and tests. Nothing here loops over purchases in Python.

Three queries per offer, whatever its size (and a look at which currencies have a rate):

1. the units grouped by arm: assigned, claimed, conversion and outcome counts, and how many
   units and claims have a mature window;
2. the claimed trials' claim, conversion and end times (one small row per claim, for the
   Kaplan-Meier curve and the quantiles of the time to convert, which need every time);
3. the purchase windows, from assignment (``itt``) and from the trial's end (``post_trial``):
   each unit's ledger rows read once for both, grouped by unit in an inner query and by arm in
   an outer one, so that the database hands back sums and sums of squares, not customers.

An offer's trials are joined among its own (``unit_trial``), through their offer index.

The same code runs on PostgreSQL and on SQLite (``make run``). The inner queries are built with
the ORM, which writes each backend's datetime arithmetic (``assigned_at + N days``); the outer
ones are plain SQL over the inner one's named columns. Only the window's far end depends on the
row; every bound that depends on the request alone (``T - N``, ``T - G``) is computed here in
Python and passed as a parameter.
"""

from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import (
    BooleanField,
    Case,
    Count,
    DateTimeField,
    DecimalField,
    DurationField,
    Exists,
    F,
    FilteredRelation,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import TruncWeek

from billing.models import ExchangeRate, Purchase
from offers.models import Offer
from offers.money import places
from trials.models import Assignment, Trial


@contextmanager
def analytic_read():
    """Around a dashboard's or a metrics answer's reads: on PostgreSQL, in a transaction with the
    JIT off. The planner sends any query it prices high to the JIT, which compiles it afresh each
    time: 50 to 100 ms for an aggregate of a few dozen columns (bench/bench_rollups.py), more
    than the ten thousand rows it reads take. A decorator too. On SQLite it does nothing: there
    a transaction would take the write lock (the project's IMMEDIATE transactions)."""
    if connection.vendor != "postgresql":
        yield
        return
    # Inside a caller's transaction, a SET LOCAL that succeeds would last until that one ends:
    # the value before is put back. After an error the savepoint's rollback undoes it.
    outer = connection.in_atomic_block
    with transaction.atomic():
        with connection.cursor() as cursor:
            if outer:
                cursor.execute("SHOW jit")
                (before,) = cursor.fetchone()
            cursor.execute("SET LOCAL jit = off")
        yield
        if outer:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('jit', %s, true)", [before])


# A claim in progress (``reserved``) or given up (``abandoned``) is not a claim: the customer
# never agreed to the terms. Every other state is a claimed trial.
CLAIMED_STATUSES = (
    Trial.Status.ACTIVE,
    Trial.Status.CONVERTING,
    Trial.Status.CONVERTED,
    Trial.Status.PAYMENT_FAILED,
    Trial.Status.CANCELLED,
    Trial.Status.EXPIRED,
)
# METRICS.md's outcomes by the trial's current state; a trial still running (or being charged
# right now) is ``pending``.
OUTCOMES = {
    "converted": (Trial.Status.CONVERTED,),
    "cancelled": (Trial.Status.CANCELLED,),
    "expired": (Trial.Status.EXPIRED,),
    "payment_failed": (Trial.Status.PAYMENT_FAILED,),
    "pending": (Trial.Status.ACTIVE, Trial.Status.CONVERTING),
}


@dataclass(frozen=True)
class UnitFilter:
    """Which units an analysis takes: one offer's, optionally one arm, the customers of one
    country, and those assigned in ``[assigned_from, assigned_to)``."""

    offer: Offer
    arms: tuple[str, ...] | None = None
    country: str | None = None
    assigned_from: datetime | None = None
    assigned_to: datetime | None = None

    def q(self, prefix: str = "") -> Q:
        """The condition on an Assignment reached through ``prefix`` (``customer__assignments__``)."""
        conditions = {
            f"{prefix}offer": self.offer,
            f"{prefix}customer__isnull": False,
            # An anonymous row superseded by the account's own older one is the same person, and
            # the account's row is the unit (trials.services.assignments_join).
            f"{prefix}superseded_by__isnull": True,
        }
        if self.arms is not None:
            conditions[f"{prefix}arm__in"] = self.arms
        if self.country is not None:
            conditions[f"{prefix}customer__country"] = self.country
        if self.assigned_from is not None:
            conditions[f"{prefix}assigned_at__gte"] = self.assigned_from
        if self.assigned_to is not None:
            conditions[f"{prefix}assigned_at__lt"] = self.assigned_to
        return Q(**conditions)

    def units(self) -> QuerySet[Assignment]:
        """The units: a customer's one assignment to the offer. The unique (offer, customer) makes
        it one row per person, so no "first per customer" step is needed once the customer-less
        and superseded rows are left out."""
        return Assignment.objects.filter(self.q()).order_by()


@dataclass(frozen=True)
class WindowTally:
    """One arm's purchases over one kind of window, as sufficient statistics.

    ``purchases_sum``/``purchases_sq`` are the sum over mature units of each unit's purchase
    count and of its square; ``revenue_sum``/``revenue_sq`` the same for its revenue, in minor
    units of the offer's currency (an int, or a Decimal or float once a rate was applied)."""

    mature: int = 0
    buyers: int = 0
    repeat_buyers: int = 0
    purchases_sum: int = 0
    purchases_sq: int = 0
    revenue_sum: int | Decimal | float = 0
    revenue_sq: int | Decimal | float = 0


@dataclass(frozen=True)
class ClaimTimes:
    """``count`` claimed trials observed for ``observed`` (from the claim to their conversion if it
    happened by ``T``, else to ``T``); ``converted`` when that is a conversion, ``on_time`` when it
    also counts in ``conversion.converted`` (decided by ``T``, converted by ``D``)."""

    observed: timedelta
    converted: bool
    on_time: bool
    count: int


@dataclass(frozen=True)
class ArmTally:
    arm: str
    assigned: int = 0
    claimed: int = 0
    conversion_mature: int = 0
    converted: int = 0
    pending: int = 0
    outcomes: tuple[tuple[str, int], ...] = tuple((name, 0) for name in OUTCOMES)
    itt: WindowTally = WindowTally()
    post_trial: WindowTally = WindowTally()
    claims: tuple[ClaimTimes, ...] = ()


@dataclass(frozen=True)
class OfferTally:
    arms: dict[str, ArmTally]
    unconverted_rows: int


def offer_tally(*, units: UnitFilter, as_of: datetime, window_days: int, grace_days: int) -> OfferTally:
    window, grace = timedelta(days=window_days), timedelta(days=grace_days)
    counts = _unit_counts(units=units, as_of=as_of, window=window, grace=grace)
    claims = claim_times(units=units, as_of=as_of, grace=grace)
    revenue = revenue_expression(units.offer.currency)
    itt, post, unconverted = _window_sums(units=units, as_of=as_of, window=window, revenue=revenue)
    arms = {}
    for arm in sorted(set(counts) | set(claims)):
        row = counts.get(arm, {})
        arms[arm] = ArmTally(
            arm=arm,
            assigned=row.get("assigned", 0),
            claimed=row.get("claimed", 0),
            conversion_mature=row.get("conversion_mature", 0),
            converted=row.get("converted", 0),
            pending=row.get("pending", 0),
            outcomes=tuple((name, row.get(f"outcome_{name}", 0)) for name in OUTCOMES),
            itt=_tally(row.get("itt_mature", 0), itt.get(arm)),
            post_trial=_tally(row.get("post_trial_mature", 0), post.get(arm)),
            claims=tuple(claims.get(arm, ())),
        )
    return OfferTally(arms=arms, unconverted_rows=unconverted)


# --- 1. Units and claims ---------------------------------------------------------------------
def _unit_counts(*, units: UnitFilter, as_of: datetime, window: timedelta, grace: timedelta) -> dict[str, dict]:
    claimed = Q(unit_trial__claimed_at__lte=as_of, unit_trial__status__in=CLAIMED_STATUSES)
    decided = Q(unit_trial__ends_at__lte=as_of - grace)  # D = ends_at + G ≤ T
    on_time = Q(unit_trial__converted_at__lte=F("unit_trial__ends_at") + grace)
    not_converted_by_t = Q(unit_trial__converted_at__isnull=True) | Q(unit_trial__converted_at__gt=as_of)
    outcomes = {
        f"outcome_{name}": Count("pk", filter=claimed & Q(unit_trial__status__in=statuses))
        for name, statuses in OUTCOMES.items()
    }
    rows = (
        units.units()
        .alias(unit_trial=unit_trial("trial", units.offer))
        .filter(assigned_at__lte=as_of)
        .values("arm")
        .annotate(
            assigned=Count("pk"),
            claimed=Count("pk", filter=claimed),
            conversion_mature=Count("pk", filter=claimed & decided),
            converted=Count("pk", filter=claimed & decided & on_time),
            pending=Count("pk", filter=claimed & ~decided & not_converted_by_t),
            itt_mature=Count("pk", filter=Q(assigned_at__lte=as_of - window)),
            post_trial_mature=Count("pk", filter=claimed & Q(unit_trial__ends_at__lte=as_of - window)),
            **outcomes,
        )
    )
    return {row.pop("arm"): row for row in rows}


def claimed_trials(units: UnitFilter, as_of: datetime) -> QuerySet[Trial]:
    """The units' trials claimed by ``as_of``, taken by the trial's own offer too (its
    assignment's: trials/migrations/0007), for that index."""
    return Trial.objects.filter(
        units.q("assignment__"),
        offer=units.offer,
        claimed_at__lte=as_of,
        status__in=CLAIMED_STATUSES,
        assignment__assigned_at__lte=as_of,
    )


def claim_times(*, units: UnitFilter, as_of: datetime, grace: timedelta) -> dict[str, list[ClaimTimes]]:
    return claim_times_of(claimed_trials(units, as_of), arm="assignment__arm", as_of=as_of, grace=grace)


def claim_times_of(rows: QuerySet, *, arm: str, as_of: datetime, grace: timedelta) -> dict[str, list[ClaimTimes]]:
    """``claim_times`` of rows that are each one claimed trial, with its ``claimed_at``,
    ``converted_at`` and ``ends_at`` and its arm at ``arm``: trials, or the rollups' units."""
    converted = Q(converted_at__lte=as_of)
    moment = DateTimeField()
    grouped = (
        rows.order_by()
        .values(
            arm_name=F(arm),
            observed=Case(
                When(converted, then=F("converted_at") - F("claimed_at")),
                default=Value(as_of, output_field=moment) - F("claimed_at"),
                output_field=DurationField(),
            ),
            converted=Case(When(converted, then=Value(True)), default=Value(False), output_field=BooleanField()),
            on_time=Case(
                When(converted_at__lte=F("ends_at") + grace, ends_at__lte=as_of - grace, then=Value(True)),
                default=Value(False),
                output_field=BooleanField(),
            ),
        )
        .annotate(count=Count("pk"))
    )
    claims: dict[str, list[ClaimTimes]] = {}
    for row in grouped:
        name = row.pop("arm_name")
        claims.setdefault(name, []).append(ClaimTimes(**row))
    return claims


def claim_weeks(*, units: UnitFilter, as_of: datetime) -> dict[tuple[date, str], dict[str, int]]:
    """Claimed trials by (Monday of the claim's week, arm), each with its outcome counts, sorted."""
    return claim_weeks_of(claimed_trials(units, as_of), arm="assignment__arm")


def claim_weeks_of(rows: QuerySet, *, arm: str) -> dict[tuple[date, str], dict[str, int]]:
    """``claim_weeks`` of rows that are each one claimed trial, with its ``claimed_at`` and
    ``status`` and its arm at ``arm``: trials, or the rollups' units."""
    grouped = rows.order_by().values("status", week=TruncWeek("claimed_at"), arm_name=F(arm)).annotate(n=Count("pk"))
    outcome_of = {status: name for name, statuses in OUTCOMES.items() for status in statuses}
    weeks: dict[tuple[date, str], dict[str, int]] = {}
    for row in grouped:
        counts = weeks.setdefault((day_of(row["week"]), row["arm_name"]), dict.fromkeys(OUTCOMES, 0))
        counts[outcome_of[row["status"]]] += row["n"]
    return dict(sorted(weeks.items()))


# --- 2. Purchase windows ---------------------------------------------------------------------
def revenue_expression(target: str | F) -> Case:
    """A ledger row's amount in minor units of ``target``, or NULL when it is in another currency
    with no rate in force at ``purchased_at`` (billing.ExchangeRate). ``target`` is a currency
    code (one offer's), or ``F(path)`` to the currency of each row's own offer (the rollups,
    which fold the units of many offers at once)."""
    per_row = isinstance(target, F)
    rate = Subquery(
        ExchangeRate.objects.filter(
            currency=OuterRef("currency"),
            to_currency=OuterRef(target.name) if per_row else target,
            valid_from__lte=OuterRef("purchased_at"),
        )
        .order_by("-valid_from")
        .values("rate")[:1]
    )
    money = DecimalField(max_digits=40, decimal_places=12)
    pairs = ExchangeRate.objects.order_by().values_list("currency", "to_currency").distinct()
    if not per_row:
        pairs = pairs.filter(to_currency=target)
    conversions = []
    for source, to in pairs:
        # The rate is between major units: scale by the two currencies' decimals (JPY has none).
        scale = Decimal(10) ** (places(to) - places(source))
        condition = Q(currency=source, **({target.name: to} if per_row else {}))
        conversions.append(When(condition, then=F("amount") * rate * Value(scale, output_field=money)))
    return Case(
        When(currency=target, then=F("amount")),
        *conversions,
        default=Value(None),
        output_field=money,
    )


def unit_trial(path: str, offer: Offer) -> FilteredRelation:
    """The trial at ``path`` (a unit's), joined only among ``offer``'s trials. A trial is of its
    assignment's offer, which the database holds (trials/migrations/0007), so this changes no
    row; it lets the planner read the offer's few trials through their own index instead of
    hashing the whole table."""
    return FilteredRelation(path, condition=Q(**{f"{path}__offer": offer}))


def is_purchase(as_of: datetime) -> Q:
    """METRICS.md's purchase: a positive ``regular`` row that no refund points at. A refund made
    after ``T`` was not there at ``T``, so it does not undo the purchase as of ``T``. For one row at
    a time (the cohorts); the windows' reductions say the same with a join (``per_unit_sql``)."""
    refunded = Purchase.objects.filter(refund_of=OuterRef("pk"), purchased_at__lte=as_of)
    return Q(amount__gt=0) & ~Exists(refunded)


def flag(condition: Q) -> Case:
    """1 where ``condition`` holds, else 0: a row's part in a window, summed in plain SQL."""
    return Case(When(condition, then=Value(1)), default=Value(0))


def refunded_rows(units: QuerySet[Assignment], as_of: datetime) -> QuerySet[Purchase]:
    """The ids (``refunded``) of the ledger rows of these units' customers that a refund dated by
    ``as_of`` points at. A refund has its purchase's customer (billing.ledger.refund_record and
    the import both refuse another), so the units' customers' own refunds are all there is."""
    return (
        Purchase.objects.filter(
            refund_of__isnull=False, purchased_at__lte=as_of, customer__in=units.order_by().values("customer")
        )
        .order_by()
        .values(refunded=F("refund_of"))
        .distinct()
    )


# A window's row is a purchase (``is_purchase``) when it is positive and no refund points at it.
PURCHASE = "r.positive = 1 AND f.refunded IS NULL"
# Each unit's purchases, revenue and rate-less rows over its two windows, from rows that carry the
# flags ``itt`` and ``post`` (their windows), ``positive``, ``value`` (the revenue expression) and
# ``row_id``. A rate-less row in both windows is counted once, in ``itt`` (``post_outside``).
WINDOW_SUMS = {
    "itt_n": f"SUM(CASE WHEN r.itt = 1 AND {PURCHASE} THEN 1 ELSE 0 END)",
    "itt_revenue": "SUM(CASE WHEN r.itt = 1 THEN r.value END)",
    "itt_unconverted": "SUM(CASE WHEN r.itt = 1 AND r.value IS NULL THEN 1 ELSE 0 END)",
    "post_n": f"SUM(CASE WHEN r.post = 1 AND {PURCHASE} THEN 1 ELSE 0 END)",
    "post_revenue": "SUM(CASE WHEN r.post = 1 THEN r.value END)",
    "post_outside": "SUM(CASE WHEN r.post = 1 AND r.itt = 0 AND r.value IS NULL THEN 1 ELSE 0 END)",
}


def per_unit_sql(rows: QuerySet, refunded: QuerySet, *, group: str, sums: dict[str, str]) -> tuple[str, list]:
    """``rows`` (ledger rows, each once per unit) reduced per ``group`` (columns of ``r``) to
    ``sums``, with ``f.refunded`` set where a refund points at the row. Plain SQL over the ORM's
    queries: the refund is a join here, a hash join when the rows are many (a rebuild of the
    rollups) and index probes when they are few, where the ORM's ``Exists`` is a probe per row."""
    rows_sql, rows_params = rows.query.sql_with_params()
    refunded_sql, refunded_params = refunded.query.sql_with_params()
    columns = ", ".join(f"{sql} AS {name}" for name, sql in sums.items())
    sql = f"""
        SELECT {group}, {columns}
        FROM ({rows_sql}) r
        LEFT JOIN ({refunded_sql}) f ON f.refunded = r.row_id
        GROUP BY {group}
    """  # noqa: S608 (the ORM's queries, with their parameters passed apart)
    return sql, [*rows_params, *refunded_params]


def _window_rows(*, units: UnitFilter, as_of: datetime, window: timedelta, revenue: Case) -> QuerySet:
    """Each ``regular`` ledger row in a mature unit's itt window ``[assigned_at, assigned_at + N)``
    or in a mature claim's post-trial window ``[ends_at, ends_at + N)``, once per unit, flagged
    with its windows: the ledger is read once for both."""
    unit = "customer__assignments__"
    assigned, ends = F(f"{unit}assigned_at"), F("unit_trial__ends_at")
    in_itt = Q(
        customer__assignments__assigned_at__lte=as_of - window,
        purchased_at__gte=assigned,
        purchased_at__lt=assigned + window,
    )
    in_post = Q(
        customer__assignments__assigned_at__lte=as_of,
        unit_trial__claimed_at__lte=as_of,
        unit_trial__status__in=CLAIMED_STATUSES,
        unit_trial__ends_at__lte=as_of - window,
        purchased_at__gte=ends,
        purchased_at__lt=ends + window,
    )
    return (
        Purchase.objects.alias(unit_trial=unit_trial(f"{unit}trial", units.offer))
        .filter(units.q(unit), in_itt | in_post, kind=Purchase.Kind.REGULAR)
        .order_by()
        .values(
            unit_id=F(f"{unit}id"),
            arm_name=F(f"{unit}arm"),
            row_id=F("id"),
            positive=flag(Q(amount__gt=0)),
            value=revenue,
            itt=flag(in_itt),
            post=flag(in_post),
        )
    )


def _window_sums(
    *, units: UnitFilter, as_of: datetime, window: timedelta, revenue: Case
) -> tuple[dict[str, dict], dict[str, dict], int]:
    """Both windows' per-unit rows summed by arm in the database: ``(itt sums by arm, post-trial
    sums by arm, unconverted rows)``."""
    rows = _window_rows(units=units, as_of=as_of, window=window, revenue=revenue)
    inner, params = per_unit_sql(
        rows, refunded_rows(units.units(), as_of), group="r.unit_id, r.arm_name", sums=WINDOW_SUMS
    )
    columns = ", ".join(
        f"SUM(CASE WHEN {p}_n >= 1 THEN 1 ELSE 0 END), SUM(CASE WHEN {p}_n >= 2 THEN 1 ELSE 0 END), "
        f"SUM({p}_n), SUM({p}_n * {p}_n), SUM({p}_revenue), SUM({p}_revenue * {p}_revenue)"
        for p in ("itt", "post")
    )
    sql = f"""
        SELECT arm_name, {columns}, SUM(itt_unconverted), SUM(post_outside)
        FROM ({inner}) per_unit
        GROUP BY arm_name
    """  # noqa: S608 (the inner query is the ORM's, with its parameters passed apart)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    itt, post, unconverted = {}, {}, 0
    for arm, *figures, itt_left_out, post_left_out in rows:
        for sums, values in ((itt, figures[:6]), (post, figures[6:])):
            buyers, repeat_buyers, n_sum, n_sq, revenue_sum, revenue_sq = values
            sums[arm] = {
                "buyers": int(buyers or 0),
                "repeat_buyers": int(repeat_buyers or 0),
                "purchases_sum": int(n_sum or 0),
                "purchases_sq": int(n_sq or 0),
                "revenue_sum": number(revenue_sum),
                "revenue_sq": number(revenue_sq),
            }
        unconverted += int(itt_left_out or 0) + int(post_left_out or 0)
    return itt, post, unconverted


# --- 3. Repeat purchase by weeks since the trial's end ------------------------------------------
@dataclass(frozen=True)
class CohortRow:
    week: date  # the Monday of the week the cohort's trials ended
    claimers: int
    buyers: tuple[int | None, ...]  # per week since the end; None: that week is not over for all by T


def repeat_cohorts(*, units: UnitFilter, as_of: datetime, weeks: int) -> list[CohortRow]:
    """The claimed trials that ended by ``T``, grouped by the week they ended; for each week ``k``
    since the end, how many of them made a purchase in ``[ends_at + 7k, ends_at + 7(k + 1))``.
    A cell is None until that week is over for every trial of the cohort (the cohort's Monday
    plus ``7(k + 2)`` days), so an unfinished week is never shown as a low rate."""
    claimed = {
        "assignment__assigned_at__lte": as_of,
        "claimed_at__lte": as_of,
        "status__in": CLAIMED_STATUSES,
        "ends_at__lte": as_of,
    }
    claimers = {
        day_of(row["week"]): row["n"]
        for row in Trial.objects.filter(units.q("assignment__"), **claimed)
        .order_by()
        .values(week=TruncWeek("ends_at"))
        .annotate(n=Count("pk"))
    }
    week = timedelta(days=7)
    start = F("customer__trials__ends_at")
    per_trial = (
        Purchase.objects.filter(
            units.q("customer__trials__assignment__"),
            **{f"customer__trials__{name}": value for name, value in claimed.items()},
            kind=Purchase.Kind.REGULAR,
            purchased_at__gte=start,
            purchased_at__lt=start + week * weeks,
            purchased_at__lte=as_of,
        )
        .order_by()
        .values(claim_id=F("customer__trials__id"), week=TruncWeek("customer__trials__ends_at"))
        .annotate(
            **{
                f"w{k}": Count(
                    "pk",
                    filter=is_purchase(as_of)
                    & Q(purchased_at__gte=start + week * k, purchased_at__lt=start + week * (k + 1)),
                )
                for k in range(weeks)
            }
        )
    )
    inner, params = per_trial.query.sql_with_params()
    columns = ", ".join(f"SUM(CASE WHEN w{k} >= 1 THEN 1 ELSE 0 END)" for k in range(weeks))
    sql = f"SELECT week, {columns} FROM ({inner}) per_trial GROUP BY week"  # noqa: S608 (the ORM's, parameters apart)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        bought = {day_of(row[0]): [int(value or 0) for value in row[1:]] for row in cursor.fetchall()}
    return cohort_rows(claimers, bought, as_of=as_of, weeks=weeks)


def cohort_rows(
    claimers: dict[date, int], bought: dict[date, list[int]], *, as_of: datetime, weeks: int
) -> list[CohortRow]:
    """The heatmap's rows from each cohort's size and its buyers per week since the end, with the
    weeks not yet over for every trial of the cohort blanked (None)."""
    week = timedelta(days=7)
    rows = []
    for monday, n in sorted(claimers.items()):
        counts = bought.get(monday, [0] * weeks)
        over = [datetime.combine(monday, time(), tzinfo=UTC) + week * (k + 2) <= as_of for k in range(weeks)]
        rows.append(
            CohortRow(
                week=monday, claimers=n, buyers=tuple(c if o else None for c, o in zip(counts, over, strict=True))
            )
        )
    return rows


def day_of(value) -> date:
    """A TruncWeek value as a date, whether the backend handed back a datetime or (SQLite, in raw
    SQL) its text."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.date() if isinstance(value, datetime) else value


def number(value) -> int | Decimal | float:
    if value is None:
        return 0
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    return value


def _tally(mature: int, sums: dict | None) -> WindowTally:
    return WindowTally(mature=mature, **(sums or {}))


def arms_of(tallies: Iterable[ArmTally]) -> list[str]:
    return [tally.arm for tally in tallies]
