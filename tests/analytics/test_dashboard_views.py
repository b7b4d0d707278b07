"""Executives open the dashboards: every chart is there with its n, its window and its as-of
time, its CSV holds the engine's numbers, the filters narrow what is read, filters that match
nothing give an empty state, a broken split is called out, and customers are refused."""

import csv
import io
import re
from collections import Counter
from datetime import timedelta

import plotly
import pytest
import time_machine
from django.db import connection
from django.template import Context, Template
from django.test.utils import CaptureQueriesContext

from analytics import charts, overview, queries, rollups
from analytics.models import RollupState
from analytics.rollups import Slice
from analytics.tasks import rollups_refresh_task
from tests import factories
from tests.analytics.test_rollups import pooled
from tests.factories import NOW

pytestmark = pytest.mark.django_db

TODAY = NOW + timedelta(days=200)
OFFER_CHARTS = ("funnel", "conversion", "outcomes", "km", "cohorts", "uplift", "value")
OVERVIEW_CHARTS = ("offers", *OFFER_CHARTS)


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(TODAY, tick=False):
        yield


@pytest.fixture
def offer(marketer):
    """Twenty customers a day for four days, half of them held out; the variant's claimers convert
    one in two, and buy twice more than the holdout's customers."""
    offer = factories.offer(actor=marketer, holdout_percent=50, sample_cost=250)
    for number in range(80):
        person = factories.customer(email=f"c{number}@example.com", country="IT" if number % 4 < 2 else "PL")
        arm = "holdout" if number % 2 else "default"
        at = NOW + timedelta(days=number % 4, hours=number)
        assignment = factories.assignment(offer=offer, customer=person, arm=arm, assigned_at=at)
        purchases = 1
        if arm == "default" and number % 3 != 1:
            converted = number % 3 == 0
            factories.claim(
                assignment=assignment,
                status="converted" if converted else "expired",
                converted_at=at + timedelta(days=10) if converted else None,
            )
            purchases = 2 if converted else 1
        for k in range(purchases):
            factories.purchase(customer=person, product=offer.product, amount=1500, at=at + timedelta(days=11 + k))
    rollups.rebuild()
    return offer


@pytest.fixture
def observed(marketer):
    """An offer without a holdout."""
    offer = factories.offer(
        actor=marketer, slug="club-no-card", name="Club, no card", product_=factories.product(sku="club")
    )
    for number in range(6):
        person = factories.customer(email=f"o{number}@example.com")
        factories.claim(
            assignment=factories.assignment(offer=offer, customer=person, assigned_at=NOW), status="expired"
        )
    rollups.rebuild()
    return offer


def page(client, user, url, **query):
    """The page as the user sees it, with the rollups built from the data as it is now."""
    rollups.rebuild()
    client.force_login(user)
    response = client.get(url, query)
    return response, response.content.decode()


def section(html: str, key: str) -> str:
    match = re.search(rf'<section class="chart" id="chart-{key}".*?</section>', html, re.S)
    assert match, f"no chart {key}"
    return match.group(0)


def rows(response) -> list[dict]:
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_an_offers_page_carries_every_chart_with_its_n_window_and_as_of(client, executive, offer):
    response, html = page(client, executive, "/dashboard/offers/coffee-sampler/")

    assert response.status_code == 200
    assert 'class="tiles"' in html
    for key in OFFER_CHARTS:
        chart = section(html, key)
        assert re.search(r'class="chart__n">n = \d+', chart), key
        assert "Every assignment" in chart, key
        assert f"as of {TODAY:%-d %b %Y %H:%M} UTC" in chart, key
        assert f'href="?csv={key}"' in chart, key
        assert 'class="js-chart"' in chart or "js-chart" in chart, key
        assert f'id="chart-{key}-figure" type="application/json"' in chart, key
        assert "<table>" in chart, key
    funnel = section(html, "funnel")
    assert "n = 40" in funnel  # the variant's customers; the holdout is offered no trial
    assert 'aria-labelledby="promises-title"' in html and "Reminders delivered on time" in html


def test_each_charts_table_for_screen_readers_holds_its_rows_cell_for_cell(client, executive, offer):
    _response, html = page(client, executive, "/dashboard/offers/coffee-sampler/")

    for key in OFFER_CHARTS:
        chart = next(chart for chart in _offer_page_charts(offer) if chart.key == key)
        body = re.search(r"<tbody>(.*?)</tbody>", section(html, key), re.S)
        expected = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in chart.table())
        assert body is not None and body.group(1) == expected, key
        assert body.group(1).count("<tr>") == len(chart.rows), key


def _offer_page_charts(offer) -> list[charts.Chart]:
    moment = rollups.as_of()
    claims = rollups.claim_times(offer, moment=moment)
    return charts.offer_charts(
        offer_metrics=rollups.offer_metrics(offer, moment=moment, claims=claims),
        claim_times=claims,
        cohorts=rollups.cohorts([offer], moment=moment),
        claim_weeks=rollups.claim_weeks([offer], moment=moment),
        sample_cost=offer.sample_cost,
        scope=charts.Scope(assigned="Every assignment", window_days=rollups.WINDOW_DAYS, currency=offer.currency),
    )


def test_a_tables_cells_are_escaped():
    chart = charts.Chart(
        key="k", title="t", n=1, n_label="", window="", columns=(charts.Column("name", "Name"),),
        rows=(("<script>alert(1)</script> & co",),),
    )  # fmt: skip

    html = Template("{% load dashboard_tags %}{% table_rows chart %}").render(Context({"chart": chart}))

    assert html == "<tr><td>&lt;script&gt;alert(1)&lt;/script&gt; &amp; co</td></tr>"


def test_the_csv_of_each_chart_holds_the_engines_numbers(client, executive, offer):
    engine = rollups.offer_metrics(offer, Slice())
    client.force_login(executive)

    conversion = rows(client.get("/dashboard/offers/coffee-sampler/", {"csv": "conversion"}))
    default = engine.arm("default").conversion
    assert conversion == [
        {
            "series": "default",
            "mature": str(default.mature),
            "converted": str(default.converted),
            "pending": str(default.pending),
            "rate": repr(default.rate),
            "ci95_low": repr(default.ci95[0]),
            "ci95_high": repr(default.ci95[1]),
        }
    ]
    uplift = {row["metric"]: row for row in rows(client.get("/dashboard/offers/coffee-sampler/", {"csv": "uplift"}))}
    repeat = next(entry for entry in engine.uplift if entry.metric == "repeat_rate")
    assert float(uplift["repeat_rate"]["diff"]) == repeat.diff
    assert float(uplift["repeat_rate"]["ci95_low"]) == repeat.ci95[0]

    funnel = rows(client.get("/dashboard/offers/coffee-sampler/", {"csv": "funnel"}))
    arm = engine.arm("default")
    assert funnel == [
        {
            "series": "default",
            "assigned": str(arm.assigned),
            "claimed": str(arm.claimed),
            "converted": str(arm.conversion.converted),
            "repeat_buyers": str(arm.itt.repeat_buyers),
        }
    ]
    value = {
        row["step"]: float(row["amount"])
        for row in rows(client.get("/dashboard/offers/coffee-sampler/", {"csv": "value"}))
    }
    holdout = engine.arm("holdout")
    assert value["baseline"] == pytest.approx(holdout.itt.revenue_per_customer * arm.itt.mature)
    assert value["sample_cost"] == pytest.approx(-2.5 * arm.claimed)
    assert value["net"] == pytest.approx(value["baseline"] + value["incremental"] + value["sample_cost"])


def test_an_unknown_chart_in_the_csv_link_is_not_found(client, executive, offer):
    response, _html = page(client, executive, "/dashboard/offers/coffee-sampler/", csv="nonsense")
    assert response.status_code == 404


def test_the_filters_narrow_what_the_page_reads(client, executive, offer):
    client.force_login(executive)
    italians = rows(client.get("/dashboard/offers/coffee-sampler/", {"country": "it", "csv": "funnel"}))
    assert italians[0]["assigned"] == str(rollups.offer_metrics(offer, Slice(country="IT")).arm("default").assigned)
    assert italians[0]["assigned"] == "20"

    first_day = NOW.date().isoformat()
    response, html = page(
        client, executive, "/dashboard/offers/coffee-sampler/", assigned_from=first_day, assigned_to=first_day
    )
    assert response.status_code == 200
    assert f"Assigned {NOW:%-d %b %Y} to {NOW:%-d %b %Y}" in section(html, "funnel")
    first = rollups.offer_metrics(offer, Slice(assigned_from=NOW.date(), assigned_to=NOW.date())).arm("default")
    assert 0 < first.assigned < 40
    assert f"n = {first.assigned}" in section(html, "funnel")


def test_bad_filters_say_what_is_wrong(client, executive, offer):
    response, html = page(
        client,
        executive,
        "/dashboard/offers/coffee-sampler/",
        assigned_from="2026-06-05",
        assigned_to="2026-06-01",
        country="Italy",
    )
    assert response.status_code == 400
    assert "The end of the date range is before its start." in html
    assert "Enter a country as two letters, such as IT or PL." in html
    assert "js-chart" not in html

    response, html = page(client, executive, "/dashboard/", assigned_from="yesterday")
    assert response.status_code == 400
    assert "Enter a valid date." in html


def test_filters_that_match_nothing_give_an_empty_state_not_a_chart_of_zeros(client, executive, offer):
    response, html = page(client, executive, "/dashboard/offers/coffee-sampler/", country="ZZ")
    assert response.status_code == 200
    assert "No customer of this offer matches these filters." in html
    assert "js-chart" not in html

    response, html = page(client, executive, "/dashboard/", country="ZZ")
    assert response.status_code == 200
    assert "No offer has data that matches these filters." in html
    assert "js-chart" not in html


def test_the_overview_says_which_trial_works(client, executive, offer, observed):
    response, html = page(client, executive, "/dashboard/")

    assert response.status_code == 200
    for key in OVERVIEW_CHARTS:
        chart = section(html, key)
        assert "n = " in chart and f"as of {TODAY:%-d %b %Y %H:%M} UTC" in chart, key
    offers = section(html, "offers")
    assert 'href="/dashboard/offers/coffee-sampler/"' in offers
    assert "No holdout: observational only." in offers
    assert "observational" in offers
    lines = {row["offer"]: row for row in rows(client.get("/dashboard/", {"csv": "offers"}))}
    engine = rollups.overview([offer], Slice()).offers[0]
    repeat = next(entry for entry in engine.uplift if entry.metric == "repeat_rate")
    assert float(lines["coffee-sampler"]["repeat_uplift"]) == repeat.diff
    assert lines["club-no-card"]["observational"] == "True"
    assert lines["club-no-card"]["repeat_uplift"] == ""


def test_the_overview_can_keep_one_offer(client, executive, offer, observed):
    response, html = page(client, executive, "/dashboard/", offer="club-no-card")
    assert response.status_code == 200
    assert "coffee-sampler" not in section(html, "offers")
    assert "club-no-card" in section(html, "offers")


def test_a_broken_split_is_called_out(client, executive, offer):
    # Sixty more customers in the variant alone: 100 against 40 for a 50/50 split.
    for number in range(60):
        person = factories.customer(email=f"extra{number}@example.com")
        factories.assignment(offer=offer, customer=person, arm="default", assigned_at=NOW)
    rollups.refresh()
    assert rollups.offer_metrics(offer, Slice()).srm.flag

    _response, html = page(client, executive, "/dashboard/offers/coffee-sampler/")
    assert "Sample ratio mismatch" in html
    assert "Sample ratio mismatch" in section(html, "conversion")
    _response, html = page(client, executive, "/dashboard/")
    assert "Sample ratio mismatch in Coffee sampler" in html


def test_a_rate_with_no_denominator_is_never_drawn(client, executive, marketer):
    offer = factories.offer(actor=marketer, holdout_percent=50, slug="fresh", name="Fresh")
    person = factories.customer(email="new@example.com")
    # Claimed a day ago: not decided, not past the window.
    factories.claim(
        assignment=factories.assignment(offer=offer, customer=person, assigned_at=TODAY - timedelta(days=1))
    )

    _response, html = page(client, executive, "/dashboard/offers/fresh/")
    conversion = section(html, "conversion")
    assert "js-chart" not in conversion
    assert "No trial has reached its decision date yet: 1 pending." in conversion
    assert "—" in conversion  # the rate in the table
    assert "No customer has completed the repeat-purchase window yet" in html


def test_customers_are_refused_and_unknown_offers_are_not_found(client, customer, executive, offer):
    for url in ("/dashboard/", "/dashboard/offers/coffee-sampler/", "/dashboard/?csv=funnel"):
        response, _html = page(client, customer, url)
        assert response.status_code == 403, url
    response, _html = page(client, executive, "/dashboard/offers/no-such-offer/")
    assert response.status_code == 404


def test_marketers_may_read_and_visitors_must_log_in(client, marketer, offer):
    assert client.get("/dashboard/").status_code == 302
    response, _html = page(client, marketer, "/dashboard/offers/coffee-sampler/")
    assert response.status_code == 200


def test_the_page_runs_no_inline_script_and_plotly_is_ours(client, executive, offer):
    _response, html = page(client, executive, "/dashboard/offers/coffee-sampler/")
    scripts = re.findall(r"<script([^>]*)>", html)
    assert scripts
    for attributes in scripts:
        assert 'type="application/json"' in attributes or 'src="/static/' in attributes, attributes
    assert 'src="/static/vendor/plotly.min.js"' in html

    served = client.get("/static/vendor/plotly.min.js")
    assert served.status_code == 200
    body = b"".join(served.streaming_content) if served.streaming else served.content

    assert body.startswith(b"/**\n* plotly.js v")
    assert len(body) > 1_000_000
    assert plotly.__version__ == "7.1.0"

    # Its stylesheet, which it would otherwise inject inline, from the same plotly.min.js.
    assert 'id="plotly.js-style-global" class="no-inline-styles" href="/static/vendor/plotly.css"' in html
    styles = client.get("/static/vendor/plotly.css")
    assert styles.status_code == 200
    css = (b"".join(styles.streaming_content) if styles.streaming else styles.content).decode()
    assert ".js-plotly-plot .plotly .modebar" in css
    assert 'src="/static/js/style_attribute.js"' in html


def test_rollups_never_built_give_a_page_that_says_how_to_build_them(client, executive, offer):
    RollupState.objects.all().delete()
    client.force_login(executive)
    for url in ("/dashboard/", "/dashboard/offers/coffee-sampler/"):
        response = client.get(url)
        assert response.status_code == 200
        html = response.content.decode()
        assert "rebuild_rollups" in html
        assert 'class="chart"' not in html


def test_the_overview_adds_every_offers_claim_weeks_and_cohorts_up_in_one_read(offer, observed):
    both, alone = [offer, observed], ([offer], [observed])

    def weeks(offers):
        counts = Counter()
        for week in rollups.claim_weeks(offers):
            for outcome, n in week.outcomes.items():
                counts[(week.week, week.arm, outcome)] += n
        return counts

    assert weeks(both) == weeks(alone[0]) + weeks(alone[1])

    def cohorts(offers):
        counts = Counter()
        for row in rollups.cohorts(offers).rows:
            counts[(row.week, "trials")] += row.claimers
            counts.update({(row.week, k): n for k, n in enumerate(row.buyers) if n})
        return counts

    assert cohorts(both) == cohorts(alone[0]) + cohorts(alone[1])
    assert sum(cohorts(both).values()) > 0

    by_offer = rollups.claim_times_by_offer(both)
    for one in both:
        # The offer's variants together; the holdout never claims.
        assert pooled(by_offer[one.pk]) == pooled(c for claims in rollups.claim_times(one).values() for c in claims)
        assert pooled(by_offer[one.pk])


def test_the_overview_draws_the_curves_of_the_offers_with_the_most_claims(client, executive, marketer, monkeypatch):
    monkeypatch.setattr(charts, "KM_OVERVIEW_OFFERS", 2)
    for number, claims in enumerate((1, 3, 2)):
        one = factories.offer(
            actor=marketer,
            slug=f"offer-{number}",
            name=f"Offer {number}",
            product_=factories.product(sku=f"sku-{number}"),
        )
        for k in range(claims):
            person = factories.customer(email=f"k{number}-{k}@example.com")
            factories.claim(assignment=factories.assignment(offer=one, customer=person, assigned_at=NOW))

    _response, html = page(client, executive, "/dashboard/")

    km = section(html, "km")
    assert "The curves of the 2 offers with the most claims, of 3 with claims" in km
    series = {row["series"] for row in rows(client.get("/dashboard/", {"csv": "km"}))}
    assert series == {"Offer 1", "Offer 2"}


def test_the_overview_is_read_once_for_each_moment_of_the_rollups(client, executive, offer):
    client.force_login(executive)
    first = client.get("/dashboard/", {"csv": "offers"}).content
    with CaptureQueriesContext(connection) as again:
        assert client.get("/dashboard/", {"csv": "offers"}).content == first
    assert not [q for q in again.captured_queries if "analytics_unitrollup" in q["sql"]]

    # New data, folded: the next request reads it, at once.
    person = factories.customer(email="late@example.com")
    factories.assignment(offer=offer, customer=person, arm="holdout", assigned_at=NOW)
    rollups.refresh()
    lines = rows(client.get("/dashboard/", {"csv": "offers"}))
    assert lines != list(csv.DictReader(io.StringIO(first.decode())))
    assert sum(int(arm.assigned) for arm in rollups.overview([offer]).offers[0].metrics.arms) == 81


def test_the_refresh_reads_the_overview_ahead_only_while_someone_watches(client, executive, offer):
    assert overview.warm() is False  # nobody opened it

    client.force_login(executive)
    client.get("/dashboard/")
    person = factories.customer(email="late@example.com")
    factories.assignment(offer=offer, customer=person, arm="holdout", assigned_at=NOW)
    with time_machine.travel(TODAY + timedelta(minutes=1), tick=False):
        rollups_refresh_task()  # what beat runs: refresh, then warm
        assert overview.warm() is False  # already read for this moment
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/dashboard/", {"csv": "kpis"})
    assert not [q for q in queries.captured_queries if "analytics_unitrollup" in q["sql"]]
    assigned = next(row for row in rows(response) if row["metric"] == "assigned")
    assert assigned["value"] == "81"


def test_the_overviews_figures_are_kept_apart_for_each_language_and_filter(client, executive, offer):
    offer.name_it = "Assaggio di caffè"
    offer.save()
    english = page(client, executive, "/dashboard/")[1]
    executive.preferred_language = "it"
    executive.save(update_fields=["preferred_language"])
    italian = page(client, executive, "/dashboard/")[1]
    italians_only = page(client, executive, "/dashboard/", country="IT")[1]

    assert "Which trial works" in section(english, "offers")
    assert "Which trial works" not in section(italian, "offers")
    # The offer's own name too, though the English request read the data first.
    assert "Assaggio di caffè" in section(italian, "offers") and "Coffee sampler" in section(english, "offers")
    assert "Assaggio di caffè" in section(italian, "funnel")
    assert "Assaggio di caffè" not in english
    assert 'lang="it"' in italian
    # The filter is in the figures' own CSV links, so the filtered page has its own rendering.
    assert "country=IT&amp;csv=offers" in section(italians_only, "offers")
    assert "country=IT" not in section(italian, "offers")
    # Whatever else the URL carries, the links carry the filters alone.
    junk = page(client, executive, "/dashboard/", country="it", utm_source="mail")[1]
    assert "utm_source" not in section(junk, "offers") + section(junk, "km")
    assert "country=IT&amp;csv=offers" in section(junk, "offers")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # as a request runs: not inside a test's transaction
def test_the_analytic_reads_run_without_the_jit_and_leave_it_as_it_was():
    def jit():
        with connection.cursor() as cursor:
            cursor.execute("SHOW jit")
            return cursor.fetchone()[0]

    before = jit()
    with queries.analytic_read():
        assert jit() == "off"
    assert jit() == before


@pytest.mark.postgres
def test_inside_a_transaction_the_analytic_reads_put_the_jit_back_as_it_was():
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = on")
    with queries.analytic_read(), connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "on"
