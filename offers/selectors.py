"""Reads about offers shared by the console, the API and the jobs."""

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils.translation import gettext as _

from offers.models import Offer, Product
from trials.models import Assignment, Trial


def _count(model, **filters) -> Coalesce:
    # A correlated COUNT per offer: one query for the whole list, and no row multiplication from
    # joining two one-to-many tables at once.
    subquery = (
        model.objects.filter(offer=OuterRef("pk"), **filters)
        .order_by()
        .values("offer")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(subquery, output_field=IntegerField()), Value(0))


def offer_list_with_counters(*, status: str | None = None, search: str = "") -> QuerySet[Offer]:
    """Offers with live counters: assigned, claimed, converted; remaining comes from the model."""
    offers = Offer.objects.select_related("product").annotate(
        # A visitor's anonymous row that their account's own row superseded at login is the
        # same person: counted once (trials.services.assignments_join).
        assigned=_count(Assignment, superseded_by__isnull=True),
        claimed=_count(Trial),
        converted=_count(Trial, status=Trial.Status.CONVERTED),
    )
    if status:
        offers = offers.filter(status=status)
    if search:
        offers = offers.filter(Q(name__icontains=search) | Q(slug__icontains=search))
    return offers.order_by("-created_at", "-pk")


def offer_list(*, status: str | None = None) -> QuerySet[Offer]:
    """Offers with their product and variants, newest first."""
    offers = Offer.objects.select_related("product").prefetch_related("variants")
    if status:
        offers = offers.filter(status=status)
    return offers.order_by("-created_at", "-pk")


def offer_get(*, slug: str) -> Offer:
    """The offer with this slug, with its product and variants; Http404 (the API's NotFound)
    when there is none."""
    try:
        return Offer.objects.select_related("product").prefetch_related("variants").get(slug=slug)
    except Offer.DoesNotExist:
        raise Http404(_("There is no offer with the slug “%(slug)s”.") % {"slug": slug}) from None


def product_list() -> QuerySet[Product]:
    return Product.objects.order_by("name", "pk")


def product_find(*, sku: str) -> Product | None:
    """The product with this SKU, or None: for the places where a missing product is a
    mistake in the input (an offer's product_sku), not a missing page."""
    return Product.objects.filter(sku=sku).first()


def product_get(*, sku: str) -> Product:
    product = product_find(sku=sku)
    if product is None:
        raise Http404(_("There is no product with the SKU “%(sku)s”.") % {"sku": sku})
    return product
