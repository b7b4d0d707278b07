"""Reads about assignments and trials, for the pages, the console and the services. Every read
for a customer is scoped to that customer: nothing here can return another customer's rows."""

import math
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.models import F, Min, QuerySet
from django.http import Http404
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from accounts.models import OutboxMessage
from billing.models import Purchase
from offers import rules
from offers.money import money_format, to_major
from offers.terms import long_date
from trials.models import Assignment, ClaimRefusal, Feedback, Trial


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
    read = _landing_reads(connection).assignment
    by_customer = customer_id is not None
    with connection.cursor() as cursor:
        cursor.execute(read.sql[by_customer], [slug, customer_id if by_customer else visitor])
        row = cursor.fetchone()
    if row is None:
        return None
    assignment, offer, product, variant = _instances(read, row)
    if assignment.superseded_by_id is not None:
        return assignment_get(offer_id=offer.pk, visitor=visitor)
    offer.product = product
    assignment.offer = offer
    if variant is not None:
        variant.offer = offer  # its effective kind and days fall back to the offer's
    assignment.variant = variant
    return assignment


def offer_for_landing(*, slug: str):
    """The offer at ``slug`` as the public sees it (not a draft), with its product and its
    variants (``offer.variants.all()`` reads no more), in one query: a first visit's read, before
    its assignment is written. ``None`` when there is no such offer.

    Built once per process, like ``assignment_for_landing``; the variants come one per row, in
    their model's order, the offer and product repeated on each."""
    from offers.models import Offer

    read = _landing_reads(connection).offer
    with connection.cursor() as cursor:
        cursor.execute(read.sql[0], [slug, Offer.Status.DRAFT])
        rows = cursor.fetchall()
    if not rows:
        return None
    offer, product, variant = _instances(read, rows[0])
    offer.product = product
    # The offer and product of the other rows are the first row's again: only their variant.
    variants = [variant, *(_instances(read, row, first=2)[2] for row in rows[1:])]
    variants = [variant for variant in variants if variant is not None]  # none: the outer join's row
    for variant in variants:
        variant.offer = offer  # its effective kind and days fall back to the offer's
    # What prefetch_related("variants") leaves behind, without its second query.
    offer._prefetched_objects_cache = {"variants": _prefetched(offer, variants)}
    return offer


def _prefetched(offer, variants):
    queryset = offer.variants.all()
    queryset._result_cache = variants
    queryset._prefetch_done = True
    return queryset


class _Read(NamedTuple):
    sql: tuple[str, ...]  # the statements, each with the same columns
    models: list  # (model, attnames), in the order of the columns
    converters: list  # (position, converters, column)


class _LandingReads(NamedTuple):
    assignment: _Read  # by visitor, by customer
    offer: _Read


_LANDING_READS: dict[str, _LandingReads] = {}


def _columns(conn, tables) -> tuple[list[str], list, list]:
    """The select list of ``tables`` ((model, alias) pairs): every concrete column, quoted, with
    the converters the ORM would apply to each."""
    quote = conn.ops.quote_name
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
    return columns, models, converters


def _instances(read: _Read, row, first: int = 0) -> list:
    """One model instance per table of ``read`` from one row (``None`` for an outer join's
    missing row), from its ``first`` table on (``None`` for those before)."""
    row = list(row)
    skip = sum(len(names) for _, names in read.models[:first])
    for position, converters, expression in read.converters:
        if position >= skip:
            for converter in converters:
                row[position] = converter(row[position], expression, connection)
    instances = [None] * first
    start = skip
    for model, names in read.models[first:]:
        values = row[start : start + len(names)]
        start += len(names)
        instances.append(None if values[0] is None else model.from_db(connection.alias, names, values))
    return instances


def _landing_reads(conn) -> _LandingReads:
    reads = _LANDING_READS.get(conn.vendor)
    if reads is not None:
        return reads
    from offers.models import Offer, Product, Variant

    quote = conn.ops.quote_name
    table = {model: quote(model._meta.db_table) for model in (Assignment, Offer, Product, Variant)}
    # Built from the models' own table and column names, quoted; the values are parameters.
    columns, models, converters = _columns(conn, [(Assignment, "a"), (Offer, "o"), (Product, "p"), (Variant, "v")])
    base = (
        f"SELECT {', '.join(columns)} FROM {table[Assignment]} a"  # noqa: S608
        f" INNER JOIN {table[Offer]} o ON a.{quote('offer_id')} = o.{quote('id')}"
        f" INNER JOIN {table[Product]} p ON o.{quote('product_id')} = p.{quote('id')}"
        f" LEFT OUTER JOIN {table[Variant]} v ON a.{quote('variant_id')} = v.{quote('id')}"
        f" WHERE o.{quote('slug')} = %s AND a.{{}} = %s LIMIT 1"
    )
    assignment = _Read((base.format(quote("visitor")), base.format(quote("customer_id"))), models, converters)
    columns, models, converters = _columns(conn, [(Offer, "o"), (Product, "p"), (Variant, "v")])
    order = ", ".join(f"v.{quote(Variant._meta.get_field(name).column)}" for name in Variant._meta.ordering)
    offer = _Read(
        (
            f"SELECT {', '.join(columns)} FROM {table[Offer]} o"  # noqa: S608
            f" INNER JOIN {table[Product]} p ON o.{quote('product_id')} = p.{quote('id')}"
            f" LEFT OUTER JOIN {table[Variant]} v ON v.{quote('offer_id')} = o.{quote('id')}"
            f" WHERE o.{quote('slug')} = %s AND o.{quote('status')} <> %s ORDER BY {order}",
        ),
        models,
        converters,
    )
    reads = _LandingReads(assignment, offer)
    _LANDING_READS[conn.vendor] = reads
    return reads


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


# --- The customer's own page -------------------------------------------------------------------
# The customer's words for a trial's state (the model's labels are the operators').
STATUS_WORDS = {
    Trial.Status.ACTIVE: pgettext_lazy("trial status", "Active"),
    Trial.Status.CONVERTING: _("Being charged"),
    Trial.Status.CONVERTED: _("Converted to the paid product"),
    Trial.Status.PAYMENT_FAILED: _("Payment needs your attention"),
    Trial.Status.CANCELLED: _("Cancelled"),
    Trial.Status.EXPIRED: pgettext_lazy("trial status", "Ended"),
    Trial.Status.ABANDONED: _("Not completed"),
}
PURCHASE_WORDS = {
    Purchase.Kind.REGULAR: _("Purchase"),
    Purchase.Kind.TRIAL_FEE: _("Trial fee"),
    Purchase.Kind.SAMPLE: _("Sample"),
}
OPEN = (Trial.Status.ACTIVE, Trial.Status.PAYMENT_FAILED)


@dataclass(frozen=True)
class NextCharge:
    date: str
    amount: str


@dataclass(frozen=True)
class TrialLine:
    trial: Trial
    offer_name: str
    product_name: str
    status: str
    kind: str
    claimed_on: str
    ends_on: str
    days_left: int | None
    next_charge: NextCharge | None
    can_cancel: bool
    can_give_feedback: bool
    can_buy: bool = False
    # Why the charge waits, in plain words; and for a failed end step, what the payment page asks:
    # "authenticate" (the bank's step) or "card" (another card).
    waiting: str = ""
    payment_due: str = ""


@dataclass(frozen=True)
class PurchaseLine:
    on: str
    what: str
    product_name: str
    amount: str
    refund: bool


@dataclass(frozen=True)
class EmailLine:
    subject: str
    purpose: str
    due_at: datetime
    sent_at: datetime | None


def _days_left(trial: Trial, at: datetime) -> int | None:
    """Whole days until the end, rounded up, so a trial ending tonight has 1 day left, not 0."""
    if trial.status not in OPEN or trial.ends_at <= at:
        return None
    return math.ceil((trial.ends_at - at).total_seconds() / 86_400)


def _feedback_open(trial: Trial, at: datetime) -> bool:
    """Over (ended, converted or cancelled), asked by its offer, and not answered yet."""
    from trials.services import trial_is_over

    return trial_is_over(trial, at) and trial.offer.feedback_survey and not hasattr(trial, "feedback")


def _next_charge(trial: Trial, language: str) -> NextCharge | None:
    """The charge the terms promised for the trial's end: only the kinds that charge by
    themselves, and only while nothing has stopped it."""
    if trial.status != Trial.Status.ACTIVE or trial.variant.effective_kind not in rules.AUTO_CHARGE_KINDS:
        return None
    product = trial.offer.product
    return NextCharge(
        date=long_date(trial.ends_at, language), amount=money_format(product.price_amount, product.currency, language)
    )


def me_trials(*, customer, language: str, at: datetime) -> list[TrialLine]:
    from trials.clock import waiting_text

    # A reservation never completed (a closed tab, a declined card) is not a trial of theirs.
    trials = (
        Trial.objects.filter(customer=customer)
        .exclude(status__in=(Trial.Status.RESERVED, Trial.Status.ABANDONED))
        .select_related("offer__product", "variant__offer", "feedback")
        .order_by("-claimed_at", "-pk")
    )
    return [
        TrialLine(
            trial=trial,
            offer_name=trial.offer.name,
            product_name=trial.offer.product.name,
            status=str(STATUS_WORDS.get(trial.status, trial.status)),
            kind=trial.variant.get_effective_kind_display(),
            claimed_on=long_date(trial.claimed_at, language),
            ends_on=long_date(trial.ends_at, language),
            days_left=_days_left(trial, at),
            next_charge=_next_charge(trial, language),
            can_cancel=trial.status in OPEN,
            can_give_feedback=_feedback_open(trial, at),
            can_buy=_can_buy(trial),
            waiting=waiting_text(trial, language),
            payment_due=payment_due(trial),
        )
        for trial in trials
    ]


def _can_buy(trial: Trial) -> bool:
    """Whether /me/ offers to buy the trial's product: once the trial has ended, or during one
    that charges nothing by itself; a one-off product again after it converted."""
    if trial.status in (Trial.Status.EXPIRED, Trial.Status.CANCELLED):
        return True
    if trial.status == Trial.Status.CONVERTED:
        return not trial.offer.product.interval
    return trial.status == Trial.Status.ACTIVE and trial.variant.effective_kind not in rules.AUTO_CHARGE_KINDS


def payment_due(trial: Trial) -> str:
    """What a failed end step waits for: "authenticate" when the bank asked for its step last,
    "card" when the card was declined; empty for a trial whose payment did not fail."""
    if trial.status != Trial.Status.PAYMENT_FAILED or trial.source != Assignment.Source.WEB:
        return ""  # an imported trial's payment is not ours to complete
    last = trial.events.filter(to_status=Trial.Status.PAYMENT_FAILED).order_by("-at", "-pk").first()
    return "authenticate" if last is not None and last.note == "authentication needed" else "card"


def me_purchases(*, customer, language: str) -> list[PurchaseLine]:
    rows = Purchase.objects.filter(customer=customer).select_related("product").order_by("-purchased_at", "-pk")
    return [
        PurchaseLine(
            on=long_date(row.purchased_at, language),
            what=str(_("Refund")) if row.refund_of_id else str(PURCHASE_WORDS.get(row.kind, row.kind)),
            product_name=row.product.name,
            amount=money_format(row.amount, row.currency, language),
            refund=row.refund_of_id is not None,
        )
        for row in rows
    ]


def me_emails(*, customer) -> list[EmailLine]:
    messages = OutboxMessage.objects.filter(user=customer).select_related("email").order_by("-due_at", "-pk")
    return [
        EmailLine(
            subject=message.email.subject,
            purpose=message.get_purpose_display(),
            due_at=message.due_at,
            sent_at=message.sent_at,
        )
        for message in messages
    ]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def me_data(*, customer) -> dict:
    """Everything Foretaste keeps about the customer, as plain JSON values: the account, the
    experiments they were in, their trials with each trial's history, their purchases, and every
    email we sent them."""
    trials = Trial.objects.filter(customer=customer).select_related("offer", "variant").prefetch_related("events")
    return {
        "account": {
            "email": customer.email,
            "country": customer.country,
            "language": customer.preferred_language,
            "joined": _iso(customer.date_joined),
        },
        "assignments": [
            {"offer": a.offer.slug, "arm": a.arm, "assigned_at": _iso(a.assigned_at)}
            for a in Assignment.objects.filter(customer=customer).select_related("offer").order_by("assigned_at")
        ],
        "trials": [
            {
                "offer": trial.offer.slug,
                "variant": trial.variant.name,
                "status": trial.status,
                "claimed_at": _iso(trial.claimed_at),
                "ends_at": _iso(trial.ends_at),
                "converted_at": _iso(trial.converted_at),
                "cancelled_at": _iso(trial.cancelled_at),
                "history": [
                    {"at": _iso(e.at), "from": e.from_status, "to": e.to_status, "note": e.note}
                    for e in trial.events.all()
                ],
            }
            for trial in trials.order_by("claimed_at", "pk")
        ],
        "purchases": [
            {
                "product": row.product.sku,
                "kind": row.kind,
                "amount": str(to_major(row.amount, row.currency)),
                "currency": row.currency,
                "purchased_at": _iso(row.purchased_at),
                "refund": row.refund_of_id is not None,
            }
            for row in Purchase.objects.filter(customer=customer).select_related("product").order_by("purchased_at")
        ],
        "subscriptions": [
            {
                "product": row.product.sku if row.product else None,
                "status": row.status,
                "cancel_requested_at": _iso(row.cancel_requested_at),
                "ends_at": _iso(row.ends_at),
                "cancelled_at": _iso(row.cancelled_at),
            }
            for row in customer.subscriptions.select_related("product").order_by("pk")
        ],
        "emails": [
            {
                "subject": message.email.subject,
                "purpose": message.purpose,
                "language": message.language,
                "due_at": _iso(message.due_at),
                "sent_at": _iso(message.sent_at),
            }
            for message in OutboxMessage.objects.filter(user=customer).select_related("email").order_by("due_at")
        ],
    }


# --- The console: an offer's trials --------------------------------------------------------------
def offer_trials(*, offer, status: str = "") -> QuerySet[Trial]:
    """The offer's trials, newest claim first, with what the list shows."""
    trials = Trial.objects.filter(offer=offer).select_related("customer", "variant", "assignment")
    if status:
        trials = trials.filter(status=status)
    return trials.order_by("-claimed_at", "-pk")


def offer_trial_get(*, offer, trial_id: int) -> Trial:
    """One trial of this offer; Http404 when the id is unknown or belongs to another offer, so
    a console URL cannot be bent to show a trial under the wrong offer."""
    try:
        return Trial.objects.select_related("customer", "variant", "offer__product", "assignment").get(
            pk=trial_id, offer=offer
        )
    except Trial.DoesNotExist:
        raise Http404(_("This offer has no such trial.")) from None


def offer_claim_refusals(*, offer) -> QuerySet[ClaimRefusal]:
    """How many claims of the offer were refused, per rule (sold out, a second trial by the same
    email, card or address, …), the most frequent first."""
    return ClaimRefusal.objects.filter(offer=offer, count__gt=0).order_by("-count", "reason")


def offer_feedback(*, offer) -> QuerySet[Feedback]:
    """The answers to the offer's question, the lowest ratings first (unanswered before answered
    within a rating), then the newest."""
    return (
        Feedback.objects.filter(trial__offer=offer)
        .select_related("trial__customer", "trial__variant", "responded_by")
        .order_by("rating", F("responded_at").asc(nulls_first=True), "-answered_at", "-pk")
    )


def offer_feedback_get(*, offer, feedback_id: int) -> Feedback:
    try:
        return Feedback.objects.select_related("trial__customer").get(pk=feedback_id, trial__offer=offer)
    except Feedback.DoesNotExist:
        raise Http404(_("This offer has no such feedback.")) from None


def trial_emails(*, trial: Trial) -> QuerySet[OutboxMessage]:
    """The emails about this trial (reminders, receipts, confirmations), earliest first."""
    return (
        OutboxMessage.objects.filter(about_type=ContentType.objects.get_for_model(Trial), about_id=trial.pk)
        .select_related("email")
        .order_by("due_at", "pk")
    )


def trial_charges(*, trial: Trial) -> QuerySet[Purchase]:
    """The ledger rows of this trial: its fee or sample charge, the conversion, refunds."""
    return Purchase.objects.filter(trial=trial).order_by("purchased_at", "pk")


# --- Claims ----------------------------------------------------------------------------------------
def trial_get_for_customer(*, trial_id, customer) -> Trial:
    """The customer's own trial; ``Http404`` for anyone else's (never a 403, which would say it
    exists) and for an id that is not a number."""
    try:
        return Trial.objects.select_related("offer__product", "variant").get(pk=int(trial_id), customer=customer)
    except (Trial.DoesNotExist, TypeError, ValueError):
        raise Http404(_("No such trial.")) from None


def trial_list_stale_reservations(*, before: datetime, limit: int = 500) -> list[int]:
    """Reservations made before ``before`` and still not confirmed, oldest first."""
    return list(
        Trial.objects.filter(status=Trial.Status.RESERVED, claimed_at__lt=before)
        .order_by("claimed_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
