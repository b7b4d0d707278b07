import re
import secrets

from django.conf import settings
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils import timezone, translation

from offers import page_cache
from offers.landing import offer_cards, offer_html, product_context, visitor_problem
from offers.models import Offer
from trials import selectors as trial_selectors
from trials import services as trial_services

# The anonymous visitor's id. Random and unguessable (32 bytes from ``secrets``), not signed: a
# signature would only stop someone choosing an id, and choosing one gains nothing a fresh
# browser does not (each id hashes to some arm, and the assignment is fixed once written).
# Anything that does not look like one of ours is ignored and replaced.
VISITOR_COOKIE = "foretaste_visitor"
VISITOR_COOKIE_AGE = 400 * 24 * 60 * 60  # the longest browsers keep a cookie (RFC 6265bis)
_VISITOR_ID = re.compile(r"[A-Za-z0-9_-]{43}")


def visitor_id(request) -> str | None:
    value = request.COOKIES.get(VISITOR_COOKIE, "")
    return value if _VISITOR_ID.fullmatch(value) else None


def new_visitor_id() -> str:
    return secrets.token_urlsafe(32)


def remember_visitor(response, visitor: str) -> None:
    response.set_cookie(
        VISITOR_COOKIE,
        visitor,
        max_age=VISITOR_COOKIE_AGE,
        httponly=True,
        samesite="Lax",
        secure=settings.SESSION_COOKIE_SECURE,  # True in production (config/settings.py)
    )


def _customer(request):
    return request.user if request.user.is_authenticated else None


def home(request):
    """The public list of the live offers this visitor may see."""
    at = timezone.now()
    customer = _customer(request)
    offers = list(Offer.objects.filter(status=Offer.Status.LIVE).select_related("product").prefetch_related("variants"))
    arms = trial_selectors.arms_of_visitor(
        offer_ids=[offer.pk for offer in offers],
        customer_id=customer.pk if customer else None,
        visitor=None if customer else visitor_id(request),
    )
    cards = offer_cards(offers=offers, language=translation.get_language(), at=at, arms=arms)
    return render(request, "offers/home.html", {"cards": cards})


def offer_landing(request, slug):
    """An offer's public page. The visitor's arm is read, or on their first view written, before
    anything is rendered; the holdout gets the regular product page. Drafts do not exist for the
    public."""
    at = timezone.now()
    customer = _customer(request)
    visitor = None if customer else visitor_id(request)
    fresh = customer is None and visitor is None
    if fresh:
        visitor = new_visitor_id()
    assignment = None
    if not fresh:
        # A returning visitor: the assignment, its offer and its variant in one query.
        assignment = trial_selectors.assignment_for_landing(
            slug=slug, customer_id=customer.pk if customer else None, visitor=visitor
        )
    if assignment is not None and assignment.offer.status != Offer.Status.DRAFT:
        offer = assignment.offer
    else:
        # A first view: the offer, its product and its variants in one query.
        offer = trial_selectors.offer_for_landing(slug=slug)
        if offer is None:
            raise Http404("No such offer.")
        if assignment is None:
            try:
                assignment = trial_services.assignment_for_visitor(
                    offer=offer, customer=customer, visitor=visitor, at=at, new_visitor=fresh
                )
            except trial_services.NoArms:
                raise Http404("This offer has no variant to show.") from None
    language = translation.get_language()
    if assignment.is_holdout:
        response = render(request, "offers/product.html", product_context(offer=offer, language=language))
    else:
        html, context = offer_html(
            offer=offer, variant=assignment.variant, language=language, at=at, anonymous=customer is None
        )
        context.update(
            {
                "offer": offer,
                "product": offer.product,
                "body_html" if customer is None else "offer_html": html,
                "landing_url": request.path,
                "visitor_problem": visitor_problem(offer=offer, customer=customer, language=language, at=at)
                if context["is_open"]
                else "",
            }
        )
        if customer is None and page_cache.anonymous(request):
            # The page every anonymous visitor gets: its layout rendered once, not per request.
            page = page_cache.landing_page(
                request, template="offers/landing.html", context=context, key=(html, offer.name, request.path)
            )
            response = HttpResponse(page)
        else:
            response = render(request, "offers/landing.html", context)
    if fresh:
        remember_visitor(response, visitor)
    return response
