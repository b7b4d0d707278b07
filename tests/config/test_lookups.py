"""``field__any``: membership in a long list, as one parameter, on both backends."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

import config.lookups  # noqa: F401 (field__any)
from offers.models import Offer, Product
from tests import factories

pytestmark = pytest.mark.django_db


def test_any_finds_exactly_the_rows_listed_among_thousands_of_values():
    products = [factories.product(sku=f"sku-{n}") for n in range(3)]
    wanted = [products[0].pk, products[2].pk, *range(10**6, 10**6 + 40_000)]  # past SQLite's limit

    with CaptureQueriesContext(connection) as queries:
        found = set(Product.objects.filter(pk__any=wanted).values_list("pk", flat=True))

    assert found == {products[0].pk, products[2].pk}
    assert len(queries.captured_queries) == 1
    assert set(Product.objects.filter(sku__any=["sku-1", "nope"]).values_list("sku", flat=True)) == {"sku-1"}
    assert not Product.objects.filter(pk__any=[]).exists()
    assert Product.objects.exclude(pk__any=[products[1].pk]).count() == 2


def test_any_is_like_in_for_none_for_text_ids_and_refuses_one_string():
    products = [factories.product(sku=f"sku-{n}") for n in range(2)]

    assert set(Product.objects.filter(pk__any=[products[0].pk, None]).values_list("pk", flat=True)) == {products[0].pk}
    # NOT (id = ANY('{1, NULL}')) would be NULL for every other row.
    assert list(Product.objects.exclude(pk__any=[products[0].pk, None]).values_list("pk", flat=True)) == [
        products[1].pk
    ]
    assert Product.objects.filter(pk__any=[str(products[1].pk)]).get() == products[1]
    with pytest.raises(TypeError):
        list(Product.objects.filter(sku__any="sku-1"))


def test_any_on_a_foreign_key_takes_the_ids_it_points_at(marketer):
    offer = factories.offer(actor=marketer)
    other = factories.product(sku="other")

    assert list(Offer.objects.filter(product__any=[offer.product_id, other.pk])) == [offer]
    assert not Offer.objects.filter(product__any=[other.pk]).exists()
