"""The story the demo history tells (README, "Demo data"): which offers ran, how their arms were
split, and the effects planted in them. One place, read by the seed (accounts/demo_history.py)
and by the test that checks the effects can be recovered (tests/analytics/test_demo_story.py).

Every rate here is an intention-to-treat figure of METRICS.md, measured from the assignment over
``WINDOW_DAYS``: ``buyer_rate`` is the share of an arm's customers with at least one regular
purchase in the window, ``repeat_rate`` the share with at least two. The seed draws each
customer's count of purchases in the window from exactly these shares, so an arm's expected
figure is the number written here, and the uplift of a variant is its rate minus the holdout's.
"""

from dataclasses import dataclass

SEED = 20_261_202  # every draw of the demo history comes from this seed
DEFAULT_CUSTOMERS = 20_000  # `make run`: about 15 s on SQLite (README, "Demo data")
BLOCK = 10_000  # customers imported together, in one transaction: the unit of resuming
WINDOW_DAYS = 90  # METRICS.md's default window N
HISTORY_DAYS = 730  # customers joined over the two years before the anchor
CUSTOMERS_PER_OFFER = 10_000  # with more customers, more offers: 1,000,000 customers give 100
# Regular purchases a customer makes a year outside their window, on average (seed_demo
# --purchases-per-year). 11 gives the benchmarks' 10,000,000 purchases for 1,000,000 customers.
PURCHASES_PER_YEAR = 3.0

# The planted effects, on the 90-day repeat-purchase rate of the premise test: a free sample
# against a discount against a holdout (DESIGN.md, "Experiments").
PLANTED_OFFER = "beans-sample-vs-discount"
SAMPLER_ARM = "sample"
DISCOUNT_ARM = "discount"
HOLDOUT_REPEAT_RATE = 0.11
SAMPLER_REPEAT_RATE = 0.15  # the sampler raises repeat buyers by 4 points
DISCOUNT_REPEAT_RATE = HOLDOUT_REPEAT_RATE  # the discount changes nothing
HOLDOUT_BUYER_RATE = 0.24
SAMPLER_BUYER_RATE = 0.29
DISCOUNT_BUYER_RATE = HOLDOUT_BUYER_RATE

OBSERVATIONAL_OFFER = "club-two-weeks-no-card"  # the one offer without a holdout


@dataclass(frozen=True)
class Arm:
    """One arm and what it does to the customers in it. ``weight`` is the variant's weight (the
    holdout's share is the offer's ``holdout_percent``); the overrides are the variant's."""

    name: str
    buyer_rate: float
    repeat_rate: float
    claim_rate: float = 0.0  # of the arm's customers; the holdout sees no offer
    weight: int = 1
    kind: str = ""
    trial_days: int | None = None
    trial_price: int | None = None


@dataclass(frozen=True)
class StoryOffer:
    slug: str
    name: str
    kind: str
    product: str  # SKU
    trial_days: int
    trial_price: int
    holdout_percent: int
    arms: tuple[Arm, ...]  # the variants; the holdout is ``holdout``
    holdout: Arm | None
    share: int  # of the customers assigned to some offer, relative to the other offers
    starts_days_ago: int  # the offer started this many days before the anchor; assignments run to the anchor
    convert_share: float  # of claimers who buy in the window, how many do it by converting the trial
    promise: str
    physical: bool = False
    sample_cost: int = 0


def _holdout(buyer_rate: float = HOLDOUT_BUYER_RATE, repeat_rate: float = HOLDOUT_REPEAT_RATE) -> Arm:
    return Arm("holdout", buyer_rate, repeat_rate)


STORY = (
    StoryOffer(
        slug=PLANTED_OFFER, name="House espresso beans, to try", kind="sample", product="beans-1kg",
        trial_days=21, trial_price=0, holdout_percent=20, physical=True, sample_cost=350,
        arms=(
            Arm(SAMPLER_ARM, SAMPLER_BUYER_RATE, SAMPLER_REPEAT_RATE, claim_rate=0.38),
            Arm(DISCOUNT_ARM, DISCOUNT_BUYER_RATE, DISCOUNT_REPEAT_RATE, claim_rate=0.30, kind="discount",
                trial_price=1800),
        ),
        holdout=_holdout(), share=45, starts_days_ago=420, convert_share=0.55,
        promise="The espresso our baristas pull, from a free 100 g bag.",
    ),
    StoryOffer(
        slug="club-month-free", name="Coffee club: first month free", kind="free_trial", product="coffee-club",
        trial_days=30, trial_price=0, holdout_percent=20,
        arms=(
            Arm("month-free", 0.27, 0.14, claim_rate=0.18),
            Arm("two-weeks-1-euro", 0.26, 0.13, claim_rate=0.12, kind="paid_trial", trial_days=14, trial_price=100),
        ),
        holdout=_holdout(), share=15, starts_days_ago=380, convert_share=0.85,
        promise="A month of single origins, to find the coffee you will keep ordering.",
    ),
    StoryOffer(
        slug=OBSERVATIONAL_OFFER, name="Coffee club: two weeks, no card", kind="free_trial_no_card",
        product="coffee-club", trial_days=14, trial_price=0, holdout_percent=0,
        arms=(Arm("default", 0.31, 0.16, claim_rate=0.35),),
        holdout=None, share=10, starts_days_ago=300, convert_share=0.45,
        promise="Two weeks of coffee club bags, with nothing to cancel.",
    ),
    StoryOffer(
        slug="club-paid-week", name="Coffee club: a week for 2 euros", kind="paid_trial", product="coffee-club",
        trial_days=7, trial_price=200, holdout_percent=20,
        arms=(Arm("default", 0.26, 0.125, claim_rate=0.10),),
        holdout=_holdout(), share=8, starts_days_ago=360, convert_share=0.8,
        promise="Seven days of the club's coffee, for the price of one cup.",
    ),
    StoryOffer(
        slug="beans-tasting-box", name="Beans: a tasting box for 3.50", kind="sample", product="beans-1kg",
        trial_days=14, trial_price=350, holdout_percent=20, physical=True, sample_cost=300,
        arms=(Arm("default", 0.27, 0.135, claim_rate=0.22),),
        holdout=_holdout(), share=8, starts_days_ago=340, convert_share=0.5,
        promise="Three 50 g bags of our roasts, to find the one you like.",
    ),
    StoryOffer(
        slug="beans-first-bag-discount", name="Beans: 20% off your first bag", kind="discount", product="beans-1kg",
        trial_days=30, trial_price=1920, holdout_percent=20,
        arms=(Arm("default", HOLDOUT_BUYER_RATE, HOLDOUT_REPEAT_RATE, claim_rate=0.28),),
        holdout=_holdout(), share=8, starts_days_ago=320, convert_share=0.6,
        promise="Our house beans, a fifth cheaper the first time.",
    ),
)  # fmt: skip
UNASSIGNED_SHARE = 6  # customers who never met an offer, relative to the offers' shares
EXTRA_OFFER_SHARE = 8  # each offer beyond the story's, a copy of one of them
