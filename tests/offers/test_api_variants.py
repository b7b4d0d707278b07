"""Editing an offer whose variants already have customers (an imported history is enough) keeps
the variants' rows, through the API's PATCH and the console's edit page alike. Removing or
renaming a variant in use is refused on the variants field, never a 500."""

import pytest

from offers.validation import variant_in_use
from tests.offers.test_console import offer_post
from tests.offers.test_services import with_history
from tests.support import api_as

pytestmark = pytest.mark.django_db

IN_USE = variant_in_use("long")


def patch(marketer, variants):
    return api_as(marketer).patch("/api/v1/offers/coffee-sampler", data={"variants": variants}, format="json")


def test_patch_changes_a_variant_in_use_and_keeps_its_row(marketer):
    offer = with_history(marketer, claimed=True)
    long = offer.variants.get(name="long")

    response = patch(marketer, [{"name": "default"}, {"name": "long", "trial_days": 21}, {"name": "extra"}])

    assert response.status_code == 200, response.json()
    assert [(v["name"], v["trial_days"]) for v in response.json()["variants"]] == [
        ("default", None), ("long", 21), ("extra", None),
    ]  # fmt: skip
    assert offer.variants.get(name="long").pk == long.pk


@pytest.mark.parametrize(
    "variants", [[{"name": "default"}], [{"name": "default"}, {"name": "longer", "trial_days": 28}]],
    ids=["removed", "renamed"],
)  # fmt: skip
def test_patch_refuses_to_remove_or_rename_a_variant_in_use(marketer, variants):
    offer = with_history(marketer)

    response = patch(marketer, variants)

    assert response.status_code == 400
    assert response.json() == {"errors": {"variants": [IN_USE]}}
    assert [v.name for v in offer.variants.all()] == ["default", "long"]


def console_edit(client, offer, **changes):
    data = offer_post(offer.product, **{"variants-1-trial_days": "28", **changes})
    return client.post(f"/console/offers/{offer.slug}/edit/", data)


def test_the_console_changes_a_variant_in_use_and_keeps_its_row(client, marketer):
    offer = with_history(marketer, claimed=True)
    long = offer.variants.get(name="long")
    client.force_login(marketer)

    response = console_edit(client, offer, **{"variants-1-trial_days": "21"})

    assert response.status_code == 302
    assert (offer.variants.get(name="long").pk, offer.variants.get(name="long").trial_days) == (long.pk, 21)


@pytest.mark.parametrize("name", ["", "longer"], ids=["removed", "renamed"])
def test_the_console_refuses_to_remove_or_rename_a_variant_in_use(client, marketer, name):
    offer = with_history(marketer)
    client.force_login(marketer)

    response = console_edit(client, offer, **{"variants-1-name": name})

    assert response.status_code == 400
    assert response.context["form"].variant_errors == [IN_USE]
    assert [v.name for v in offer.variants.all()] == ["default", "long"]
