"""Reads about assignments and trials, for the pages and the services."""

from datetime import datetime
from typing import NamedTuple

from django.db.models import Min

from trials.models import Assignment, Trial


# --- Assignments ---------------------------------------------------------------------------------
def assignment_get(*, offer_id: int, customer_id: int | None = None, visitor: str | None = None) -> Assignment | None:
    """The assignment of a logged-in customer (by ``customer_id``) or else of an anonymous visitor
    (by ``visitor``) to an offer, with its variant. A visitor's row that was superseded when they
    logged in leads to the account's row, which is the one that stands."""
    rows = Assignment.objects.select_related("variant")
    if customer_id is not None:
        return rows.filter(offer_id=offer_id, customer_id=customer_id).first()
    if not visitor:
        return None
    row = rows.filter(offer_id=offer_id, visitor=visitor).first()
    if row is not None and row.superseded_by_id is not None:
        return rows.get(pk=row.superseded_by_id)
    return row


def assignment_for_landing(*, slug: str, customer_id: int | None, visitor: str | None) -> Assignment | None:
    """A returning visitor's assignment to the offer at ``slug``, with the offer, its product and
    the variant, in one query: the landing page's whole read for a returning visitor."""
    rows = Assignment.objects.select_related("offer__product", "variant").filter(offer__slug=slug)
    if customer_id is not None:
        return rows.filter(customer_id=customer_id).first()
    if not visitor:
        return None
    row = rows.filter(visitor=visitor).first()
    if row is not None and row.superseded_by_id is not None:
        return rows.get(pk=row.superseded_by_id)
    return row


def arms_of_visitor(*, offer_ids, customer_id: int | None, visitor: str | None) -> dict[int, Assignment]:
    """The visitor's assignments to these offers, by offer id (the home page's cards)."""
    if customer_id is not None:
        rows = Assignment.objects.filter(customer_id=customer_id)
    elif visitor:
        rows = Assignment.objects.filter(visitor=visitor, superseded_by__isnull=True)
    else:
        return {}
    return {row.offer_id: row for row in rows.filter(offer_id__in=list(offer_ids))}


class History(NamedTuple):
    """What decides whether a customer may still claim an offer of a product."""

    tried_at: datetime | None  # their first trial of any offer of the product
    last_purchase_at: datetime | None  # their latest purchase of the product (not a refund)


def customer_history(*, customer_id: int, product_id: int) -> History:
    from billing.models import Purchase  # billing depends on trials, not the other way round

    tried = Trial.objects.filter(customer_id=customer_id, offer__product_id=product_id).aggregate(at=Min("claimed_at"))
    last = (
        Purchase.objects.filter(
            customer_id=customer_id, product_id=product_id, kind=Purchase.Kind.REGULAR, refund_of__isnull=True
        )
        .order_by("-purchased_at")
        .values_list("purchased_at", flat=True)
        .first()
    )
    return History(tried["at"], last)
