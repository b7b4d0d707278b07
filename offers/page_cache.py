"""The anonymous visitor's landing page whole, rendered once per process, content and language.

Most visitors are anonymous, and for all of them the page around the (already cached) offer
part is the same but for two values: the CSRF token of the language form and the page's own
address that form returns to. The page is rendered once with a mark in place of each; a request
gets the stored page with its own token and address put in. Rendering the site's layout
(``base.html``: the menu, the language list, the static files' addresses) cost more than
everything else on a returning visit.

The marks are random per process, so no offer text can contain one, and the pages are kept in
this process only: the offer part they are made from is what the shared cache holds, and its key
is its content (``offers.landing.offer_html``), so an edited offer is a new page here too. Only
for a visitor with nothing of their own on the page: anonymous, and no message waiting.
"""

import secrets

from django.contrib.auth.models import AnonymousUser
from django.contrib.messages import get_messages
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.html import escape

from offers.landing import Recent

_MARK = secrets.token_hex(16)
CSRF_MARK = f"csrf{_MARK}"
PATH_MARK = f"/path{_MARK}/"

_PAGES = Recent(256)


class _AnyAnonymousRequest:
    """What the layout reads of the request, with the marks in place of the visitor's values.
    ``path`` is only compared (with the menu's links, none of which is a landing page)."""

    user = AnonymousUser()
    path = PATH_MARK
    _messages = ()  # read by the messages context processor: nothing waiting

    def get_full_path(self) -> str:
        return PATH_MARK


def anonymous(request) -> bool:
    """Whether the page for ``request`` is the one every anonymous visitor gets: nobody logged
    in, and no message waiting (a message would be shown, and used up, by a fresh render)."""
    return not request.user.is_authenticated and not len(get_messages(request))


def landing_page(request, *, template: str, context: dict, key: tuple) -> str:
    """``template`` rendered with ``context`` for the anonymous visitor of ``request``: byte for
    byte what ``render`` gives (the CSRF token is random on each render anyway). ``key`` is
    everything of ``context`` the page shows, as plain values (the offer part's own text, the
    offer's name ...); the template and the active language are added to it here."""
    key = (template, translation.get_language(), *key)
    page = _PAGES.get(key)
    if page is None:
        page = render_to_string(template, {**context, "csrf_token": CSRF_MARK}, request=_AnyAnonymousRequest())
        _PAGES.put(key, page)
    return page.replace(CSRF_MARK, get_token(request)).replace(PATH_MARK, escape(request.get_full_path()))
