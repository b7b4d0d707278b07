from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.utils import timezone, translation

from offers.landing import landing_context, offer_cards, public_variant
from offers.models import Offer


def home(request):
    """The public list of live offers."""
    offers = Offer.objects.filter(status=Offer.Status.LIVE).select_related("product").prefetch_related("variants")
    cards = offer_cards(offers=offers, language=translation.get_language(), at=timezone.now())
    return render(request, "offers/home.html", {"cards": cards})


def offer_landing(request, slug):
    """An offer's public page: what it is, its price and terms, and whether it can be claimed.
    Drafts do not exist for the public."""
    offer = get_object_or_404(Offer.objects.select_related("product").exclude(status=Offer.Status.DRAFT), slug=slug)
    variant = public_variant(offer)
    if variant is None:
        raise Http404("This offer has no variant to show.")
    context = landing_context(offer=offer, variant=variant, language=translation.get_language(), at=timezone.now())
    return render(request, "offers/landing.html", context)
