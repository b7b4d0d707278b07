"""The admin edits the offer's and the product's own words per language too (django-modeltranslation's
TranslationAdmin): its change page has a box per language for each translated field, and saving
it stores each language's text, which the pages in that language then show."""

from html.parser import HTMLParser

import pytest
from django.utils import translation

from offers import services
from offers.models import Offer, Product
from offers.translation import MAIN_LANGUAGE, OTHER_LANGUAGES, translated_fields
from tests import factories
from tests.factories import NOW

pytestmark = pytest.mark.django_db
RUSSIAN = "Те же зёрна, что и в наших кафе."  # noqa: RUF001 (Cyrillic, on purpose)


class _FormValues(HTMLParser):
    """What a browser would post back from the page's form, unchanged: each control's value."""

    def __init__(self):
        super().__init__()
        self.values: dict[str, str] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        name = attributes.get("name")
        if tag == "input" and name and attributes.get("type") not in ("submit", "button", "file"):
            if attributes.get("type") != "checkbox" or "checked" in attributes:
                self.values[name] = attributes.get("value") or ("on" if attributes.get("type") == "checkbox" else "")
        elif tag == "select" and name:
            self._select = name
            self.values.setdefault(name, "")
        elif tag == "option" and self._select and "selected" in attributes:
            self.values[self._select] = attributes.get("value") or ""
        elif tag == "textarea" and name:
            self._textarea = name
            self.values[name] = ""

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            self.values[self._textarea] += data.removeprefix("\n") if not self.values[self._textarea] else data


def form_values(html: str) -> dict[str, str]:
    parser = _FormValues()
    parser.feed(html)
    return parser.values


@pytest.fixture
def offer(marketer):
    return services.offer_launch(offer=factories.offer(actor=marketer), actor=marketer, at=NOW)


@pytest.mark.parametrize("model", [Offer, Product])
def test_the_change_page_has_a_box_per_language_for_each_translated_field(client, operator, offer, model):
    client.force_login(operator)
    obj = offer if model is Offer else offer.product

    page = client.get(f"/admin/offers/{model._meta.model_name}/{obj.pk}/change/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "ajax.googleapis.com" not in html  # no script from outside (the CSP would block it)
    values = form_values(html)
    for field in translated_fields(model):
        assert field not in values  # the column behind it is the main language's box
        assert values[f"{field}_{MAIN_LANGUAGE}"] == getattr(obj, f"{field}_{MAIN_LANGUAGE}")
        assert {f"{field}_{code}" for code in OTHER_LANGUAGES} <= set(values)


def test_saving_the_offer_stores_each_languages_words(client, operator, offer):
    client.force_login(operator)
    url = f"/admin/offers/offer/{offer.pk}/change/"
    data = form_values(client.get(url).content.decode())
    data.update({"name_it": "Assaggio di caffè", "promise_it": "Gli stessi chicchi dei nostri bar, a casa."})

    response = client.post(url, data)

    assert response.status_code == 302, form_values(response.content.decode())
    offer.refresh_from_db()
    assert (offer.name_it, offer.promise_it) == ("Assaggio di caffè", "Gli stessi chicchi dei nostri bar, a casa.")
    assert offer.name_en == "Coffee sampler" and offer.name_pl is None  # the others as they were
    with translation.override("it"):
        assert Offer.objects.get(pk=offer.pk).name == "Assaggio di caffè"
    with translation.override("pl"):
        assert Offer.objects.get(pk=offer.pk).name == "Coffee sampler"  # falls back to the main text


def test_saving_the_product_stores_each_languages_words(client, operator, offer):
    client.force_login(operator)
    product = offer.product
    url = f"/admin/offers/product/{product.pk}/change/"
    data = form_values(client.get(url).content.decode())
    data.update({"name_pl": "Klub kawowy", "description_ru": RUSSIAN})

    response = client.post(url, data)

    assert response.status_code == 302
    product.refresh_from_db()
    assert (product.name_pl, product.description_ru) == ("Klub kawowy", RUSSIAN)
    with translation.override("pl"):
        assert Product.objects.get(pk=product.pk).name == "Klub kawowy"
