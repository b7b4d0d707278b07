"""The trial clock: the jobs that keep the terms' dates. Foretaste owns every trial's clock
(docs/architecture.md), so beat runs these every minute; each scans the trials table for what is
due and claims each piece of work so that it happens once, however often the job runs.

- ``reminders_send_due``: each reminder the terms promised ("we will remind you on …") is queued
  through the outbox when its time comes, at most ``LEAD`` early, once (the outbox key names the
  trial and the promised moment).
- ``trials_expire_due``: a trial of a kind that charges nothing by itself (a sample, a no-card
  trial, a discount) ends at its ``ends_at``: it moves to ``expired`` and the customer is invited
  to buy, once. A purchase within the conversion window still converts it.

- ``surveys_send_due``: once a trial is over, the offer's one question ("Did you get what we
  promised?") is emailed, once, if the offer asks it.

- ``trials_convert_due``: a card trial (free_trial, paid_trial) whose time is up is charged the
  product (trials/services.py, "Conversion"), but only once every promised reminder was sent; if
  one was not, it waits and its ``waiting_reason`` says which. A reminder sent late still gives
  the notice it promised: the charge comes no earlier than its ``sent_at`` plus its lead (the
  time it was due before the end), so a "3 days before" reminder sent a day late moves the charge
  a day later, and never earlier than the terms' end. A reminder not yet queued when the trial's
  time is up is queued then (the outbox retries a failed send with its backoff).
- ``trials_converting_retry``: a trial left ``converting`` because Stripe did not answer is
  charged again with the same key after a backoff, so Stripe answers with the first charge.

Imported trials are history: they have no terms we wrote, so no job touches them.
"""

from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.utils import translation
from django.utils.translation import gettext

from accounts.emails import email_queue
from accounts.languages import user_language
from accounts.models import OutboxMessage, OutboxPurpose
from offers import rules
from offers.money import money_format
from offers.terms import long_date, reminder_times, supported_language
from trials.links import cancel_url
from trials.models import Assignment, Trial

# How early a reminder may go out: beat runs every minute, so it is never late, and a
# cancellation in the minutes before it still stops it.
LEAD = timedelta(minutes=5)


def _web_trials(*, status: str):
    return Trial.objects.filter(status=status, source=Assignment.Source.WEB).select_related(
        "offer__product", "variant__offer", "customer"
    )


def reminders_send_due(*, at: datetime) -> int:
    """Queue every reminder whose time has come for an active trial. Returns how many were
    queued now (a reminder queued before is not queued again)."""
    queued = 0
    # Past the end too: a card trial whose reminder was never queued waits for it (not the others,
    # which end without a charge).
    for trial in _web_trials(status=Trial.Status.ACTIVE):
        if trial.ends_at <= at and trial.variant.effective_kind not in rules.AUTO_CHARGE_KINDS:
            continue
        for moment in reminder_times(offer=trial.offer, variant=trial.variant, at=trial.claimed_at):
            if moment - LEAD <= at and _reminder_queue(trial=trial, moment=moment, at=at):
                queued += 1
    return queued


def reminder_key(trial: Trial, moment: datetime) -> str:
    return f"trial-{trial.pk}-reminder-{moment:%Y%m%dT%H%M}"


def _reminder_queue(*, trial: Trial, moment: datetime, at: datetime) -> bool:
    key = reminder_key(trial, moment)
    language = supported_language(trial.language or user_language(trial.customer))
    product = trial.offer.product
    ends = long_date(trial.ends_at, language)
    # A reminder going out late still gives its notice: the charge waits (trials_convert_due).
    charge_on = long_date(max(trial.ends_at, at + (trial.ends_at - moment)), language)
    with translation.override(language):
        subject = gettext("Your trial of %(offer)s ends on %(date)s") % {"offer": trial.offer.name, "date": ends}
        if trial.variant.effective_kind in rules.AUTO_CHARGE_KINDS:
            what = gettext(
                "On %(date)s we will charge %(amount)s for %(product)s to the card you saved, unless you cancel before."
            ) % {"date": charge_on, "amount": money_format(product.price_amount, product.currency, language),
                 "product": product.name}  # fmt: skip
        else:
            what = gettext("Nothing will be charged when it ends.")
        text = "\n\n".join(
            [
                gettext("This is the reminder we promised: your trial of %(offer)s ends on %(date)s.")
                % {"offer": trial.offer.name, "date": ends},
                what,
                gettext("To cancel now, in one click: %(link)s") % {"link": cancel_url(trial)},
            ]
        )
    with transaction.atomic():
        before = OutboxMessage.objects.filter(key=key).exists()
        email_queue(
            to=trial.customer.email, subject=subject, text=text, purpose=OutboxPurpose.REMINDER,
            user=trial.customer, about=trial, language=language, key=key, promised_at=moment, at=at,
        )  # fmt: skip
    return not before


def trials_expire_due(*, at: datetime) -> int:
    """End the trials of kinds that charge nothing by themselves whose time is up, and invite
    each customer to buy. Returns how many ended now."""
    from trials.services import trial_expire

    due = [
        trial
        for trial in _web_trials(status=Trial.Status.ACTIVE).filter(ends_at__lte=at)
        if trial.variant.effective_kind not in rules.AUTO_CHARGE_KINDS
    ]
    ended = 0
    for trial in due:
        with transaction.atomic():
            if not trial_expire(trial_id=trial.pk, at=at):
                continue  # cancelled, or converted by a purchase, since it was read
            _buy_now_queue(trial=trial, at=at)
            ended += 1
    return ended


def _buy_now_queue(*, trial: Trial, at: datetime) -> None:
    language = supported_language(trial.language or user_language(trial.customer))
    product = trial.offer.product
    with translation.override(language):
        subject = gettext("Your trial of %(offer)s has ended") % {"offer": trial.offer.name}
        text = "\n\n".join(
            [
                gettext("Your trial of %(offer)s has ended. We hope it gave you what we promised.")
                % {"offer": trial.offer.name},
                gettext("If you liked it, %(product)s is %(amount)s.")
                % {"product": product.name, "amount": money_format(product.price_amount, product.currency, language)},
                gettext("Buy it here: %(link)s") % {"link": trial_buy_url(trial)},
            ]
        )
    email_queue(
        to=trial.customer.email, subject=subject, text=text, purpose=OutboxPurpose.TRIAL_ENDED,
        user=trial.customer, about=trial, language=language, key=f"trial-{trial.pk}-ended", at=at,
    )  # fmt: skip


def trial_buy_url(trial: Trial) -> str:
    from django.conf import settings
    from django.urls import reverse

    return settings.SITE_URL.rstrip("/") + reverse("offer_buy", kwargs={"slug": trial.offer.slug})


SURVEY_WITHIN = timedelta(days=30)  # a trial over for longer is not asked any more


def surveys_send_due(*, at: datetime) -> int:
    """Ask the customers of trials that are over (ended, converted, cancelled) the offer's
    question, once. Returns how many were asked now."""
    from trials.services import trial_is_over

    asked = 0
    candidates = (
        Trial.objects.filter(source=Assignment.Source.WEB, offer__feedback_survey=True, feedback__isnull=True)
        .filter(ends_at__gt=at - SURVEY_WITHIN)
        .select_related("offer", "customer")
    )
    for trial in candidates:
        if trial_is_over(trial, at) and _survey_queue(trial=trial, at=at):
            asked += 1
    return asked


def survey_question(offer, language: str) -> str:
    with translation.override(language):
        if offer.promise:
            return gettext("Did you get what we promised: %(promise)s?") % {"promise": offer.promise.rstrip(".!? ")}
        return gettext("Did the trial give you what you hoped for?")


def _survey_queue(*, trial: Trial, at: datetime) -> bool:
    from django.conf import settings
    from django.urls import reverse

    key = f"trial-{trial.pk}-survey"
    if OutboxMessage.objects.filter(key=key).exists():
        return False
    language = supported_language(trial.language or user_language(trial.customer))
    link = settings.SITE_URL.rstrip("/") + reverse("trial_feedback", kwargs={"trial_id": trial.pk})
    with translation.override(language):
        subject = gettext("How was your trial of %(offer)s?") % {"offer": trial.offer.name}
        text = "\n\n".join(
            [
                survey_question(trial.offer, language),
                gettext("Answer in one minute (yes, partly or no, a rating and a comment if you like): %(link)s")
                % {"link": link},
                gettext("We read every answer, and we write back when we fell short."),
            ]
        )
    email_queue(
        to=trial.customer.email, subject=subject, text=text, purpose=OutboxPurpose.SURVEY, user=trial.customer,
        about=trial, language=language, key=key, at=at,
    )  # fmt: skip
    return True


def trials_convert_due(*, at: datetime) -> dict[str, int]:
    """Charge the card trials whose time is up. A trial one of whose promised reminders was not
    sent, or was sent less than its promised notice ago, is not charged: it stays active and
    says why (``waiting_reason``, shown in plain words by ``waiting_text``). Returns the count of
    each outcome."""
    from trials.services import trial_conversion_charge

    counts: dict[str, int] = {}
    due = [
        trial
        for trial in _web_trials(status=Trial.Status.ACTIVE).filter(ends_at__lte=at)
        if trial.variant.effective_kind in rules.AUTO_CHARGE_KINDS
    ]
    for trial in due:
        reason = _charge_waits_for(trial, at=at)
        if reason:
            Trial.objects.filter(pk=trial.pk, status=Trial.Status.ACTIVE).update(waiting_reason=reason)
            outcome = "waiting"
        else:
            outcome = trial_conversion_charge(trial_id=trial.pk, at=at).outcome
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


# ``waiting_reason`` is stored in these two forms (for operators and the history), and read out
# to customers and marketers in their language by ``waiting_text``.
UNSENT = "waiting: the reminder due {due:%Y-%m-%d %H:%M} UTC was not sent"
NOTICE = "waiting: the reminder due {due:%Y-%m-%d %H:%M} UTC was sent late; charge from {charge:%Y-%m-%d %H:%M} UTC"


def _charge_waits_for(trial: Trial, *, at: datetime) -> str:
    """Why the end step may not charge ``trial`` at ``at``: the first promised reminder not sent,
    or sent less than its promised notice (its lead before the end) ago; empty when none."""
    moments = reminder_times(offer=trial.offer, variant=trial.variant, at=trial.claimed_at)
    sent = dict(
        OutboxMessage.objects.filter(
            key__in=[reminder_key(trial, moment) for moment in moments], sent_at__isnull=False
        ).values_list("key", "sent_at")
    )
    for moment in moments:
        sent_at = sent.get(reminder_key(trial, moment))
        if sent_at is None:
            return UNSENT.format(due=moment)
        charge_from = sent_at + (trial.ends_at - moment)
        if charge_from > at:
            return NOTICE.format(due=moment, charge=charge_from)
    return ""


def waiting_text(trial: Trial, language: str) -> str:
    """The trial's ``waiting_reason`` in plain words, in ``language``; empty when it waits for
    nothing."""
    if not trial.waiting_reason or trial.status != Trial.Status.ACTIVE:
        return ""
    with translation.override(language):
        if "sent late" in trial.waiting_reason:
            charge_on = trial.waiting_reason.rsplit("charge from ", 1)[-1].removesuffix(" UTC")
            charge = datetime.strptime(charge_on, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
            return gettext(
                "Our reminder reached you late, so we will not charge before %(date)s: you get the full notice "
                "we promised."
            ) % {"date": long_date(charge, language)}
        return gettext(
            "The charge is on hold: we could not send you the reminder we promised yet. Nothing is charged "
            "until it reaches you."
        )


def trials_converting_retry(*, at: datetime) -> dict[str, int]:
    """Charge again, with the same key, the trials left ``converting`` by an unreachable Stripe
    whose backoff is over (trials/services.py, ``trial_conversion_retry``). Returns the count of
    each outcome."""
    from trials.services import trial_conversion_retry

    counts: dict[str, int] = {}
    due = Trial.objects.filter(status=Trial.Status.CONVERTING, charge_retry_at__lte=at).values_list("pk", flat=True)
    for trial_id in list(due):
        outcome = trial_conversion_retry(trial_id=trial_id, at=at).outcome
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts
