"""What a marketer reads in the console: the history in words and formatted values, no internal
document names or raw codes, a launch that asks first and says what locks for good, and tables
that scroll inside their box on a phone."""

import re
from datetime import timedelta

import pytest

from offers import services
from offers.models import Offer, OfferChange
from offers.validation import VariantSpec
from tests import factories
from tests.factories import NOW

pytestmark = pytest.mark.django_db

INTERNAL_WORDS = ("METRICS.md", "DESIGN.md", "STYLE.md", "README", "offers/validation.py", "analytics/planning.py")
# The codes that are not also English words ("sample" and "discount" are both).
RAW_CODES = [code for code in (*Offer.Kind.values, *Offer.Eligibility.values) if "_" in code] + ["holdout_percent"]


def visible_text(html: str) -> str:
    """The page's words and attribute texts a person meets; not the values of hidden inputs,
    option values or CSS class names."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    shown = re.findall(r'\b(?:aria-label|title|placeholder|alt)="([^"]*)"', html)
    return re.sub(r"<[^>]+>", " ", html) + " " + " ".join(shown)


def test_the_history_shows_labels_and_values_for_people(as_marketer, marketer):
    offer = factories.offer(actor=marketer, kind="free_trial_no_card", trial_days=14, ends_at=NOW + timedelta(days=30))
    services.offer_update(
        offer=offer,
        actor=marketer,
        values={
            "trial_days": 10,
            "kind": "paid_trial",
            "trial_price": 450,
            "eligibility": "new_customers",
            "feedback_survey": False,
            "allowed_countries": ["DE", "FR"],
            "ends_at": None,
            "reminder_days": [5, 2],
            "inventory": 300,
        },
        variants=[VariantSpec("default", 2), VariantSpec("long", 1, trial_days=28)],
        at=NOW,
    )

    page = visible_text(as_marketer.get(f"/console/offers/{offer.slug}/").content.decode())

    assert "Trial length: 14 → 10 days" in page
    assert "Kind: Free trial (no card) → Paid trial" in page
    assert "Trial price: €0.00 → €4.50" in page
    assert "Who may claim: Anyone → New customers only (no purchase ever)" in page
    assert "Feedback survey: yes → no" in page
    assert "Allowed countries: everywhere → DE, FR" in page
    assert "Ends: 2026-07-01 09:00 UTC → open" in page
    assert "Reminders: 7, 3 days before the end → 5, 2 days before the end" in page
    assert "Inventory (total claims): no limit → 300" in page
    assert "Variants: default (weight 1) → default (weight 2); long (weight 1, 28 days)" in page
    assert "Changed" in page and "Created" in page
    for column in ("trial_days", "feedback_survey", "allowed_countries", "free_trial_no_card", "None", "False"):
        assert column not in page


def test_console_pages_never_mention_internal_documents_or_raw_codes(as_marketer, marketer):
    product = factories.product()
    draft = factories.offer(actor=marketer, product_=product, kind="free_trial_no_card", eligibility="new_customers")
    live = factories.offer(
        actor=marketer,
        product_=product,
        slug="live-one",
        variants=[{"name": "cheap", "weight": 1, "kind": "paid_trial", "trial_price": 100}, {"name": "free"}],
        kind="free_trial",
    )
    services.offer_launch(offer=live, actor=marketer, at=NOW)
    services.offer_update(offer=draft, actor=marketer, values={"kind": "sample", "eligibility": "anyone"}, at=NOW)
    bad_post = as_marketer.post("/console/offers/new/", {"kind": "free_trial", "holdout_percent": "x"})
    pages = {
        "list": as_marketer.get("/console/"),
        "new": as_marketer.get("/console/offers/new/"),
        "bad post": bad_post,
        "draft": as_marketer.get(f"/console/offers/{draft.slug}/"),
        "draft edit": as_marketer.get(f"/console/offers/{draft.slug}/edit/"),
        "launch": as_marketer.get(f"/console/offers/{draft.slug}/launch/"),
        "live": as_marketer.get(f"/console/offers/{live.slug}/"),
        "live edit": as_marketer.get(f"/console/offers/{live.slug}/edit/"),
        "preview": as_marketer.get(f"/console/offers/{live.slug}/preview/", {"variant": "cheap"}),
        "products": as_marketer.get("/console/products/"),
        "product edit": as_marketer.get(f"/console/products/{product.sku}/edit/"),
        "imports": as_marketer.get("/console/imports/"),
    }

    for name, response in pages.items():
        assert response.status_code in (200, 400), name
        text = visible_text(response.content.decode())
        for word in INTERNAL_WORDS:
            assert word not in text, (name, word)
        for code in RAW_CODES:
            assert not re.search(rf"(?<![\w-]){code}(?![\w-])", text), (name, code)
    assert "Free trial (no card)" in visible_text(pages["draft"].content.decode())
    assert "Paid trial" in visible_text(pages["live"].content.decode())


def test_launching_asks_first_and_says_what_locks_for_good(as_marketer, marketer):
    offer = factories.offer(
        actor=marketer, holdout_percent=10, variants=[{"name": "short", "weight": 3}, {"name": "long", "weight": 1}]
    )
    detail = as_marketer.get(f"/console/offers/{offer.slug}/").content.decode()
    assert f'href="/console/offers/{offer.slug}/launch/"' in detail

    confirm = as_marketer.get(f"/console/offers/{offer.slug}/launch/")

    assert confirm.status_code == 200
    page = visible_text(confirm.content.decode())
    assert "What locks for good" in page
    assert "10% of eligible customers see no offer" in page
    assert "short: weight 3 (67.5%)" in page and "long: weight 1 (22.5%)" in page
    assert "salt" in page
    assert Offer.objects.get(pk=offer.pk).status == Offer.Status.DRAFT  # a GET changes nothing
    assert not OfferChange.objects.filter(offer=offer, action="launched").exists()
    assert f'action="/console/offers/{offer.slug}/launch/"' in confirm.content.decode()

    launched = as_marketer.post(f"/console/offers/{offer.slug}/launch/")

    assert launched.status_code == 302
    assert Offer.objects.get(pk=offer.pk).launched_at is not None


def test_the_launch_page_of_an_offer_already_launched_sends_back_to_the_offer(as_marketer, marketer):
    offer = factories.offer(actor=marketer)
    services.offer_launch(offer=offer, actor=marketer, at=NOW)

    response = as_marketer.get(f"/console/offers/{offer.slug}/launch/", follow=True)

    assert response.redirect_chain[-1][0] == f"/console/offers/{offer.slug}/"
    assert "cannot be launched" in response.content.decode()


def test_other_actions_are_still_post_only(as_marketer, marketer):
    offer = factories.offer(actor=marketer)
    for action in ("pause", "resume", "end", "duplicate"):
        assert as_marketer.get(f"/console/offers/{offer.slug}/{action}/").status_code == 405
    assert Offer.objects.count() == 1


def test_every_table_scrolls_inside_a_labelled_focusable_box(as_marketer, marketer, client, customer):
    offer = factories.offer(actor=marketer)
    pages = [
        as_marketer.get("/console/"),
        as_marketer.get(f"/console/offers/{offer.slug}/"),
        as_marketer.get(f"/console/offers/{offer.slug}/edit/"),
        as_marketer.get("/console/products/"),
    ]
    tables = 0
    for response in pages:
        html = response.content.decode()
        for match in re.finditer(r"<table\b", html):
            tables += 1
            opening = html.rfind('<div class="table-wrap"', 0, match.start())
            assert opening != -1
            box = html[opening : html.index(">", opening) + 1]
            assert html.count("</div>", opening, match.start()) == 0, box
            assert 'tabindex="0"' in box and 'role="region"' in box
            assert "aria-label=" in box or "aria-labelledby=" in box
    assert tables >= 5


def test_the_launch_page_of_an_offer_without_a_holdout_says_its_effect_cannot_be_measured(as_marketer, marketer):
    offer = factories.offer(actor=marketer, holdout_percent=0)

    page = visible_text(as_marketer.get(f"/console/offers/{offer.slug}/launch/").content.decode())

    assert "cannot be measured" in page
    assert "0% of eligible customers" not in page
