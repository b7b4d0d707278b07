"""The console, the admin and the shared rules agree on what a launched offer may still change:
one list, Offer.LOCKED_AT_LAUNCH. A locked field is shown as a locked value, not as a box; a
changed value is refused from every door; the other fields can still be changed."""

import re

import pytest
from django.contrib.admin import site

from offers import services
from offers.admin import OfferAdmin, VariantInline
from offers.forms import offer_initial, variant_initial
from offers.models import Offer, Variant
from offers.validation import OFFER_FIELDS, VariantSpec, offer_problems, offer_values_complete
from tests import factories
from tests.factories import NOW
from tests.support import api_as

pytestmark = pytest.mark.django_db

# A different value for each locked field, as the console would post it.
CHANGED = {
    "kind": "paid_trial",
    "product": None,  # another product, made in the test
    "trial_days": "10",
    "trial_price": "1.00",
    "currency": "USD",
    "holdout_percent": "25",
}


def test_the_list_holds_the_promises_and_the_experiment():
    assert set(Offer.LOCKED_AT_LAUNCH) == {
        "kind", "product", "trial_days", "trial_price", "currency", "holdout_percent", "salt", "variants",
    }  # fmt: skip


@pytest.fixture
def live(marketer):
    offer = factories.offer(actor=marketer, holdout_percent=10)
    services.offer_launch(offer=offer, actor=marketer, at=NOW)
    offer.refresh_from_db()
    return offer


def _posted(offer: Offer) -> dict:
    data = {}
    for name, value in offer_initial(offer).items():
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif value is None:
            data[name] = ""
        elif name in ("starts_at", "ends_at"):
            data[name] = value.strftime("%Y-%m-%dT%H:%M")
        else:
            data[name] = str(value)
    rows = variant_initial(offer)
    data.update({"variants-TOTAL_FORMS": str(len(rows)), "variants-INITIAL_FORMS": "0"})
    for number, row in enumerate(rows):
        for name, value in row.items():
            data[f"variants-{number}-{name}"] = "" if value is None else str(value)
    return data


def _control(html: str, name: str) -> str:
    match = re.search(rf'<(?:input|select|textarea)\b[^>]*\bname="{re.escape(name)}"[^>]*>', html)
    return match.group(0) if match else ""


@pytest.mark.parametrize("field", Offer.LOCKED_AT_LAUNCH)
def test_the_admin_shows_each_locked_field_read_only_after_launch(rf, operator, live, field):
    request = rf.get("/")
    request.user = operator
    admin = OfferAdmin(Offer, site)

    if field == "variants":
        inline = VariantInline(Offer, site)
        assert not inline.has_add_permission(request, live)
        assert not inline.has_delete_permission(request, live)
        editable = {f.name for f in Variant._meta.fields if f.editable} - {"id", "offer"}
        assert editable <= set(inline.get_readonly_fields(request, live))
    else:
        assert field in admin.get_readonly_fields(request, live)
        assert field not in admin.get_readonly_fields(request, None)


@pytest.mark.parametrize("field", Offer.LOCKED_AT_LAUNCH)
def test_the_admin_change_page_has_no_box_for_a_locked_field(client, operator, live, field):
    client.force_login(operator)

    html = client.get(f"/admin/offers/offer/{live.pk}/change/").content.decode()

    name = "variants-0-weight" if field == "variants" else field
    assert _control(html, name) == ""
    assert _control(html, "name_en")  # unlocked fields stay editable (the main text's box)


@pytest.mark.parametrize("field", Offer.LOCKED_AT_LAUNCH)
def test_the_console_shows_each_locked_field_as_locked_not_as_a_box(client, marketer, live, field):
    client.force_login(marketer)

    html = client.get(f"/console/offers/{live.slug}/edit/").content.decode()

    if field == "salt":
        assert 'name="salt"' not in html  # never editable in the console
        return
    name = "variants-0-weight" if field == "variants" else field
    assert 'type="hidden"' in _control(html, name)
    assert "locked since launch" in html
    if field != "variants":
        assert f'id="id_{field}_locked"' in html
    assert 'type="hidden"' not in _control(html, "name")


@pytest.mark.parametrize("field", Offer.LOCKED_AT_LAUNCH)
def test_the_shared_rule_refuses_a_change_to_each_locked_field(live, field):
    values = offer_values_complete({name: getattr(live, name) for name in OFFER_FIELDS})
    variants = [VariantSpec(v.name, v.weight, v.kind, v.trial_days, v.trial_price) for v in live.variants.all()]
    assert not offer_problems(values=values, variants=variants, existing=live)

    if field == "variants":
        variants = [VariantSpec(variants[0].name, variants[0].weight + 1)]
    elif field == "product":
        values["product"] = factories.product(sku="tea-500g", name="Tea")
    elif field == "salt":
        values["salt"] = "another-salt"
    else:
        values[field] = {"kind": "paid_trial", "trial_days": 10, "trial_price": 100, "currency": "USD"}.get(field, 25)

    problems = offer_problems(values=values, variants=variants, existing=live).by_field

    assert "locked since launch" in " ".join(problems.get(field, [])), problems


@pytest.mark.parametrize("field", [name for name in Offer.LOCKED_AT_LAUNCH if name != "salt"])
def test_the_console_refuses_a_posted_change_to_each_locked_field(client, marketer, live, field):
    client.force_login(marketer)
    data = _posted(live)
    if field == "variants":
        data["variants-0-weight"] = "5"
    elif field == "product":
        data["product"] = str(factories.product(sku="tea-500g", name="Tea").pk)
    else:
        data[field] = CHANGED[field]

    response = client.post(f"/console/offers/{live.slug}/edit/", data)

    assert response.status_code == 400
    form = response.context["form"]
    errors = form.variant_errors if field == "variants" else form.errors.get(field, [])
    assert "locked since launch" in " ".join(errors), form.errors
    assert not live.changes.filter(action="updated").exists()


def test_a_live_offers_trial_length_cannot_go_from_14_to_10_days_but_its_name_can_change(client, marketer, live):
    client.force_login(marketer)

    refused = client.post(f"/console/offers/{live.slug}/edit/", _posted(live) | {"trial_days": "10"})
    saved = client.post(f"/console/offers/{live.slug}/edit/", _posted(live) | {"name": "Coffee sampler, autumn"})

    assert refused.status_code == 400
    assert saved.status_code == 302
    live.refresh_from_db()
    assert (live.trial_days, live.name) == (14, "Coffee sampler, autumn")


@pytest.mark.parametrize(
    ("field", "value"),
    [("trial_days", 10), ("trial_price", "1.00"), ("kind", "paid_trial"), ("holdout_percent", 25)],
)
def test_the_api_refuses_a_change_to_a_locked_field_in_the_same_words(marketer, live, field, value):
    response = api_as(marketer).patch(f"/api/v1/offers/{live.slug}", data={field: value}, format="json")

    assert response.status_code == 400
    assert "locked since launch" in " ".join(response.json()["errors"][field])
    live.refresh_from_db()
    assert (live.trial_days, live.trial_price, live.kind, live.holdout_percent) == (14, 0, "sample", 10)
