"""Two requests that take the same SKU, slug or variant name at once: both may pass the
validation's look, but the unique constraint lets only one insert commit, and the other gets the
look's own words on the field, from the service, the API and the console alike. Never a 500.

Real races: each thread has its own PostgreSQL connection, and a barrier releases them together.
"""

import threading
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client

from offers import services
from offers.models import Offer, Product, Variant
from offers.validation import VARIANT_NAME_TWICE, VariantSpec, sku_taken, slug_taken
from tests import factories
from tests.factories import NOW
from tests.offers.test_api import OFFER, PRODUCT
from tests.offers.test_console import offer_post
from tests.support import api_as, post

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
RACERS = 4


def race(work, count: int = RACERS) -> list:
    """Run ``work(number)`` in ``count`` threads released at once; each result or exception."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(number):
        try:
            barrier.wait(timeout=30)
            results[number] = work(number)
        except Exception as exc:
            results[number] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(number,)) for number in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def refusals(results) -> list[dict]:
    errors = [result for result in results if isinstance(result, Exception)]
    assert all(isinstance(error, ValidationError) for error in errors), errors
    return [error.message_dict for error in errors]


# --- In the service ------------------------------------------------------------------------------
def test_the_same_sku_at_once_makes_one_product_and_field_errors():
    results = race(lambda n: services.product_create(sku="beans-1kg", name=f"Beans {n}", price_amount=2400,
                                                     currency="EUR"))  # fmt: skip

    assert Product.objects.filter(sku="beans-1kg").count() == 1
    assert refusals(results) == [{"sku": [sku_taken("beans-1kg")]}] * (RACERS - 1)


def test_changing_two_products_to_the_same_sku_at_once_keeps_one(db):
    products = [factories.product(sku=f"beans-{n}") for n in range(RACERS)]

    results = race(lambda n: services.product_update(product=products[n], sku="beans-all"))

    assert Product.objects.filter(sku="beans-all").count() == 1
    assert refusals(results) == [{"sku": [sku_taken("beans-all")]}] * (RACERS - 1)


def offer_values(product, **changes):
    return {"slug": "coffee-sampler", "name": "Coffee sampler", "kind": "sample", "trial_days": 14, "trial_price": 0,
            "currency": "EUR", "starts_at": NOW, "ends_at": NOW + timedelta(days=60), "product": product,
            **changes}  # fmt: skip


def test_the_same_slug_at_once_makes_one_offer_and_field_errors(marketer):
    product = factories.product()

    results = race(lambda n: services.offer_create(actor=marketer, values=offer_values(product), at=NOW))

    assert Offer.objects.count() == 1
    assert Variant.objects.count() == 1
    assert refusals(results) == [{"slug": [slug_taken("coffee-sampler")]}] * (RACERS - 1)


def test_renaming_two_offers_to_the_same_slug_at_once_keeps_one(marketer):
    product = factories.product()
    offers = [factories.offer(actor=marketer, slug=f"sampler-{n}", product_=product) for n in range(RACERS)]

    results = race(lambda n: services.offer_update(offer=offers[n], actor=marketer, values={"slug": "sampler"}))

    assert Offer.objects.filter(slug="sampler").count() == 1
    assert refusals(results) == [{"slug": [slug_taken("sampler")]}] * (RACERS - 1)


def test_duplicating_one_offer_at_once_gives_each_copy_its_own_slug(marketer):
    offer = factories.offer(actor=marketer)

    results = race(lambda n: services.offer_duplicate(offer=offer, actor=marketer, at=NOW).slug)

    assert sorted(results) == sorted(["coffee-sampler-copy", *(f"coffee-sampler-copy-{n}" for n in range(2, 5))])


def test_adding_the_same_variant_at_once_makes_one_row(marketer):
    offer = factories.offer(actor=marketer)
    wanted = [VariantSpec("default", 1), VariantSpec("long", 1, trial_days=28)]

    results = race(lambda n: services.offer_update(offer=offer, actor=marketer, values={}, variants=wanted))

    assert refusals(results) == []
    assert [(v.name, v.trial_days) for v in offer.variants.all()] == [("default", None), ("long", 28)]


def test_a_variant_insert_that_loses_a_race_says_two_variants_have_the_same_name(marketer, monkeypatch):
    """offer_update locks the offer's row, so two edits cannot both insert "long"; the constraint
    is still mapped, for a writer without the lock: here, the variant writer itself, raced."""
    from django.db import transaction

    offer = factories.offer(actor=marketer)
    wanted = [VariantSpec("default", 1), VariantSpec("long", 1, trial_days=28)]
    both_have_read = threading.Barrier(2)
    create = Variant.objects.create

    def create_after_both_read(**fields):
        # Only timing: each writer inserts once both have read the rows without "long".
        both_have_read.wait(timeout=30)
        return create(**fields)

    monkeypatch.setattr(Variant.objects, "create", create_after_both_read)

    def save(number):
        with transaction.atomic():
            services._save_variants(Offer.objects.get(pk=offer.pk), wanted)

    results = race(save, count=2)

    assert offer.variants.filter(name="long").count() == 1
    assert refusals(results) == [{"variants": [VARIANT_NAME_TWICE]}]


# --- Through the API and the console -------------------------------------------------------------
def test_the_api_answers_a_raced_sku_and_slug_with_a_field_error(marketer):
    clients = [api_as(marketer) for _ in range(RACERS)]

    products = race(lambda n: post(clients[n], "/api/v1/products", PRODUCT))
    offers = race(lambda n: post(clients[n], "/api/v1/offers", OFFER))

    for responses, field, words in (
        (products, "sku", sku_taken("beans-1kg")),
        (offers, "slug", slug_taken(OFFER["slug"])),
    ):
        assert sorted(response.status_code for response in responses) == [201] + [400] * (RACERS - 1)
        assert [r.json() for r in responses if r.status_code == 400] == [{"errors": {field: [words]}}] * (RACERS - 1)


def test_the_console_answers_a_raced_sku_and_slug_with_a_field_error(marketer):
    clients = [Client() for _ in range(RACERS)]
    for client in clients:
        client.force_login(marketer)
    product = {"sku": "beans-1kg", "name": "Beans", "price": "24.00", "currency": "EUR", "interval": ""}

    products = race(lambda n: clients[n].post("/console/products/new/", product))
    offers = race(lambda n: clients[n].post("/console/offers/new/", offer_post(Product.objects.get())))

    for responses, field, words in (
        (products, "sku", sku_taken("beans-1kg")),
        (offers, "slug", slug_taken("coffee-sampler")),
    ):
        assert sorted(response.status_code for response in responses) == [302] + [400] * (RACERS - 1)
        for response in responses:
            if response.status_code == 400:
                assert response.context["form"].errors[field] == [words]
    assert Offer.objects.count() == 1
