"""Reads about offers shared by the console, the API and the jobs."""

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import Http404

from offers.models import Offer
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
        assigned=_count(Assignment),
        claimed=_count(Trial),
        converted=_count(Trial, status=Trial.Status.CONVERTED),
    )
    if status:
        offers = offers.filter(status=status)
    if search:
        offers = offers.filter(Q(name__icontains=search) | Q(slug__icontains=search))
    return offers.order_by("-created_at", "-pk")


def offer_get(*, slug: str) -> Offer:
    try:
        return Offer.objects.select_related("product").prefetch_related("variants").get(slug=slug)
    except Offer.DoesNotExist:
        raise Http404("No such offer") from None
