"""The planning inputs are bounded and explained: /console/planning.json and the offer form's
planning boxes answer any text with either figures or a message saying what is allowed, never
a server error (a 310-digit number of customers used to overflow a float)."""

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.planning import MAX_WEEKLY_ELIGIBLE, planning_table
from offers.models import Offer
from tests import factories
from tests.offers.test_console import offer_post

pytestmark = pytest.mark.django_db

HUGE = "9" * 310
ALLOWED = {
    "weekly": "whole number from 1 to 10,000,000",
    "baseline": "percentage from 0.1 to 99.9",
    "holdout": "whole percentage from 0 to 99",
}


@pytest.mark.parametrize("parameter", ["weekly", "baseline", "holdout"])
@pytest.mark.parametrize(
    "value",
    [
        HUGE,
        "-" + HUGE,
        "abc",
        "",
        " ",
        "1e309",
        "NaN",
        "inf",
        "-1",
        "0x10",
        "1.5e3",
        "10000001",
        "100",
        "\x00",
        "1\x002",
    ],
)
def test_a_refused_planning_input_is_a_400_that_says_what_is_allowed(as_marketer, parameter, value):
    if parameter == "weekly" and value in ("1.5e3", "100"):
        value = "0"  # 1.5e3 is 1,500 customers, and 100 is 100: both allowed
    response = as_marketer.get("/console/planning.json", {parameter: value})

    assert response.status_code == 400, (parameter, value, response.content)
    body = response.json()
    assert list(body["errors"]) == [parameter]
    assert ALLOWED[parameter] in body["errors"][parameter][0]
    assert ALLOWED[parameter] in body["error"]
    assert "invalid literal" not in body["error"] and "could not convert" not in body["error"]


def test_the_edges_of_what_is_allowed_give_figures(as_marketer):
    for query in (
        {"weekly": "1", "baseline": "0.1", "holdout": "0"},
        {"weekly": str(MAX_WEEKLY_ELIGIBLE), "baseline": "99.9", "holdout": "99"},
        {"weekly": "1,000".replace(",", ""), "baseline": "12.5", "holdout": "10"},
    ):
        response = as_marketer.get("/console/planning.json", query)
        assert response.status_code == 200, (query, response.content)
        assert [row["weeks"] for row in response.json()["rows"]] == [4, 8, 12]


def test_absent_inputs_take_their_defaults(as_marketer):
    assert as_marketer.get("/console/planning.json").status_code == 200


def test_the_table_itself_refuses_more_customers_than_it_can_count():
    with pytest.raises(ValueError, match="at most 10,000,000"):
        planning_table(weekly_eligible=10**310, baseline=0.2, holdout_percent=10)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    query=st.dictionaries(
        st.sampled_from(["weekly", "baseline", "holdout"]),
        st.one_of(
            st.text(max_size=30),
            st.integers(min_value=-(10**400), max_value=10**400).map(str),
            st.floats(allow_nan=True, allow_infinity=True).map(str),
            st.decimals(allow_nan=True, allow_infinity=True).map(str),
        ),
    )
)
def test_any_planning_input_gives_figures_or_a_clear_message(client, marketer, query):
    client.force_login(marketer)

    response = client.get("/console/planning.json", query)

    assert response.status_code in (200, 400)
    body = response.json()
    if response.status_code == 200:
        for row in body["rows"]:
            assert row["n_treatment"] >= 0 and row["n_control"] >= 0
            assert row["mde_absolute"] is None or math.isfinite(row["mde_absolute"])
    else:
        assert set(body["errors"]) <= set(query)
        for parameter, messages in body["errors"].items():
            assert ALLOWED[parameter] in messages[0]


@pytest.mark.parametrize(
    ("box", "value", "words"),
    [
        ("expected_weekly", HUGE, ALLOWED["weekly"]),
        ("expected_weekly", "abc", ALLOWED["weekly"]),
        ("baseline_percent", HUGE, ALLOWED["baseline"]),
        ("baseline_percent", "1e309", ALLOWED["baseline"]),
    ],
)
def test_the_offer_forms_planning_boxes_explain_a_refused_value_at_the_box(as_marketer, box, value, words):
    product = factories.product()
    data = offer_post(product, name="", **{box: value})

    response = as_marketer.post("/console/offers/new/", data)

    assert response.status_code == 400
    html = response.content.decode()
    assert f'id="id_{box}_error"' in html
    assert words in html
    assert f'href="#id_{box}"' in html


def test_a_huge_holdout_on_the_offer_form_is_a_field_error_not_a_server_error(as_marketer):
    product = factories.product()

    response = as_marketer.post("/console/offers/new/", offer_post(product, holdout_percent=HUGE))

    assert response.status_code == 400
    assert "below 100%" in " ".join(response.context["form"].errors["holdout_percent"])
    assert not Offer.objects.exists()


def test_a_refused_planning_box_does_not_stop_a_good_offer_from_being_saved(as_marketer):
    product = factories.product()

    response = as_marketer.post("/console/offers/new/", offer_post(product, expected_weekly=HUGE))

    assert response.status_code == 302
    assert Offer.objects.count() == 1
