"""No input to the console's offer and product forms may cause a server error."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offers.models import Offer, Product
from tests import factories
from tests.offers.test_console import offer_post

FIELDS = [
    "slug", "name", "promise", "kind", "product", "trial_days", "trial_price", "currency", "eligibility",
    "recent_purchase_days", "allowed_countries", "inventory", "daily_limit", "starts_at", "ends_at", "grace_days",
    "sample_cost", "reminder_days", "holdout_percent", "variants-0-name", "variants-0-weight", "variants-0-kind",
    "variants-0-trial_days", "variants-0-trial_price", "variants-1-weight", "variants-TOTAL_FORMS",
]  # fmt: skip
junk = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["", " ", "0", "-1", "1e309", "NaN", "2026-02-30T25:61", "free_trial", "EUR", "holdout", "\x00"]),
)


@pytest.mark.django_db
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from(FIELDS), junk, max_size=8))
def test_the_offer_form_never_fails_with_a_server_error(client, marketer, changes):
    product = Product.objects.filter(sku="fuzz-beans").first() or factories.product(sku="fuzz-beans")
    client.force_login(marketer)
    before = Offer.objects.count()

    response = client.post("/console/offers/new/", offer_post(product, **changes))

    assert response.status_code in (302, 400)
    assert Offer.objects.count() == before + (1 if response.status_code == 302 else 0)


@pytest.mark.django_db
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from(["sku", "name", "price", "currency", "interval"]), junk, max_size=5))
def test_the_product_form_never_fails_with_a_server_error(client, marketer, changes):
    client.force_login(marketer)
    data = {"sku": "beans", "name": "Beans", "price": "24.00", "currency": "EUR", "interval": ""} | changes

    response = client.post("/console/products/new/", data)

    assert response.status_code in (302, 400)
