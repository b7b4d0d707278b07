"""The public pages: the home page lists live offers, and an offer's landing page shows its price,
the date of the first charge and its terms exactly as they are generated, in the visitor's
language, and says plainly why an offer cannot be claimed when it cannot."""

from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils.html import escape

from offers import services
from offers.models import Offer
from offers.terms import offer_terms
from tests import factories
from tests.factories import NOW

pytestmark = pytest.mark.django_db

VISIT = NOW + timedelta(hours=1)


def launched(marketer, **values):
    offer = factories.offer(actor=marketer, **values)
    return services.offer_launch(offer=offer, actor=marketer, at=NOW)


def visit(client, offer, at=VISIT, **headers):
    with time_machine.travel(at, tick=False):
        return client.get(reverse("offer_landing", kwargs={"slug": offer.slug}), **headers)


def page(response) -> str:
    assert response.status_code == 200
    return response.content.decode()


def assert_shows_terms(html: str, offer: Offer, language: str, at=VISIT) -> None:
    terms = offer_terms(offer=offer, variant=offer.variants.first(), language=language, at=at)
    assert escape(terms.headline) in html
    for line in terms.lines:
        assert f"<li>{escape(line)}</li>" in html


def test_the_landing_page_shows_the_terms_exactly_as_they_are_generated(client, marketer):
    club = factories.product(sku="coffee-club", name="Coffee club", price_amount=999, interval="month")
    offer = launched(marketer, kind="free_trial", product_=club)

    html = page(visit(client, offer))

    assert "<h1" in html and "Coffee sampler" in html
    assert escape(offer.promise) in html
    assert_shows_terms(html, offer, "en")
    assert "First charge" in html and escape("€9.99 on June 15, 2026") in html
    assert escape("€9.99 per month") in html


def test_the_landing_page_speaks_german_to_a_german_browser(client, marketer):
    offer = launched(marketer, kind="paid_trial", trial_price=100)

    html = page(visit(client, offer, HTTP_ACCEPT_LANGUAGE="de"))

    assert 'lang="de"' in html
    assert_shows_terms(html, offer, "de")
    assert "Wenn Sie nicht kündigen, belasten wir Ihre Karte am 15. Juni 2026" in html
    assert "Registrieren und annehmen" in html


def test_an_anonymous_visitor_is_asked_to_sign_up_and_comes_back_to_the_offer(client, marketer):
    offer = launched(marketer)

    html = page(visit(client, offer))

    assert "Sign up to claim" in html
    assert f'href="{reverse("account_signup")}?next=/o/coffee-sampler/"' in html
    assert f'href="{reverse("account_login")}?next=/o/coffee-sampler/"' in html


def test_a_logged_in_visitor_is_told_where_claiming_will_be(client, marketer, customer):
    offer = launched(marketer)
    client.force_login(customer)

    html = page(visit(client, offer))

    assert "You will be able to claim this offer here." in html
    assert "Sign up to claim" not in html


def test_a_draft_does_not_exist_for_the_public(client, marketer):
    offer = factories.offer(actor=marketer)

    assert visit(client, offer).status_code == 404


def test_an_unknown_offer_is_not_found(client):
    assert client.get("/o/no-such-offer/").status_code == 404


def _ended(marketer):
    offer = launched(marketer)
    return services.offer_end(offer=offer, actor=marketer, at=VISIT - timedelta(minutes=5))


def _past_its_end_before_the_beat_job_ran(marketer):
    return launched(marketer, ends_at=VISIT - timedelta(minutes=5))


def _sold_out(marketer):
    offer = launched(marketer, inventory=1)
    Offer.objects.filter(pk=offer.pk).update(claimed_count=1)
    return offer


def _ended_because_sold_out(marketer):
    offer = _sold_out(marketer)
    return services.offer_end(offer=offer, actor=None, at=VISIT - timedelta(minutes=5), action="sold out")


def _paused(marketer):
    return services.offer_pause(offer=launched(marketer), actor=marketer, at=VISIT - timedelta(minutes=5))


def _not_started(marketer):
    return launched(marketer, starts_at=NOW + timedelta(days=2))


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (_ended, "This offer has ended and can no longer be claimed."),
        (_past_its_end_before_the_beat_job_ran, "This offer has ended and can no longer be claimed."),
        (_sold_out, "This offer is sold out and can no longer be claimed."),
        (_ended_because_sold_out, "This offer is sold out and can no longer be claimed."),
        (_paused, "This offer is paused for the moment. Please check again later."),
        (_not_started, "This offer opens on June 3, 2026. Come back then to claim it."),
    ],
)
def test_an_offer_that_cannot_be_claimed_says_why_and_offers_no_claim(client, marketer, make, why):
    offer = make(marketer)

    html = page(visit(client, offer))

    assert why in html
    assert "Sign up to claim" not in html
    assert "?next=" not in html
    assert "Claim this offer" not in html


def test_before_the_start_the_dates_are_those_of_a_claim_on_the_opening_day(client, marketer):
    offer = launched(marketer, kind="free_trial", starts_at=NOW + timedelta(days=2))

    html = page(visit(client, offer))

    assert "Dates are for a claim made on June 3, 2026." in html
    assert_shows_terms(html, offer, "en", at=offer.starts_at)


def test_home_lists_live_offers_only_each_linking_to_its_page(client, marketer):
    beans = factories.product()
    live = launched(marketer, slug="live-one", name="Live sampler", product_=beans)
    factories.offer(actor=marketer, slug="draft-one", name="Draft sampler", product_=beans)
    services.offer_pause(
        offer=launched(marketer, slug="paused-one", name="Paused sampler", product_=beans), actor=marketer, at=NOW
    )
    services.offer_end(
        offer=launched(marketer, slug="ended-one", name="Ended sampler", product_=beans), actor=marketer, at=NOW
    )

    with time_machine.travel(VISIT, tick=False):
        html = page(client.get(reverse("home")))

    assert "Live sampler" in html
    assert f'href="{reverse("offer_landing", kwargs={"slug": live.slug})}"' in html
    assert "A free sample" in html
    for hidden in ("Draft sampler", "Paused sampler", "Ended sampler"):
        assert hidden not in html


def test_home_says_so_when_nothing_is_live(client):
    html = page(client.get(reverse("home")))

    assert "There are no live offers right now." in html
