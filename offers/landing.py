"""What the public pages of an offer show.

The console's preview calls ``landing_context`` with any variant and language, so nothing here
looks at the request: the view passes in the visitor's assignment and account, and adds only
what depends on them (the claim section, why they may not claim).
"""

import hashlib
import operator
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.safestring import mark_safe
from django.utils.translation import gettext, ngettext

from offers import rules
from offers.models import Offer
from offers.money import money_format
from offers.terms import (
    local_day,
    long_date,
    offer_terms,
    paid_price,
    reminder_times,
    supported_language,
    trial_end,
)
from trials import selectors


@dataclass(frozen=True)
class PriceRow:
    label: str
    value: str
    strong: bool = False


@dataclass(frozen=True)
class PriceBox:
    """The few facts a customer must not miss: today's price, the price after, and the date of
    the first charge."""

    rows: tuple[PriceRow, ...]
    note: str = ""


def landing_context(*, offer: Offer, variant, language: str, at: datetime) -> dict:
    """Everything the landing page shows of ``variant``, in ``language``, for a claim at ``at``.
    The console's preview renders it whole; the public page renders its offer part through
    ``offer_html`` (cached) and adds the visitor's part."""
    language = supported_language(language)
    availability = _availability(offer, at)
    reason = _closed_reason(offer, availability)
    claim_at = _claim_at(offer, reason, at)
    terms = offer_terms(offer=offer, variant=variant, language=language, at=claim_at)
    with translation.override(language):
        price_box = _price_box(offer, variant, language, claim_at)
        closed_message = _closed_message(offer, reason, language, at) if reason else ""
        terms_note = gettext("Dates are for a claim made on %(date)s.") % {"date": long_date(claim_at, language)}
    return {
        "offer": offer,
        "product": offer.product,
        "variant": variant,
        "language": language,
        "terms": terms,
        "terms_note": terms_note,
        "price_box": price_box,
        "is_open": availability.open,
        "closed_reason": reason,
        "closed_message": closed_message,
        "landing_url": reverse("offer_landing", kwargs={"slug": offer.slug}),
    }


# --- The public page, its offer part cached -----------------------------------------------------
# Bump when the templates or the wording change, so that a deploy does not serve the old text
# from a shared cache for the rest of a day.
CACHE_VERSION = 1
CACHE_SECONDS = 24 * 60 * 60
# Fields that change on every claim without changing a word of the page (the sold-out state is
# in the key through the availability reason), or that nobody reads on it.
_NOT_SHOWN = frozenset({"claimed_count", "updated_at", "created_at", "stripe_price_id", "stripe_synced_at"})


class Recent:
    """The last few rendered parts, in this process, in front of the shared cache: a Redis round
    trip (and redis-py's client set-up on each call) cost more than the rest of a returning
    visit. Safe to keep without expiry because the key is the content: a changed offer has a
    new key. Hand-written (not functools.lru_cache) because the value is made outside, on a miss
    of both caches; bounded, oldest out first."""

    def __init__(self, size: int):
        self.size = size
        self.items: OrderedDict[Hashable, str] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: Hashable) -> str | None:
        with self.lock:
            html = self.items.get(key)
            if html is not None:
                self.items.move_to_end(key)
            return html

    def put(self, key: Hashable, html: str) -> None:
        with self.lock:
            self.items[key] = html
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)


_LOCAL = Recent(256)


_SHOWN: dict[type, operator.attrgetter] = {}


def _fields(instance) -> tuple:
    """The stored values of ``instance`` that can show on the page; which ones, once per model."""
    shown = _SHOWN.get(type(instance))
    if shown is None:
        names = [field.attname for field in instance._meta.concrete_fields if field.name not in _NOT_SHOWN]
        shown = _SHOWN[type(instance)] = operator.attrgetter(*names)
    return shown(instance)


def offer_html(*, offer: Offer, variant, language: str, at: datetime, anonymous: bool = False) -> tuple[str, dict]:
    """The offer part of the landing page (name, promise, price box, terms), rendered once per
    distinct content and kept in the cache framework, with the few facts the view still needs.
    For an ``anonymous`` visitor, the whole body, claim section included: it is the same for all
    of them (sign up or log in), and most visitors are anonymous.

    The key is the content itself, not a version stamp: every stored field of the offer, its
    product and the variant (so an edit through a conditional UPDATE, which does not touch
    ``updated_at``, shows at once), the language, why it is closed, and every calendar day the
    terms name. Those days, not the hour, because the terms speak in dates; and all of them,
    because a trial end that crosses a daylight-saving change can move a day that the claim's
    own day does not. So what is served is byte for byte what ``landing_context`` would render
    now."""
    language = supported_language(language)
    availability = _availability(offer, at)
    reason = _closed_reason(offer, availability)
    claim_at = _claim_at(offer, reason, at)
    end = trial_end(variant=variant, at=claim_at)
    reminders = reminder_times(offer=offer, variant=variant, at=claim_at)
    days = (local_day(claim_at), local_day(end), *(local_day(moment) for moment in reminders))
    content = (
        CACHE_VERSION,
        anonymous,
        language,
        reason,
        _fields(offer),
        _fields(offer.product),
        _fields(variant),
        days,
    )
    key = "landing:" + hashlib.blake2b(repr(content).encode(), digest_size=16).hexdigest()
    small = {"is_open": availability.open, "closed_reason": reason, "language": language}
    html = _LOCAL.get(key)
    if html is None:
        html = cache.get(key)
    if html is None:
        context = landing_context(offer=offer, variant=variant, language=language, at=at)
        if anonymous:
            context["user"] = AnonymousUser()
        with translation.override(language):
            html = render_to_string("offers/_landing_body.html" if anonymous else "offers/_landing_offer.html", context)
        cache.set(key, html, CACHE_SECONDS)
    _LOCAL.put(key, html)
    return mark_safe(html), small  # noqa: S308 -- our own template's output, escaped when rendered


def _availability(offer: Offer, at: datetime) -> rules.Availability:
    return rules.availability(
        status=offer.status,
        starts_at=offer.starts_at,
        ends_at=offer.ends_at,
        inventory=offer.inventory,
        claimed=offer.claimed_count,
        daily_limit=offer.daily_limit,
        claimed_today=0,  # counted per day by the claim flow
        at=at,
    )


def _claim_at(offer: Offer, reason: str, at: datetime) -> datetime:
    # Before the start, nobody can claim today: show the dates of a claim on the opening day.
    return offer.starts_at if reason == "not_started" and offer.starts_at > at else at


# --- What stops this customer ---------------------------------------------------------------------
def visitor_problem(*, offer: Offer, customer, language: str, at: datetime) -> str:
    """Why this logged-in customer may not claim the offer, in plain words; empty when they may
    (or when we cannot know yet: an anonymous visitor is asked to sign up first, and the claim
    checks again). One trial per person and product comes first: it is the answer to "why"."""
    if customer is None:
        return ""
    history = selectors.customer_history(customer_id=customer.pk, product_id=offer.product_id)
    language = supported_language(language)
    with translation.override(language):
        if history.tried_at is not None:
            return gettext("You already tried this on %(date)s.") % {"date": long_date(history.tried_at, language)}
        problem = rules.eligibility_problem(
            eligibility=offer.eligibility,
            recent_purchase_days=offer.recent_purchase_days,
            allowed_countries=offer.allowed_countries,
            country=customer.country,
            last_purchase_at=history.last_purchase_at,
            at=at,
        )
        if problem == "country":
            return gettext("Not available in your country.")
        if problem == "not_new":
            return gettext("This offer is for new customers.")
        if problem == "recent_purchase":
            days = offer.recent_purchase_days or 0
            return ngettext(
                "This offer is for customers who have not bought this in the last day.",
                "This offer is for customers who have not bought this in the last %(days)d days.",
                days,
            ) % {"days": days}
    return ""


def offer_cards(*, offers, language: str, at: datetime, arms: dict | None = None) -> list[dict]:
    """The home page's cards: each live offer open now that the visitor may see, with its image,
    promise, price after the trial and, where it is known which arm they see, its headline.

    A visitor in the holdout sees no card for the offer: the holdout sees no offer anywhere. An
    unassigned visitor sees the headline only when every arm would say the same (one variant),
    so that the home page does not show them an arm other than the one the landing page will."""
    language = supported_language(language)
    arms = arms or {}
    cards = []
    for offer in offers:
        if not _availability(offer, at).open:
            continue
        variants = list(offer.variants.all())  # prefetched by the caller
        if not variants:
            continue
        assignment = arms.get(offer.pk)
        if assignment is not None and assignment.is_holdout:
            continue
        variant = next((v for v in variants if assignment and v.pk == assignment.variant_id), None)
        if variant is None and len(variants) == 1 and offer.holdout_percent == 0:
            variant = variants[0]
        headline = offer_terms(offer=offer, variant=variant, language=language, at=at).headline if variant else ""
        with translation.override(language):
            price = gettext("Then %(price)s") % {"price": paid_price(offer.product, language)}
        cards.append({"offer": offer, "product": offer.product, "headline": headline, "price_after": price})
    return cards


def product_context(*, offer: Offer, language: str) -> dict:
    """The regular product page the holdout sees: the product, its price and a buy button; no
    offer, no terms."""
    language = supported_language(language)
    return {
        "offer": offer,
        "product": offer.product,
        "language": language,
        "price": paid_price(offer.product, language),
        "buy_url": reverse("offer_buy", kwargs={"slug": offer.slug}),
    }


def _price_box(offer: Offer, variant, language: str, at: datetime) -> PriceBox:
    kind = variant.effective_kind
    product = offer.product
    fee = variant.effective_trial_price
    today = money_format(fee, offer.currency, language) if fee else gettext("Free")
    price = paid_price(product, language)
    end = long_date(trial_end(variant=variant, at=at), language)
    if kind in rules.AUTO_CHARGE_KINDS:
        first_charge = gettext("%(amount)s on %(date)s") % {
            "amount": money_format(product.price_amount, product.currency, language),
            "date": end,
        }
        deadline = (
            gettext("Cancel before %(end)s and you pay nothing.")
            if kind == "free_trial"
            else gettext("Cancel before %(end)s and you pay nothing more.")
        )
        return PriceBox(
            rows=(
                PriceRow(gettext("Today"), today, strong=True),
                PriceRow(gettext("After the trial"), price),
                PriceRow(gettext("First charge"), first_charge, strong=True),
            ),
            note=deadline % {"end": end},
        )
    if kind == "discount":
        amount = money_format(fee, offer.currency, language)
        first = {"month": gettext("Your first month"), "year": gettext("Your first year")}.get(
            product.interval, gettext("Your first purchase")
        )
        return PriceBox(
            rows=(
                PriceRow(gettext("Today"), gettext("Free")),
                PriceRow(first, amount, strong=True),
                PriceRow(gettext("Usual price"), price),
            ),
            note=gettext("Valid until %(end)s. Nothing is charged automatically.") % {"end": end},
        )
    return PriceBox(
        rows=(
            PriceRow(gettext("Today"), today, strong=True),
            PriceRow(gettext("After the trial"), gettext("No automatic charge")),
            PriceRow(gettext("If you buy"), price),
        ),
    )


def _closed_reason(offer: Offer, availability: rules.Availability) -> str:
    """Why the offer cannot be claimed, in the words a customer would use; empty when it can."""
    if availability.open:
        return ""
    reason = availability.reason
    if reason == "not_live":
        if offer.status == Offer.Status.SCHEDULED:
            reason = "not_started"
        elif offer.status == Offer.Status.ENDED:
            sold_out = offer.inventory is not None and offer.claimed_count >= offer.inventory
            reason = "sold_out" if sold_out else "ended"
    return reason


def _closed_message(offer: Offer, reason: str, language: str, at: datetime) -> str:
    if reason == "not_started" and offer.starts_at > at:
        return gettext("This offer opens on %(date)s. Come back then to claim it.") % {
            "date": long_date(offer.starts_at, language)
        }
    if reason == "sold_out" and offer.inventory:
        # The count first, in plain words, then what it means.
        count = offer.inventory
        if offer.kind == Offer.Kind.SAMPLE:
            said = ngettext("The one sample has been claimed.", "All %(count)d samples have been claimed.", count)
        else:
            said = ngettext("The one place has been claimed.", "All %(count)d places have been claimed.", count)
        return f"{said % {'count': count}} {gettext('This offer is sold out and can no longer be claimed.')}"
    messages = {
        "ended": gettext("This offer has ended and can no longer be claimed."),
        "sold_out": gettext("This offer is sold out and can no longer be claimed."),
        "paused": gettext("This offer is paused for the moment. Please check again later."),
        "daily_limit": gettext("Everything on offer today has been claimed. Please come back tomorrow."),
    }
    return messages.get(reason, gettext("This offer is not open yet."))
