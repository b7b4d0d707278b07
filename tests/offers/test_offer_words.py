"""The offer's own words in the customer's language (django-modeltranslation, offers/translation.py).

A marketer gives the name, the promise and the product's name and description per language in
the console; a page in a language without them shows the main (English) text, and the preview
says which texts fell back. Writing the main text never depends on the console's own language.
"""

from datetime import timedelta

import pytest
import time_machine
from django.utils import translation
from django.utils.html import escape

from offers import services
from offers.models import Offer, Product
from offers.terms import offer_terms
from offers.translation import fell_back, word_columns, words_set
from tests import factories
from tests.factories import NOW
from tests.offers.test_console import offer_post

pytestmark = pytest.mark.django_db
VISIT = NOW + timedelta(hours=1)


def live_offer(marketer):
    offer = factories.offer(actor=marketer, kind="free_trial_no_card", trial_days=7)
    return services.offer_launch(offer=offer, actor=marketer, at=NOW)


def landing(client, offer, language):
    with time_machine.travel(VISIT, tick=False):
        return client.get(f"/o/{offer.slug}/", HTTP_ACCEPT_LANGUAGE=language).content.decode()


def test_a_german_page_shows_the_german_words_and_a_polish_one_falls_back_to_english(client, marketer):
    offer = live_offer(marketer)
    words_set(obj=offer, words={"name_de": "Kaffee-Probe", "promise_de": "Unsere Bohnen zu Hause."})
    words_set(obj=offer.product, words={"name_de": "Bohnen 1 kg"})

    german = landing(client, offer, "de")
    polish = landing(client, offer, "pl")

    assert "Kaffee-Probe" in german and escape("Unsere Bohnen zu Hause.") in german
    assert "Bohnen 1 kg" in german and "Beans 1 kg" not in german
    assert "Coffee sampler" in polish and escape(offer.promise_en) in polish and "Beans 1 kg" in polish


def test_the_terms_name_the_product_in_the_customers_language():
    product = factories.product()
    words_set(obj=product, words={"name_it": "Caffè in grani 1 kg"})
    offer = factories.offer(product_=product, kind="free_trial_no_card", trial_days=7)
    variant = offer.variants.get()

    italian = offer_terms(offer=offer, variant=variant, language="it", at=NOW).text
    russian = offer_terms(offer=offer, variant=variant, language="ru", at=NOW).text

    assert "Caffè in grani 1 kg" in italian
    assert "Beans 1 kg" in russian  # no Russian name: the main one


def test_a_marketer_gives_translations_in_the_console_and_empties_one_to_fall_back(as_marketer, product):
    response = as_marketer.post(
        "/console/offers/new/",
        offer_post(product, name_it="Assaggio di caffè", promise_ru="Наши зёрна дома.", name_pl="  "),
    )

    assert response.status_code == 302
    offer = Offer.objects.get()
    assert (offer.name_en, offer.name_it, offer.promise_ru, offer.name_pl) == (
        "Coffee sampler",
        "Assaggio di caffè",
        "Наши зёрна дома.",
        None,
    )
    edit = offer_post(product, name_it="", **{"variants-1-name": ""})
    assert as_marketer.post(f"/console/offers/{offer.slug}/edit/", edit).status_code == 302
    offer.refresh_from_db()
    assert offer.name_it is None
    with translation.override("it"):
        assert offer.name == "Coffee sampler"


def test_a_console_in_german_edits_the_main_text_not_the_german_one(as_marketer, marketer):
    offer = factories.offer(actor=marketer)
    words_set(obj=offer, words={"name_de": "Kaffee-Probe"})
    data = offer_post(offer.product, name="Coffee sampler, summer", name_de="Kaffee-Probe", **{"variants-1-name": ""})

    response = as_marketer.post(f"/console/offers/{offer.slug}/edit/", data, HTTP_ACCEPT_LANGUAGE="de")

    assert response.status_code == 302
    offer.refresh_from_db()
    assert (offer.name_en, offer.name_de) == ("Coffee sampler, summer", "Kaffee-Probe")
    form = as_marketer.get(f"/console/offers/{offer.slug}/edit/", HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert 'name="name" value="Coffee sampler, summer"' in form  # the main field shows the main text


@pytest.mark.parametrize(
    ("column", "text", "words"),
    [
        ("name_it", "x" * 201, "The name can have no more than 200 characters."),
        ("promise_pl", "x" * 201, "Keep the promise to one line of no more than 200 characters."),
    ],
)
def test_a_translation_has_the_main_texts_limits_and_a_refused_one_saves_nothing(
    as_marketer, product, column, text, words
):
    response = as_marketer.post("/console/offers/new/", offer_post(product, **{column: text}))

    assert response.status_code == 400 or response.status_code == 200
    assert escape(words) in response.content.decode()
    assert not Offer.objects.exists()


def test_a_products_translations_are_kept_with_the_same_limits(as_marketer, product):
    data = {
        "sku": product.sku,
        "name": product.name,
        "description": "",
        "price": "24.00",
        "currency": "EUR",
        "interval": "",
        "name_fr": "Grains 1 kg",
        "description_ru": "x" * 10_001,
    }
    refused = as_marketer.post(f"/console/products/{product.sku}/edit/", data)
    assert refused.status_code == 400
    assert escape("The description can have no more than 10,000 characters.") in refused.content.decode()
    product.refresh_from_db()
    assert product.name_fr is None

    data["description_ru"] = "Зёрна"
    assert as_marketer.post(f"/console/products/{product.sku}/edit/", data).status_code == 302
    product.refresh_from_db()
    assert (product.name_en, product.name_fr, product.description_ru) == ("Beans 1 kg", "Grains 1 kg", "Зёрна")


def test_the_preview_says_which_texts_fell_back(as_marketer, marketer):
    offer = factories.offer(actor=marketer)
    words_set(obj=offer, words={"name_it": "Assaggio di caffè"})

    italian = as_marketer.get(f"/console/offers/{offer.slug}/preview/?lang=it").content.decode()
    english = as_marketer.get(f"/console/offers/{offer.slug}/preview/?lang=en").content.decode()

    assert "Assaggio di caffè" in italian
    # The preview page is in the language it previews, the note too.
    assert (
        escape("Non tradotti in questa lingua, quindi mostrati in inglese: la promessa, il nome del prodotto.")
        in italian
    )
    assert "Not translated" not in english and "Non tradotti" not in english
    german = as_marketer.get(f"/console/offers/{offer.slug}/preview/?lang=de").content.decode()
    assert "Coffee sampler" in german and "Assaggio" not in german
    assert fell_back(offer, "it") == ["promise"] and fell_back(offer.product, "en") == []


def test_a_duplicate_keeps_the_translations(marketer):
    offer = factories.offer(actor=marketer)
    words_set(obj=offer, words={"name_ru": "Пробник кофе"})

    copy = services.offer_duplicate(offer=offer, actor=marketer, at=NOW)

    assert copy.name_ru == "Пробник кофе"
    assert copy.name_en == "Coffee sampler (copy)"


def test_writing_through_the_services_in_any_language_writes_the_main_text(marketer):
    with translation.override("pl"):
        product = services.product_create(sku="tea", name="Tea", price_amount=500, currency="EUR")
        offer = factories.offer(actor=marketer, product_=product)

    assert (product.name_en, product.name_pl) == ("Tea", None)
    assert (offer.name_en, offer.name_pl) == ("Coffee sampler", None)
    assert set(word_columns(Product)) >= {"name_it", "description_pl"} and "name_en" not in word_columns(Offer)


def test_an_unknown_translation_is_refused():
    product = factories.product()

    with pytest.raises(ValueError):
        words_set(obj=product, words={"name_xx": "?"})
    with pytest.raises(ValueError):
        words_set(obj=product, words={"price_amount_it": "1"})
