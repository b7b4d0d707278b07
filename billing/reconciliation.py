"""Reconciliation: find the Stripe events whose webhook never came.

A beat job (every 10 minutes) lists Stripe's events created after a watermark, stores those we
have not seen with ``source=reconciliation`` and queues them exactly like a delivered webhook.
Because the handlers read each object's current state, an event found late does what it would
have done on time, and running reconciliation again changes nothing.

The watermark is derived from the events we hold: the newest ``stripe_created``, minus a safety
margin that covers deliveries still in flight and events created in the same second as the
newest one. With no events at all, it looks back a few days. If reconciliation has been stopped
for longer than the margin while webhooks kept arriving, run it once by hand with ``since=``
(``reconciliation_run(at=timezone.now(), since=…)``); Stripe keeps events for 30 days.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Max

from billing import gateway, webhooks
from billing.models import StripeEvent

logger = logging.getLogger(__name__)

SAFETY_MARGIN = timedelta(hours=1)
FIRST_LOOKBACK = timedelta(days=3)
STRIPE_KEEPS_EVENTS = timedelta(days=30)
_CHUNK = 500


@dataclass(frozen=True)
class Reconciled:
    since: datetime
    listed: int
    stored: int


def reconciliation_watermark(*, at: datetime) -> datetime:
    newest = StripeEvent.objects.aggregate(newest=Max("stripe_created"))["newest"]
    if newest is None:
        return at - FIRST_LOOKBACK
    return min(newest, at) - SAFETY_MARGIN


def reconciliation_run(*, at: datetime, since: datetime | None = None) -> Reconciled:
    """Store and queue every Stripe event created after ``since`` (by default the watermark)
    that we do not hold yet."""
    since = max(since or reconciliation_watermark(at=at), at - STRIPE_KEEPS_EVENTS)
    events = gateway.events_since(created_after=int(since.timestamp()))
    ids = [e["id"] for e in events]
    known: set[str] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        known.update(StripeEvent.objects.filter(event_id__in=chunk).values_list("event_id", flat=True))
    stored = 0
    for event in events:
        if event["id"] in known:
            continue
        try:
            result = webhooks.event_store(event=event, source=StripeEvent.Source.RECONCILIATION, at=at)
        except webhooks.MalformedEvent as exc:
            logger.error("Reconciliation skipped Stripe event %s: %s", event.get("id"), exc)
            continue
        stored += result.created
    if stored:
        logger.warning("Reconciliation found %s Stripe events that no webhook delivered", stored)
    return Reconciled(since=since, listed=len(events), stored=stored)
