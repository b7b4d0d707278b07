""" "Promises kept" (METRICS.md): whether Foretaste kept its own word, per offer or across offers,
as of a moment, each figure with its counts. A share whose denominator is zero is None.

Only trials claimed on the web count: imported trials are history, with no terms we wrote and no
reminders we promised (trials/clock.py). Where each figure's record lives:

- reminders: ``OutboxMessage`` rows of purpose ``reminder`` about the trial, with
  ``promised_at`` (the moment the terms promised, ``offers.terms.reminder_times``) and
  ``sent_at``. A reminder is due when its moment has passed while the trial was still open (not
  cancelled or converted before it); one never queued counts as not on time. The schedule is the
  offer's current ``reminder_days``, which is what the clock sends from.
- charges: a trial's first positive ``regular`` ledger row (its end-step charge) of a kind that
  charges the card by itself (``rules.AUTO_CHARGE_KINDS``), against the reminders of that trial
  sent at or before it.
- cancellations: the trial's ``cancelled_at`` (the click) and the ``sent_at`` of its
  ``cancellation`` email (the confirmation); "charged afterwards" is any positive ledger row of
  the trial after the click.
- limits: the trials holding a unit (all but ``abandoned``) against ``Offer.inventory``, claimed
  first come first served; and a second trial of one offer by one person, recognised by the
  customer's canonical email or the card fingerprint of the consent record (the same rules as
  ``ClaimIdentity``, read from records that constraint does not guard).
- feedback: ``Feedback``'s answer, rating and ``promise_met``; a low rating is 1 or 2
  (``LOW_RATING``), and the response time is ``responded_at - answered_at``.

Each figure is a handful of aggregate queries (correlated EXISTS and sub-selects on indexed
columns), never a loop over trials in Python. ``trials_behind`` gives the trials behind a figure
that fell short, with the same conditions, so the console's list and the count always agree.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.db.models import (
    Avg,
    Count,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    Window,
)
from django.db.models.functions import Coalesce, RowNumber
from django.utils import timezone

from accounts.models import OutboxMessage, OutboxPurpose
from billing.models import Purchase
from offers import rules
from offers.models import Offer, Variant
from trials.models import Assignment, Feedback, Trial

LOW_RATING = 2  # a rating at or below this is a low one, which a marketer should answer
OVER = (Trial.Status.EXPIRED, Trial.Status.CONVERTED, Trial.Status.CANCELLED, Trial.Status.PAYMENT_FAILED)

# The figures that fell short and can list their trials (the console's ``?promise=``).
REMINDERS, CHARGES, CANCELLATIONS, INVENTORY, ONE_PER_PERSON, NOT_MET = (
    "reminders",
    "charges",
    "cancellations",
    "inventory",
    "one_per_person",
    "not_met",
)
PROMISES = (REMINDERS, CHARGES, CANCELLATIONS, INVENTORY, ONE_PER_PERSON, NOT_MET)


@dataclass(frozen=True)
class Figure:
    """``kept`` of ``total``; ``share`` is None when ``total`` is 0. ``promised`` says 100% is
    the promise, so anything less is a promise broken."""

    name: str
    kept: int
    total: int
    share: float | None
    promised: bool = True

    @classmethod
    def of(cls, name: str, kept: int, total: int, *, promised: bool = True) -> "Figure":
        return cls(name, kept, total, kept / total if total else None, promised)

    @property
    def percent(self) -> float | None:
        return None if self.share is None else self.share * 100

    @property
    def falls_short(self) -> bool:
        return self.promised and self.share is not None and self.share < 1

    @property
    def lists_trials(self) -> bool:
        """Whether the console can list trials behind this figure (``trials_behind``): those that
        broke a promise, or the answers saying it was not met."""
        return self.name in PROMISES and (self.falls_short or (self.name == NOT_MET and self.kept > 0))


@dataclass(frozen=True)
class Median:
    """The median of ``count`` durations; None when there are none."""

    count: int
    value: timedelta | None

    @property
    def minutes(self) -> float | None:
        return None if self.value is None else self.value.total_seconds() / 60

    @property
    def hours(self) -> float | None:
        return None if self.value is None else self.value.total_seconds() / 3600


@dataclass(frozen=True)
class PromisesKept:
    offer: str | None  # the offer's slug; None across offers
    as_of: datetime
    reminders_on_time: Figure
    charges_after_reminders: Figure
    cancellations_honoured: Figure
    cancellation_confirmation: Median  # from the click to the confirmation email's sending
    cancellations_unconfirmed: int  # cancelled, but no confirmation sent yet
    claims_within_inventory: Figure
    one_trial_per_person: Figure
    feedback_answered: Figure
    mean_rating: float | None
    ratings: int
    promise_not_met: Figure  # answers saying "no"; not a 100% promise, so never red
    low_rating_response: Median  # ratings of LOW_RATING or less that a marketer answered
    low_ratings_unanswered: int


def promises_kept(*, offer: Offer | None = None, as_of: datetime | None = None) -> PromisesKept:
    as_of = as_of or timezone.now()
    claims = _claims(offer=offer, as_of=as_of)
    reminders = _reminders(claims, offer=offer, as_of=as_of)
    charges = _charges(claims, offer=offer, as_of=as_of)
    cancellations = _cancellations(claims, as_of=as_of)
    confirmation, unconfirmed = _confirmation(claims, as_of=as_of)
    answers = _answers(offer=offer, as_of=as_of)
    feedback = answers.aggregate(
        ratings=Count("pk"), mean=Avg("rating"), not_met=Count("pk", filter=Q(promise_met=Feedback.PromiseMet.NO))
    )
    ended = _ended(claims, as_of=as_of).aggregate(
        total=Count("pk"), answered=Count("pk", filter=Q(feedback__answered_at__lte=as_of))
    )
    response, unanswered = _low_rating_response(answers, as_of=as_of)
    return PromisesKept(
        offer=offer.slug if offer else None,
        as_of=as_of,
        reminders_on_time=Figure.of(REMINDERS, *reminders),
        charges_after_reminders=Figure.of(CHARGES, *charges),
        cancellations_honoured=Figure.of(CANCELLATIONS, *cancellations),
        cancellation_confirmation=confirmation,
        cancellations_unconfirmed=unconfirmed,
        claims_within_inventory=Figure.of(INVENTORY, *_inventory(offer=offer, as_of=as_of)),
        one_trial_per_person=Figure.of(ONE_PER_PERSON, *_one_per_person(offer=offer, as_of=as_of)),
        feedback_answered=Figure.of("answered", ended["answered"], ended["total"], promised=False),
        mean_rating=float(feedback["mean"]) if feedback["mean"] is not None else None,
        ratings=feedback["ratings"],
        promise_not_met=Figure.of(NOT_MET, feedback["not_met"], feedback["ratings"], promised=False),
        low_rating_response=response,
        low_ratings_unanswered=unanswered,
    )


def panel(*, offer: Offer | None, as_of: datetime) -> PromisesKept:
    """``promises_kept`` for the dashboards, as of the rollups' moment. It reads the trials, the
    outbox and the ledger directly, which is slow at scale, so each (offer, moment) is computed
    once and kept until the rollups move on (beat: a minute; ``analytics.overview.warm`` reads
    the overview's ahead)."""
    key = f"dashboard:promises:{offer.pk if offer else 'all'}:{as_of.isoformat()}"
    return cache.get_or_set(key, lambda: promises_kept(offer=offer, as_of=as_of), timeout=600)


def trials_behind(*, promise: str, offer: Offer, as_of: datetime | None = None) -> QuerySet[Trial]:
    """The trials of ``offer`` behind a figure that fell short (one of ``PROMISES``): with a
    reminder late or missing, charged before every reminder was sent, charged after cancelling,
    claimed beyond the inventory, a second trial of the same person, or answered "not met"."""
    as_of = as_of or timezone.now()
    claims = _claims(offer=offer, as_of=as_of)
    if promise == REMINDERS:
        schedule = _schedule(offer=offer)
        late = Q(pk__in=[])
        annotated = claims.exclude(status=Trial.Status.RESERVED)
        for days, variants in schedule.items():
            annotated = annotated.annotate(**{f"on_time_{days}": _on_time(days)})
            late |= _reminder_due(days, variants, as_of) & Q(**{f"on_time_{days}": False})
        return Trial.objects.filter(pk__in=annotated.filter(late).values("pk"))
    if promise == CHARGES:
        charged, preceded = _charged(claims, offer=offer, as_of=as_of)
        return Trial.objects.filter(pk__in=charged.exclude(preceded).values("pk"))
    if promise == CANCELLATIONS:
        return claims.filter(cancelled_at__lte=as_of).filter(_charged_after_cancel(as_of))
    if promise == INVENTORY:
        if offer.inventory is None:
            return Trial.objects.none()
        held = _held(offer=offer, as_of=as_of).order_by("claimed_at", "pk")
        return Trial.objects.filter(pk__in=list(held.values_list("pk", flat=True)[offer.inventory :]))
    if promise == ONE_PER_PERSON:
        return Trial.objects.filter(pk__in=_second_trials(_held(offer=offer, as_of=as_of)).values("pk"))
    if promise == NOT_MET:
        return claims.filter(pk__in=_answers(offer=offer, as_of=as_of).filter(promise_met="no").values("trial_id"))
    raise ValueError(f"unknown promise {promise!r}; one of {', '.join(PROMISES)}")


# --- The trials each figure reads ----------------------------------------------------------------
def _web(offer: Offer | None) -> QuerySet[Trial]:
    trials = Trial.objects.filter(source=Assignment.Source.WEB)
    return trials.filter(offer=offer) if offer is not None else trials


def _claims(*, offer: Offer | None, as_of: datetime) -> QuerySet[Trial]:
    """Trials claimed by ``as_of`` that went through (not given back as ``abandoned``)."""
    return _web(offer).filter(claimed_at__lte=as_of).exclude(status=Trial.Status.ABANDONED)


def _charges_of_trial(as_of: datetime) -> QuerySet[Purchase]:
    """The outer trial's ledger rows that took money (not refunds), by ``as_of``."""
    return Purchase.objects.filter(trial=OuterRef("pk"), amount__gt=0, refund_of__isnull=True, purchased_at__lte=as_of)


def _about_trial(purpose: str) -> QuerySet[OutboxMessage]:
    return OutboxMessage.objects.filter(
        about_type=ContentType.objects.get_for_model(Trial), about_id=OuterRef("pk"), purpose=purpose
    )


# --- Reminders -----------------------------------------------------------------------------------
def _schedule(*, offer: Offer | None) -> dict[int, list[int]]:
    """For each number of days before the end that some variant's trial is reminded at, the ids
    of those variants. One falling at or before the claim is not promised (``reminder_times``):
    ``end - days > claim`` exactly when ``days`` is less than the trial's length."""
    variants = Variant.objects.select_related("offer")
    if offer is not None:
        variants = variants.filter(offer=offer)
    schedule: dict[int, list[int]] = {}
    for variant in variants:
        for days in set(variant.offer.reminder_days or []):
            if days < variant.effective_trial_days:
                schedule.setdefault(days, []).append(variant.pk)
    return schedule


def _reminder_due(days: int, variants: list[int], as_of: datetime, *, via: str = "") -> Q:
    """The reminder ``days`` before the end was promised to the trial and its moment has come by
    ``as_of``, and the trial was still open then (a trial cancelled, or converted by a purchase,
    before the moment is owed nothing more). ``via`` is the path to the trial ("trial__" from
    an outbox message)."""
    moment = F(f"{via}ends_at") - timedelta(days=days)
    return (
        Q(**{f"{via}variant_id__in": variants, f"{via}ends_at__lte": as_of + timedelta(days=days)})
        & ~Q(**{f"{via}cancelled_at__lt": moment})
        & ~Q(**{f"{via}converted_at__lt": moment})
    )


def _on_time(days: int) -> Exists:
    """The trial's reminder for the moment ``days`` before its end went out at or before it."""
    return Exists(
        _about_trial(OutboxPurpose.REMINDER).filter(
            promised_at=OuterRef("ends_at") - timedelta(days=days), sent_at__lte=F("promised_at")
        )
    )


def _reminders(claims: QuerySet[Trial], *, offer: Offer | None, as_of: datetime) -> tuple[int, int]:
    """Two scans: the promised moments due, counted over the trials, and those kept, counted over
    the reminders sent on time joined to their trials (one row per trial and moment: the
    outbox key names both)."""
    schedule = _schedule(offer=offer)
    if not schedule:
        return 0, 0
    trials = claims.exclude(status=Trial.Status.RESERVED)
    due = trials.aggregate(
        **{
            f"due_{days}": Count("pk", filter=_reminder_due(days, variants, as_of))
            for days, variants in schedule.items()
        }
    )
    kept = Q(pk__in=[])
    for days, variants in schedule.items():
        kept |= Q(promised_at=F("trial__ends_at") - timedelta(days=days)) & _reminder_due(
            days, variants, as_of, via="trial__"
        )
    on_time = OutboxMessage.objects.filter(
        purpose=OutboxPurpose.REMINDER, sent_at__lte=F("promised_at"), trial__in=trials
    ).filter(kept)
    return on_time.count(), sum(due.values())


# --- Charges -------------------------------------------------------------------------------------
def _promised_counts(*, offer: Offer | None) -> dict[int, list[int]]:
    """For the variants that charge the card by themselves: how many reminders each promises,
    and the ids of the variants promising that many."""
    counts: dict[int, set[int]] = {}
    for days, variants in _schedule(offer=offer).items():
        for variant in variants:
            counts.setdefault(variant, set()).add(days)
    auto = Variant.objects.select_related("offer")
    if offer is not None:
        auto = auto.filter(offer=offer)
    by_number: dict[int, list[int]] = {}
    for variant in auto:
        if variant.effective_kind in rules.AUTO_CHARGE_KINDS:
            by_number.setdefault(len(counts.get(variant.pk, ())), []).append(variant.pk)
    return by_number


def _charged(claims: QuerySet[Trial], *, offer: Offer | None, as_of: datetime) -> tuple[QuerySet[Trial], Q]:
    """The card trials charged by ``as_of`` (annotated with their first charge and the reminders
    sent by then), and the condition that every promised reminder was sent before the charge."""
    by_number = _promised_counts(offer=offer)
    first_charge = (
        _charges_of_trial(as_of).filter(kind=Purchase.Kind.REGULAR).order_by("purchased_at").values("purchased_at")[:1]
    )
    sent_before = (
        _about_trial(OutboxPurpose.REMINDER)
        .filter(sent_at__lte=OuterRef("first_charge"))
        .order_by()
        .values("about_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    charged = (
        claims.filter(variant_id__in=[pk for variants in by_number.values() for pk in variants])
        .annotate(first_charge=Subquery(first_charge))
        .filter(first_charge__isnull=False)
        .annotate(sent_before=Coalesce(Subquery(sent_before, output_field=IntegerField()), Value(0)))
    )
    preceded = Q(pk__in=[])
    for number, variants in by_number.items():
        preceded |= Q(variant_id__in=variants, sent_before__gte=number)
    return charged, preceded


def _charges(claims: QuerySet[Trial], *, offer: Offer | None, as_of: datetime) -> tuple[int, int]:
    charged, preceded = _charged(claims, offer=offer, as_of=as_of)
    counts = charged.aggregate(total=Count("pk"), kept=Count("pk", filter=preceded))
    return counts["kept"], counts["total"]


# --- Cancellations -------------------------------------------------------------------------------
def _charged_after_cancel(as_of: datetime) -> Exists:
    return Exists(_charges_of_trial(as_of).filter(purchased_at__gt=OuterRef("cancelled_at")))


def _cancellations(claims: QuerySet[Trial], *, as_of: datetime) -> tuple[int, int]:
    counts = (
        claims.filter(cancelled_at__lte=as_of)
        .annotate(charged_after=_charged_after_cancel(as_of))
        .aggregate(total=Count("pk"), broken=Count("pk", filter=Q(charged_after=True)))
    )
    return counts["total"] - counts["broken"], counts["total"]


def _confirmation(claims: QuerySet[Trial], *, as_of: datetime) -> tuple[Median, int]:
    confirmed_at = (
        _about_trial(OutboxPurpose.CANCELLATION)
        .filter(sent_at__isnull=False, sent_at__lte=as_of)
        .order_by("sent_at")
        .values("sent_at")[:1]
    )
    cancelled = claims.filter(cancelled_at__lte=as_of).annotate(confirmed_at=Subquery(confirmed_at))
    unconfirmed = cancelled.filter(confirmed_at__isnull=True).count()
    return _median(cancelled.filter(confirmed_at__isnull=False), start="cancelled_at", end="confirmed_at"), unconfirmed


# --- Limits --------------------------------------------------------------------------------------
def _held(*, offer: Offer | None, as_of: datetime) -> QuerySet[Trial]:
    """Trials holding one of their offer's units and the person's place (a reservation does too)."""
    return _claims(offer=offer, as_of=as_of)


def _inventory(*, offer: Offer | None, as_of: datetime) -> tuple[int, int]:
    per_offer = (
        _held(offer=offer, as_of=as_of)
        .filter(offer__inventory__isnull=False)
        .values("offer_id", "offer__inventory")
        .annotate(held=Count("pk"))
        .order_by()
    )
    total = over = 0
    for row in per_offer:  # one row per offer
        total += row["held"]
        over += max(row["held"] - row["offer__inventory"], 0)
    return total - over, total


def _second_trials(held: QuerySet[Trial]) -> QuerySet[Trial]:
    """The trials of ``held`` that are a person's second (or later) of one offer: an earlier one
    had the same canonical email, or the same card (its fingerprint in the consent record). Two
    window functions number each offer's trials per email and per card, so one sorted scan finds
    them, where probing each trial's predecessors would take one lookup per trial."""
    numbered = held.annotate(
        card=F("consent__card_fingerprint"),
        by_email=Window(
            RowNumber(), partition_by=[F("offer_id"), F("customer__canonical_email")], order_by=F("pk").asc()
        ),
        by_card=Window(
            RowNumber(), partition_by=[F("offer_id"), F("consent__card_fingerprint")], order_by=F("pk").asc()
        ),
    )
    return numbered.filter(Q(by_email__gt=1) | (Q(by_card__gt=1) & Q(card__gt="")))


def _one_per_person(*, offer: Offer | None, as_of: datetime) -> tuple[int, int]:
    held = _held(offer=offer, as_of=as_of)
    total = held.count()
    return total - _second_trials(held).count(), total


# --- Feedback ------------------------------------------------------------------------------------
def _answers(*, offer: Offer | None, as_of: datetime) -> QuerySet[Feedback]:
    answers = Feedback.objects.filter(trial__source=Assignment.Source.WEB, answered_at__lte=as_of)
    return answers.filter(trial__offer=offer) if offer is not None else answers


def _ended(claims: QuerySet[Trial], *, as_of: datetime) -> QuerySet[Trial]:
    """Trials over by ``as_of`` (cancelled, or past their end) of offers that ask the question."""
    return claims.filter(offer__feedback_survey=True, status__in=OVER).filter(
        Q(cancelled_at__lte=as_of) | Q(ends_at__lte=as_of)
    )


def _low_rating_response(answers: QuerySet[Feedback], *, as_of: datetime) -> tuple[Median, int]:
    low = answers.filter(rating__lte=LOW_RATING)
    answered = Q(responded_at__isnull=False, responded_at__lte=as_of)
    return _median(low.filter(answered), start="answered_at", end="responded_at"), low.exclude(answered).count()


# --- Medians in the database ---------------------------------------------------------------------
def _median(rows: QuerySet, *, start: str, end: str) -> Median:
    """The median of ``end - start`` over ``rows``, sorted by the database and read at the middle
    (two rows when the count is even), so that no more than two rows reach Python."""
    count = rows.count()
    if not count:
        return Median(0, None)
    duration = ExpressionWrapper(F(end) - F(start), output_field=DurationField())
    middle = list(
        rows.annotate(duration=duration)
        .order_by("duration", "pk")
        .values_list("duration", flat=True)[(count - 1) // 2 : count // 2 + 1]
    )
    return Median(count, sum(middle, timedelta()) / len(middle))
