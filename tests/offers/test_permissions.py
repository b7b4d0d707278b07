"""Every console URL, for every role and method, gives the answer that role should get.

The table below must name every console route; a new route without an entry fails the test, so
nobody adds a page without deciding who may use it.
"""

import pytest

from offers import console_urls, services
from tests import factories
from tests.factories import NOW
from trials.models import Feedback

ROLES = ("anonymous", "customer", "executive", "marketer", "operator")
READ = "read"  # marketers, staff and executives may GET; POST is not a method of the page
MANAGE = "manage"  # marketers and staff only, GET and POST
ACTION = "action"  # marketers and staff only, POST only

ROUTES = {
    "home": ("/console/", READ),
    "planning": ("/console/planning.json?weekly=100&baseline=10&holdout=10", READ),
    "offer_new": ("/console/offers/new/", MANAGE),
    "offer": ("/console/offers/{slug}/", READ),
    "offer_edit": ("/console/offers/{slug}/edit/", MANAGE),
    "offer_preview": ("/console/offers/{slug}/preview/?variant=default&lang=de", READ),
    "offer_trials": ("/console/offers/{slug}/trials/?status=active", READ),
    "offer_trial": ("/console/offers/{slug}/trials/{trial}/", READ),
    "offer_feedback": ("/console/offers/{slug}/feedback/", READ),
    "feedback_answer": ("/console/offers/{slug}/feedback/{feedback}/answer/", ACTION),
    "offer_action": ("/console/offers/{slug}/pause/", ACTION),
    "products": ("/console/products/", READ),
    "product_new": ("/console/products/new/", MANAGE),
    "product_edit": ("/console/products/{sku}/edit/", MANAGE),
    "imports": ("/console/imports/", MANAGE),
}


def expected(kind: str, role: str, method: str) -> int:
    if role == "anonymous":
        return 302  # to the login page
    if role in ("customer",):
        return 403
    manager = role in ("marketer", "operator")
    if kind == READ:
        return 200 if method == "GET" else 405
    if kind == ACTION:
        if not manager:
            return 403
        return 405 if method == "GET" else 302
    if not manager:
        return 403
    return 200 if method == "GET" else 400  # an empty form: explained, nothing saved


def test_every_console_route_is_in_the_table():
    assert {pattern.name for pattern in console_urls.urlpatterns} == set(ROUTES)


@pytest.fixture
def live_offer(db, marketer):
    offer = factories.offer(actor=marketer)
    services.offer_launch(offer=offer, actor=marketer, at=NOW)
    return offer


@pytest.mark.parametrize("name", sorted(ROUTES))
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_each_role_gets_the_right_answer(client, request, live_offer, name, role, method):
    path, kind = ROUTES[name]
    trial = factories.trial(customer=request.getfixturevalue("outsider"), offer=live_offer)
    feedback = Feedback.objects.create(trial=trial, promise_met="no", rating=1, answered_at=NOW)
    path = path.format(slug=live_offer.slug, sku=live_offer.product.sku, trial=trial.pk, feedback=feedback.pk)
    if role != "anonymous":
        client.force_login(request.getfixturevalue(role))

    response = client.get(path) if method == "GET" else client.post(path, {})

    assert response.status_code == expected(kind, role, method), (name, role, method)
    if response.status_code == 302 and role == "anonymous":
        assert response.url.startswith("/accounts/login/")
