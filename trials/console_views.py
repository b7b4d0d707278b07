"""An offer's trials in the marketer console: the list with a status filter, and one trial's
page with its history, the emails about it and its charges. Marketers, staff and executives
read them; nothing here writes."""

from django.core.paginator import Paginator
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.roles import EXECUTIVE, MARKETER, role_required
from offers import selectors as offer_selectors
from trials import selectors
from trials.models import ConsentRecord, Trial

PAGE_SIZE = 50
readers = role_required(MARKETER, EXECUTIVE)


@readers
@require_GET
def offer_trials(request, slug):
    offer = offer_selectors.offer_get(slug=slug)
    status = request.GET.get("status", "")
    if status not in Trial.Status.values:
        status = ""
    page = Paginator(selectors.offer_trials(offer=offer, status=status), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "console/offer_trials.html",
        {
            "offer": offer,
            "page": page,
            "status": status,
            "statuses": Trial.Status.choices,
            "refusals": selectors.offer_claim_refusals(offer=offer),
        },
    )


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
        },
    )
