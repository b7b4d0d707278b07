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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.http import HttpResponseBadRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from kombu.exceptions import OperationalError as BrokerUnavailable

from billing import gateway, handlers
from billing.models import StripeEvent

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
def _fields(event: dict) -> dict:
    event_id, event_type, created = event.get("id"), event.get("type"), event.get("created")
    obj = (event.get("data") or {}).get("object") if isinstance(event.get("data"), dict) else None
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 255:
        raise MalformedEvent("The event has no usable id.")
    if not isinstance(event_type, str) or not 0 < len(event_type) <= 100:
        raise MalformedEvent("The event has no usable type.")
    if not isinstance(created, int) or isinstance(created, bool) or created <= 0:
        raise MalformedEvent("The event has no creation time.")
    if not isinstance(obj, dict):
        raise MalformedEvent("The event has no data.object.")
    object_id = obj.get("id") if isinstance(obj.get("id"), str) else ""
    return {
        "event_id": event_id,
        "type": event_type,
        "object_id": object_id[:255],
        "stripe_created": datetime.fromtimestamp(created, tz=UTC),
    }


def event_store(*, event: dict, source: str, at: datetime) -> Stored:
    """Store an event once and queue its processing after the commit. The same event again is
    found by the unique event id (even when two deliveries race) and changes nothing."""
    values = _fields(event)
    try:
        with transaction.atomic():
            row = StripeEvent.objects.create(**values, payload=event, source=source, received_at=at)
            _queue_processing(row.pk)
    except IntegrityError:
        return Stored(StripeEvent.objects.get(event_id=values["event_id"]), False)
    return Stored(row, True)


def _queue_processing(event_pk: int) -> None:
    from billing.tasks import stripe_event_process_task

    def send() -> None:
        try:
            stripe_event_process_task.delay(event_pk=event_pk)
        except BrokerUnavailable:
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
    return Q(status=StripeEvent.Status.RECEIVED) | Q(
        status__in=(StripeEvent.Status.FAILED, StripeEvent.Status.PROCESSING), next_attempt_at__lte=at
    )


def event_process(*, event_pk: int, at: datetime) -> str | None:
    """Claim one event and run its handler. Returns the new status, or None when the event was
    not ours to take (done already, claimed by another worker, or waiting for its retry time)."""
    claimed = (
        StripeEvent.objects.filter(_claimable(at), pk=event_pk)
        .update(status=StripeEvent.Status.PROCESSING, attempts=F("attempts") + 1, next_attempt_at=at + CLAIM_LEASE)
    )  # fmt: skip
    if not claimed:
        return None
    event = StripeEvent.objects.get(pk=event_pk)
    handler = handlers.HANDLERS.get(event.type)
    try:
        # The handler reads Stripe with no transaction open; its writes and the new status
        # commit together, or not at all.
        writes = handler(event.payload) if handler is not None else None
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


def _fail(event: StripeEvent, exc: Exception, *, at: datetime) -> None:
    expected = isinstance(exc, handlers.HandlerError | gateway.GatewayError | ValueError)
    log = logger.warning if expected else logger.exception
    log("Stripe event %s (%s) failed, attempt %s: %s", event.event_id, event.type, event.attempts, exc)
    retry_at = at + retry_delay(event.attempts) if event.attempts < MAX_ATTEMPTS else None
    StripeEvent.objects.filter(pk=event.pk, status=StripeEvent.Status.PROCESSING).update(
        status=StripeEvent.Status.FAILED,
        error=f"{type(exc).__name__}: {exc}"[:5000],
        next_attempt_at=retry_at,
    )


def events_retry_due(*, at: datetime, limit: int = 500) -> int:
    """Queue the events that are due: failed ones whose retry time has come, claims whose lease
    ran out, and received ones whose task never ran. Returns how many were queued."""
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
