"""Reads about trials shared by the pages, the jobs and the console."""

from datetime import datetime

from django.http import Http404
from django.utils.translation import gettext as _

from trials.models import Trial


def trial_get_for_customer(*, trial_id, customer) -> Trial:
    """The customer's own trial; ``Http404`` for anyone else's (never a 403, which would say it
    exists) and for an id that is not a number."""
    try:
        return Trial.objects.select_related("offer__product", "variant").get(pk=int(trial_id), customer=customer)
    except (Trial.DoesNotExist, TypeError, ValueError):
        raise Http404(_("No such trial.")) from None


def trial_list_for_customer(*, customer):
    """The customer's trials, newest first, without the claims they never completed."""
    return (
        Trial.objects.filter(customer=customer)
        .exclude(status__in=(Trial.Status.RESERVED, Trial.Status.ABANDONED))
        .select_related("offer__product", "variant")
        .order_by("-claimed_at", "-pk")
    )


def trial_list_stale_reservations(*, before: datetime, limit: int = 500) -> list[int]:
    """Reservations made before ``before`` and still not confirmed, oldest first."""
    return list(
        Trial.objects.filter(status=Trial.Status.RESERVED, claimed_at__lt=before)
        .order_by("claimed_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
