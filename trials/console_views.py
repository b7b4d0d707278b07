"""An offer's trials in the marketer console: the list with a status filter, and one trial's
page with its history, consent, the emails about it and its charges; and the feedback, which
marketers (and staff) answer. Executives read."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from accounts.roles import EXECUTIVE, MARKETER, has_role, role_required
from offers import selectors as offer_selectors
from trials import selectors
from trials.clock import waiting_text
from trials.models import ConsentRecord, Trial

PAGE_SIZE = 50
readers = role_required(MARKETER, EXECUTIVE)
managers = role_required(MARKETER)


@readers
@require_GET
def offer_trials(request, slug):
    """The offer's trials, filtered by status, and by ``promise``: the trials behind a figure of
    "Promises kept" that fell short (analytics.promises), as of now. An unknown promise is a 400
    that names the ones there are, with the unfiltered list."""
    from analytics import promises

    offer = offer_selectors.offer_get(slug=slug)
    status = request.GET.get("status", "")
    if status not in Trial.Status.values:
        status = ""
    trials = selectors.offer_trials(offer=offer, status=status)
    promise, promise_error = request.GET.get("promise", ""), ""
    if promise in promises.PROMISES:
        trials = trials.filter(pk__in=promises.trials_behind(promise=promise, offer=offer).values("pk"))
    elif promise:
        promise_error = _("There is no promise called “%(promise)s”. Choose one of: %(promises)s.") % {
            "promise": promise[:50],
            "promises": ", ".join(promises.PROMISES),
        }
        promise = ""
    page = Paginator(trials, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "console/offer_trials.html",
        {
            "offer": offer,
            "page": page,
            "status": status,
            "statuses": Trial.Status.choices,
            "promise": promise,
            "promise_label": PROMISE_LABELS.get(promise, ""),
            "promise_error": promise_error,
            "refusals": selectors.offer_claim_refusals(offer=offer),
        },
        status=400 if promise_error else 200,
    )


# What each ``?promise=`` filter shows, in the list's heading.
PROMISE_LABELS = {
    "reminders": gettext_lazy("Trials with a reminder sent late, or not at all"),
    "charges": gettext_lazy("Trials charged before every promised reminder was sent"),
    "cancellations": gettext_lazy("Cancelled trials charged afterwards"),
    "inventory": gettext_lazy("Claims beyond the inventory"),
    "one_per_person": gettext_lazy("Second trials by the same person"),
    "not_met": gettext_lazy("Trials whose customer said the promise was not met"),
}


@readers
@require_GET
def offer_trial(request, slug, trial_id):
    offer = offer_selectors.offer_get(slug=slug)
    trial = selectors.offer_trial_get(offer=offer, trial_id=trial_id)
    return render(
        request,
        "console/offer_trial.html",
        {
            "offer": offer,
            "trial": trial,
            "events": trial.events.all(),
            "emails": selectors.trial_emails(trial=trial),
            "charges": selectors.trial_charges(trial=trial),
            "consent": ConsentRecord.objects.filter(trial=trial).first(),
            "waiting": waiting_text(trial, translation.get_language()),
        },
    )


@readers
@require_GET
def offer_feedback(request, slug):
    """The answers to the offer's question, the lowest ratings first, so that the customers we
    let down are answered first."""
    from trials.clock import survey_question
    from trials.forms import FeedbackAnswerForm

    offer = offer_selectors.offer_get(slug=slug)
    page = Paginator(selectors.offer_feedback(offer=offer), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "console/offer_feedback.html",
        {
            "offer": offer,
            "page": page,
            "question": survey_question(offer, "en"),
            "answer_form": FeedbackAnswerForm(),
            "can_manage": has_role(request.user, MARKETER),
        },
    )


@managers
@require_POST
def feedback_answer(request, slug, feedback_id):
    from django.core.exceptions import ValidationError

    from trials import services
    from trials.forms import FeedbackAnswerForm

    offer = offer_selectors.offer_get(slug=slug)
    feedback = selectors.offer_feedback_get(offer=offer, feedback_id=feedback_id)
    form = FeedbackAnswerForm(request.POST)
    if form.is_valid():
        try:
            services.feedback_answer(
                feedback_id=feedback.pk, actor=request.user, text=form.cleaned_data["response"],
                refund=form.cleaned_data["refund"], at=timezone.now(),
            )  # fmt: skip
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            sent_to = {"email": feedback.trial.customer.email}
            messages.success(request, _("Your answer was sent to %(email)s.") % sent_to)
    else:
        messages.error(request, " ".join(message for errors in form.errors.values() for message in errors))
    return redirect("console:offer_feedback", slug=offer.slug)
