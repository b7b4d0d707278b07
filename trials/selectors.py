"""Reads about assignments and trials, for the pages and the services."""

from datetime import datetime
from typing import NamedTuple

from django.db import connection
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
    the variant, in one query: the landing page's whole read for a returning visitor.

    The same rows as ``select_related("offer__product", "variant")``, but from SQL built once per
    process: compiling that four-table query took longer than running it, on the page that is
    read most. The values go through the same converters the ORM applies."""
    if customer_id is None and not visitor:
        return None
    read = _landing_read(connection)
    by_customer = customer_id is not None
    with connection.cursor() as cursor:
        cursor.execute(read.sql[by_customer], [slug, customer_id if by_customer else visitor])
        row = cursor.fetchone()
    if row is None:
        return None
    row = list(row)
    for position, converters, expression in read.converters:
        for converter in converters:
            row[position] = converter(row[position], expression, connection)
    instances = []
    start = 0
    for model, names in read.models:
        values = row[start : start + len(names)]
        start += len(names)
        instances.append(None if values[0] is None else model.from_db(connection.alias, names, values))
    assignment, offer, product, variant = instances
    if assignment.superseded_by_id is not None:
        return assignment_get(offer_id=offer.pk, visitor=visitor)
    offer.product = product
    assignment.offer = offer
    if variant is not None:
        variant.offer = offer  # its effective kind and days fall back to the offer's
    assignment.variant = variant
    return assignment


class _LandingRead(NamedTuple):
    sql: tuple[str, str]  # by visitor, by customer
    models: list  # (model, attnames), in the order of the columns
    converters: list  # (position, converters, column)


_LANDING_READS: dict[str, _LandingRead] = {}


def _landing_read(conn) -> _LandingRead:
    read = _LANDING_READS.get(conn.vendor)
    if read is not None:
        return read
    from offers.models import Offer, Product, Variant

    quote = conn.ops.quote_name
    tables = [(Assignment, "a"), (Offer, "o"), (Product, "p"), (Variant, "v")]
    columns, models, converters = [], [], []
    for model, alias in tables:
        fields = model._meta.concrete_fields
        models.append((model, [field.attname for field in fields]))
        for field in fields:
            expression = field.get_col(alias)
            found = conn.ops.get_db_converters(expression) + expression.get_db_converters(conn)
            if found:
                converters.append((len(columns), found, expression))
            columns.append(f"{alias}.{quote(field.column)}")
    table = {model: quote(model._meta.db_table) for model, _ in tables}
    # Built from the models' own table and column names, quoted; the values are parameters.
    base = (
        f"SELECT {', '.join(columns)} FROM {table[Assignment]} a"  # noqa: S608
        f" INNER JOIN {table[Offer]} o ON a.{quote('offer_id')} = o.{quote('id')}"
        f" INNER JOIN {table[Product]} p ON o.{quote('product_id')} = p.{quote('id')}"
        f" LEFT OUTER JOIN {table[Variant]} v ON a.{quote('variant_id')} = v.{quote('id')}"
        f" WHERE o.{quote('slug')} = %s AND a.{{}} = %s LIMIT 1"
    )
    read = _LandingRead((base.format(quote("visitor")), base.format(quote("customer_id"))), models, converters)
    _LANDING_READS[conn.vendor] = read
    return read


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
