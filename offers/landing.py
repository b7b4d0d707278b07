"""What the public landing page of an offer shows, built from the offer alone.

The console's preview calls ``landing_context`` with any variant and language, so nothing here
looks at the request: the view adds only what depends on the visitor (logged in or not).
"""

from dataclasses import dataclass
from datetime import datetime

from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext

from offers import rules
from offers.models import Offer
from offers.money import money_format
from offers.terms import long_date, offer_terms, paid_price, supported_language, trial_end


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


def public_variant(offer: Offer):
    """The variant a public visitor sees.

    For now every visitor sees the first variant: assigning visitors to variants (a hash of the
    offer's salt and the visitor, written before they see anything) comes with the claim flow,
    and will replace this function.
    """
    return offer.variants.first()


def landing_context(*, offer: Offer, variant, language: str, at: datetime) -> dict:
    language = supported_language(language)
    availability = rules.availability(
        status=offer.status,
        starts_at=offer.starts_at,
        ends_at=offer.ends_at,
        inventory=offer.inventory,
        claimed=offer.claimed_count,
        daily_limit=offer.daily_limit,
        claimed_today=0,  # counted per day by the claim flow, which comes later
        at=at,
    )
    reason = _closed_reason(offer, availability)
    # Before the start, nobody can claim today: show the dates of a claim on the opening day.
    claim_at = offer.starts_at if reason == "not_started" and offer.starts_at > at else at
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


def offer_cards(*, offers, language: str, at: datetime) -> list[dict]:
    """The home page's cards: each live offer with the headline of the variant a visitor sees."""
    language = supported_language(language)
    cards = []
    for offer in offers:
        variants = list(offer.variants.all())  # prefetched by the caller
        if not variants:
            continue
        terms = offer_terms(offer=offer, variant=variants[0], language=language, at=at)
        cards.append({"offer": offer, "product": offer.product, "headline": terms.headline})
    return cards


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
    messages = {
        "ended": gettext("This offer has ended and can no longer be claimed."),
        "sold_out": gettext("This offer is sold out and can no longer be claimed."),
        "paused": gettext("This offer is paused for the moment. Please check again later."),
        "daily_limit": gettext("Everything on offer today has been claimed. Please come back tomorrow."),
    }
    return messages.get(reason, gettext("This offer is not open yet."))
