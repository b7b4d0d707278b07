""" "Promises kept" counts, on a small known history made through the real services, whether
Foretaste kept its word: reminders on time, no charge before every reminder, no charge after a
cancellation, limits, feedback; the panel marks a broken promise in red and in words and links to
the console's list of exactly the trials behind it."""

from datetime import timedelta

import pytest
import time_machine
from django.template.loader import render_to_string

from accounts.emails import outbox_send
from accounts.models import OutboxMessage
from analytics import promises
from analytics.promises import promises_kept, trials_behind
from tests import factories
from tests.factories import NOW
from trials import clock, services
from trials.models import Trial

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)


def deliver(*, at):
    """The clock at ``at``: it queues the reminders that are due, and the outbox sends every
    message waiting (as the beat jobs do)."""
    clock.reminders_send_due(at=at)
    for message in OutboxMessage.objects.filter(sent_at__isnull=True):
        outbox_send(email_id=message.email_id, at=at)


@pytest.fixture
def card_offer():
    product = factories.product(sku="club", name="Coffee club", price_amount=999)
    return factories.offer(slug="club-trial", name="Coffee club trial", kind="free_trial", product_=product)


@pytest.fixture
def history(card_offer):
    """Four 14-day card trials, reminded 7 and 3 days before their end:

    - ``kept``, claimed at NOW: both reminders on time, charged at its end;
    - ``late``, claimed a day later: its first reminder two hours late, its second never sent,
      and charged anyway a day after its end (a row written directly, as a bug would);
    - ``cancelled``, cancelled on day 2, confirmed 30 s later: owed no reminder, never charged;
    - ``charged_after``, cancelled on day 3, confirmed 90 s later, then charged on day 14 (a row
      written directly)."""
    people = [factories.customer(email=f"{name}@example.com") for name in ("ann", "ben", "cid", "dee")]
    kept, late, cancelled, charged_after = (
        factories.trial(customer=person, offer=card_offer, claimed_at=NOW + offset * DAY)
        for person, offset in zip(people, (0, 1, 0, 0), strict=True)
    )
    services.trial_cancel(trial_id=cancelled.pk, customer=cancelled.customer, at=NOW + 2 * DAY)
    deliver(at=NOW + 2 * DAY + timedelta(seconds=30))
    services.trial_cancel(trial_id=charged_after.pk, customer=charged_after.customer, at=NOW + 3 * DAY)
    deliver(at=NOW + 3 * DAY + timedelta(seconds=90))
    deliver(at=NOW + 7 * DAY - clock.LEAD)  # kept's first reminder
    deliver(at=NOW + 8 * DAY + timedelta(hours=2))  # late's first, two hours late
    deliver(at=NOW + 11 * DAY - clock.LEAD)  # kept's second; late's second (day 12) is never sent
    product = card_offer.product
    factories.purchase(customer=kept.customer, product=product, amount=999, at=NOW + 14 * DAY, trial=kept)
    factories.purchase(customer=late.customer, product=product, amount=999, at=NOW + 16 * DAY, trial=late)
    factories.purchase(
        customer=charged_after.customer, product=product, amount=999, at=NOW + 14 * DAY, trial=charged_after
    )
    return {"kept": kept, "late": late, "cancelled": cancelled, "charged_after": charged_after}


AS_OF = NOW + 20 * DAY


def test_reminders_on_time_count_each_promised_moment_a_late_or_missing_one_is_not(card_offer, history):
    figure = promises_kept(offer=card_offer, as_of=AS_OF).reminders_on_time

    # kept's two, late's two (one late, one never sent); the cancelled trials were owed none.
    assert (figure.kept, figure.total, figure.share) == (2, 4, 0.5)
    assert figure.falls_short
    assert list(trials_behind(promise="reminders", offer=card_offer, as_of=AS_OF)) == [history["late"]]


def test_a_reminder_is_due_only_once_its_moment_has_passed(card_offer, history):
    before = promises_kept(offer=card_offer, as_of=NOW + 7 * DAY + timedelta(minutes=1)).reminders_on_time
    assert (before.kept, before.total) == (1, 1)  # only kept's first was due, and went on time


def test_a_charge_without_every_promised_reminder_before_it_breaks_the_promise(card_offer, history):
    figure = promises_kept(offer=card_offer, as_of=AS_OF).charges_after_reminders

    # kept: both reminders before; late: one missing; charged_after: no reminder at all.
    assert (figure.kept, figure.total) == (1, 3)
    assert set(trials_behind(promise="charges", offer=card_offer, as_of=AS_OF)) == {
        history["late"],
        history["charged_after"],
    }


def test_a_charge_after_a_cancellation_is_counted_and_the_confirmation_time_is_the_median(card_offer, history):
    kept = promises_kept(offer=card_offer, as_of=AS_OF)

    assert (kept.cancellations_honoured.kept, kept.cancellations_honoured.total) == (1, 2)
    assert kept.cancellation_confirmation.count == 2
    assert kept.cancellation_confirmation.value == timedelta(seconds=60)  # the median of 30 s and 90 s
    assert kept.cancellations_unconfirmed == 0
    assert list(trials_behind(promise="cancellations", offer=card_offer, as_of=AS_OF)) == [history["charged_after"]]


def test_before_the_charge_every_cancellation_was_honoured(card_offer, history):
    figure = promises_kept(offer=card_offer, as_of=NOW + 10 * DAY).cancellations_honoured
    assert (figure.kept, figure.total, figure.share, figure.falls_short) == (2, 2, 1.0, False)


def test_claims_beyond_the_inventory_and_second_trials_of_one_person_are_violations():
    offer = factories.offer(slug="limited", inventory=2)
    first, second, third = (
        factories.trial(customer=factories.customer(email=email), offer=offer, claimed_at=NOW + n * DAY)
        for n, email in enumerate(("ann.smith@gmail.com", "bob@example.com", "annsmith+again@gmail.com"))
    )
    factories.trial(customer=factories.customer(email="gone@example.com"), offer=offer, status="abandoned")

    kept = promises_kept(offer=offer, as_of=AS_OF)

    assert (kept.claims_within_inventory.kept, kept.claims_within_inventory.total) == (2, 3)
    assert list(trials_behind(promise="inventory", offer=offer, as_of=AS_OF)) == [third]
    # ann.smith@gmail.com and annsmith+again@gmail.com are one person (offers.rules.canonical_email).
    assert (kept.one_trial_per_person.kept, kept.one_trial_per_person.total) == (2, 3)
    assert list(trials_behind(promise="one_per_person", offer=offer, as_of=AS_OF)) == [third]
    assert first.pk < second.pk < third.pk


def test_feedback_answered_rating_not_met_and_the_time_to_answer_a_low_rating(marketer):
    offer = factories.offer(slug="beans")
    trials = [
        factories.trial(customer=factories.customer(email=f"c{n}@example.com"), offer=offer, status="expired")
        for n in range(4)
    ]
    answered_at = NOW + 15 * DAY
    for trial, (met, rating) in zip(trials, [("no", 1), ("yes", 4), ("partly", 2)], strict=False):
        services.feedback_give(
            trial_id=trial.pk, customer=trial.customer, promise_met=met, rating=rating, comment="", at=answered_at
        )
    low = trials[0].feedback
    services.feedback_answer(feedback_id=low.pk, actor=marketer, text="Sorry.", at=answered_at + timedelta(hours=2))

    kept = promises_kept(offer=offer, as_of=AS_OF)

    assert (kept.feedback_answered.kept, kept.feedback_answered.total) == (3, 4)
    assert not kept.feedback_answered.falls_short  # answering is the customer's choice, not a promise
    assert kept.ratings == 3 and kept.mean_rating == pytest.approx(7 / 3)
    assert (kept.promise_not_met.kept, kept.promise_not_met.total) == (1, 3)
    assert not kept.promise_not_met.falls_short
    assert kept.low_rating_response.count == 1 and kept.low_rating_response.value == timedelta(hours=2)
    assert kept.low_ratings_unanswered == 1  # the 2 is waiting
    assert list(trials_behind(promise="not_met", offer=offer, as_of=AS_OF)) == [trials[0]]


def test_with_nothing_to_count_every_share_and_median_is_none(card_offer):
    kept = promises_kept(offer=card_offer, as_of=AS_OF)

    figures = [
        kept.reminders_on_time, kept.charges_after_reminders, kept.cancellations_honoured,
        kept.claims_within_inventory, kept.one_trial_per_person, kept.feedback_answered, kept.promise_not_met,
    ]  # fmt: skip
    assert all(figure.total == 0 and figure.share is None and not figure.falls_short for figure in figures)
    assert kept.mean_rating is None and kept.cancellation_confirmation.value is None
    assert kept.low_rating_response.value is None


def test_overall_adds_up_the_offers_and_per_offer_sees_only_its_own(card_offer, history):
    other = factories.offer(slug="other-trial", kind="free_trial", product_=card_offer.product)
    factories.trial(customer=factories.customer(email="eve@example.com"), offer=other, claimed_at=NOW)
    deliver(at=NOW + 7 * DAY - clock.LEAD)
    deliver(at=NOW + 11 * DAY - clock.LEAD)

    one = promises_kept(offer=card_offer, as_of=AS_OF)
    two = promises_kept(offer=other, as_of=AS_OF)
    overall = promises_kept(as_of=AS_OF)

    assert (two.reminders_on_time.kept, two.reminders_on_time.total) == (2, 2)
    assert overall.offer is None
    assert overall.reminders_on_time.kept == one.reminders_on_time.kept + two.reminders_on_time.kept
    assert overall.reminders_on_time.total == one.reminders_on_time.total + two.reminders_on_time.total == 6
    assert overall.cancellations_honoured.total == 2


def test_imported_trials_are_history_and_do_not_count(card_offer):
    factories.trial(customer=factories.customer(email="old@example.com"), offer=card_offer, source="import")
    assert promises_kept(offer=card_offer, as_of=AS_OF).reminders_on_time.total == 0


def test_the_panel_marks_a_broken_promise_in_red_and_in_words_and_links_to_its_trials(card_offer, history):
    html = render_to_string("analytics/_promises_kept.html", {"promises": promises_kept(offer=card_offer, as_of=AS_OF)})

    assert html.count('class="promise--broken"') == 3  # reminders, charges, cancellations
    assert html.count(">Broken<") == 3
    assert "50.0 %" in html and "2 of 4" in html
    for name in ("reminders", "charges", "cancellations"):
        assert f'href="/console/offers/club-trial/trials/?promise={name}"' in html
    assert "?promise=inventory" not in html  # kept (no inventory): nothing to list
    assert "1.0 min" in html  # the median confirmation


def test_the_overall_panel_has_no_links_to_one_offers_list(card_offer, history):
    html = render_to_string("analytics/_promises_kept.html", {"promises": promises_kept(as_of=AS_OF)})
    assert ">Broken<" in html and "?promise=" not in html


def test_the_console_filter_lists_exactly_the_trials_behind_a_figure(as_marketer, card_offer, history):
    with time_machine.travel(AS_OF, tick=False):
        page = as_marketer.get("/console/offers/club-trial/trials/?promise=charges")
        everything = as_marketer.get("/console/offers/club-trial/trials/")

    assert page.status_code == 200
    listed = {trial.pk for trial in page.context["page"].object_list}
    assert listed == {history["late"].pk, history["charged_after"].pk}
    assert "Trials charged before every promised reminder was sent" in page.content.decode()
    assert len(everything.context["page"].object_list) == 4


def test_an_unknown_promise_filter_says_so_plainly(as_marketer, card_offer, history):
    page = as_marketer.get("/console/offers/club-trial/trials/?promise=<b>bogus")

    assert page.status_code == 400
    text = page.content.decode()
    assert "There is no promise called “&lt;b&gt;bogus”" in text
    assert ", ".join(promises.PROMISES) in text
    assert len(page.context["page"].object_list) == 4  # the list, unfiltered


def test_a_trial_status_and_a_promise_filter_combine(as_marketer, card_offer, history):
    with time_machine.travel(AS_OF, tick=False):
        page = as_marketer.get("/console/offers/club-trial/trials/?promise=charges&status=cancelled")
    assert [trial.pk for trial in page.context["page"].object_list] == [history["charged_after"].pk]
    assert Trial.objects.get(pk=history["charged_after"].pk).status == Trial.Status.CANCELLED


def test_the_clock_records_each_reminders_promised_moment(card_offer, history):
    moments = sorted(
        OutboxMessage.objects.filter(about_id=history["kept"].pk, purpose="reminder").values_list(
            "promised_at", flat=True
        )
    )
    assert moments == [NOW + 7 * DAY, NOW + 11 * DAY]


def test_the_figures_take_a_fixed_handful_of_queries_however_many_trials(
    card_offer, history, django_assert_max_num_queries
):
    with django_assert_max_num_queries(18):
        promises_kept(as_of=AS_OF)
