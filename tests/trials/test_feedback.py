"""After the trial the customer is asked the offer's one question, answers once, and a marketer
sees the answers with the lowest ratings first and can write back in the customer's language."""

from datetime import timedelta

import pytest
import time_machine

from accounts.models import OutboxMessage
from tests import factories
from tests.factories import NOW
from trials import clock
from trials.models import Feedback, Trial

pytestmark = pytest.mark.django_db
AFTER = NOW + timedelta(days=15)  # the trials below end at NOW + 14 days


@pytest.fixture
def ended(customer):
    return factories.trial(customer=customer, offer=factories.offer(), status=Trial.Status.EXPIRED)


def test_the_survey_asks_the_offers_promise_once_the_trial_is_over_and_only_once(ended, outsider):
    still_running = factories.trial(customer=outsider, offer=ended.offer)

    assert clock.surveys_send_due(at=NOW + timedelta(days=1)) == 0  # expired, but its days are not over
    assert clock.surveys_send_due(at=AFTER) == 1
    assert clock.surveys_send_due(at=AFTER + timedelta(hours=1)) == 0

    (survey,) = OutboxMessage.objects.filter(purpose="survey")
    assert survey.about_id == ended.pk and survey.about_id != still_running.pk
    assert (
        "Did you get what we promised: The same beans our cafés brew, at home, for two weeks?" in survey.email.message
    )
    assert f"/me/trials/{ended.pk}/feedback/" in survey.email.message


def test_an_offer_without_a_survey_asks_nothing(customer):
    offer = factories.offer(feedback_survey=False)
    factories.trial(customer=customer, offer=offer, status=Trial.Status.EXPIRED)

    assert clock.surveys_send_due(at=AFTER) == 0


def test_the_customer_answers_once_from_their_page(client, customer, ended):
    client.force_login(customer)
    with time_machine.travel(AFTER, tick=False):
        page = client.get("/me/").content.decode()
        assert f"/me/trials/{ended.pk}/feedback/" in page

        form = client.get(f"/me/trials/{ended.pk}/feedback/").content.decode()
        assert "Did you get what we promised" in form

        sent = client.post(
            f"/me/trials/{ended.pk}/feedback/", {"promise_met": "partly", "rating": "2", "comment": "Stale."}
        )
        again = client.post(f"/me/trials/{ended.pk}/feedback/", {"promise_met": "yes", "rating": "5"})

    assert sent.status_code == 302
    feedback = Feedback.objects.get(trial=ended)
    assert (feedback.promise_met, feedback.rating, feedback.comment) == ("partly", 2, "Stale.")
    assert "already told us" in again.content.decode()
    assert Feedback.objects.count() == 1


@pytest.mark.parametrize(
    "data", [{}, {"promise_met": "maybe", "rating": "3"}, {"promise_met": "yes", "rating": "6"},
             {"promise_met": "yes", "rating": "4", "comment": "x" * 2001}],
)  # fmt: skip
def test_a_bad_answer_is_refused_and_nothing_is_kept(client, customer, ended, data):
    client.force_login(customer)

    response = client.post(f"/me/trials/{ended.pk}/feedback/", data)

    assert response.status_code == 400
    assert not Feedback.objects.exists()


def test_another_customers_trial_has_no_feedback_form(client, outsider, ended):
    client.force_login(outsider)

    assert client.get(f"/me/trials/{ended.pk}/feedback/").status_code == 404
    assert client.post(f"/me/trials/{ended.pk}/feedback/", {"promise_met": "no", "rating": "1"}).status_code == 404


def test_marketers_see_the_lowest_ratings_first_and_answer_in_the_customers_language(as_marketer, customer, outsider):
    offer = factories.offer()
    happy = factories.trial(customer=outsider, offer=offer, status=Trial.Status.CONVERTED)
    unhappy = factories.trial(customer=customer, offer=offer, status=Trial.Status.EXPIRED, language="it")
    Feedback.objects.create(trial=happy, promise_met="yes", rating=5, answered_at=NOW)
    low = Feedback.objects.create(trial=unhappy, promise_met="no", rating=1, comment="Arrived broken", answered_at=NOW)

    listing = as_marketer.get(f"/console/offers/{offer.slug}/feedback/")
    assert [f.rating for f in listing.context["page"].object_list] == [1, 5]

    as_marketer.post(f"/console/offers/{offer.slug}/feedback/{low.pk}/answer/", {"response": "Siamo spiacenti."})
    twice = as_marketer.post(
        f"/console/offers/{offer.slug}/feedback/{low.pk}/answer/", {"response": "Again"}, follow=True
    )

    low.refresh_from_db()
    assert low.response == "Siamo spiacenti." and low.responded_at is not None
    (apology,) = OutboxMessage.objects.filter(purpose="apology")
    assert (apology.user, apology.language, apology.email.message) == (customer, "it", "Siamo spiacenti.")
    assert "already been answered" in twice.content.decode()


def test_feedback_of_another_offer_cannot_be_answered_under_this_one(as_marketer, customer):
    offer = factories.offer()
    other = factories.offer(slug="other", product_=offer.product)
    feedback = Feedback.objects.create(
        trial=factories.trial(customer=customer, offer=other, status=Trial.Status.EXPIRED),
        promise_met="no", rating=1, answered_at=NOW,
    )  # fmt: skip

    assert (
        as_marketer.post(f"/console/offers/{offer.slug}/feedback/{feedback.pk}/answer/", {"response": "x"}).status_code
        == 404
    )


def test_operators_read_feedback_in_the_admin_and_cannot_change_it(client, operator, ended):
    feedback = Feedback.objects.create(trial=ended, promise_met="no", rating=1, answered_at=NOW)
    client.force_login(operator)

    assert client.get("/admin/trials/feedback/").status_code == 200
    assert client.get(f"/admin/trials/feedback/{feedback.pk}/change/").status_code == 200
    assert client.get("/admin/trials/feedback/add/").status_code == 403
    client.post(f"/admin/trials/feedback/{feedback.pk}/change/", {"rating": 5})
    feedback.refresh_from_db()
    assert feedback.rating == 1
