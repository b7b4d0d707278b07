"""Demo products and offers for `make run`: one of each kind a marketer would start with."""

from datetime import timedelta

from django.utils import timezone

from billing.gateway import GatewayError
from offers import services
from offers.models import Offer, Product
from offers.validation import VariantSpec

PRODUCTS = [
    {"sku": "beans-1kg", "name": "House espresso beans, 1 kg", "price_amount": 2400, "currency": "EUR", "interval": "",
     "description": "Our café's espresso blend, roasted on Mondays, shipped on Tuesdays."},
    {"sku": "coffee-club", "name": "Coffee club", "price_amount": 1500, "currency": "EUR", "interval": "month",
     "description": "A fresh 500 g bag of a different single origin every month."},
]  # fmt: skip

OFFERS = [
    (
        {"slug": "espresso-sample", "name": "Espresso sample", "kind": "sample", "physical": True,
         "product": "beans-1kg", "trial_days": 21, "trial_price": 0, "sample_cost": 350, "inventory": 500,
         "daily_limit": 50, "holdout_percent": 10, "allowed_countries": ["DE", "FR", "AT", "NL", "BE"],
         "promise": "The espresso our baristas pull, made at home, from a free 100 g bag."},
        [VariantSpec("sample", 1), VariantSpec("discount", 1, kind="discount", trial_price=1800)],
    ),
    (
        {"slug": "coffee-club-trial", "name": "Coffee club: first month free", "kind": "free_trial",
         "product": "coffee-club", "trial_days": 30, "trial_price": 0, "holdout_percent": 10,
         "eligibility": "new_customers",
         "promise": "A month of single origins, to find the coffee you will keep ordering."},
        [VariantSpec("month-free", 1), VariantSpec("two-weeks-1-euro", 1, kind="paid_trial", trial_days=14,
                                                   trial_price=100)],
    ),
    (
        {"slug": "coffee-club-no-card", "name": "Coffee club: try two weeks, no card", "kind": "free_trial_no_card",
         "product": "coffee-club", "trial_days": 14, "trial_price": 0, "holdout_percent": 0,
         "promise": "Two weeks of coffee club bags, with nothing to cancel."},
        [VariantSpec("default", 1)],
    ),
]  # fmt: skip


def demo_products_ensure() -> tuple[int, bool]:
    """Create the demo products if missing and sync them to Stripe. Returns (count, synced)."""
    synced = True
    for data in PRODUCTS:
        product = Product.objects.filter(sku=data["sku"]).first() or services.product_create(**data)
        try:
            services.product_sync(product_id=product.pk)
        except GatewayError:
            synced = False
    return len(PRODUCTS), synced


def demo_offers_ensure(*, actor) -> int:
    """Create the demo offers if missing and launch the drafts: live from yesterday for 90 days."""
    now = timezone.now()
    for values, variants in OFFERS:
        offer = Offer.objects.filter(slug=values["slug"]).first()
        if offer is None:
            full = {**values, "product": Product.objects.get(sku=values["product"]), "currency": "EUR",
                    "starts_at": now - timedelta(days=1), "ends_at": now + timedelta(days=90)}  # fmt: skip
            offer = services.offer_create(actor=actor, values=full, variants=variants)
        if offer.status == Offer.Status.DRAFT:
            services.offer_launch(offer=offer, actor=actor)
    return len(OFFERS)
