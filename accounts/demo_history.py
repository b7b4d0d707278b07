"""The demo history: customers, their assignments and trials, and their purchases, for the
offers of accounts/demo_story.py, written through the history import (billing.imports, the code
of ``import_history``) so that every row passes the checks a real file would.

The history is drawn from ``SEED`` in blocks of ``BLOCK`` customers, each block from its own
random stream, so that a customer's rows depend on nothing but their number: a larger
``--customers`` adds blocks and keeps the ones already there. Each block is imported in one
transaction (customers, then assignments, then purchases), and a block whose last customer is
there already is skipped, so running again changes nothing and a run cut short resumes.

Dates are days before an *anchor*: midnight UTC on the day the history was first seeded, kept
as the planted offer's start (``starts_days_ago`` before it), so that a later run draws exactly the
same rows. Assignments run up to the anchor: older windows are mature, the last 90 days' are not,
and trials claimed near the anchor are still pending.

How one customer is drawn (``_Block.customer``), so that each figure of the story holds:

- the offer (by ``share``), the arm (holdout by ``holdout_percent``, then the variants' weights),
  and for a variant whether they claimed (``claim_rate``);
- how many regular purchases they make in ``[assigned_at, assigned_at + 90 days)``: none, one, or
  two and more, with exactly the arm's ``buyer_rate`` and ``repeat_rate`` (claimers are likelier
  buyers, and those who did not claim less likely, in proportions that keep the arm's rates);
- the trial's outcome, consistent with those purchases as the product decides it: a conversion is
  the first of them (the automatic charge at the end for card trials, some after a failed payment;
  the first full-price purchase within the conversion window for the others); an expired trial
  has no purchase of the product until its window closed; a payment that failed is never paid;
- extras that the counts must not see: refunded purchases (some refunded after the window
  closed), a trial fee or a sample's price at the claim, and, for a few repeat buyers, a purchase
  in another currency;
- purchases outside the window, at the customer's own pace (``purchases_per_year`` on average,
  some refunded), which make the ledger as big as a real shop's.
"""

import io
import math
import random
from bisect import bisect
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import accumulate

from django.db import transaction
from django.utils import timezone

from accounts.demo_story import (
    BLOCK,
    EXTRA_OFFER_SHARE,
    HISTORY_DAYS,
    PLANTED_OFFER,
    PURCHASES_PER_YEAR,
    SEED,
    STORY,
    UNASSIGNED_SHARE,
    WINDOW_DAYS,
    StoryOffer,
)
from accounts.models import User
from billing.imports import ASSIGNMENTS, CUSTOMERS, PURCHASES, history_import_csv
from offers import rules
from offers import services as offer_services
from offers.models import Offer, Product
from offers.money import to_major
from offers.validation import VariantSpec

DAY = 86_400
HOUR = 3_600
GRACE_DAYS = 7  # the offers' conversion grace (Offer.grace_days' default)
LIVE_DAYS_AHEAD = 60  # the history offers are live, and end this many days after the anchor
COUNTRIES = (("DE", 40), ("FR", 20), ("IT", 15), ("PL", 10), ("AT", 5), ("NL", 5), ("CH", 5))
# Another currency, for the few purchases made in it: the Swiss pay in francs, the others in pounds.
FOREIGN = {"CH": ("CHF", {"beans-1kg": 2300, "coffee-club": 1450})}
FOREIGN_DEFAULT = ("GBP", {"beans-1kg": 2100, "coffee-club": 1300})
REFUND_SHARE = 0.04  # units with one purchase in the window that is refunded
FOREIGN_SHARE = 0.05  # repeat buyers with one more purchase in another currency
BACKGROUND_REFUND_SHARE = 0.01
BACKGROUND_FOREIGN_SHARE = 0.003
CLUB_SHARE = 0.4  # purchases outside the window that are the coffee club's (the rest: beans)


class HistoryRefused(Exception):
    """The import refused a block: the seed and the import disagree, which is a bug."""


def customer_external_id(number: int) -> str:
    return f"DEMO-C{number:07d}"


def history_offers(count: int) -> list[StoryOffer]:
    """The story's offers, then copies of them (with a number in their slug) up to ``count``."""
    offers = list(STORY)
    for extra in range(max(0, count - len(STORY))):
        template = STORY[extra % len(STORY)]
        number = extra // len(STORY) + 2
        offers.append(
            replace(
                template,
                slug=f"{template.slug}-{number}",
                name=f"{template.name} ({number})",
                share=EXTRA_OFFER_SHARE,
                starts_days_ago=template.starts_days_ago - 5 * (number % 40),
            )
        )
    return offers


def _anchor() -> datetime:
    """The anchor of the history already seeded, or today's midnight (UTC) for a new one."""
    planted = next(spec for spec in STORY if spec.slug == PLANTED_OFFER)
    started = Offer.objects.filter(slug=PLANTED_OFFER).values_list("starts_at", flat=True).first()
    if started is not None:
        return started + timedelta(days=planted.starts_days_ago)
    return timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _offers_ensure(specs: list[StoryOffer], *, anchor: datetime, actor) -> None:
    """Create and launch the history's offers, through the console's services. They started in
    the past and are live. A launch needs Stripe (the product's price): GatewayError otherwise."""
    products = {product.sku: product for product in Product.objects.all()}
    existing = dict(Offer.objects.filter(slug__in=[spec.slug for spec in specs]).values_list("slug", "pk"))
    for spec in specs:
        offer = Offer.objects.get(pk=existing[spec.slug]) if spec.slug in existing else None
        if offer is None:
            values = {
                "slug": spec.slug,
                "name": spec.name,
                "kind": spec.kind,
                "physical": spec.physical,
                "product": products[spec.product],
                "trial_days": spec.trial_days,
                "trial_price": spec.trial_price,
                "currency": products[spec.product].currency,
                "sample_cost": spec.sample_cost,
                "holdout_percent": spec.holdout_percent,
                "promise": spec.promise,
                "starts_at": anchor - timedelta(days=spec.starts_days_ago),
                "ends_at": anchor + timedelta(days=LIVE_DAYS_AHEAD),
            }
            variants = [
                VariantSpec(arm.name, arm.weight, arm.kind, arm.trial_days, arm.trial_price) for arm in spec.arms
            ]
            offer = offer_services.offer_create(actor=actor, values=values, variants=variants)
        if offer.status == Offer.Status.DRAFT:
            offer_services.offer_launch(offer=offer, actor=actor)


def history_ensure(
    *,
    customers: int,
    offers: int,
    actor,
    purchases_per_year: float = PURCHASES_PER_YEAR,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Seed the history for ``customers`` customers over ``offers`` offers (at least the story's).
    Returns the counts the imports wrote. Raises GatewayError when the offers cannot launch."""
    anchor = _anchor()
    specs = history_offers(offers)
    _offers_ensure(specs, anchor=anchor, actor=actor)
    block = _Block.setup(specs, anchor, purchases_per_year)
    written = {CUSTOMERS: 0, ASSIGNMENTS: 0, PURCHASES: 0, "trials": 0, "skipped": 0}
    for number in range(math.ceil(customers / BLOCK)):
        first, last = number * BLOCK, min(customers, (number + 1) * BLOCK)
        if User.objects.filter(external_id=customer_external_id(last - 1)).exists():
            written["skipped"] += last - first
        else:
            files = block.draw(number, first, last)
            with transaction.atomic():
                for kind in (CUSTOMERS, ASSIGNMENTS, PURCHASES):
                    result = history_import_csv(kind=kind, file=io.BytesIO(files[kind]), source="import")
                    if result.refused:
                        errors = "; ".join(f"line {e.row}: {e.field} {e.message}" for e in result.errors[:5])
                        raise HistoryRefused(f"The import refused the demo {kind} of block {number}: {errors}")
                    written[kind] += result.created
                    written["trials"] += result.trials
        if progress is not None:
            progress(last - first)
    return written


def _iso(moment: int) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()


class _Block:
    """Draws one block of customers as the three CSV files the import reads."""

    def __init__(self, specs, anchor, offer_points, country_points, prices, purchases_per_year):
        self.specs = specs
        self.purchases_per_year = purchases_per_year
        self.anchor = int(anchor.timestamp())
        self.offer_points = offer_points
        self.country_points = country_points
        self.prices = prices
        self.arm_points = {spec.slug: list(accumulate(arm.weight for arm in spec.arms)) for spec in specs}

    @classmethod
    def setup(cls, specs: list[StoryOffer], anchor: datetime, purchases_per_year: float) -> "_Block":
        shares = [spec.share for spec in specs] + [UNASSIGNED_SHARE]
        total = sum(shares)
        offer_points = [point / total for point in accumulate(shares)]
        country_total = sum(weight for _, weight in COUNTRIES)
        country_points = [point / country_total for point in accumulate(weight for _, weight in COUNTRIES)]
        prices = dict(Product.objects.values_list("sku", "price_amount"))
        return cls(specs, anchor, offer_points, country_points, prices, purchases_per_year)

    def draw(self, number: int, first: int, last: int) -> dict[str, bytes]:
        self.rng = random.Random(f"{SEED}-{number}")  # noqa: S311 (demo data, not secrets)
        self.lines = {CUSTOMERS: [], ASSIGNMENTS: [], PURCHASES: []}
        for customer in range(first, last):
            self.customer(customer)
        header = {
            CUSTOMERS: "external_id,email,created_at,country\n",
            ASSIGNMENTS: "customer_external_id,offer_slug,arm,assigned_at,claimed_at,trial_ends_at,outcome,"
            "converted_at\n",
            PURCHASES: "external_id,customer_external_id,product_sku,kind,amount,currency,purchased_at,refund_of\n",
        }
        return {kind: (header[kind] + "".join(lines)).encode() for kind, lines in self.lines.items()}

    # One customer -------------------------------------------------------------------------------
    def customer(self, number: int) -> None:
        rng, anchor = self.rng, self.anchor
        external_id = customer_external_id(number)
        pick = bisect(self.offer_points, rng.random())
        country = COUNTRIES[min(bisect(self.country_points, rng.random()), len(COUNTRIES) - 1)][0]
        earliest = anchor - HISTORY_DAYS * DAY
        self.purchases: list[tuple] = []  # (at, sku, kind, amount, currency, refund_at or None)
        self.country = country
        window = None
        blocked = None  # (from, sku): this product may not be bought from then on (a failed payment)
        if pick < len(self.specs):
            spec = self.specs[pick]
            start = anchor - spec.starts_days_ago * DAY
            assigned = start + int(rng.random() * (anchor - HOUR - start))
            created = max(earliest, assigned - int((1 + rng.random() * 399) * DAY))
            window, blocked = self.unit(external_id, spec, assigned)
        else:
            created = anchor - int((1 + rng.random() * (HISTORY_DAYS - 1)) * DAY)
        self.background(created, window, blocked)
        self.lines[CUSTOMERS].append(f"{external_id},shopper{number}@history.demo.test,{_iso(created)},{country}\n")
        self.purchases.sort()
        lines = self.lines[PURCHASES]
        # In time order, each refund right after its purchase: the import wants it higher up in the file.
        for index, (at, sku, kind, amount, currency, refund_at) in enumerate(self.purchases):
            purchase_id = f"DEMO-P{number:07d}-{index}"
            lines.append(
                f"{purchase_id},{external_id},{sku},{kind},{to_major(amount, currency)},{currency},{_iso(at)},\n"
            )
            if refund_at is not None:
                lines.append(
                    f"DEMO-R{number:07d}-{index},{external_id},{sku},{kind},{to_major(-amount, currency)},{currency},"
                    f"{_iso(refund_at)},{purchase_id}\n"
                )

    def unit(self, external_id: str, spec: StoryOffer, assigned: int):
        """The customer's assignment to ``spec``, its trial and their purchases in the window.
        Returns the window and what a failed payment blocks."""
        rng, anchor = self.rng, self.anchor
        if spec.holdout is not None and rng.random() * 100 < spec.holdout_percent:
            arm = spec.holdout
        else:
            points = self.arm_points[spec.slug]
            arm = spec.arms[min(bisect(points, rng.random() * points[-1]), len(spec.arms) - 1)]
        holdout = arm.name == rules.HOLDOUT
        claimed = not holdout and rng.random() < arm.claim_rate
        # Claimers are likelier buyers; scaling the others down by as much keeps the arm's rates.
        rate = arm.claim_rate
        lift = min(2.0, 0.9 / rate) if rate else 1.0
        if claimed:
            buyer, repeat = arm.buyer_rate * lift, arm.repeat_rate * lift
        else:
            buyer = (arm.buyer_rate - rate * arm.buyer_rate * lift) / (1 - rate)
            repeat = (arm.repeat_rate - rate * arm.repeat_rate * lift) / (1 - rate)
        draw = rng.random()
        count = 0 if draw >= buyer else 1 if draw >= repeat else 2 + (rng.random() < 0.35) + (rng.random() < 0.15)

        kind = arm.kind or spec.kind
        days = arm.trial_days if arm.trial_days is not None else spec.trial_days
        price = arm.trial_price if arm.trial_price is not None else spec.trial_price
        sku, full = spec.product, self.prices[spec.product]
        end = assigned + WINDOW_DAYS * DAY - HOUR
        row = [external_id, spec.slug, arm.name, _iso(assigned), "", "", "", ""]
        blocked = None
        first, safe = assigned, assigned  # where the counted purchases may start; where the extras may
        conversion = None
        if claimed:
            # Most claim at once, some within three days, and none after the anchor.
            claimed_at = assigned + int(rng.random() ** 3 * min(3 * DAY, anchor - HOUR - assigned))
            ends = claimed_at + days * DAY
            closes = ends + GRACE_DAYS * DAY  # the conversion window's end
            automatic = kind in rules.AUTO_CHARGE_KINDS
            if count and rng.random() < spec.convert_share:
                outcome = "converted"
                if automatic:
                    # The charge at the end; some after a failed payment the customer then completed.
                    late = rng.random() < 0.12
                    conversion = ends + (int((0.2 + rng.random() * 9) * DAY) if late else int(rng.random() * 600))
                else:
                    shape = (1.2, 3.0) if kind == "discount" else (2.0, 1.5)
                    conversion = claimed_at + int(rng.betavariate(*shape) * (closes - HOUR - claimed_at))
                decided, first, safe = conversion, conversion, conversion
            elif automatic:
                if count == 0 and rng.random() < 0.12:
                    outcome, decided, safe, blocked = "payment_failed", ends, None, (claimed_at, sku)
                else:
                    outcome, decided = "cancelled", claimed_at
            elif rng.random() < 0.85:
                outcome, decided = "expired", ends
                first = safe = closes + HOUR  # bought only once the trial could no longer convert
            else:
                outcome, decided = "cancelled", claimed_at
            if decided >= anchor:  # not decided yet as of the anchor
                # Ended but still open to a conversion: an unpaid charge, or a purchase within the grace.
                ended = "payment_failed" if automatic else "expired"
                outcome = "pending" if ends >= anchor else ended
                conversion = None
            row[4:8] = [_iso(claimed_at), _iso(ends), outcome, _iso(conversion) if conversion else ""]
            if price and kind == "paid_trial":
                self.purchases.append((claimed_at, sku, "trial_fee", price, "EUR", None))
            elif price and kind == "sample":
                self.purchases.append((claimed_at, sku, "sample", price, "EUR", None))
        self.lines[ASSIGNMENTS].append(",".join(row) + "\n")

        times = self.times(count, first, end, fixed=conversion, monthly=sku == "coffee-club")
        counted = [moment for moment in times if moment < anchor]
        for index, moment in enumerate(counted):
            amount = price if index == 0 and conversion is not None and kind == "discount" else full
            self.purchases.append((moment, sku, "regular", amount, "EUR", None))
        if safe is not None and rng.random() < REFUND_SHARE:
            moment = safe + 1 + int(rng.random() * (end - safe))
            refund = moment + int((1 + rng.random() * 24) * DAY)
            if refund < anchor:  # a purchase not yet refunded would be one more purchase
                self.purchases.append((moment, sku, "regular", full, "EUR", refund))
        if len(counted) >= 2 and rng.random() < FOREIGN_SHARE:
            moment = counted[0] + 1 + int(rng.random() * (end - counted[0]))
            if moment < anchor:
                currency, prices = FOREIGN.get(self.country, FOREIGN_DEFAULT)
                self.purchases.append((moment, sku, "regular", prices[sku], currency, None))
        return (assigned, assigned + WINDOW_DAYS * DAY), blocked

    def times(self, count: int, first: int, end: int, *, fixed: int | None, monthly: bool) -> list[int]:
        """``count`` purchase times in [first, end): the first at ``fixed`` when given; a
        subscription's a month apart."""
        if not count or first >= end:
            return []
        rng = self.rng
        if monthly:
            count = min(count, (end - first) // (30 * DAY) + 1)
            span = end - first - (count - 1) * 30 * DAY
            start = fixed if fixed is not None else first + int(rng.random() * span)
            return [start + step * 30 * DAY for step in range(count) if start + step * 30 * DAY < end]
        if fixed is not None:
            return [fixed, *sorted(fixed + 1 + int(rng.random() * (end - fixed - 1)) for _ in range(count - 1))]
        return sorted(first + int(rng.random() * (end - first)) for _ in range(count))

    def background(self, created: int, window, blocked) -> None:
        """Purchases outside the window, at the customer's own pace (a Poisson process whose rate
        varies between customers: most buy little, a few a lot)."""
        rng, anchor = self.rng, self.anchor
        rate = rng.gammavariate(0.5, 2.0) * self.purchases_per_year / (365 * DAY)
        if rate <= 0:
            return
        moment = created
        while True:
            moment += int(rng.expovariate(rate)) + 1
            if moment >= anchor:
                return
            if window is not None and window[0] <= moment < window[1]:
                continue
            sku = "coffee-club" if rng.random() < CLUB_SHARE else "beans-1kg"
            if blocked is not None and moment >= blocked[0] and sku == blocked[1]:
                sku = "beans-1kg" if sku == "coffee-club" else "coffee-club"
            currency, amount = "EUR", self.prices[sku]
            if rng.random() < BACKGROUND_FOREIGN_SHARE:
                currency, prices = FOREIGN.get(self.country, FOREIGN_DEFAULT)
                amount = prices[sku]
            refund = None
            if rng.random() < BACKGROUND_REFUND_SHARE:
                refund = moment + int((1 + rng.random() * 19) * DAY)
                refund = refund if refund < anchor else None
            self.purchases.append((moment, sku, "regular", amount, currency, refund))
