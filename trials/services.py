"""Trial transitions, the only place a trial changes state. Each is one function, for one trial
or for many at once (the imports), with the same guarantees: the trials are locked, only those
in a state the transition may start from move, and each move writes a TrialEvent naming the
state it really left, in the same transaction. So no transition happens twice, and the history
is true even when two writers race.

Claims (the section "Claims" below). A reservation is a trial in the state ``reserved``, not a
row of its own: it holds the unit, the day's unit and the person's identity rows that the claim
took, and it is the same row that becomes ``active`` on confirmation or ``abandoned`` on release,
so its whole story is one TrialEvent history, and the one-trial-per-assignment constraint makes a
double submit find the reservation already made. The order of work is: ``claim_reserve`` (one
transaction: the trial, the identity rows, the daily and inventory counters, each guarded by a
constraint or a conditional UPDATE) → commit → ``claim_payment_start`` (Stripe, no lock held) →
the browser (Stripe.js) → ``claim_confirm`` (reads Stripe, then one transaction: the card's
identity row, the consent record, reserved → active, the fee's ledger row) or ``claim_release``
(reserved → abandoned, everything given back). The beat job ``reservations_release_stale``
releases what a closed tab left behind. An abandoned trial can be reserved again by the same
assignment (abandoned → reserved), because a declined card or a closed tab is not a claim."""

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import Case, DateTimeField, F, Max, Q, Value, When
from django.utils import translation
from django.utils.translation import gettext

from accounts.models import OutboxPurpose
from config.batches import batches
from offers import rules
from offers.models import Offer
from offers.terms import local_day, long_date, offer_terms, supported_language, trial_end
from trials.models import Assignment, ClaimIdentity, ClaimRefusal, ConsentRecord, DailyClaims, Trial, TrialEvent
from trials.selectors import assignment_get

logger = logging.getLogger(__name__)

BATCH = 500  # trials locked and moved per statement


class TrialTransitionNotAllowed(Exception):
    pass


@dataclass(frozen=True)
class Move:
    """One trial to move: at ``at``, with ``note`` on its event."""

    trial_id: int
    at: datetime
    note: str = ""


def _moves(*, moves: Iterable[Move], sources: tuple[str, ...], target: str, stamp: str = "") -> list[int]:
    """Move each trial that is in one of ``sources`` to ``target`` (and set its ``stamp`` field,
    if given, to the move's time). Returns the ids of the trials moved; the others were moved
    first by someone else, and nothing is written for them.

    The rows are locked (in primary-key order, so two batches cannot deadlock) before their
    status is read, so the status an event names as its ``from_status`` is the one the update
    moved it from: a read then a separate update could name a state another writer had already
    left. On SQLite, where there are no row locks, the IMMEDIATE transaction holds the database's
    write lock from BEGIN, which serializes writers the same way."""
    by_id = {move.trial_id: move for move in moves}
    moved: list[int] = []
    with transaction.atomic():
        for part in batches(sorted(by_id), BATCH):
            leaving = dict(
                Trial.objects.select_for_update()
                .filter(pk__in=part, status__in=sources)
                .order_by("pk")
                .values_list("pk", "status")
            )
            if not leaving:
                continue
            fields = {"status": target}
            if stamp:
                fields[stamp] = Case(
                    *[When(pk=pk, then=Value(by_id[pk].at)) for pk in leaving], output_field=DateTimeField()
                )
            Trial.objects.filter(pk__in=leaving).update(**fields)
            TrialEvent.objects.bulk_create(
                TrialEvent(
                    trial_id=pk, at=by_id[pk].at, from_status=status, to_status=target, note=by_id[pk].note[:200]
                )
                for pk, status in leaving.items()
            )
            moved.extend(leaving)
    return moved


CONVERTIBLE = (
    Trial.Status.ACTIVE,
    Trial.Status.CONVERTING,
    Trial.Status.PAYMENT_FAILED,
    Trial.Status.EXPIRED,
)


def trial_convert(*, trial_id: int, at: datetime, note: str = "") -> bool:
    """The customer paid the full product: the trial converted at ``at``. A cancelled trial
    stays cancelled; its cancellation was a promise."""
    return bool(trials_convert(moves=[Move(trial_id, at, note)]))


def trials_convert(*, moves: Iterable[Move]) -> list[int]:
    """``trial_convert`` for many trials at once (an import's purchases), each at its own time."""
    return _moves(moves=moves, sources=CONVERTIBLE, target=Trial.Status.CONVERTED, stamp="converted_at")


def trial_payment_failed(*, trial_id: int, at: datetime, note: str = "") -> bool:
    """The conversion charge failed or needs the customer (3-D Secure). Not the same as
    cancelled: the customer can still complete the payment."""
    moved = _moves(
        moves=[Move(trial_id, at, note)],
        sources=(Trial.Status.CONVERTING, Trial.Status.ACTIVE),
        target=Trial.Status.PAYMENT_FAILED,
    )
    return bool(moved)


def trial_expire(*, trial_id: int, at: datetime) -> bool:
    """A trial of a kind that charges nothing by itself reached its end (``trials.clock``). An
    expired trial can still convert: a purchase within the conversion window does it."""
    moved = _moves(
        moves=[Move(trial_id, at, "trial ended")], sources=(Trial.Status.ACTIVE,), target=Trial.Status.EXPIRED
    )
    return bool(moved)


STRIPE_TIME_RESOLUTION = timedelta(seconds=1)


def trials_to_convert(*, customer_id: int, product_id: int, at: datetime) -> list[int]:
    """The customer's open trials of offers leading to this product, claimed before ``at``:
    the trials a full-price purchase at ``at`` converts. An ended (expired) trial converts only
    within its offer's conversion window, ``grace_days`` after its end (DESIGN.md, "Offer kinds")."""
    # Stripe gives times in whole seconds: a payment made in the same second as the claim, but
    # after it, carries a time up to a second before it. So "claimed before" allows that second.
    rows = Trial.objects.filter(
        customer_id=customer_id,
        offer__product_id=product_id,
        claimed_at__lt=at + STRIPE_TIME_RESOLUTION,
        status__in=CONVERTIBLE,
    ).values_list("pk", "status", "ends_at", "offer__grace_days")
    return [
        pk
        for pk, status, ends_at, grace_days in rows
        if still_converts(status=status, ends_at=ends_at, grace_days=grace_days, at=at)
    ]


def still_converts(*, status: str, ends_at: datetime, grace_days: int, at: datetime) -> bool:
    """Whether a full-price purchase at ``at`` still converts an open trial (one of CONVERTIBLE,
    claimed before ``at``) in ``status``: an expired one only within its conversion window."""
    return status != Trial.Status.EXPIRED or at <= ends_at + timedelta(days=grace_days)


# --- Trials written whole, with their history (imports) ------------------------------------------
IMPORTED = "imported"


def trials_import(*, trials: list[Trial]) -> None:
    """Create trials that happened elsewhere (an import from before Foretaste), each as it ended
    up, with its history: the claim, then, for a trial no longer active, its move to where it
    is. The time of a cancellation is not known; the claim is the latest it can be sure of."""
    Trial.objects.bulk_create(trials, batch_size=BATCH)
    events = []
    for trial in trials:
        events.append(TrialEvent(trial=trial, at=trial.claimed_at, to_status=Trial.Status.ACTIVE, note=IMPORTED))
        if trial.status != Trial.Status.ACTIVE:
            at = {Trial.Status.CONVERTED: trial.converted_at, Trial.Status.CANCELLED: trial.claimed_at}.get(
                trial.status, trial.ends_at
            )
            events.append(
                TrialEvent(trial=trial, at=at, from_status=Trial.Status.ACTIVE, to_status=trial.status, note=IMPORTED)
            )
    TrialEvent.objects.bulk_create(events, batch_size=BATCH)


# --- Assignments ---------------------------------------------------------------------------------
def customer_key(customer_id: int) -> str:
    """What the arm of a logged-in customer is hashed from: their id (DESIGN.md, "Experiments")."""
    return str(customer_id)


def visitor_key(visitor: str) -> str:
    """What the arm of an anonymous visitor is hashed from. Prefixed, so that no cookie id can
    ever hash like a customer id."""
    return f"visitor:{visitor}"


class NoArms(Exception):
    """The offer has no variant with a weight, so there is no arm to assign."""


def assignment_for_visitor(
    *, offer, customer=None, visitor: str | None = None, at: datetime, new_visitor: bool = False
) -> Assignment:
    """The visitor's assignment to ``offer``, written now if this is their first view.

    ``customer`` is the logged-in customer, else ``visitor`` is the anonymous visitor's cookie
    id. The row is read first (a returning visitor writes nothing); a first view inserts it with
    the unique constraints as the guard, so two first views racing end with one row, and the
    loser reads the winner's. Whatever is returned has been committed before the caller shows
    anything. ``new_visitor`` says the visitor id was just drawn, so there is nothing to read."""
    if customer is None and not visitor:
        raise ValueError("an assignment needs a customer or a visitor")
    known = None
    if not (new_visitor and customer is None):
        known = assignment_get(offer_id=offer.pk, customer_id=customer.pk if customer else None, visitor=visitor)
    if known is not None:
        if known.first_seen_at is None:
            # Imported before the customer ever saw the page: this view is the first exposure.
            Assignment.objects.filter(pk=known.pk, first_seen_at__isnull=True).update(first_seen_at=at)
            known.first_seen_at = at
        return known
    variants = list(offer.variants.all())
    if not any(variant.weight > 0 for variant in variants):
        raise NoArms(offer.slug)
    key = customer_key(customer.pk) if customer else visitor_key(visitor)
    arm = rules.arm_for(
        salt=offer.salt,
        customer_key=key,
        holdout_percent=offer.holdout_percent,
        variants=[(variant.name, variant.weight) for variant in variants],
    )
    variant = None if arm == rules.HOLDOUT else next(v for v in variants if v.name == arm)
    row = Assignment(
        offer=offer,
        customer=customer,
        visitor=None if customer else visitor,
        variant=variant,
        arm=arm,
        assigned_at=at,
        first_seen_at=at,
        source=Assignment.Source.WEB,
    )
    if not _insert_unless_taken(row):
        # Another request of the same visitor inserted first: theirs stands, and it has the same
        # arm (the same hash), so what this visitor sees does not depend on who won.
        known = assignment_get(offer_id=offer.pk, customer_id=customer.pk if customer else None, visitor=visitor)
        if known is None:
            raise IntegrityError(f"assignment of {key} to {offer.slug} neither inserted nor found")
        return known
    return row


_ASSIGNMENT_INSERTS: dict[str, tuple[str, list]] = {}


def _insert_unless_taken(row: Assignment) -> bool:
    """Insert ``row``, or nothing when the unique constraints say it is there already: one
    ``INSERT ... ON CONFLICT DO NOTHING RETURNING id`` (PostgreSQL and SQLite alike), True when
    this one was inserted. No IntegrityError, so no savepoint inside a caller's transaction,
    and in autocommit the statement is its own transaction: a first view's write is one round
    trip. The SQL is built once per process from the model, like the landing page's reads
    (trials/selectors.py); the values go through each field's own preparation, as in save()."""
    built = _ASSIGNMENT_INSERTS.get(connection.vendor)
    if built is None:
        quote = connection.ops.quote_name
        meta = Assignment._meta
        fields = [field for field in meta.concrete_fields if not field.primary_key]
        built = (
            # Built from the model's own table and column names, quoted; the values are parameters.
            # Not Django's on_conflict_suffix_sql: on SQLite it gives nothing (its bulk_create says
            # INSERT OR IGNORE, which also skips rows that break a NOT NULL or CHECK); both
            # backends take this upsert clause, which only a unique constraint triggers.
            f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in fields)})"  # noqa: S608
            f" VALUES ({', '.join(['%s'] * len(fields))}) ON CONFLICT DO NOTHING RETURNING {quote(meta.pk.column)}",
            fields,
        )
        _ASSIGNMENT_INSERTS[connection.vendor] = built
    sql, fields = built
    with connection.cursor() as cursor:
        cursor.execute(sql, [field.get_db_prep_save(field.pre_save(row, True), connection) for field in fields])
        inserted = cursor.fetchone()
    if inserted is None:
        return False
    row.pk = inserted[0]
    row._state.adding = False  # what save() leaves: a row of this database
    row._state.db = connection.alias
    return True


@dataclass(frozen=True)
class Joined:
    joined: int  # anonymous assignments that now belong to the account
    superseded: int  # anonymous assignments left aside, the account's own standing


def assignments_join(*, customer, visitor: str) -> Joined:
    """At signup or login: the visitor's anonymous assignments join the account.

    Where the account already has an assignment for the same offer, that one stands (it may
    carry a trial, and its arm is what the customer saw logged in); the anonymous row keeps its
    visitor and is marked ``superseded_by`` it, so a unit is counted once per person and offer.
    Each row moves by a conditional update (only while it still has no customer), and the
    unique (offer, customer) constraint settles a race with a first view in another tab."""
    if not visitor:
        return Joined(0, 0)
    with transaction.atomic():
        return _join(customer, visitor)


def _join(customer, visitor: str) -> Joined:
    joined = superseded = 0
    anonymous = list(
        Assignment.objects.filter(visitor=visitor, customer__isnull=True, superseded_by__isnull=True).values_list(
            "pk", "offer_id"
        )
    )
    if not anonymous:
        return Joined(0, 0)
    held = dict(
        Assignment.objects.filter(customer=customer, offer_id__in=[offer_id for _, offer_id in anonymous]).values_list(
            "offer_id", "pk"
        )
    )
    for pk, offer_id in anonymous:
        unclaimed = Assignment.objects.filter(pk=pk, customer__isnull=True, superseded_by__isnull=True)
        if offer_id not in held:
            try:
                with transaction.atomic():
                    if unclaimed.update(customer=customer):
                        joined += 1
                    continue
            except IntegrityError:
                held[offer_id] = Assignment.objects.get(offer_id=offer_id, customer=customer).pk
        superseded += unclaimed.update(superseded_by_id=held[offer_id])
    return Joined(joined, superseded)


# --- Claims --------------------------------------------------------------------------------------
# A reservation not confirmed within this long (the tab was closed) is released by the beat job.
RESERVATION_TTL = timedelta(minutes=30)
# A fee is charged only while this much of the reservation is left, so that the charge and the
# confirmation that follows it (seconds) never race the beat job's release.
CHARGE_MARGIN = timedelta(minutes=5)
# Held in ``stripe_payment_intent_id`` while one confirmation charges the fee.
CHARGING = "charging"
# A claim waits this long for Stripe, with no retries, before it gives up and says "try again":
# the customer is looking at the page.
CLAIM_STRIPE_TIMEOUT = 5.0
CANCELLATION_PURPOSE = OutboxPurpose.CANCELLATION
SAME_PERSON = {
    ClaimIdentity.Kind.EMAIL: "same_email",
    ClaimIdentity.Kind.CARD: "same_card",
    ClaimIdentity.Kind.ADDRESS: "same_address",
}
ADDRESS_FIELDS = ("line1", "line2", "postal_code", "city", "country")


class ClaimRefused(Exception):
    """The claim cannot be made; ``code`` says why (``sold_out``, ``daily_limit``, ``same_email``
    …), ``message`` says it to the customer in plain words. Nothing was kept."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class ClaimUnavailable(Exception):
    """Stripe could not be reached in time. The reservation was released (or is kept, when the
    card may already be saved, for a retry); the customer should try again."""


def _message(code: str, **values) -> str:
    messages = {
        "not_yours": gettext("This offer page was not opened by you. Please open the offer again."),
        "holdout": gettext("This offer is not available to you."),
        "not_live": gettext("This offer is not open for claims."),
        "paused": gettext("This offer is paused for now."),
        "not_started": gettext("This offer has not started yet."),
        "ended": gettext("This offer has ended."),
        "sold_out": gettext("All samples have been claimed."),
        "daily_limit": gettext("Today's samples have all been claimed. Please come back tomorrow."),
        "country": gettext("Not available in your country."),
        "not_new": gettext("This offer is for new customers."),
        "recent_purchase": gettext("This offer is for customers who have not bought recently."),
        "already_claimed": gettext("You already tried this on %(date)s."),
        "same_email": gettext("You already tried this on %(date)s."),
        "same_card": gettext("This card was already used for this offer, on %(date)s."),
        "same_address": gettext("A sample was already sent to this address, on %(date)s."),
        "address": gettext("Please give a complete shipping address: %(problem)s"),
        "expired": gettext("Your claim was not completed in time. Please claim the offer again."),
        "tampered": gettext("The form was changed. Please open the offer again."),
        "card_declined": gettext("The card was not accepted. Please try another card."),
        "card_pending": gettext("The card is not confirmed yet. Please complete the check your bank asks for."),
    }
    return messages[code] % values if values else messages[code]


def _refused(code: str, *, language: str = "", **values) -> ClaimRefused:
    with translation.override(supported_language(language)):
        return ClaimRefused(code, _message(code, **values))


def _claim_refusal_count(*, offer_id: int, reason: str) -> None:
    """Count one refused claim, after the claim's own transaction rolled back. A counter row per
    (offer, reason), created once under its unique constraint and then only incremented."""
    counted = ClaimRefusal.objects.filter(offer_id=offer_id, reason=reason).update(count=F("count") + 1)
    if counted:
        return
    try:
        with transaction.atomic():
            ClaimRefusal.objects.create(offer_id=offer_id, reason=reason, count=1)
    except IntegrityError:  # created by a refusal racing this one
        ClaimRefusal.objects.filter(offer_id=offer_id, reason=reason).update(count=F("count") + 1)


def _address_normalized(address: dict | None, *, language: str) -> tuple[dict, str]:
    address = {name: str((address or {}).get(name, "")).strip() for name in ADDRESS_FIELDS}
    missing = [name for name in ("line1", "postal_code", "city", "country") if not address[name]]
    too_long = [name for name, value in address.items() if len(value) > 200]
    if missing or too_long or len(address["country"]) != 2 or not address["country"].isalpha():
        problem = ", ".join(missing + too_long) or "country"
        raise _refused("address", language=language, problem=problem)
    address["country"] = address["country"].upper()
    return address, rules.normalized_address(**address)


def _identity_take(*, offer_id: int, trial: Trial, kind: str, value: str, language: str) -> None:
    try:
        with transaction.atomic():
            ClaimIdentity.objects.create(offer_id=offer_id, trial=trial, kind=kind, value=value[:500])
    except IntegrityError:
        holder = ClaimIdentity.objects.filter(offer_id=offer_id, kind=kind, value=value[:500]).select_related("trial")
        held = holder.first()
        when = held.trial.claimed_at if held else trial.claimed_at
        raise _refused(
            SAME_PERSON[kind], language=language, date=long_date(when, supported_language(language))
        ) from None


def _daily_unit_take(*, offer: Offer, day, language: str) -> None:
    DailyClaims.objects.get_or_create(offer=offer, day=day)
    taken = DailyClaims.objects.filter(offer=offer, day=day, claimed__lt=offer.daily_limit).update(
        claimed=F("claimed") + 1
    )
    if not taken:
        raise _refused("daily_limit", language=language)


def _unit_take(*, offer: Offer, language: str, at: datetime) -> None:
    # The CHECK (claimed_count <= inventory) is the guard; the condition here only turns the last
    # unit's race into a refusal instead of an IntegrityError. ``status=live`` in the same UPDATE
    # refuses a claim on an offer paused while its form was open.
    taken = (
        Offer.objects.filter(pk=offer.pk, status=Offer.Status.LIVE)
        .filter(Q(inventory__isnull=True) | Q(claimed_count__lt=F("inventory")))
        .update(claimed_count=F("claimed_count") + 1)
    )
    if not taken:
        now = Offer.objects.get(pk=offer.pk)
        if now.status != Offer.Status.LIVE:
            raise _refused("paused" if now.status == Offer.Status.PAUSED else "not_live", language=language)
        raise _refused("sold_out", language=language)


def _last_purchase_at(customer) -> datetime | None:
    from billing.models import Purchase  # billing's ledger imports this module

    return Purchase.objects.filter(customer=customer, kind=Purchase.Kind.REGULAR, amount__gt=0).aggregate(
        last=Max("purchased_at")
    )["last"]


def _trial_reserve_row(*, assignment, offer: Offer, customer, fields: dict, language: str, at: datetime):
    """The reserved trial of this assignment, and whether this call reserved it (False: a double
    submit found the reservation already made)."""
    try:
        with transaction.atomic():
            trial = Trial.objects.create(
                assignment=assignment, offer=offer, customer=customer, variant=assignment.variant,
                status=Trial.Status.RESERVED, **fields,
            )  # fmt: skip
    except IntegrityError:
        # The assignment's trial exists (committed: the insert waited for it).
        trial = Trial.objects.select_for_update().get(assignment=assignment)
        if trial.status == Trial.Status.RESERVED:
            return trial, False
        if trial.status != Trial.Status.ABANDONED:
            raise _refused("already_claimed", language=language, date=long_date(trial.claimed_at, language)) from None
        fields = {**fields, "stripe_setup_intent_id": "", "stripe_payment_intent_id": "", "cancelled_at": None}
        Trial.objects.filter(pk=trial.pk, status=Trial.Status.ABANDONED).update(status=Trial.Status.RESERVED, **fields)
        TrialEvent.objects.create(
            trial=trial,
            at=at,
            from_status=Trial.Status.ABANDONED,
            to_status=Trial.Status.RESERVED,
            note="claimed again",
        )
        trial.refresh_from_db()
        return trial, True
    TrialEvent.objects.create(trial=trial, at=at, to_status=Trial.Status.RESERVED, note="claim")
    return trial, True


def claim_reserve(
    *,
    assignment,
    customer,
    ip: str | None,
    user_agent: str,
    address: dict | None = None,
    language: str = "",
    at: datetime,
) -> Trial:
    """Reserve a unit of the assignment's offer for ``customer``: a ``reserved`` trial. Raises
    ``ClaimRefused`` (and keeps nothing, but counts the refusal) when the offer is closed, sold
    out or at its daily limit, when the customer is not eligible or in the holdout, or when the
    same person (email, address) already holds a trial of the offer. A second call for the same
    assignment while the first reservation stands returns that reservation."""
    try:
        return _claim_reserve(
            assignment=assignment, customer=customer, ip=ip, user_agent=user_agent, address=address,
            language=supported_language(language), at=at,
        )  # fmt: skip
    except ClaimRefused as refusal:
        _claim_refusal_count(offer_id=assignment.offer_id, reason=refusal.code)
        raise


def _claim_reserve(*, assignment, customer, ip, user_agent, address, language: str, at: datetime) -> Trial:
    offer = Offer.objects.select_related("product").get(pk=assignment.offer_id)
    if assignment.customer_id != customer.pk:
        raise _refused("not_yours", language=language)
    if assignment.is_holdout or assignment.variant_id is None:
        raise _refused("holdout", language=language)
    # Only the status and the window here: the counts are left to the conditional updates.
    open_now = rules.availability(
        status=offer.status, starts_at=offer.starts_at, ends_at=offer.ends_at, inventory=None, claimed=0,
        daily_limit=None, claimed_today=0, at=at,
    )  # fmt: skip
    if not open_now.open:
        raise _refused(open_now.reason, language=language)
    problem = rules.eligibility_problem(
        eligibility=offer.eligibility, recent_purchase_days=offer.recent_purchase_days,
        allowed_countries=offer.allowed_countries, country=customer.country,
        last_purchase_at=_last_purchase_at(customer), at=at,
    )  # fmt: skip
    if problem:
        raise _refused(problem, language=language)
    shipping, normalized = _address_normalized(address, language=language) if offer.physical else ({}, "")
    variant = assignment.variant
    day = local_day(at) if offer.daily_limit is not None else None
    fields = {
        "claimed_at": at, "ends_at": trial_end(variant=variant, at=at), "claim_day": day, "language": language,
        "shipping_address": shipping, "claim_ip": ip or None, "claim_user_agent": (user_agent or "")[:500],
    }  # fmt: skip
    email = customer.canonical_email or rules.canonical_email(customer.email)
    with transaction.atomic():
        trial, fresh = _trial_reserve_row(
            assignment=assignment, offer=offer, customer=customer, fields=fields, language=language, at=at
        )
        if not fresh:
            return trial
        # Cheap refusals first, the offer's hot counter row last: it is held until the commit.
        _identity_take(offer_id=offer.pk, trial=trial, kind=ClaimIdentity.Kind.EMAIL, value=email, language=language)
        if normalized:
            _identity_take(
                offer_id=offer.pk, trial=trial, kind=ClaimIdentity.Kind.ADDRESS, value=normalized, language=language
            )
        if day is not None:
            _daily_unit_take(offer=offer, day=day, language=language)
        _unit_take(offer=offer, language=language, at=at)
    return trial


def _fee(trial: Trial) -> tuple[int, str]:
    """What the claim charges now (minor units) and the ledger kind of it."""
    kind = trial.variant.effective_kind
    price = trial.variant.effective_trial_price
    if kind == Offer.Kind.PAID_TRIAL and price > 0:
        return price, "trial_fee"
    if kind == Offer.Kind.SAMPLE and price > 0:
        return price, "sample"
    return 0, ""


@dataclass(frozen=True)
class ClaimPayment:
    """What the page needs to save the card with Stripe.js (``confirmCardSetup`` with the
    SetupIntent's secret). Empty for a kind that needs no card and charges nothing."""

    trial_id: int
    setup_intent_id: str = ""
    setup_client_secret: str = ""


class ClaimPaymentAction(Exception):
    """The bank asks the customer to authenticate the claim's charge (3-D Secure): the page runs
    ``confirmCardPayment`` with ``client_secret`` and then confirms the claim again, with
    ``payment_intent_id``. The reservation stands meanwhile."""

    def __init__(self, *, payment_intent_id: str, client_secret: str):
        super().__init__("the bank asks the customer to authenticate the payment")
        self.payment_intent_id = payment_intent_id
        self.client_secret = client_secret


def _claim_key(trial: Trial) -> str:
    # The trial id, and the reservation's time: a trial reserved again (after a release) is a new
    # attempt, which must not be answered from Stripe's memory of the last one.
    return f"trial-{trial.pk}-{int(trial.claimed_at.timestamp())}"


def _needs_card(trial: Trial) -> bool:
    return trial.variant.effective_kind in rules.CARD_KINDS or _fee(trial)[0] > 0


def claim_payment_start(*, trial_id: int, at: datetime) -> ClaimPayment:
    """Create (once) the SetupIntent a reserved claim needs to save the card, with no database
    lock held; a reload finds the one made before. If Stripe is down or slow, the reservation is
    released and ``ClaimUnavailable`` raised."""
    from billing import gateway

    trial = Trial.objects.select_related("offer__product", "variant", "customer").get(pk=trial_id)
    if trial.status != Trial.Status.RESERVED:
        raise _refused("expired", language=trial.language)
    if not _needs_card(trial):
        return ClaimPayment(trial_id=trial.pk)
    from billing.services import customer_stripe_id

    try:
        stripe_customer = customer_stripe_id(customer=trial.customer, timeout=CLAIM_STRIPE_TIMEOUT)
        if trial.stripe_setup_intent_id:
            setup = gateway.setup_intent_get(setup_intent_id=trial.stripe_setup_intent_id, timeout=CLAIM_STRIPE_TIMEOUT)
        else:
            setup = gateway.setup_intent_start(
                customer_id=stripe_customer, idempotency_key=_claim_key(trial), timeout=CLAIM_STRIPE_TIMEOUT
            )
    except gateway.GatewayError as exc:
        claim_release(trial_id=trial.pk, reason=f"Stripe unavailable at claim: {str(exc)[:120]}", at=at)
        raise ClaimUnavailable(str(exc)) from exc
    # Kept only on the reservation it was made for: a released one keeps nothing.
    Trial.objects.filter(pk=trial.pk, status=Trial.Status.RESERVED).update(stripe_setup_intent_id=setup.id)
    return ClaimPayment(trial_id=trial.pk, setup_intent_id=setup.id, setup_client_secret=setup.client_secret)


def _fee_charge(trial: Trial, *, payment_intent_id: str | None, method: str, at: datetime):
    """The claim's charge: made once (its id kept on the reservation), or read back when the
    page returns from 3-D Secure. Returns the succeeded PaymentIntent."""
    from billing import gateway

    fee, fee_kind = _fee(trial)
    if trial.stripe_payment_intent_id == CHARGING:
        raise _refused("card_pending", language=trial.language)
    if trial.stripe_payment_intent_id:
        if (payment_intent_id or trial.stripe_payment_intent_id) != trial.stripe_payment_intent_id:
            raise _refused("tampered", language=trial.language)
        payment = gateway.payment_intent_get(
            payment_intent_id=trial.stripe_payment_intent_id, timeout=CLAIM_STRIPE_TIMEOUT
        )
    else:
        if payment_intent_id:
            raise _refused("tampered", language=trial.language)
        if at - trial.claimed_at > RESERVATION_TTL - CHARGE_MARGIN:
            claim_release(trial_id=trial.pk, reason="too late to charge the fee", at=at)
            raise _refused("expired", language=trial.language)
        # Claimed with a conditional update before Stripe is called: of two confirms racing (a
        # double submit), one charges and the other is told to wait. (localstripe ignores the
        # idempotency key, which alone would have made them one charge at Stripe.)
        if not Trial.objects.filter(pk=trial.pk, status=Trial.Status.RESERVED, stripe_payment_intent_id="").update(
            stripe_payment_intent_id=CHARGING
        ):
            raise _refused("card_pending", language=trial.language)
        try:
            payment = gateway.payment_intent_charge(
                customer_id=trial.customer.stripe_customer_id, payment_method_id=method, amount=fee,
                currency=trial.offer.currency, idempotency_key=_claim_key(trial), timeout=CLAIM_STRIPE_TIMEOUT,
                metadata={"product_sku": trial.offer.product.sku, "foretaste_kind": fee_kind,
                          "trial_id": str(trial.pk)},
            )  # fmt: skip
        except gateway.GatewayUnavailable:
            # Not known whether it was charged: the same key repeats this charge at Stripe.
            Trial.objects.filter(pk=trial.pk, stripe_payment_intent_id=CHARGING).update(stripe_payment_intent_id="")
            raise
        except gateway.GatewayError:
            _payment_settled(trial, "declined", at=at)
        Trial.objects.filter(pk=trial.pk, stripe_payment_intent_id=CHARGING).update(stripe_payment_intent_id=payment.id)
        trial.stripe_payment_intent_id = payment.id
    if payment.status == "requires_action":
        raise ClaimPaymentAction(payment_intent_id=payment.id, client_secret=payment.client_secret)
    _payment_settled(trial, payment.status, at=at)
    return payment


def _offer_snapshot(offer: Offer) -> dict:
    product = offer.product
    return {
        "slug": offer.slug, "name": offer.name, "promise": offer.promise, "kind": offer.kind,
        "physical": offer.physical, "trial_days": offer.trial_days, "trial_price": offer.trial_price,
        "currency": offer.currency, "reminder_days": list(offer.reminder_days or []),
        "product": {"sku": product.sku, "name": product.name, "price_amount": product.price_amount,
                    "currency": product.currency, "interval": product.interval},
    }  # fmt: skip


def _variant_snapshot(variant) -> dict:
    return {
        "name": variant.name, "kind": variant.effective_kind, "trial_days": variant.effective_trial_days,
        "trial_price": variant.effective_trial_price,
    }  # fmt: skip


def claim_confirm(
    *, trial_id: int, setup_intent_id: str | None = None, payment_intent_id: str | None = None, at: datetime
) -> Trial:
    """Complete a reserved claim: check at Stripe that the card was saved, charge the fee (once;
    ``ClaimPaymentAction`` when the bank asks for 3-D Secure, after which the page confirms
    again with ``payment_intent_id``), then in one transaction take the card's identity row,
    write the consent record, move the trial reserved → active and record the fee in the ledger.
    Confirming a trial already confirmed returns it (a double submit). A declined card, or a card
    already used for the offer, releases the reservation and raises ``ClaimRefused``."""
    from billing import gateway

    trial = Trial.objects.select_related("offer__product", "variant", "customer").get(pk=trial_id)
    language = trial.language
    if trial.status != Trial.Status.RESERVED:
        if ConsentRecord.objects.filter(trial=trial).exists():
            return trial
        raise _refused("expired", language=language)
    if (setup_intent_id or "") != trial.stripe_setup_intent_id or (_needs_card(trial) and not setup_intent_id):
        raise _refused("tampered", language=language)
    fee, fee_kind = _fee(trial)
    card = None
    method = ""
    paid_at = None
    try:
        if setup_intent_id:
            setup = gateway.setup_intent_get(setup_intent_id=setup_intent_id, timeout=CLAIM_STRIPE_TIMEOUT)
            _payment_settled(trial, setup.status, at=at)
            method = setup.payment_method_id or ""
            card = gateway.card_details(payment_method_id=method, timeout=CLAIM_STRIPE_TIMEOUT)
            _card_identity_take(trial, card=card, at=at)
        if fee:
            payment = _fee_charge(trial, payment_intent_id=payment_intent_id, method=method, at=at)
            state = gateway.payment_intent_state(payment_intent_id=payment.id)
            paid_at = gateway_time(state.paid_at) if state.paid_at else at
    except gateway.GatewayError as exc:
        # The card may be saved already: the reservation stays, for a retry or the beat job.
        raise ClaimUnavailable(str(exc)) from exc
    terms = offer_terms(offer=trial.offer, variant=trial.variant, language=language, at=trial.claimed_at)
    with transaction.atomic():
        if not _moves(
            moves=[Move(trial.pk, at, "claim confirmed")], sources=(Trial.Status.RESERVED,), target=Trial.Status.ACTIVE
        ):
            trial.refresh_from_db()
            if ConsentRecord.objects.filter(trial=trial).exists():
                return trial
            raise _refused("expired", language=language)
        _consent_write(trial=trial, terms_text=terms.text, card=card, method=method, at=at)
        _claim_receipt_queue(trial=trial, terms_text=terms.text, language=language, at=at)
        if fee:
            from billing import ledger

            ledger.purchase_record(
                customer=trial.customer, product=trial.offer.product, kind=fee_kind, amount=fee,
                currency=trial.offer.currency, purchased_at=paid_at, source="stripe",
                external_id=trial.stripe_payment_intent_id, trial_id=trial.pk,
            )  # fmt: skip
    trial.refresh_from_db()
    return trial


def _claim_receipt_queue(*, trial: Trial, terms_text: str, language: str, at: datetime) -> None:
    """The email that confirms the claim: the exact terms the customer agreed to, and the signed
    link that cancels in one click. Queued in the claim's transaction, so a claim that rolls back
    sends nothing, and keyed by the trial, so a repeated confirm sends it once."""
    from accounts.emails import email_queue
    from trials.links import cancel_url

    language = supported_language(language)
    with translation.override(language):
        subject = gettext("Your trial of %(offer)s has started") % {"offer": trial.offer.name}
        text = "\n\n".join(
            [
                gettext("Thank you for trying %(offer)s. These are the terms you agreed to:")
                % {"offer": trial.offer.name},
                terms_text,
                gettext("To cancel at any time, in one click: %(link)s") % {"link": cancel_url(trial)},
            ]
        )
    email_queue(
        to=trial.customer.email, subject=subject, text=text, purpose=OutboxPurpose.RECEIPT, user=trial.customer,
        about=trial, language=language, key=f"trial-{trial.pk}-claimed", at=at,
    )  # fmt: skip


def _card_identity_take(trial: Trial, *, card, at: datetime) -> None:
    """Hold the card's fingerprint for this trial, committed before any fee is charged, so that a
    card already used for the offer is refused before it pays anything."""
    if ClaimIdentity.objects.filter(trial=trial, kind=ClaimIdentity.Kind.CARD).exists():
        return  # a second confirm of the same claim
    try:
        with transaction.atomic():
            # Still reserved (a release deletes identity rows; one inserted after it would be
            # left behind): the lock keeps the release out until this commits.
            if not Trial.objects.select_for_update().filter(pk=trial.pk, status=Trial.Status.RESERVED).exists():
                raise _refused("expired", language=trial.language)
            _identity_take(
                offer_id=trial.offer_id, trial=trial, kind=ClaimIdentity.Kind.CARD, value=card.fingerprint,
                language=trial.language,
            )  # fmt: skip
    except ClaimRefused as refusal:
        if refusal.code != "expired":
            claim_release(trial_id=trial.pk, reason=refusal.code, at=at)
            _claim_refusal_count(offer_id=trial.offer_id, reason=refusal.code)
        raise


def gateway_time(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def _payment_settled(trial: Trial, status: str, *, at: datetime) -> None:
    """Raise unless a SetupIntent's or PaymentIntent's status is ``succeeded``. A declined card
    releases the reservation; one waiting for the bank (3-D Secure) keeps it."""
    if status == "succeeded":
        return
    if status in ("requires_action", "requires_confirmation", "processing"):
        raise _refused("card_pending", language=trial.language)
    claim_release(trial_id=trial.pk, reason=f"card {status}", at=at)
    _claim_refusal_count(offer_id=trial.offer_id, reason="card_declined")
    raise _refused("card_declined", language=trial.language)


def _consent_write(*, trial: Trial, terms_text: str, card, method: str, at: datetime) -> ConsentRecord:
    offer = trial.offer
    latest_change = offer.changes.aggregate(latest=Max("pk"))["latest"] or 0
    return ConsentRecord.objects.create(
        trial=trial, customer=trial.customer, offer=offer, variant=trial.variant, offer_version=latest_change,
        offer_snapshot=_offer_snapshot(offer), variant_snapshot=_variant_snapshot(trial.variant),
        terms_text=terms_text, terms_sha256=hashlib.sha256(terms_text.encode()).hexdigest(),
        language=trial.language, consented_at=trial.claimed_at, recorded_at=at, ip=trial.claim_ip,
        user_agent=trial.claim_user_agent, trial_price=trial.variant.effective_trial_price,
        price_after=offer.product.price_amount, currency=offer.currency, trial_ends_at=trial.ends_at,
        card_last4=card.last4 if card else "", card_fingerprint=card.fingerprint if card else "",
        stripe_customer_id=(trial.customer.stripe_customer_id or "") if method else "",
        stripe_setup_intent_id=trial.stripe_setup_intent_id, stripe_payment_intent_id=trial.stripe_payment_intent_id,
        stripe_payment_method_id=method,
    )  # fmt: skip


def claim_release(*, trial_id: int, reason: str, at: datetime) -> bool:
    """Give up a reservation: reserved → abandoned, and its unit, its day's unit and its identity
    rows given back, in one transaction. False when it was not reserved (confirmed, or released
    by someone else first); then nothing is given back twice."""
    with transaction.atomic():
        if not _moves(
            moves=[Move(trial_id, at, reason)], sources=(Trial.Status.RESERVED,), target=Trial.Status.ABANDONED
        ):
            return False
        trial = Trial.objects.select_related("offer").get(pk=trial_id)
        ClaimIdentity.objects.filter(trial=trial).delete()
        if trial.claim_day is not None:
            DailyClaims.objects.filter(offer_id=trial.offer_id, day=trial.claim_day).update(claimed=F("claimed") - 1)
        Offer.objects.filter(pk=trial.offer_id).update(claimed_count=F("claimed_count") - 1)
        payment = trial.stripe_payment_intent_id
        if payment and payment != CHARGING:
            transaction.on_commit(lambda: _payment_cancel(payment))
    return True


def _payment_cancel(payment_intent_id: str) -> None:
    """After a release: cancel its unpaid fee at Stripe, so that a page left open cannot pay it."""
    from billing import gateway

    try:
        gateway.payment_intent_cancel(payment_intent_id=payment_intent_id, timeout=CLAIM_STRIPE_TIMEOUT)
    except gateway.GatewayError:
        logger.warning("could not cancel PaymentIntent %s of a released claim", payment_intent_id, exc_info=True)


def reservations_release_stale(*, at: datetime, limit: int = 500) -> int:
    """Release the reservations left unconfirmed for longer than ``RESERVATION_TTL`` (a closed
    tab): each one claimed by ``claim_release``'s conditional update, so two runs release each
    once. Returns how many this run released."""
    from trials.selectors import trial_list_stale_reservations

    stale = trial_list_stale_reservations(before=at - RESERVATION_TTL, limit=limit)
    return sum(claim_release(trial_id=pk, reason="not completed in time", at=at) for pk in stale)


def trial_cancel(*, trial_id: int, customer, at: datetime) -> Trial:
    """The customer cancels: at once, at any moment before the charge. An active trial, or one
    whose payment failed, becomes cancelled, and nothing is charged afterwards (the conversion
    job moves only active trials). A confirmation email is queued in the same transaction.
    Someone else's trial is a 404; cancelling twice sends one email. A trial already converted
    raises ``TrialTransitionNotAllowed``."""
    from accounts.emails import email_queue
    from trials.selectors import trial_get_for_customer

    trial = trial_get_for_customer(trial_id=trial_id, customer=customer)
    if trial.status == Trial.Status.RESERVED:
        claim_release(trial_id=trial.pk, reason="cancelled by the customer", at=at)
        trial.refresh_from_db()
        return trial
    with transaction.atomic():
        moved = _moves(
            moves=[Move(trial.pk, at, "cancelled by the customer")],
            sources=(Trial.Status.ACTIVE, Trial.Status.PAYMENT_FAILED),
            target=Trial.Status.CANCELLED,
            stamp="cancelled_at",
        )
        trial.refresh_from_db()
        if not moved:
            if trial.status == Trial.Status.CANCELLED:
                return trial
            raise TrialTransitionNotAllowed(f"trial {trial.pk} is {trial.status} and cannot be cancelled")
        language = supported_language(trial.language)
        with translation.override(language):
            subject = gettext("Your trial of %(offer)s is cancelled") % {"offer": trial.offer.name}
            text = "\n\n".join(
                [
                    gettext("You cancelled your trial of %(offer)s on %(date)s.")
                    % {"offer": trial.offer.name, "date": long_date(at, language)},
                    gettext("Nothing will be charged for it, now or later."),
                ]
            )
        email_queue(
            to=customer.email, subject=subject, text=text, purpose=CANCELLATION_PURPOSE, user=customer,
            about=trial, language=language, key=f"trial-{trial.pk}-cancelled", at=at,
        )  # fmt: skip
    return trial


# --- Feedback ------------------------------------------------------------------------------------
FEEDBACK_AFTER = (Trial.Status.EXPIRED, Trial.Status.CONVERTED, Trial.Status.CANCELLED, Trial.Status.PAYMENT_FAILED)


def trial_is_over(trial: Trial, at: datetime) -> bool:
    """Over, for the survey: cancelled, or ended (expired, converted, payment failed) and past
    its last day."""
    return trial.status in FEEDBACK_AFTER and (trial.ends_at <= at or trial.status == Trial.Status.CANCELLED)


def feedback_give(*, trial_id, customer, promise_met: str, rating: int, comment: str, at: datetime):
    """The customer answers the offer's question, once, after the trial. Someone else's trial is
    a 404; a second answer, or one before the trial is over, is refused with the reason."""
    from django.core.exceptions import ValidationError

    from trials.models import Feedback
    from trials.selectors import trial_get_for_customer

    trial = trial_get_for_customer(trial_id=trial_id, customer=customer)
    if trial.status not in FEEDBACK_AFTER and trial.ends_at > at:
        raise ValidationError(gettext("You can tell us how it went once your trial is over."))
    try:
        with transaction.atomic():
            return Feedback.objects.create(
                trial=trial, promise_met=promise_met, rating=rating, comment=comment.strip(), answered_at=at
            )
    except IntegrityError:
        # The one-to-one constraint: two submits at once, or a second answer.
        raise ValidationError(gettext("You have already told us how this trial went. Thank you!")) from None


def feedback_refundable(*, trial_id: int):
    """The charge of a trial that a feedback answer may refund, and how much of it (minor units)
    is left unrefunded: the conversion charge if there is one, else the trial fee or the sample's
    price. ``(None, 0)`` when the trial charged nothing."""
    from django.db.models import Sum

    from billing.models import Purchase

    original = (
        Purchase.objects.filter(trial_id=trial_id, refund_of__isnull=True, amount__gt=0)
        .order_by(Case(When(kind=Purchase.Kind.REGULAR, then=Value(0)), default=Value(1)), "-purchased_at", "-pk")
        .first()
    )
    if original is None:
        return None, 0
    refunded = -(original.refunds.aggregate(total=Sum("amount"))["total"] or 0)
    return original, original.amount - refunded


def _refund_amount(refund: str, *, trial_id: int):
    """The refund asked for in the answer (major units, as typed): the charge it refunds and the
    amount in minor units; ``(None, 0)`` for none. A clear error for anything that cannot be."""
    from django.core.exceptions import ValidationError

    from offers.money import MoneyError, money_format, to_minor

    refund = (refund or "").strip()
    if not refund:
        return None, 0
    original, left = feedback_refundable(trial_id=trial_id)
    if original is None:
        raise ValidationError({"refund": [gettext("This trial charged nothing, so there is nothing to refund.")]})
    try:
        amount = to_minor(refund, original.currency)
    except MoneyError:
        raise ValidationError({"refund": [gettext("Write the refund as an amount, like 12.50.")]}) from None
    if amount <= 0:
        raise ValidationError({"refund": [gettext("A refund must be more than zero.")]})
    if amount > left:
        raise ValidationError(
            {
                "refund": [
                    gettext("At most %(left)s is left to refund.") % {"left": money_format(left, original.currency)}
                ]
            }
        )
    return original, amount


def feedback_answer(*, feedback_id: int, actor, text: str, at: datetime, refund: str = ""):
    """A marketer answers a customer's feedback: the answer is emailed in the customer's language,
    and its time recorded for "Promises kept". Answered once: a conditional update claims it.

    ``refund`` (major units, as typed; optional) refunds that much of the trial's charge
    (``feedback_refundable``) through the gateway, with no transaction open, and writes the
    negative ledger row at once under the refund's id, the id ``billing.handlers.charge_refunded``
    uses, so the later webhook adds nothing. If Stripe refuses or cannot be reached, the claim is
    given back: nothing is recorded and the answer is not sent."""
    from django.core.exceptions import ValidationError

    from accounts.emails import email_queue
    from accounts.languages import user_language
    from billing import gateway, ledger
    from billing.models import Purchase
    from trials.models import Feedback

    text = text.strip()
    if not text:
        raise ValidationError({"response": [gettext("Write the answer the customer will receive.")]})
    feedback = Feedback.objects.select_related("trial__offer", "trial__customer").get(pk=feedback_id)
    original, amount = _refund_amount(refund, trial_id=feedback.trial_id)
    claimed = Feedback.objects.filter(pk=feedback_id, responded_at__isnull=True).update(
        response=text, responded_at=at, responded_by=actor
    )
    if not claimed:
        raise ValidationError({"response": [gettext("This feedback has already been answered.")]})
    refunded = None
    if original is not None:
        try:
            payment_intent = original.external_id
            if payment_intent.startswith("in_"):  # a subscription's invoice: its PaymentIntent is refunded
                payment_intent = gateway.invoice_state(invoice_id=payment_intent).payment_intent_id or ""
            refunded = gateway.refund_create(
                payment_intent_id=payment_intent, amount=amount, idempotency_key=f"feedback-{feedback_id}"
            )
        except gateway.GatewayError as exc:
            Feedback.objects.filter(pk=feedback_id, responded_at=at).update(
                response="", responded_at=None, responded_by=None
            )
            logger.warning("refund for feedback %s failed: %s", feedback_id, exc)
            raise ValidationError(
                {"refund": [gettext("Stripe did not make the refund (%(error)s). Nothing was refunded or sent.")
                            % {"error": str(exc)[:200]}]}
            ) from exc  # fmt: skip
    with transaction.atomic():
        if refunded is not None:
            ledger.refund_record(
                original=original, amount=refunded.amount, refunded_at=gateway_time(refunded.created),
                source=Purchase.Source.STRIPE, external_id=refunded.id,
            )  # fmt: skip
        feedback.refresh_from_db()
        trial = feedback.trial
        language = supported_language(trial.language or user_language(trial.customer))
        with translation.override(language):
            subject = gettext("About your trial of %(offer)s") % {"offer": trial.offer.name}
        email_queue(
            to=trial.customer.email, subject=subject, text=text, purpose=OutboxPurpose.APOLOGY, user=trial.customer,
            about=trial, language=language, key=f"trial-{trial.pk}-feedback-answer", at=at,
        )  # fmt: skip
    return feedback


# --- Conversion ----------------------------------------------------------------------------------
# The end step of a card trial (free_trial, paid_trial), run by the trial clock
# (``trials.clock.trials_convert_due``) once every promised reminder was sent. Order of work:
# active → converting (a conditional update: of two jobs, one goes on) → commit → the gateway,
# with no transaction open and a key derived from the trial id → one transaction: the ``regular``
# ledger row (which converts the trial, billing/ledger.py) or converting → payment_failed and an
# email with the way to pay. The ledger row carries the same external id the webhook handlers use
# (the PaymentIntent, or the subscription's first invoice), so the later webhook adds nothing.
@dataclass(frozen=True)
class Conversion:
    outcome: str  # converted, action_needed, declined, unavailable, or taken (someone else has it)
    external_id: str = ""


def conversion_key(trial_id: int, attempt: int = 0) -> str:
    """The idempotency key of the end step's charge: the trial, and which attempt (0 is the
    automatic one and keeps the first key; each card the customer tries afterwards is a new
    charge, which must not be answered from Stripe's memory of the declined one)."""
    return f"trial-{trial_id}-conversion" + (f"-{attempt}" if attempt else "")


# A charge Stripe did not answer (the trial stays ``converting``) is tried again with the same key
# by the clock (``trials.clock.trials_converting_retry``): first after CHARGE_RETRY_AFTER, then
# after as long again as it has waited so far (a doubling), at most CHARGE_RETRY_MAX apart.
# Stripe remembers a key for 24 hours; a trial still unanswered after KEY_MEMORY is left
# ``converting`` for an operator, because a new charge then could be a second one (if the first
# went through, its webhook records it and converts the trial).
CHARGE_RETRY_AFTER = timedelta(minutes=5)
CHARGE_RETRY_MAX = timedelta(hours=2)
KEY_MEMORY = timedelta(hours=23)


def trial_conversion_charge(*, trial_id: int, at: datetime) -> Conversion:
    """Charge the product for a card trial whose time is up, off-session (the customer is away).
    Never twice: the move to ``converting`` is the claim, and Stripe dedups the retried key."""
    if not _moves(moves=[Move(trial_id, at, "conversion charge")], sources=(Trial.Status.ACTIVE,),
                  target=Trial.Status.CONVERTING):  # fmt: skip
        return Conversion("taken")
    # charge_retry_at holds off the retry job while this call is in flight.
    Trial.objects.filter(pk=trial_id).update(waiting_reason="", charge_retry_at=at + CHARGE_RETRY_AFTER)
    return _conversion_attempt(trial_id=trial_id, at=at)


def trial_conversion_retry(*, trial_id: int, at: datetime) -> Conversion:
    """Try again the charge of a trial left ``converting`` by an unreachable Stripe, with the
    same key, so that Stripe answers with the charge it may already have made. Claimed by a
    conditional update of ``charge_retry_at``: of two jobs, one goes on."""
    if not Trial.objects.filter(pk=trial_id, status=Trial.Status.CONVERTING, charge_retry_at__lte=at).update(
        charge_retry_at=at + CHARGE_RETRY_AFTER
    ):
        return Conversion("taken")
    return _conversion_attempt(trial_id=trial_id, at=at, retry=True)


def _conversion_attempt(*, trial_id: int, at: datetime, retry: bool = False) -> Conversion:
    from billing import gateway

    trial = Trial.objects.select_related("offer__product", "customer", "consent").get(pk=trial_id)
    consent, product = trial.consent, trial.offer.product
    key = conversion_key(trial.pk, trial.charge_attempt)
    metadata = {"product_sku": product.sku, "foretaste_kind": "regular", "trial_id": str(trial.pk)}
    try:
        if product.interval:
            result = gateway.subscription_create(
                customer_id=consent.stripe_customer_id, price_id=product.stripe_price_id,
                payment_method_id=consent.stripe_payment_method_id, idempotency_key=key, metadata=metadata,
            )  # fmt: skip
            status = "succeeded" if result.status == "active" else result.payment_intent_status or result.status
            intent_id, invoice_id = result.payment_intent_id or "", result.latest_invoice_id or ""
        else:
            # A retry first looks for the charge the unanswered attempt may have made: the key
            # alone does not do at localstripe (which ignores keys) or after Stripe forgot it.
            payment = (
                gateway.payment_intent_find(customer_id=consent.stripe_customer_id, metadata=metadata)
                if retry
                else None
            ) or gateway.payment_intent_charge(
                customer_id=consent.stripe_customer_id, payment_method_id=consent.stripe_payment_method_id,
                amount=product.price_amount, currency=product.currency, idempotency_key=key, metadata=metadata,
                off_session=True,
            )  # fmt: skip
            status, intent_id, invoice_id = payment.status, payment.id, ""
    except gateway.GatewayUnavailable as exc:
        # Not known whether Stripe charged: the trial stays converting, and a retry with the same
        # key repeats the same charge at Stripe instead of making a second one.
        logger.warning("conversion of trial %s: Stripe unavailable: %s", trial.pk, exc)
        _conversion_retry_later(trial, at=at)
        return Conversion("unavailable")
    except gateway.GatewayError as exc:
        _conversion_failed(trial, note=f"declined: {exc.code or str(exc)}"[:200], action=False, at=at)
        return Conversion("declined")
    Trial.objects.filter(pk=trial.pk).update(
        conversion_payment_intent_id=intent_id, conversion_invoice_id=invoice_id, charge_retry_at=None
    )
    trial.conversion_payment_intent_id, trial.conversion_invoice_id = intent_id, invoice_id
    if status == "succeeded":
        return _conversion_record(trial, at=at)
    if status == "requires_action":
        _conversion_failed(trial, note="authentication needed", action=True, at=at)
        return Conversion("action_needed", invoice_id or intent_id)
    _conversion_failed(trial, note=f"declined: {status}"[:200], action=False, at=at)
    return Conversion("declined", invoice_id or intent_id)


def _conversion_retry_later(trial: Trial, *, at: datetime) -> None:
    started = trial.events.filter(to_status=Trial.Status.CONVERTING).aggregate(latest=Max("at"))["latest"] or at
    if at - started >= KEY_MEMORY:
        logger.error(
            "conversion of trial %s: Stripe unanswered since %s; left converting for an operator", trial.pk, started
        )
        Trial.objects.filter(pk=trial.pk, status=Trial.Status.CONVERTING).update(charge_retry_at=None)
        return
    wait = min(max(CHARGE_RETRY_AFTER, at - started), CHARGE_RETRY_MAX)
    Trial.objects.filter(pk=trial.pk, status=Trial.Status.CONVERTING).update(charge_retry_at=at + wait)


def _conversion_record(trial: Trial, *, at: datetime) -> Conversion:
    """The end step's charge went through: its ``regular`` ledger row, which converts the trial
    (billing/ledger.py). Written as the webhook handler would write it, from the payment as
    Stripe holds it: under the invoice's id for a subscription, else the PaymentIntent's, with
    Stripe's amount and time of payment, so that the webhook, later, finds the same row and adds
    nothing (the ledger refuses the same id with other content)."""
    from billing import gateway
    from billing.ledger import purchase_record
    from billing.models import Purchase

    product = trial.offer.product
    try:
        if trial.conversion_invoice_id:
            invoice = gateway.invoice_state(invoice_id=trial.conversion_invoice_id)
            external_id, amount, paid = invoice.id, invoice.amount_paid, invoice.paid_at or invoice.created
        else:
            intent = gateway.payment_intent_state(payment_intent_id=trial.conversion_payment_intent_id)
            external_id, amount, paid = intent.id, intent.amount_received, intent.paid_at or intent.created
    except gateway.GatewayError as exc:
        # Paid, but not readable now: the payment's webhook records it and converts the trial.
        logger.warning("conversion of trial %s: paid, but Stripe unreadable: %s", trial.pk, exc)
        return Conversion("unavailable")
    with transaction.atomic():
        purchase_record(
            customer=trial.customer, product=product, kind=Purchase.Kind.REGULAR, amount=amount,
            currency=product.currency, purchased_at=gateway_time(paid), source=Purchase.Source.STRIPE,
            external_id=external_id, trial_id=trial.pk,
        )  # fmt: skip
    return Conversion("converted", external_id)


# --- Completing a failed end step (the customer's page, /me/trials/<id>/pay/) ---------------------
@dataclass(frozen=True)
class PaymentStep:
    """What the payment page asks of the customer: ``authenticate`` (the bank's 3-D Secure, with
    ``confirmCardPayment`` and the PaymentIntent's secret), ``card`` (another card, saved with
    ``confirmCardSetup`` and the SetupIntent's secret), or ``none`` (the trial has no payment
    waiting: paid, cancelled, or never failed)."""

    mode: str
    client_secret: str = ""
    intent_id: str = ""


def trial_payment_step(*, trial_id, customer, at: datetime) -> PaymentStep:
    """The payment page's step for the customer's own trial (someone else's is a 404). Raises
    ``gateway.GatewayError`` when Stripe cannot be asked."""
    from billing import gateway
    from trials.selectors import trial_get_for_customer

    trial = trial_get_for_customer(trial_id=trial_id, customer=customer)
    if not _payment_waits(trial):
        return PaymentStep("none")
    if trial.conversion_payment_intent_id:
        payment = gateway.payment_intent_get(payment_intent_id=trial.conversion_payment_intent_id)
        if payment.status == "requires_action":
            return PaymentStep("authenticate", payment.client_secret, payment.id)
    # A new SetupIntent per page view: one not confirmed costs nothing, and a reload must not be
    # answered with one confirmed before (which Stripe.js cannot confirm again).
    setup = gateway.setup_intent_start(
        customer_id=trial.consent.stripe_customer_id,
        idempotency_key=f"trial-{trial.pk}-card-{trial.charge_attempt + 1}-{int(at.timestamp() * 1000)}",
    )
    return PaymentStep("card", setup.client_secret, setup.id)


def _payment_waits(trial: Trial) -> bool:
    """A failed end step of ours: an imported ``payment_failed`` trial has no card or terms here."""
    return trial.status == Trial.Status.PAYMENT_FAILED and trial.source == Assignment.Source.WEB


class PaymentNotPossible(Exception):
    """The payment page was sent something that does not fit the trial (another customer's
    card, a card not saved, no payment waiting); nothing was charged."""


def trial_payment_authenticated(*, trial_id, customer, at: datetime) -> Conversion:
    """After ``confirmCardPayment``: read the end step's PaymentIntent from Stripe, and if it
    went through, record it (which converts the trial). ``action_needed`` when the bank's step
    is still not done; ``taken`` when there is no payment waiting."""
    from billing import gateway
    from trials.selectors import trial_get_for_customer

    trial = trial_get_for_customer(trial_id=trial_id, customer=customer)
    if trial.status != Trial.Status.PAYMENT_FAILED or not trial.conversion_payment_intent_id:
        return Conversion("taken")
    payment = gateway.payment_intent_get(payment_intent_id=trial.conversion_payment_intent_id)
    return _payment_outcome(trial, status=payment.status, at=at)


def trial_payment_retry(*, trial_id, customer, setup_intent_id: str, at: datetime) -> Conversion:
    """Pay a failed end step with the card the customer has just saved (``setup_intent_id``):
    a new charge under a new key (the next ``charge_attempt``, claimed by a conditional update,
    so a double submit charges once), or for a subscription product, its open first invoice paid
    with the card. ``converted``, ``action_needed`` (the bank asks for 3-D Secure: the page runs
    ``confirmCardPayment``) or ``declined``; the trial stays payment_failed until it is paid."""
    from billing import gateway
    from trials.selectors import trial_get_for_customer

    trial = trial_get_for_customer(trial_id=trial_id, customer=customer)
    if not _payment_waits(trial):
        return Conversion("taken")
    trial = Trial.objects.select_related("offer__product", "customer", "consent").get(pk=trial.pk)
    stripe_customer = trial.consent.stripe_customer_id
    setup = gateway.setup_intent_get(setup_intent_id=setup_intent_id)
    if setup.customer_id != stripe_customer:
        raise PaymentNotPossible(f"SetupIntent {setup_intent_id} is not for trial {trial.pk}'s customer")
    if setup.status != "succeeded" or not setup.payment_method_id:
        raise PaymentNotPossible(f"SetupIntent {setup_intent_id} is {setup.status}")
    attempt = trial.charge_attempt + 1
    if not Trial.objects.filter(
        pk=trial.pk, status=Trial.Status.PAYMENT_FAILED, charge_attempt=trial.charge_attempt
    ).update(charge_attempt=attempt):
        return Conversion("taken")
    product = trial.offer.product
    key = conversion_key(trial.pk, attempt)
    try:
        if trial.conversion_invoice_id:
            payment = gateway.invoice_pay(
                invoice_id=trial.conversion_invoice_id, customer_id=stripe_customer,
                payment_method_id=setup.payment_method_id, idempotency_key=key,
            )  # fmt: skip
        else:
            payment = gateway.payment_intent_charge(
                customer_id=stripe_customer, payment_method_id=setup.payment_method_id,
                amount=product.price_amount, currency=product.currency, idempotency_key=key,
                metadata={"product_sku": product.sku, "foretaste_kind": "regular", "trial_id": str(trial.pk)},
            )  # fmt: skip
    except gateway.GatewayUnavailable:
        # Not known whether it charged: the attempt is given back, so the next submit repeats
        # this key, and Stripe answers with this charge if it was made.
        Trial.objects.filter(pk=trial.pk, charge_attempt=attempt).update(charge_attempt=attempt - 1)
        raise
    except gateway.GatewayError as exc:
        TrialEvent.objects.create(
            trial=trial, at=at, from_status=trial.status, to_status=trial.status,
            note=f"another card declined: {exc.code or exc}"[:200],
        )  # fmt: skip
        return Conversion("declined")
    Trial.objects.filter(pk=trial.pk).update(conversion_payment_intent_id=payment.id)
    trial.conversion_payment_intent_id = payment.id
    return _payment_outcome(trial, status=payment.status, at=at)


def _payment_outcome(trial: Trial, *, status: str, at: datetime) -> Conversion:
    if status == "succeeded":
        return _conversion_record(trial, at=at)
    if status in ("requires_action", "requires_confirmation"):
        return Conversion("action_needed", trial.conversion_payment_intent_id)
    return Conversion("declined", trial.conversion_payment_intent_id)


def trial_pay_url(trial: Trial) -> str:
    from django.conf import settings
    from django.urls import reverse

    return settings.SITE_URL.rstrip("/") + reverse("trial_pay", kwargs={"trial_id": trial.pk})


def _conversion_failed(trial: Trial, *, note: str, action: bool, at: datetime) -> None:
    """converting → payment_failed, and the email with the link to the page that completes the
    payment (``trial_pay_url``): the bank's step, or another card."""
    from accounts.emails import email_queue
    from accounts.languages import user_language
    from offers.money import money_format

    language = supported_language(trial.language or user_language(trial.customer))
    product = trial.offer.product
    link = trial_pay_url(trial)
    amount = money_format(product.price_amount, product.currency, language)
    with translation.override(language):
        if action:
            subject = gettext("Your bank asks you to confirm the payment for %(product)s") % {"product": product.name}
            body = gettext(
                "Your trial of %(offer)s has ended. Your bank asks you to confirm the payment of %(amount)s "
                "for %(product)s before it goes through. Confirm it here: %(link)s"
            )
        else:
            subject = gettext("The payment for %(product)s did not go through") % {"product": product.name}
            body = gettext(
                "Your trial of %(offer)s has ended, but the payment of %(amount)s for %(product)s was declined. "
                "Nothing was charged. You can pay with another card here: %(link)s"
            )
        text = body % {"offer": trial.offer.name, "amount": amount, "product": product.name, "link": link}
    with transaction.atomic():
        if trial_payment_failed(trial_id=trial.pk, at=at, note=note):
            email_queue(
                to=trial.customer.email, subject=subject, text=text, purpose=OutboxPurpose.PAYMENT_ACTION,
                user=trial.customer, about=trial, language=language, at=at,
                key=f"trial-{trial.pk}-payment-action" if action else f"trial-{trial.pk}-payment-failed",
            )  # fmt: skip
