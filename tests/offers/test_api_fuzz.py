"""Whatever a client sends to the catalogue and offers API, it gets an answer, never a 500:
wrong types, missing keys, huge numbers, odd strings and nested junk are all 400s."""

import json
import os
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests import factories
from tests.offers.test_api import OFFER, PRODUCT

pytestmark = pytest.mark.django_db

ODD_STRINGS = [
    "", " ", "\x00", "\ud800", "ß", "١٢٣", "🙂" * 50, "x" * 5000, "<script>alert(1)</script>", "' OR 1=1 --",
    "NaN", "Infinity", "-0", "1e999999999", "9" * 400, "1_000.00", "24.00", "0.00", "-1.00", "0.001",
    "2026-06-01T09:00:00", "2026-06-01T09:00:00+14:00", "2026-06-01T09:00:00+25:00", "0001-01-01T00:00:00+12:00",
    "9999-12-31T23:59:59-12:00", "beans-1kg", "EUR", "eur", "JPY", "month", "sample", "free_trial", "holdout",
    "default", "no_recent_purchase", "DE",
]  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([0, -1, 1, 99, 100, 366, 367, 32767, 32768, 2**31 - 1, 2**31, 2**63])
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(ODD_STRINGS)
)
JUNK = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)  # fmt: skip


def near(valid):
    """Mostly the right value, sometimes anything at all."""
    return st.one_of(st.just(valid), JUNK)


VARIANT = st.fixed_dictionaries(
    {},
    optional={
        "name": near("default"),
        "weight": near(1),
        "kind": near("discount"),
        "trial_days": near(28),
        "trial_price": near("1.00"),
    },
)
OFFER_FIELDS = {key: near(value) for key, value in OFFER.items() if key != "variants"} | {
    "variants": st.one_of(st.lists(VARIANT, max_size=4), JUNK),
    "promise": near("The beans our cafés brew."),
    "physical": near(True),
    "eligibility": near("no_recent_purchase"),
    "recent_purchase_days": near(30),
    "allowed_countries": st.one_of(st.lists(near("DE"), max_size=3), JUNK),
    "inventory": near(100),
    "daily_limit": near(10),
    "grace_days": near(7),
    "sample_cost": near("2.00"),
    "reminder_days": st.one_of(st.lists(near(3), max_size=4), JUNK),
    "feedback_survey": near(False),
}
OFFER_BODIES = st.one_of(st.fixed_dictionaries({}, optional=OFFER_FIELDS), JUNK)
PRODUCT_FIELDS = {key: near(value) for key, value in PRODUCT.items()} | {"description": near("Whole beans.")}
PRODUCT_BODIES = st.one_of(st.fixed_dictionaries({}, optional=PRODUCT_FIELDS), JUNK)
PATCH_BODIES = st.fixed_dictionaries({}, optional={k: v for k, v in OFFER_FIELDS.items() if k != "slug"})

FUZZ = settings(
    # Kept quick for every run; FORETASTE_FUZZ_EXAMPLES=5000 searches deeper.
    max_examples=int(os.environ.get("FORETASTE_FUZZ_EXAMPLES", "150")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def api(marketer):
    factories.offer(slug="draft-offer")  # also creates beans-1kg, so offers can reach the deeper rules
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=marketer).key}")
    return client


def send(client, method: str, url: str, body) -> int:
    raw = json.dumps(body)  # NaN and Infinity go out as such; the API must refuse them with a 400
    return getattr(client, method)(url, data=raw, content_type="application/json").status_code


@FUZZ
@given(body=OFFER_BODIES)
def test_no_offer_body_makes_the_server_fail(api, body):
    assert send(api, "post", "/api/v1/offers", body) in (201, 400)


@FUZZ
@given(body=PRODUCT_BODIES)
def test_no_product_body_makes_the_server_fail(api, body):
    assert send(api, "post", "/api/v1/products", body) in (201, 400)


@FUZZ
@given(body=PATCH_BODIES)
def test_no_offer_change_makes_the_server_fail(api, body):
    assert send(api, "patch", "/api/v1/offers/draft-offer", body) in (200, 400)


@pytest.mark.parametrize("url", ["/api/v1/offers", "/api/v1/products"])
def test_a_number_too_long_to_read_is_a_400(api, url):
    raw = '{"trial_days": ' + "9" * 5000 + ', "price": 1}'

    response = api.post(url, data=raw, content_type="application/json")

    assert response.status_code == 400
    assert "not valid JSON" in response.json()["errors"]["non_field_errors"][0]


# --- Dates at the edge ---------------------------------------------------------------------------
# Any moment a client can write, from year 1 to 9999 and at any offset, with the longest trials
# and reminders: what the rules accept, the landing page and the preview can show.
OFFSETS = [UTC, *(timezone(timedelta(hours=hours)) for hours in (-12, -1, 5, 14))]
MOMENTS = (
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.sampled_from(OFFSETS))
    # Mostly near the accepted range's edges, where accepted values live.
    | st.datetimes(min_value=datetime(1999, 12, 30), max_value=datetime(2040, 1, 1), timezones=st.sampled_from(OFFSETS))
) | st.sampled_from(["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "2000-01-01T00:00:00Z"])
EDGE_OFFERS = st.fixed_dictionaries(
    {
        "starts_at": MOMENTS,
        "ends_at": st.none() | MOMENTS,
        "trial_days": st.sampled_from([1, 2, 3, 14, 365, 366]),
        "kind": st.sampled_from(["sample", "free_trial", "discount", "free_trial_no_card"]),
        "reminder_days": st.none() | st.lists(st.sampled_from([1, 2, 3, 7, 13, 364, 365]), max_size=10),
        "variant_days": st.none() | st.sampled_from([1, 366]),
    }
)
slugs = iter(range(10**9))


@FUZZ
@given(edge=EDGE_OFFERS)
def test_every_offer_the_rules_accept_can_be_shown(api, client, marketer, edge):
    client.force_login(marketer)
    slug = f"edge-{next(slugs)}"
    body = {
        **OFFER, "slug": slug, "kind": edge["kind"], "trial_days": edge["trial_days"],
        "reminder_days": edge["reminder_days"],
        "starts_at": edge["starts_at"] if isinstance(edge["starts_at"], str) else edge["starts_at"].isoformat(),
        "ends_at": edge["ends_at"] if not hasattr(edge["ends_at"], "isoformat") else edge["ends_at"].isoformat(),
        "variants": [{"name": "default"}, {"name": "other", "trial_days": edge["variant_days"]}],
    }  # fmt: skip

    status = send(api, "post", "/api/v1/offers", body)

    assert status in (201, 400)
    if status == 400:
        return
    for variant in ("default", "other"):
        assert client.get(f"/console/offers/{slug}/preview/?variant={variant}").status_code == 200
    assert api.post(f"/api/v1/offers/{slug}/launch").status_code == 200
    assert client.get(f"/o/{slug}/").status_code == 200
