"""The offer's own words per language, with django-modeltranslation.

Each registered field gets a column per language (``name_it``, ``promise_pl``, ...), and reading
``offer.name`` gives the active language's text. The main text is the English one
(``MODELTRANSLATION_DEFAULT_LANGUAGE``, the same for every offer): an empty translation falls back
to it (``MODELTRANSLATION_FALLBACK_LANGUAGES``), so a page in Polish shows the English name until
a marketer gives the Polish one in the console.

modeltranslation writes ``offer.name = ...`` to the *active* language's column, so a marketer
whose console is in German would overwrite the German translation rather than the main text. The
services that write the main text run in the main language (``in_main_language``); the other
languages' columns are written only by name, through ``words_set``.
"""

from functools import wraps

from django.conf import settings
from django.db import transaction
from django.utils import translation
from modeltranslation.translator import TranslationOptions, register

from offers import validation
from offers.models import Offer, Product

MAIN_LANGUAGE = settings.MODELTRANSLATION_DEFAULT_LANGUAGE
OTHER_LANGUAGES = tuple(code for code, _name in settings.LANGUAGES if code != MAIN_LANGUAGE)


@register(Offer)
class OfferTranslationOptions(TranslationOptions):
    fields = ("name", "promise")


@register(Product)
class ProductTranslationOptions(TranslationOptions):
    fields = ("name", "description")


# Each translated field's limit and the words offers/validation.py uses for the main text.
LIMITS = {
    "name": (validation.MAX_NAME, "The name can have no more than {limit} characters."),
    "promise": (validation.MAX_PROMISE, "Keep the promise to one line of no more than {limit} characters."),
    "description": (validation.MAX_DESCRIPTION, "The description can have no more than {limit:,} characters."),
}


def translated_fields(model) -> tuple[str, ...]:
    return OfferTranslationOptions.fields if model is Offer else ProductTranslationOptions.fields


def word_columns(model) -> list[str]:
    """The per-language columns a marketer fills in, e.g. ``name_it``; the main one is not here."""
    return [f"{field}_{code}" for code in OTHER_LANGUAGES for field in translated_fields(model)]


def in_main_language(function):
    """Run a service that writes (and reads) the main text in the main language, whatever
    language the request that calls it is in."""

    @wraps(function)
    def wrapper(*args, **kwargs):
        with translation.override(MAIN_LANGUAGE):
            return function(*args, **kwargs)

    return wrapper


def words_problems(model, words: dict[str, str]) -> dict[str, list[str]]:
    """The same length rules as the main text, for each translation; unknown columns refused."""
    allowed = set(word_columns(model))
    problems: dict[str, list[str]] = {}
    for column, text in words.items():
        if column not in allowed:
            problems.setdefault(column, []).append("There is no such translation.")
            continue
        limit, message = LIMITS[column.rsplit("_", 1)[0]]
        if len(text or "") > limit:
            problems.setdefault(column, []).append(message.format(limit=limit))
    return problems


@transaction.atomic
def words_set(*, obj, words: dict[str, str]) -> None:
    """Write the translations given; an empty one is cleared, so the page falls back to the main
    text. A conditional UPDATE of only these columns: it races with nothing else."""
    if problems := words_problems(type(obj), words):
        raise ValueError(problems)
    values = {column: (text or "").strip() or None for column, text in words.items()}
    if values:
        type(obj).objects.filter(pk=obj.pk).update(**values)
        for column, value in values.items():
            setattr(obj, column, value)


def fell_back(obj, language: str) -> list[str]:
    """The translated fields of ``obj`` that have no text of their own in ``language`` (and so
    show the main text), e.g. ``["promise"]``. Fields empty in the main language too are left out."""
    if language == MAIN_LANGUAGE:
        return []
    return [
        field
        for field in translated_fields(type(obj))
        if not getattr(obj, f"{field}_{language}", None) and getattr(obj, f"{field}_{MAIN_LANGUAGE}", None)
    ]
