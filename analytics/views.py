"""The executive dashboards: the overview of every offer and one offer's page.

Each page reads analytics.rollups only (never the raw purchases; the overview through
analytics.overview, which keeps each answer for its moment), builds its charts with
analytics.charts, and answers ``?csv=<chart>`` with that chart's rows, under the same filters.
"""

import csv
import hashlib

from django.core.cache import cache
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.formats import date_format
from django.utils.safestring import mark_safe
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from accounts.roles import EXECUTIVE, MARKETER, role_required
from analytics import charts, dashboard, overview, promises, queries, rollups
from analytics.forms import DashboardFilters
from offers import selectors


@role_required(EXECUTIVE, MARKETER)
@queries.analytic_read()
def home(request):
    """The executive overview: which trial works, across offers."""
    every = list(selectors.offer_list())
    form = DashboardFilters(request.GET, offers=every)
    context = {"form": form, "as_of": rollups.as_of(), "filter_query": _filter_query(request)}
    if context["as_of"] is None:
        return render(request, "analytics/home.html", context)
    if not form.is_valid():
        return render(request, "analytics/home.html", context, status=400)
    selection = form.selection()
    # The CSV and offer links carry the filters as cleaned, the same text for the same filters.
    context["filter_query"] = form.query()
    chosen = [
        offer
        for offer in every
        if form.cleaned_data["offer"] in ("", offer.slug)
        and (selection.variant is None or any(v.name == selection.variant for v in offer.variants.all()))
    ]
    overview.watched()
    data = overview.overview_data(chosen, selection, moment=context["as_of"])
    if "csv" in request.GET:
        return _csv(request.GET["csv"], _overview_charts(data, selection)[1], stem="overview")
    context.update(
        offers=data.offers,
        body=_overview_body(data, selection, context) if data.offers else "",
        promises=promises.panel(offer=None, as_of=context["as_of"]),
        window_days=data.window_days,
    )
    return render(request, "analytics/home.html", context)


def _overview_body(data: overview.OverviewData, selection: rollups.Slice, context: dict) -> str:
    """The figures' part of the overview. It is the same for everyone who asks for the same
    data, filters and language, so it is rendered once, like the data it shows."""
    key = hashlib.sha256(f"{data.key}|{get_language()}|{context['filter_query']}".encode()).hexdigest()
    body = cache.get(f"dashboard:overview-body:{key}")
    if body is None:
        lines, every_chart = _overview_charts(data, selection)
        body = render_to_string(
            "analytics/_overview_body.html",
            {
                "as_of": context["as_of"],
                "filter_query": context["filter_query"],
                "tiles": every_chart[0],
                "table": every_chart[1],
                "lines": lines,
                "charts": every_chart[2:],
                "broken_splits": [offer.name for offer in data.offers if offer.headline.metrics.srm.flag],
            },
        )
        cache.set(f"dashboard:overview-body:{key}", body, overview.KEPT_SECONDS)
    return mark_safe(body)  # noqa: S308 (our own template's rendering, escaped there)


@role_required(EXECUTIVE, MARKETER)
@queries.analytic_read()
def offer(request, slug):
    """One offer's page: every chart for its arms, and its verdict per variant."""
    offer = selectors.offer_get(slug=slug)
    form = DashboardFilters(request.GET, offer=offer)
    context = {"form": form, "offer": offer, "as_of": rollups.as_of(), "filter_query": _filter_query(request)}
    if context["as_of"] is None:
        return render(request, "analytics/offer.html", context)
    if not form.is_valid():
        return render(request, "analytics/offer.html", context, status=400)
    selection = form.selection()
    moment = context["as_of"]
    claims = rollups.claim_times(offer, selection, moment=moment)
    offer_metrics = rollups.offer_metrics(offer, selection, moment=moment, claims=claims)
    scope = charts.Scope(
        assigned=_assigned_text(selection), window_days=offer_metrics.window_days, currency=offer_metrics.currency
    )
    every_chart = charts.offer_charts(
        offer_metrics=offer_metrics,
        claim_times=claims,
        cohorts=rollups.cohorts([offer], selection, moment=moment),
        claim_weeks=rollups.claim_weeks([offer], selection, moment=moment),
        sample_cost=offer.sample_cost,
        scope=scope,
    )
    if offer_metrics.srm.flag:
        # The split itself is broken: every comparison between the arms is suspect.
        every_chart = [
            charts.with_warning(chart, _srm_warning(offer_metrics.srm.p_value))
            if chart.key in ("funnel", "conversion", "uplift", "value")
            else chart
            for chart in every_chart
        ]
    if "csv" in request.GET:
        return _csv(request.GET["csv"], every_chart, stem=offer.slug)
    context.update(
        offer_metrics=offer_metrics,
        empty=not any(arm.assigned for arm in offer_metrics.arms),
        verdicts=dashboard.offer_verdicts(offer_metrics),
        tiles=every_chart[0],
        charts=every_chart[1:],
        srm_warning=_srm_warning(offer_metrics.srm.p_value) if offer_metrics.srm.flag else "",
        promises=promises.panel(offer=offer, as_of=context["as_of"]),
        window_days=offer_metrics.window_days,
    )
    return render(request, "analytics/offer.html", context)


def _overview_charts(
    data: overview.OverviewData, selection: rollups.Slice
) -> tuple[list[charts.OfferLine], list[charts.Chart]]:
    """The overview's lines of its "which trial works" table, and its charts: the tiles, that
    table's, then the others."""
    scope = charts.Scope(assigned=_assigned_text(selection), window_days=data.window_days)
    lines, table = charts.offer_lines(data.offers, scope)
    return lines, [
        charts.overview_tiles(data.offers, scope),
        table,
        *charts.overview_charts(
            offers=data.offers,
            claim_weeks=data.claim_weeks,
            cohorts=data.cohorts,
            claim_times=data.curves_by_name(),
            scope=scope,
        ),
    ]


def _csv(key: str, every_chart: list[charts.Chart], *, stem: str) -> HttpResponse:
    """One chart's rows as CSV, with the engine's unrounded numbers; an empty cell for null."""
    chart = next((chart for chart in every_chart if chart.key == key), None)
    if chart is None:
        raise Http404(_("There is no chart “%(key)s” on this page.") % {"key": key})
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{stem}-{chart.key}.csv"'
    writer = csv.writer(response)
    writer.writerow([column.key for column in chart.columns])
    for row in chart.rows:
        writer.writerow(["" if value is None else value for value in row])
    return response


def _filter_query(request) -> str:
    """The page's filters as a query string, for its CSV links and its links to offers."""
    query = request.GET.copy()
    query.pop("csv", None)
    return query.urlencode()


def _assigned_text(selection: rollups.Slice) -> str:
    start, end = selection.assigned_from, selection.assigned_to
    if start and end:
        return _("Assigned %(start)s to %(end)s") % {
            "start": date_format(start, "j M Y"),
            "end": date_format(end, "j M Y"),
        }
    if start:
        return _("Assigned from %(start)s") % {"start": date_format(start, "j M Y")}
    if end:
        return _("Assigned up to %(end)s") % {"end": date_format(end, "j M Y")}
    return _("Every assignment")


def _srm_warning(p_value: float | None) -> str:
    return _(
        "Sample ratio mismatch (p = %(p).2g): the arms did not receive the share of customers they "
        "were configured for, so the split is broken and comparisons between them are not trustworthy."
    ) % {"p": p_value}
