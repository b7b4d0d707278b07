"""The customer's language: their own choice, remembered on the account, then the browser's.

Django's ``LocaleMiddleware`` picks the language from the cookie that ``set_language`` writes,
then from Accept-Language. A cookie belongs to one browser, though, and beat jobs have no browser
at all; so the choice of a logged-in customer is kept on ``User.preferred_language`` as well, and
``UserLanguageMiddleware`` puts it first. Mail written without a request (reminders, receipts)
asks ``user_language`` which language to write in.
"""

from django.conf import settings
from django.db import transaction
from django.utils import translation

from accounts.models import User


def supported(language: str) -> str:
    """One of ``settings.LANGUAGES`` (``pl-PL`` gives ``pl``), or "" for anything else."""
    try:
        return translation.get_supported_language_variant(language) if language else ""
    except LookupError:
        return ""


def user_language(user, default: str | None = None) -> str:
    """The language to write to ``user`` in: theirs, else ``default``, else the active one."""
    chosen = supported(getattr(user, "preferred_language", "") or "")
    return chosen or supported(default or "") or translation.get_language() or settings.LANGUAGE_CODE


def user_language_set(*, user: User, language: str) -> bool:
    """Remember ``language`` on the account; False (and nothing written) for an unknown one."""
    language = supported(language)
    if not language:
        return False
    with transaction.atomic():
        # Conditional, so a repeat of the same choice writes nothing.
        User.objects.filter(pk=user.pk).exclude(preferred_language=language).update(preferred_language=language)
    user.preferred_language = language
    return True


class UserLanguageMiddleware:
    """After ``LocaleMiddleware`` and ``AuthenticationMiddleware``: a logged-in customer reads the
    site in the language on their account, whatever this browser's cookie or Accept-Language say;
    and when they switch language (``set_language`` sets the cookie), the account remembers it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        signed_in = user is not None and user.is_authenticated
        if signed_in and (language := supported(user.preferred_language)):
            translation.activate(language)
            request.LANGUAGE_CODE = language
        response = self.get_response(request)
        cookie = response.cookies.get(settings.LANGUAGE_COOKIE_NAME)
        user = getattr(request, "user", None)  # set_language may run after a login in this request
        if cookie is not None and cookie.value and user is not None and user.is_authenticated:
            user_language_set(user=user, language=cookie.value)
        return response
