"""Stripe events in: the webhook endpoint, and the life of a stored event.

Every event is stored before anything is done with it (as Zulip does), unique on Stripe's event
id, so a second delivery, or the same event found again by reconciliation, is stored once and
handled once. Processing happens in a Celery task queued after the commit:

    received ──claim──▶ processing ──▶ processed
        ▲                   │
        │                   └──▶ failed ──(retry job, when next_attempt_at has passed)──▶ processing
        └──(admin: "Replay selected events")── any state but a live claim

A claim is a conditional UPDATE, so two workers never handle the same event at once. A claim
is a lease: a worker that dies mid-event leaves it ``processing`` until ``next_attempt_at``, then
the retry job takes it again. The handlers are idempotent (see billing.handlers), so handling an
event twice is harmless; the claim only saves the work.
"""

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import DataError, IntegrityError, transaction
from django.db.models import F, Q
from django.http import HttpResponseBadRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from kombu.exceptions import OperationalError as BrokerUnavailable

from billing import gateway, handlers
from billing.models import StripeEvent
from config import limits

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
RETRY_FIRST_DELAY = timedelta(minutes=1)
RETRY_MAX_DELAY = timedelta(hours=2)
# Longer than Celery's hard time limit (300 s), so a live claim is never taken over.
CLAIM_LEASE = timedelta(minutes=10)
# A stored event whose task message was lost (broker down at commit time) is picked up by the
# retry job after this long.
RECEIVED_GRACE = timedelta(minutes=5)
NO_HANDLER_NOTE = "No handler for this event type: acknowledged, nothing to do."


class MalformedEvent(ValueError):
    """A signed body that is not a usable Stripe event; the message says what is missing."""


@dataclass(frozen=True)
class Stored:
    event: StripeEvent
    created: bool


# --- Intake --------------------------------------------------------------------------------------
# Stripe's objects nest about ten levels deep (an event around an invoice around its lines and
# their prices); this leaves room for expansions and stops a body built to exhaust the stack.
MAX_DEPTH = 64
MAX_EVENT_ID = limits.MAX_EXTERNAL_ID  # the varchar(255) column
MAX_EVENT_TYPE = 100  # the varchar(100) column


def _text_problem(value: str) -> str:
    """Why PostgreSQL could not store this string, or "": a NUL (text and jsonb refuse it) or a
    lone surrogate (not encodable as UTF-8; JSON's "\\ud800" escape makes one)."""
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (a lone surrogate)"
    return ""


def _payload_problem(event: dict) -> str:
    """Why the event cannot be stored as it is, or "". Walked with a stack, not recursion, so
    that no body is too deep to check."""
    stack: list[tuple[object, int]] = [(event, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            if depth > MAX_DEPTH:
                return f"The event nests deeper than {MAX_DEPTH} levels."
            for key, item in value.items():
                if problem := _text_problem(key):
                    return f"A key in the event {problem}."
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            if depth > MAX_DEPTH:
                return f"The event nests deeper than {MAX_DEPTH} levels."
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            if problem := _text_problem(value):
                return f"A value in the event {problem}."
        elif isinstance(value, float) and not math.isfinite(value):
            return "The event holds a number that is not finite."
        elif not (value is None or isinstance(value, bool | int | float)):
            return f"The event holds a {type(value).__name__}, which is not JSON."
    return ""


def _name_problem(value, *, what: str, longest: int) -> str:
    if not isinstance(value, str) or not value:
        return f"The event has no usable {what}."
    if len(value) > longest:
        return f"The event's {what} is longer than {longest} characters."
    if not value.isprintable():  # also refuses NUL, control characters and lone surrogates
        return f"The event's {what} holds a character that is not printable."
    return ""


def _fields(event: dict, *, at: datetime) -> dict:
    """The columns of an event's row; ``MalformedEvent`` when it is not a usable Stripe event
    or holds something the database cannot store."""
    if not isinstance(event, dict):
        raise MalformedEvent("The event is not a JSON object.")
    event_id, event_type, created = event.get("id"), event.get("type"), event.get("created")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    problem = _name_problem(event_id, what="id", longest=MAX_EVENT_ID) or _name_problem(
        event_type, what="type", longest=MAX_EVENT_TYPE
    )
    if problem:
        raise MalformedEvent(problem)
    if not isinstance(created, int) or isinstance(created, bool):
        raise MalformedEvent("The event has no creation time.")
    # Compared as numbers first: a huge value would overflow datetime itself.
    if not limits.EARLIEST.timestamp() <= created <= limits.latest(at).timestamp():
        raise MalformedEvent(f"The event's creation time ({created}) is not a plausible Unix time.")
    if not isinstance(obj, dict):
        raise MalformedEvent("The event has no data.object.")
    if problem := _payload_problem(event):
        raise MalformedEvent(problem)
    object_id = obj.get("id") if isinstance(obj.get("id"), str) else ""
    return {
        "event_id": event_id,
        "type": event_type,
        "object_id": object_id[:255],
        "stripe_created": datetime.fromtimestamp(created, tz=UTC),
    }


def event_store(*, event: dict, source: str, at: datetime) -> Stored:
    """Store an event once and queue its processing after the commit. The same event again is
    found by the unique event id (even when two deliveries race) and changes nothing.

    An event that is not usable, or that the database could not store as it is (a NUL, a lone
    surrogate), raises ``MalformedEvent`` and writes nothing: it is refused, not stored altered."""
    values = _fields(event, at=at)
    try:
        with transaction.atomic():
            row = StripeEvent.objects.create(**values, payload=event, source=source, received_at=at)
            _queue_processing(row.pk)
    except IntegrityError:
        return Stored(StripeEvent.objects.get(event_id=values["event_id"]), False)
    except DataError as exc:
        # The checks above are meant to catch all of these first; this keeps anything they miss
        # a refusal (Stripe retrying would not help) instead of a 500.
        raise MalformedEvent(f"The database cannot store this event: {str(exc)[:200]}") from exc
    return Stored(row, True)


def _queue_processing(event_pk: int) -> None:
    from billing.tasks import stripe_event_process_task

    def send() -> None:
        try:
            stripe_event_process_task.delay(event_pk=event_pk)
        except (BrokerUnavailable, ConnectionError, TimeoutError):
            # The event is stored, so Stripe still gets its 200; the retry job queues it later.
            logger.exception("Could not queue Stripe event %s; the retry job will pick it up", event_pk)

    transaction.on_commit(send)


@csrf_exempt
@require_POST
def stripe_webhook(request):
    """Verify, store, acknowledge. The handling happens in a task, so Stripe gets its answer
    fast; the signature is checked over the raw body, before anything is parsed or written."""
    try:
        event = gateway.webhook_event_parse(
            payload=request.body, signature_header=request.headers.get("Stripe-Signature")
        )
        stored = event_store(event=event, source=StripeEvent.Source.WEBHOOK, at=timezone.now())
    except (gateway.WebhookSignatureInvalid, MalformedEvent) as exc:
        logger.warning("Stripe webhook refused: %s", exc)
        return HttpResponseBadRequest(str(exc), content_type="text/plain")
    return JsonResponse({"id": stored.event.event_id, "duplicate": not stored.created})


# --- Processing --------------------------------------------------------------------------------
def retry_delay(attempts: int) -> timedelta:
    """1, 2, 4, … minutes after the n-th failed attempt, at most two hours."""
    return min(RETRY_FIRST_DELAY * 2 ** max(attempts - 1, 0), RETRY_MAX_DELAY)


def _claimable(at: datetime) -> Q:
    # A claim whose lease ran out MAX_ATTEMPTS times is not taken again: a worker that dies on
    # an event (killed, out of memory) would otherwise be handed it forever. The retry job marks
    # it failed instead (``_stalled``).
    return (
        Q(status=StripeEvent.Status.RECEIVED)
        | Q(status=StripeEvent.Status.FAILED, next_attempt_at__lte=at)
        | Q(status=StripeEvent.Status.PROCESSING, next_attempt_at__lte=at, attempts__lt=MAX_ATTEMPTS)
    )


def event_process(*, event_pk: int, at: datetime) -> str | None:
    """Claim one event and run its handler. Returns the new status, or None when the event was
    not ours to take (done already, claimed by another worker, or waiting for its retry time).

    Whatever goes wrong once the event is claimed, its payload included, ends with the event
    ``failed`` and the error written on it; nothing escapes to leave it claimed."""
    claimed = (
        StripeEvent.objects.filter(_claimable(at), pk=event_pk)
        .update(status=StripeEvent.Status.PROCESSING, attempts=F("attempts") + 1, next_attempt_at=at + CLAIM_LEASE)
    )  # fmt: skip
    if not claimed:
        return None
    # The payload is read inside the try below: a stored payload that cannot be read back is
    # this event's failure, not the worker's.
    event = StripeEvent.objects.defer("payload").get(pk=event_pk)
    handler = handlers.HANDLERS.get(event.type)
    try:
        writes = None
        if handler is not None:
            payload = _stored_payload(event)
            # The handler reads Stripe with no transaction open; its writes and the new status
            # commit together, or not at all.
            writes = handler(payload)
        with transaction.atomic():
            if writes is not None:
                writes()
            StripeEvent.objects.filter(pk=event_pk, status=StripeEvent.Status.PROCESSING).update(
                status=StripeEvent.Status.PROCESSED,
                processed_at=timezone.now(),
                next_attempt_at=None,
                error="" if handler is not None else NO_HANDLER_NOTE,
            )
    except Exception as exc:
        _fail(event, exc, at=at)
        return StripeEvent.Status.FAILED
    if handler is None:
        logger.info("Stripe event %s (%s) has no handler; acknowledged", event.event_id, event.type)
    return StripeEvent.Status.PROCESSED


def _stored_payload(event: StripeEvent) -> dict:
    """The payload, checked as intake checks it now: a row stored before those checks (or by a
    hand edit) that fails them will never handle, so it raises ``MalformedEvent`` (no retry)."""
    try:
        payload = event.payload
    except (RecursionError, ValueError) as exc:
        raise MalformedEvent(f"The stored payload cannot be read back: {str(exc)[:200]}") from exc
    _fields(payload, at=event.received_at)
    return payload


def _storable(text: str) -> str:
    """``text`` with what PostgreSQL cannot store (NUL, lone surrogates) written as escapes: an
    error message may quote the payload."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def _fail(event: StripeEvent, exc: BaseException, *, at: datetime) -> None:
    expected = isinstance(exc, handlers.HandlerError | gateway.GatewayError | ValueError)
    log = logger.warning if expected else logger.exception
    log("Stripe event %s (%s) failed, attempt %s: %s", event.event_id, event.type, event.attempts, exc)
    final = isinstance(exc, MalformedEvent) or event.attempts >= MAX_ATTEMPTS
    StripeEvent.objects.filter(pk=event.pk, status=StripeEvent.Status.PROCESSING).update(
        status=StripeEvent.Status.FAILED,
        error=_storable(f"{type(exc).__name__}: {exc}")[:5000],
        next_attempt_at=None if final else at + retry_delay(event.attempts),
    )


STALLED_ERROR = (
    "A worker took this event {attempts} times and never finished it (killed, out of memory or "
    "over its time limit). Not retried again; replay it from the admin once the cause is fixed."
)


def _stalled(*, at: datetime) -> int:
    """Mark failed the claims that ran out their lease on their last attempt."""
    return StripeEvent.objects.filter(
        status=StripeEvent.Status.PROCESSING, next_attempt_at__lte=at, attempts__gte=MAX_ATTEMPTS
    ).update(
        status=StripeEvent.Status.FAILED,
        next_attempt_at=None,
        error=STALLED_ERROR.format(attempts=MAX_ATTEMPTS),
    )


def events_retry_due(*, at: datetime, limit: int = 500) -> int:
    """Queue the events that are due: failed ones whose retry time has come, claims whose lease
    ran out, and received ones whose task never ran. Returns how many were queued."""
    if stalled := _stalled(at=at):
        logger.error("%s Stripe events stalled on their last attempt and are marked failed", stalled)
    due = list(
        StripeEvent.objects.filter(
            Q(status=StripeEvent.Status.RECEIVED, received_at__lte=at - RECEIVED_GRACE)
            | Q(status__in=(StripeEvent.Status.FAILED, StripeEvent.Status.PROCESSING), next_attempt_at__lte=at)
        )
        .order_by("stripe_created", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in due:
        _queue_processing(pk)
    return len(due)


def events_replay(*, event_pks: list[int], at: datetime) -> int:
    """Handle the chosen events again, from the start: back to ``received`` with a fresh retry
    budget, and queued. An event a worker holds right now is left alone."""
    with transaction.atomic():
        # Locked, so that no worker claims one of them between this read and the update.
        pks = list(
            StripeEvent.objects.select_for_update()
            .filter(pk__in=event_pks)
            .filter(~Q(status=StripeEvent.Status.PROCESSING) | Q(next_attempt_at__lte=at))
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        StripeEvent.objects.filter(pk__in=pks).update(
            status=StripeEvent.Status.RECEIVED, attempts=0, next_attempt_at=None
        )
        for pk in pks:
            _queue_processing(pk)
    return len(pks)
