"""The languages customers can read Foretaste in, and the catalogues behind them.

Every string a customer can see (the storefront, landing and terms, the account pages and their
emails, the layout and the error pages) is translated in every language; the console is for
marketers and may stay in English. Russian and Polish have three plural forms, and the catalogue
headers must say so, or gettext picks the wrong form for 2, 5 or 22.
"""

from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from django.conf import settings
from django.utils import translation

LOCALE = Path(settings.BASE_DIR) / "locale"
NEW = ("it", "ru", "pl")
CUSTOMER_FACING = (
    "offers/terms.py",
    "offers/landing.py",
    "offers/selectors.py",
    "accounts/context_processors.py",
    "config/settings.py",
    "templates/base.html",
    "templates/403.html",
    "templates/404.html",
    "templates/500.html",
    "templates/offers/",
    "templates/account/",
    "templates/emails/",
    "templates/trials/",
)
PLURAL_FORMS = {
    "it": "nplurals=2; plural=(n != 1);",
    "ru": "nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2);",
    "pl": "nplurals=3; plural=(n==1 ? 0 : n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2);",
}


def catalogue(language):
    with (LOCALE / language / "LC_MESSAGES" / "django.po").open("rb") as handle:
        return read_po(handle)


def test_the_site_speaks_english_italian_russian_polish_german_and_french():
    assert [code for code, _name in settings.LANGUAGES] == ["en", "it", "ru", "pl", "de", "fr"]


@pytest.mark.parametrize("language", NEW)
def test_the_plural_forms_header_is_the_languages_own(language):
    # Read through the header parser, so that makemessages wrapping the long line changes nothing.
    assert catalogue(language).plural_forms == PLURAL_FORMS[language]
    assert (LOCALE / language / "LC_MESSAGES" / "django.mo").exists()


@pytest.mark.parametrize("language", NEW)
def test_every_string_a_customer_sees_is_translated(language):
    missing = []
    for message in catalogue(language):
        if not message.id or not any(path.startswith(CUSTOMER_FACING) for path, _line in message.locations):
            continue
        strings = message.string if isinstance(message.id, tuple) else (message.string,)
        if not all(strings) or "fuzzy" in message.flags:
            missing.append(message.id)

    assert missing == []


@pytest.mark.parametrize(
    ("language", "expected"),
    [("it", "Accedi"), ("ru", "Войти"), ("pl", "Zaloguj się"), ("de", "Anmelden"), ("fr", "Se connecter")],
)
def test_the_compiled_catalogue_is_the_one_django_reads(language, expected):
    with translation.override(language):
        assert translation.gettext("Log in") == expected


@pytest.mark.parametrize("language", NEW)
def test_the_console_is_translated_too(language):
    untranslated = [message.id for message in catalogue(language) if message.id and not message.string]

    assert untranslated == []


@pytest.mark.django_db
@pytest.mark.parametrize("language", NEW)
def test_every_page_renders_in_every_new_language(as_marketer, language):
    """A translation with a wrong placeholder breaks the page it is on; walk the pages."""
    from offers.models import Offer
    from offers.services import offer_launch
    from tests import factories

    offer = factories.offer(actor=None)
    live = factories.offer(actor=None, slug="tea-sampler", product_=offer.product)
    offer_launch(offer=live, actor=None)
    sku = offer.product.sku
    paths = [
        "/",
        f"/o/{live.slug}/",
        "/me/",
        "/console/",
        "/console/offers/new/",
        f"/console/offers/{offer.slug}/",
        f"/console/offers/{offer.slug}/edit/",
        f"/console/offers/{offer.slug}/preview/",
        "/console/products/",
        "/console/products/new/",
        f"/console/products/{sku}/edit/",
        "/console/imports/",
        "/no-such-page/",
    ]
    for path in paths:
        response = as_marketer.get(path, HTTP_ACCEPT_LANGUAGE=language)
        assert response.status_code == (404 if path == "/no-such-page/" else 200), path
        assert f'<html lang="{language}">' in response.content.decode(), path
    # A form with errors renders the plural summary ("Please correct these %(n)s fields").
    response = as_marketer.post("/console/offers/new/", {"name": ""}, HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code in (200, 400)
    assert f'<html lang="{language}">' in response.content.decode()
    assert Offer.objects.count() == 2


def test_a_status_word_agrees_with_the_noun_it_describes():
    # "Active" and "Ended" describe a trial on one card and a subscription on the next; in
    # Italian, Russian and Polish the two nouns differ in gender, so each has its own word.
    from billing.selectors import SUBSCRIPTION_WORDS
    from trials.models import Trial
    from trials.selectors import STATUS_WORDS

    expected = {"it": ("Attivo", "Attiva"), "ru": ("Активна", "Активен"), "pl": ("Aktywna", "Aktywny")}
    for language, (subscription, trial) in expected.items():
        with translation.override(language):
            assert (str(SUBSCRIPTION_WORDS["active"]), str(STATUS_WORDS[Trial.Status.ACTIVE])) == (subscription, trial)
