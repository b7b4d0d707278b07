"""The dashboards' charts: pure functions from the metric dataclasses to a ``Chart``, which holds
the Plotly figure (``fig.to_plotly_json()``, drawn by static/js/dashboard.js), the plain table
under it, and the rows of its CSV. No ORM here: the views read analytics.rollups and pass the
results in.

A chart's table and its CSV are the same rows, the CSV with the engine's unrounded numbers. A
rate whose denominator is zero is None: it is left out of the figure and shown as "—". A chart
with nothing to count has no figure, only its ``empty`` sentence, never a chart of zeros.

Colours: on an offer's page each arm keeps one colour on every chart; on the overview each offer
does. The holdout is grey everywhere (analytics.dashboard.arm_colours).
"""

import math
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date

import plotly.graph_objects as go
from django.utils.formats import date_format, number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from plotly.subplots import make_subplots

from analytics import dashboard, metrics, queries, stats
from analytics.dashboard import HOLDOUT_COLOUR
from analytics.rollups import ClaimWeek, Cohorts
from offers.money import places
from offers.rules import HOLDOUT

# "95% low" reads to gettext as a "% l" conversion: these words carry no placeholder.
# xgettext:no-python-format
CI_LOW = gettext_lazy("95% low")
# xgettext:no-python-format
CI_HIGH = gettext_lazy("95% high")
# xgettext:no-python-format
CONVERSION_TITLE = gettext_lazy("Conversion by variant, with 95% intervals")

# The curve is read off every half day, or more sparsely for a long one, so that no curve ships
# (nor tables, nor CSV) more than about KM_POINTS points, whatever the offer's age.
KM_STEP_DAYS = 0.5
KM_POINTS = 120
# The overview draws the curves of this many offers, those with the most claims: beyond a handful
# the lines cannot be told apart, and each curve needs every claim's time.
KM_OVERVIEW_OFFERS = 8
OUTCOME_COLOURS = {
    "converted": "#009e73",
    "cancelled": "#d55e00",
    "expired": "#e69f00",
    "payment_failed": "#cc79a7",
    "pending": "#56b4e9",
}
EMPTY = "—"
# Every kind of trace the charts draw (tests/config/test_startup.py checks that none is missing).
TRACES = (go.Bar, go.Funnel, go.Heatmap, go.Scatter, go.Waterfall)


def warm_up() -> None:
    """Build a throwaway figure with one trace of each kind, on subplots: Plotly makes the
    objects that check each kind's properties on its first use, and they then live as long as
    the process (config/startup.py freezes them with the rest of what a web process loads)."""
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, subplot_titles=["", ""])
    for trace in TRACES:
        figure.add_trace(trace(), row=1, col=1)
    figure.update_layout(_layout(height=100))
    figure.to_plotly_json()


@dataclass(frozen=True)
class Column:
    key: str  # the CSV header
    label: str  # the table header
    kind: str = "text"  # how the table shows it: text, int, rate, points, money, p, days


@dataclass(frozen=True)
class Chart:
    key: str  # in the CSV's URL: ?csv=<key>
    title: str
    n: int
    n_label: str  # what ``n`` counts, e.g. "customers assigned"
    window: str
    columns: tuple[Column, ...]
    rows: tuple[tuple, ...]
    figure: dict | None = None
    warnings: tuple[str, ...] = ()
    note: str = ""  # what the chart leaves out, said under its title
    empty: str = ""
    tiles: tuple[tuple[str, str], ...] = ()  # (label, value) for the KPI tiles

    @property
    def dom_id(self) -> str:
        return f"chart-{self.key}"

    def table(self) -> list[list[str]]:
        return [
            [_cell(value, column.kind) for value, column in zip(row, self.columns, strict=True)] for row in self.rows
        ]


@dataclass(frozen=True)
class Scope:
    """What every chart of a page states: the window of assignment the filters chose, the
    repeat-purchase window and the offer's currency."""

    assigned: str  # "assigned 1 Jan 2026 to 31 Mar 2026" or "every assignment"
    window_days: int
    currency: str = ""


# --- An offer's page ---------------------------------------------------------------------------
def offer_charts(
    *,
    offer_metrics: metrics.OfferMetrics,
    claim_times: dict[str, list[queries.ClaimTimes]],
    cohorts: Cohorts,
    claim_weeks: list[ClaimWeek],
    sample_cost: int,
    scope: Scope,
) -> list[Chart]:
    """Every chart of one offer's page, in the page's order."""
    arms = offer_metrics.arms
    colours = dashboard.arm_colours(arm.arm for arm in arms)
    variants = [arm for arm in arms if not arm.is_holdout]
    return [
        offer_tiles(offer_metrics, scope),
        funnel([(arm.arm, funnel_counts([arm])) for arm in variants], colours, scope),
        conversion([(arm.arm, arm) for arm in variants], colours, scope),
        outcomes_by_week(claim_weeks, scope, by_arm=True),
        kaplan_meier({arm: claims for arm, claims in claim_times.items() if arm != HOLDOUT}, colours, scope),
        cohort_heatmap([cohorts], scope),
        uplift_forest(
            [
                (f"{entry.arm} · {_metric_label(entry.metric)}", entry)
                for entry in offer_metrics.uplift
                if entry.metric in metrics.PROPORTION_METRICS
            ],
            colours={
                f"{entry.arm} · {_metric_label(entry.metric)}": colours[entry.arm] for entry in offer_metrics.uplift
            },
            scope=scope,
            observational=offer_metrics.observational,
        ),
        value_waterfall([(offer_metrics, sample_cost)], scope),
    ]


def offer_tiles(offer_metrics: metrics.OfferMetrics, scope: Scope) -> Chart:
    """The KPI tiles: assignments, claims, conversion with its pending count, and each variant's
    repeat-rate uplift (or "observational")."""
    arms = offer_metrics.arms
    variants = [arm for arm in arms if not arm.is_holdout]
    assigned = sum(arm.assigned for arm in arms)
    claimed = sum(arm.claimed for arm in variants)
    mature = sum(arm.conversion.mature for arm in variants)
    converted = sum(arm.conversion.converted for arm in variants)
    pending = sum(arm.conversion.pending for arm in variants)
    rate = None if mature == 0 else converted / mature
    ci = stats.wilson(converted, mature)
    rows = [
        ("assigned", "", assigned, None, None),
        ("claimed", "", claimed, None, None),
        ("claim_rate", "", _ratio(claimed, sum(arm.assigned for arm in variants)), None, None),
        ("conversion_rate", "", rate, *(ci or (None, None))),
        ("conversion_pending", "", pending, None, None),
    ]
    tiles = [
        (_("Assigned"), _cell(assigned, "int")),
        (_("Claimed"), _cell(claimed, "int")),
        (_("Conversion"), rate_with_interval(rate, ci)),
        (_("Pending"), _cell(pending, "int")),
    ]
    for entry in offer_metrics.uplift:
        if entry.metric == metrics.HEADLINE_METRIC:
            rows.append(("repeat_rate_uplift", entry.arm, entry.diff, *(entry.ci95 or (None, None))))
            tiles.append(
                (_("Repeat uplift, %(arm)s") % {"arm": entry.arm}, points_with_interval(entry.diff, entry.ci95))
            )
    if offer_metrics.observational:
        tiles.append((_("Repeat uplift"), _("observational")))
    return Chart(
        key="kpis",
        title=_("Key figures"),
        n=assigned,
        n_label=_("customers assigned"),
        window=_window_text(scope, repeat=True),
        columns=(
            Column("metric", _("Figure")),
            Column("arm", _("Arm")),
            Column("value", _("Value"), "number"),
            Column("ci95_low", str(CI_LOW), "number"),
            Column("ci95_high", str(CI_HIGH), "number"),
        ),
        rows=tuple(rows),
        tiles=tuple(tiles),
        warnings=_immaturity(variants, offer_metrics.arms),
        empty="" if assigned else _("No customer was assigned in this selection."),
    )


# --- The overview ------------------------------------------------------------------------------
@dataclass(frozen=True)
class OfferData:
    """One offer's data on the overview, read by the view from analytics.rollups."""

    slug: str
    name: str
    headline: metrics.OfferHeadline
    sample_cost: int

    @property
    def claimed(self) -> int:
        return sum(arm.claimed for arm in self.headline.metrics.arms)


def overview_charts(
    *,
    offers: list[OfferData],
    claim_weeks: list[ClaimWeek],
    cohorts: Cohorts,
    claim_times: dict[str, list[queries.ClaimTimes]],
    scope: Scope,
) -> list[Chart]:
    """Every chart of the overview: each offer is one series (its variants' figures added up
    where a chart needs one line per offer), in the overview's order. The claim weeks and the
    cohorts are every offer's together; ``claim_times`` are the variants' claims of the offers
    whose curves are drawn, by offer name (analytics.overview picks them, ``KM_OVERVIEW_OFFERS``)."""
    colours = dashboard.arm_colours(data.name for data in offers)
    pooled = [
        (data.name, funnel_counts([arm for arm in data.headline.metrics.arms if not arm.is_holdout])) for data in offers
    ]
    by_variant = [
        (f"{data.name} · {arm.arm}", arm) for data in offers for arm in data.headline.metrics.arms if not arm.is_holdout
    ]
    variant_colours = {
        f"{data.name} · {arm.arm}": colours[data.name] for data in offers for arm in data.headline.metrics.arms
    }
    entries = [(f"{data.name} · {entry.arm}", entry) for data in offers for entry in data.headline.uplift]
    currencies = [data.headline.metrics.currency for data in offers]
    main_currency = max(set(currencies), key=currencies.count) if currencies else ""
    valued = [
        (data.headline.metrics, data.sample_cost) for data in offers if data.headline.metrics.currency == main_currency
    ]
    left_out = sorted({data.name for data in offers if data.headline.metrics.currency != main_currency})
    waterfall = value_waterfall(valued, Scope(scope.assigned, scope.window_days, main_currency))
    if left_out:
        waterfall = with_warning(
            waterfall, _("Offers in another currency are left out: %(offers)s.") % {"offers": ", ".join(left_out)}
        )
    return [
        funnel(pooled, colours, scope),
        conversion(by_variant, variant_colours, scope),
        outcomes_by_week(claim_weeks, scope, by_arm=False),
        _with_curves_note(kaplan_meier(claim_times, colours, scope), drawn=len(claim_times), offers=offers),
        cohort_heatmap([cohorts], scope),
        uplift_forest(entries, colours=variant_colours, scope=scope, observational=False),
        waterfall,
    ]


def _with_curves_note(chart: Chart, *, drawn: int, offers: list[OfferData]) -> Chart:
    claimed = sum(1 for data in offers if data.claimed)
    if drawn >= claimed:
        return chart
    note = _(
        "The curves of the %(drawn)s offers with the most claims, of %(claimed)s with claims; "
        "choose an offer in the filters to see its own."
    ) % {"drawn": drawn, "claimed": claimed}
    return replace(chart, note=note)


def overview_tiles(offers: list[OfferData], scope: Scope) -> Chart:
    """The overview's KPI tiles: offers, customers assigned, trials claimed, conversion over every
    variant with its Wilson interval and the pending count."""
    variants = [arm for data in offers for arm in data.headline.metrics.arms if not arm.is_holdout]
    every = [arm for data in offers for arm in data.headline.metrics.arms]
    assigned, claimed, converted, _repeat = funnel_counts(every)
    mature = sum(arm.conversion.mature for arm in variants)
    pending = sum(arm.conversion.pending for arm in variants)
    rate = _ratio(converted, mature)
    ci = stats.wilson(converted, mature)
    return Chart(
        key="kpis",
        title=_("Key figures"),
        n=assigned,
        n_label=_("customers assigned"),
        window=_window_text(scope),
        columns=(
            Column("metric", _("Figure")),
            Column("value", _("Value"), "number"),
            Column("ci95_low", str(CI_LOW), "number"),
            Column("ci95_high", str(CI_HIGH), "number"),
        ),
        rows=(
            ("offers", len(offers), None, None),
            ("assigned", assigned, None, None),
            ("claimed", claimed, None, None),
            ("conversion_rate", rate, *(ci or (None, None))),
            ("conversion_pending", pending, None, None),
        ),
        tiles=(
            (_("Offers"), _cell(len(offers), "int")),
            (_("Assigned"), _cell(assigned, "int")),
            (_("Claimed"), _cell(claimed, "int")),
            (_("Conversion"), rate_with_interval(rate, ci)),
            (_("Pending"), _cell(pending, "int")),
        ),
        empty="" if assigned else _("No customer was assigned in this selection."),
    )


@dataclass(frozen=True)
class OfferLine:
    """One variant's line in the overview's "which trial works" table."""

    slug: str
    offer: str
    arm: str
    conversion: metrics.Conversion
    uplift: metrics.Uplift | None
    observational: bool
    srm_flag: bool
    verdict: str

    @property
    def conversion_text(self) -> str:
        return rate_with_interval(self.conversion.rate, self.conversion.ci95)

    @property
    def pending_text(self) -> str:
        return _cell(self.conversion.pending, "int")

    @property
    def uplift_text(self) -> str:
        if self.uplift is None:
            return EMPTY
        return points_with_interval(self.uplift.diff, self.uplift.ci95)


def offer_lines(offers: list[OfferData], scope: Scope) -> tuple[list[OfferLine], Chart]:
    """Per variant of each offer: its conversion rate with its interval and pending count, its
    repeat-rate uplift against the holdout (BH-adjusted across the offers) or "observational", and
    the verdict in plain words. Returned as lines for the page and as a chart for its CSV."""
    lines = []
    for data in offers:
        offer_metrics = data.headline.metrics
        verdicts = dict(dashboard.offer_verdicts(offer_metrics))
        uplifts = {entry.arm: entry for entry in data.headline.uplift}
        for arm in offer_metrics.arms:
            if arm.is_holdout:
                continue
            lines.append(
                OfferLine(
                    slug=data.slug,
                    offer=data.name,
                    arm=arm.arm,
                    conversion=arm.conversion,
                    uplift=uplifts.get(arm.arm),
                    observational=offer_metrics.observational,
                    srm_flag=offer_metrics.srm.flag,
                    verdict=verdicts.get(arm.arm, verdicts.get("", "")),
                )
            )
    rows = tuple(
        (
            line.slug,
            line.arm,
            line.conversion.mature,
            line.conversion.converted,
            line.conversion.pending,
            line.conversion.rate,
            *(line.conversion.ci95 or (None, None)),
            None if line.uplift is None else line.uplift.diff,
            *((line.uplift.ci95 or (None, None)) if line.uplift else (None, None)),
            None if line.uplift is None else line.uplift.p_value,
            None if line.uplift is None else line.uplift.p_value_bh,
            line.observational,
            line.srm_flag,
            line.verdict,
        )
        for line in lines
    )
    chart = Chart(
        key="offers",
        title=_("Which trial works"),
        n=sum(line.conversion.mature for line in lines),
        n_label=_("trials past their decision date"),
        window=_window_text(scope, repeat=True),
        columns=(
            Column("offer", _("Offer")),
            Column("arm", _("Arm")),
            Column("mature", _("Decided"), "int"),
            Column("converted", _("Converted"), "int"),
            Column("pending", _("Pending"), "int"),
            Column("conversion_rate", _("Conversion"), "rate"),
            Column("conversion_ci95_low", str(CI_LOW), "rate"),
            Column("conversion_ci95_high", str(CI_HIGH), "rate"),
            Column("repeat_uplift", _("Repeat uplift"), "points"),
            Column("repeat_uplift_ci95_low", str(CI_LOW), "points"),
            Column("repeat_uplift_ci95_high", str(CI_HIGH), "points"),
            Column("p_value", _("p"), "p"),
            Column("p_value_bh", _("p (BH)"), "p"),
            Column("observational", _("Observational")),
            Column("srm_flag", _("Split broken")),
            Column("verdict", _("Verdict")),
        ),
        rows=rows,
        empty=_("No offer matches these filters."),
    )
    return lines, chart


# --- The charts --------------------------------------------------------------------------------
def funnel(series: list[tuple[str, tuple[int, int, int, int]]], colours: dict[str, str], scope: Scope) -> Chart:
    """Assigned → claimed → converted → repeat buyers, one funnel per series. Converted counts the
    mature trials that converted on time; repeat buyers, the customers with two purchases within
    the window of their assignment, among those whose window has closed."""
    stages = (_("Assigned"), _("Claimed"), _("Converted"), _("Repeat buyers"))
    # The traces go in at once: Figure.add_trace checks the whole figure again for each one,
    # which the overview's hundred offers would pay a hundred times.
    figure = go.Figure(
        data=[
            go.Funnel(name=name, y=list(stages), x=list(counts), marker={"color": colours[name]}, textinfo="value")
            for name, counts in series
        ],
        layout=_layout(height=320, funnelmode="group", yaxis={"automargin": True}),
    )
    n = sum(counts[0] for _name, counts in series)
    return Chart(
        key="funnel",
        title=_("Funnel"),
        n=n,
        n_label=_("customers assigned to a variant"),
        window=_window_text(scope, repeat=True),
        columns=(
            Column("series", _("Arm")),
            Column("assigned", _("Assigned"), "int"),
            Column("claimed", _("Claimed"), "int"),
            Column("converted", _("Converted"), "int"),
            Column("repeat_buyers", _("Repeat buyers"), "int"),
        ),
        rows=tuple((name, *counts) for name, counts in series),
        figure=_json(figure) if n else None,
        empty=_("No customer was assigned in this selection."),
    )


def funnel_counts(arms: list[metrics.ArmMetrics]) -> tuple[int, int, int, int]:
    """The funnel's four counts over these arms, added up."""
    return (
        sum(arm.assigned for arm in arms),
        sum(arm.claimed for arm in arms),
        sum(arm.conversion.converted for arm in arms if arm.conversion is not None),
        sum(arm.itt.repeat_buyers for arm in arms),
    )


def conversion(series: list[tuple[str, metrics.ArmMetrics]], colours: dict[str, str], scope: Scope) -> Chart:
    """Each series' conversion rate with its Wilson interval, and its pending count beside it."""
    rows = []
    drawn = []
    for name, arm in series:
        c = arm.conversion
        low, high = c.ci95 or (None, None)
        rows.append((name, c.mature, c.converted, c.pending, c.rate, low, high))
        if c.rate is not None:
            drawn.append((name, c))
    figure = go.Figure(layout=_layout(height=320, yaxis={"tickformat": ".0%", "rangemode": "tozero"}, showlegend=False))
    figure.add_trace(
        go.Bar(
            x=[name for name, _c in drawn],
            y=[c.rate for _name, c in drawn],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [c.ci95[1] - c.rate for _name, c in drawn],
                "arrayminus": [c.rate - c.ci95[0] for _name, c in drawn],
            },
            marker={"color": [colours[name] for name, _c in drawn]},
            text=[_("%(n)s pending") % {"n": _cell(c.pending, "int")} for _name, c in drawn],
            textposition="outside",
            hovertemplate="%{x}: %{y:.1%}<extra></extra>",
        )
    )
    mature = sum(row[1] for row in rows)
    pending = sum(row[3] for row in rows)
    warnings = ()
    if mature == 0 and pending:
        warnings = (_("No trial has reached its decision date yet: %(n)s pending.") % {"n": _cell(pending, "int")},)
    return Chart(
        key="conversion",
        title=str(CONVERSION_TITLE),
        n=mature,
        n_label=_("trials past their decision date"),
        window=_window_text(scope),
        columns=(
            Column("series", _("Arm")),
            Column("mature", _("Decided"), "int"),
            Column("converted", _("Converted"), "int"),
            Column("pending", _("Pending"), "int"),
            Column("rate", _("Rate"), "rate"),
            Column("ci95_low", str(CI_LOW), "rate"),
            Column("ci95_high", str(CI_HIGH), "rate"),
        ),
        rows=tuple(rows),
        figure=_json(figure) if drawn else None,
        warnings=warnings,
        empty=_("No trial has reached its decision date in this selection."),
    )


def outcomes_by_week(weeks: list[ClaimWeek], scope: Scope, *, by_arm: bool) -> Chart:
    """The claimed trials of each claim week, stacked by their current outcome; one panel per arm
    on an offer's page, every arm and offer added up on the overview (arm "all")."""
    everything = _("all")
    totals: dict[tuple[str, date], dict[str, int]] = defaultdict(lambda: dict.fromkeys(OUTCOME_COLOURS, 0))
    for week in weeks:
        for outcome, count in week.outcomes.items():
            totals[(week.arm if by_arm else everything, week.week)][outcome] += count
    rows = tuple(
        (arm, week.isoformat(), *(counts[outcome] for outcome in OUTCOME_COLOURS))
        for (arm, week), counts in sorted(totals.items())
    )
    panels = sorted({arm for arm, _week in totals}) or [everything]
    figure = make_subplots(
        rows=len(panels), cols=1, shared_xaxes=True, subplot_titles=panels if by_arm else None, vertical_spacing=0.12
    )
    for index, arm in enumerate(panels, start=1):
        arm_rows = [row for row in rows if row[0] == arm]
        for position, outcome in enumerate(OUTCOME_COLOURS):
            figure.add_trace(
                go.Bar(
                    name=_outcome_label(outcome),
                    legendgroup=outcome,
                    showlegend=index == 1,
                    x=[row[1] for row in arm_rows],
                    y=[row[2 + position] for row in arm_rows],
                    marker={"color": OUTCOME_COLOURS[outcome]},
                ),
                row=index,
                col=1,
            )
    figure.update_layout(_layout(height=220 + 160 * len(panels), barmode="stack"))
    n = sum(sum(row[2:]) for row in rows)
    return Chart(
        key="outcomes",
        title=_("Outcomes by claim week"),
        n=n,
        n_label=_("trials claimed"),
        window=_window_text(scope),
        columns=(
            Column("arm", _("Arm")),
            Column("claim_week", _("Claim week (Monday)")),
            *(Column(outcome, _outcome_label(outcome), "int") for outcome in OUTCOME_COLOURS),
        ),
        rows=rows,
        figure=_json(figure) if n else None,
        empty=_("No trial was claimed in this selection."),
    )


def kaplan_meier(series: dict[str, list[queries.ClaimTimes]], colours: dict[str, str], scope: Scope) -> Chart:
    """Kaplan-Meier cumulative conversion F(t) = 1 - S(t) by days since the claim: a conversion by
    the as-of time is an event, every other claim is censored there (METRICS.md). Each curve stops
    at its longest observed time, where it stops saying anything."""
    figure = go.Figure(
        layout=_layout(
            height=320,
            xaxis={"title": {"text": _("Days since the claim")}},
            yaxis={"tickformat": ".0%", "rangemode": "tozero"},
        )
    )
    rows = []
    n = 0
    for name, claims in series.items():
        if not claims:
            continue
        n += sum(claim.count for claim in claims)
        tallies: dict[float, list[int]] = {}
        for claim in claims:
            tallies.setdefault(claim.observed.total_seconds() / 86400, [0, 0])[0 if claim.converted else 1] += (
                claim.count
            )
        curve = stats.kaplan_meier_tallied((t, d, c) for t, (d, c) in tallies.items())
        longest = max(tallies)
        step_days = max(KM_STEP_DAYS, math.ceil(longest / KM_POINTS))
        days = [step * step_days for step in range(int(longest / step_days) + 1)]
        values = [stats.km_cumulative_at(curve, day) for day in days]
        rows += [(name, day, value) for day, value in zip(days, values, strict=True)]
        figure.add_trace(
            go.Scatter(
                name=name,
                x=days,
                y=values,
                mode="lines",
                line={"shape": "hv", "color": colours[name]},
                hovertemplate="%{x} d: %{y:.1%}<extra>" + name + "</extra>",
            )
        )
    return Chart(
        key="km",
        title=_("Cumulative conversion (Kaplan-Meier)"),
        n=n,
        n_label=_("trials claimed"),
        window=_window_text(scope),
        columns=(
            Column("series", _("Arm")),
            Column("days", _("Days since the claim"), "days"),
            Column("cumulative_conversion", _("Converted by then"), "rate"),
        ),
        rows=tuple(rows),
        figure=_json(figure) if n else None,
        empty=_("No trial was claimed in this selection."),
    )


def cohort_heatmap(every: list[Cohorts], scope: Scope) -> Chart:
    """Of the trials that ended in each week, the share that bought in each week since the end.
    A week not yet over for the whole cohort is blank, never a low rate."""
    claimers: dict[date, int] = defaultdict(int)
    buyers: dict[date, list[int | None]] = {}
    for cohorts in every:
        for row in cohorts.rows:
            claimers[row.week] += row.claimers
            cells = buyers.setdefault(row.week, [0] * len(row.buyers))
            for k, count in enumerate(row.buyers):
                cells[k] = None if count is None or cells[k] is None else cells[k] + count
    weeks = sorted(claimers)
    width = max((len(cells) for cells in buyers.values()), default=0)
    shares = [[None if count is None else count / claimers[week] for count in buyers[week]] for week in weeks]
    rows = tuple(
        (week.isoformat(), claimers[week], k, buyers[week][k], shares[i][k])
        for i, week in enumerate(weeks)
        for k in range(width)
    )
    figure = go.Figure(
        go.Heatmap(
            x=list(range(width)),
            y=[week.isoformat() for week in weeks],
            z=shares,
            colorscale="Blues",
            zmin=0,
            hoverongaps=False,
            colorbar={"tickformat": ".0%"},
            hovertemplate=_("ended %{y}, week %{x}: %{z:.1%}") + "<extra></extra>",
        ),
        layout=_layout(
            height=max(320, min(720, 14 * len(weeks) + 120)),
            xaxis={"title": {"text": _("Weeks since the trial ended")}, "dtick": 1},
            yaxis={"autorange": "reversed", "type": "category"},
        ),
    )
    n = sum(claimers.values())
    return Chart(
        key="cohorts",
        title=_("Repeat purchases by weeks since the trial ended"),
        n=n,
        n_label=_("trials ended"),
        window=_window_text(scope) + " " + _("Blank cells: that week is not over yet for the whole cohort."),
        columns=(
            Column("cohort_week", _("Trials ended, week of")),
            Column("trials", _("Trials"), "int"),
            Column("weeks_since_end", _("Week since the end"), "int"),
            Column("buyers", _("Bought"), "int"),
            Column("share", _("Share"), "rate"),
        ),
        rows=rows,
        figure=_json(figure) if n else None,
        empty=_("No trial has ended in this selection."),
    )


def uplift_forest(
    entries: list[tuple[str, metrics.Uplift]], *, colours: dict[str, str], scope: Scope, observational: bool
) -> Chart:
    """Each variant's uplift against the holdout, in rate points, with Newcombe's 95% interval."""
    rows = tuple(
        (name, entry.metric, entry.diff, *(entry.ci95 or (None, None)), entry.p_value, entry.p_value_bh)
        for name, entry in entries
    )
    drawn = [(name, entry) for name, entry in entries if entry.diff is not None and entry.ci95 is not None]
    figure = go.Figure(
        layout=_layout(
            height=max(260, 48 * len(drawn) + 120),
            showlegend=False,
            xaxis={"title": {"text": _("Difference against the holdout (points)")}, "zeroline": True},
            yaxis={"autorange": "reversed", "type": "category", "automargin": True},
            shapes=[
                {
                    "type": "line",
                    "x0": 0,
                    "x1": 0,
                    "yref": "paper",
                    "y0": 0,
                    "y1": 1,
                    "line": {"color": HOLDOUT_COLOUR, "dash": "dot"},
                }
            ],
        )
    )
    figure.add_trace(
        go.Scatter(
            x=[entry.diff * 100 for _name, entry in drawn],
            y=[name for name, _entry in drawn],
            mode="markers",
            marker={"size": 11, "color": [colours.get(name, HOLDOUT_COLOUR) for name, _entry in drawn]},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": [(entry.ci95[1] - entry.diff) * 100 for _name, entry in drawn],
                "arrayminus": [(entry.diff - entry.ci95[0]) * 100 for _name, entry in drawn],
            },
            hovertemplate="%{y}: %{x:.1f}<extra></extra>",
        )
    )
    if observational:
        empty = _("No holdout: observational only, so no randomized uplift.")
    else:
        empty = _("No customer has completed the window in both a variant and the holdout.")
    return Chart(
        key="uplift",
        title=_("Uplift against the holdout"),
        n=len(drawn),
        n_label=_("comparisons"),
        window=_window_text(scope, repeat=True),
        columns=(
            Column("series", _("Arm")),
            Column("metric", _("Figure")),
            Column("diff", _("Difference"), "points"),
            Column("ci95_low", str(CI_LOW), "points"),
            Column("ci95_high", str(CI_HIGH), "points"),
            Column("p_value", _("p"), "p"),
            Column("p_value_bh", _("p (BH)"), "p"),
        ),
        rows=rows,
        figure=_json(figure) if drawn else None,
        empty=empty,
    )


def value_waterfall(offers: list[tuple[metrics.OfferMetrics, int]], scope: Scope) -> Chart:
    """What the trials earned, against the holdout, over the variants' mature customers: what they
    would have spent anyway (the holdout's revenue per customer x their number), the incremental
    revenue (each variant's revenue per customer minus the holdout's, x its customers), the cost
    of the samples (``Offer.sample_cost`` x trials claimed), and the net. Offers without a holdout
    have no baseline and are left out."""
    baseline = incremental = cost = 0.0
    customers = 0
    counted = 0
    for offer_metrics, sample_cost in offers:
        holdout = next((arm for arm in offer_metrics.arms if arm.is_holdout), None)
        if holdout is None or holdout.itt.revenue_per_customer is None:
            continue
        scale = 10 ** places(offer_metrics.currency)
        for arm in offer_metrics.arms:
            if arm.is_holdout or arm.itt.revenue_per_customer is None:
                continue
            counted += 1
            customers += arm.itt.mature
            baseline += holdout.itt.revenue_per_customer * arm.itt.mature
            incremental += (arm.itt.revenue_per_customer - holdout.itt.revenue_per_customer) * arm.itt.mature
            cost += sample_cost * arm.claimed / scale
    net = baseline + incremental - cost
    steps = (
        ("baseline", _("Holdout baseline"), baseline, "absolute"),
        ("incremental", _("Incremental revenue"), incremental, "relative"),
        ("sample_cost", _("Cost of samples"), -cost, "relative"),
        ("net", _("Net"), net, "total"),
    )
    figure = go.Figure(
        go.Waterfall(
            x=[label for _key, label, _value, _measure in steps],
            y=[value for _key, _label, value, _measure in steps],
            measure=[measure for *_rest, measure in steps],
            increasing={"marker": {"color": "#009e73"}},
            decreasing={"marker": {"color": "#d55e00"}},
            totals={"marker": {"color": "#0072b2"}},
            connector={"line": {"color": HOLDOUT_COLOUR}},
            hovertemplate="%{x}: %{y:,.2f} " + scope.currency + "<extra></extra>",
        ),
        layout=_layout(height=320, showlegend=False, yaxis={"title": {"text": scope.currency}}),
    )
    return Chart(
        key="value",
        title=_("Value against the holdout"),
        n=customers,
        n_label=_("customers past the window, in the variants"),
        window=_window_text(scope, repeat=True),
        columns=(
            Column("step", _("Step")),
            Column("amount", _("Amount (%(currency)s)") % {"currency": scope.currency}, "money"),
        ),
        rows=tuple((key, value) for key, _label, value, _measure in steps),
        figure=_json(figure) if counted and customers else None,
        empty=_("No offer here has a holdout with customers past the window: there is no baseline to compare with."),
    )


# --- Helpers -----------------------------------------------------------------------------------
def _layout(**values) -> dict:
    """A small, plain layout: no template shipped with each figure, room for phone screens."""
    layout = {
        "template": "none",
        "margin": {"l": 56, "r": 16, "t": 24, "b": 48},
        "font": {"family": "system-ui, sans-serif", "size": 13},
        "legend": {"orientation": "h", "y": -0.2},
    }
    layout.update(values)
    for axis in ("xaxis", "yaxis"):
        # Room for long labels (week dates, arm names) instead of cutting them off.
        layout[axis] = {"automargin": True, **layout.get(axis, {})}
    return layout


def _json(figure: go.Figure) -> dict:
    return figure.to_plotly_json()


def _immaturity(variants: list[metrics.ArmMetrics], arms) -> tuple[str, ...]:
    warnings = []
    pending = sum(arm.conversion.pending for arm in variants)
    if variants and sum(arm.conversion.mature for arm in variants) == 0 and pending:
        warnings.append(_("No trial has reached its decision date yet: %(n)s pending.") % {"n": _cell(pending, "int")})
    if any(arm.assigned for arm in arms) and all(arm.itt.mature == 0 for arm in arms):
        warnings.append(_("No customer has completed the repeat-purchase window yet: repeat figures are empty."))
    return tuple(warnings)


def with_warning(chart: Chart, warning: str) -> Chart:
    return replace(chart, warnings=(*chart.warnings, warning))


def _window_text(scope: Scope, *, repeat: bool = False) -> str:
    text = scope.assigned
    if repeat:
        text += "; " + _("repeat purchases within %(days)s days of the assignment") % {"days": scope.window_days}
    return text + "."


def _metric_label(metric: str) -> str:
    return {"repeat_rate": _("repeat buyers"), "buyer_rate": _("buyers")}.get(metric, metric)


def _outcome_label(outcome: str) -> str:
    return {
        "converted": _("Converted"),
        "cancelled": _("Cancelled"),
        "expired": _("Expired"),
        "payment_failed": _("Payment failed"),
        "pending": _("Pending"),
    }[outcome]


def _ratio(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


def rate_with_interval(rate: float | None, ci: tuple[float, float] | None) -> str:
    if rate is None or ci is None:
        return EMPTY
    return f"{_cell(rate, 'rate')} ({_cell(ci[0], 'rate')} {_('to')} {_cell(ci[1], 'rate')})"


def points_with_interval(diff: float | None, ci: tuple[float, float] | None) -> str:
    if diff is None or ci is None:
        return EMPTY
    return f"{_cell(diff, 'points')} ({_cell(ci[0], 'points')} {_('to')} {_cell(ci[1], 'points')})"


def _cell(value, kind: str) -> str:
    """A table cell: None is "—", a rate a percentage, points signed, money with two decimals."""
    if value is None:
        return EMPTY
    if kind == "int":
        return number_format(value, force_grouping=True)
    if kind == "rate":
        return number_format(round(value * 100, 1), decimal_pos=1) + "%"
    if kind == "points":
        text = number_format(round(value * 100, 1), decimal_pos=1)
        return text if text.startswith("-") else f"+{text}"
    if kind == "money":
        return number_format(round(value, 2), decimal_pos=2, force_grouping=True)
    if kind == "p":
        return f"{value:.3g}"
    if kind == "days":
        return number_format(value, decimal_pos=1)
    if kind == "number":
        return number_format(round(value, 4), force_grouping=True) if isinstance(value, float) else str(value)
    if isinstance(value, date):
        return date_format(value)
    return str(value)
