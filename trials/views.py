"""The customer's own page, ``/me/``: their trials (status, days left, the next charge), their
receipts and purchases, every email we sent them, and everything we keep about them as JSON;
and cancelling a trial, from ``/me/`` or from the signed link in any email."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from billing import selectors as billing_selectors
from config.ratelimit import rate_limited
from offers.money import money_format
from offers.terms import long_date
from trials import links, selectors, services
from trials.models import Trial

CANCELLABLE = (Trial.Status.ACTIVE, Trial.Status.PAYMENT_FAILED, Trial.Status.RESERVED)


@login_required
def me(request):
    language = translation.get_language()
    customer = request.user
    return render(
        request,
        "trials/me.html",
        {
            "trials": selectors.me_trials(customer=customer, language=language, at=timezone.now()),
            "subscriptions": billing_selectors.me_subscriptions(customer=customer, language=language),
            "purchases": selectors.me_purchases(customer=customer, language=language),
            "emails": selectors.me_emails(customer=customer),
        },
    )


@login_required
def me_data(request):
    response = JsonResponse(selectors.me_data(customer=request.user), json_dumps_params={"indent": 2})
    response["Content-Disposition"] = 'attachment; filename="foretaste-my-data.json"'
    response["Cache-Control"] = "private, no-store"
    return response


def _cancel_page(request, trial: Trial, *, action: str, status: int = 200):
    """The one page every way to cancel leads to: it asks, or says what already happened."""
    language = translation.get_language()
    state = "ask" if trial.status in CANCELLABLE else ("already" if trial.status == Trial.Status.CANCELLED else "late")
    return render(
        request,
        "trials/cancel.html",
        {
            "trial": trial,
            "state": state,
            "action": action,
            "cancelled_on": long_date(trial.cancelled_at, language) if trial.cancelled_at else "",
            "ends_on": long_date(trial.ends_at, language),
        },
        status=status,
    )


def _cancel(request, trial: Trial, *, customer, done: str):
    try:
        services.trial_cancel(trial_id=trial.pk, customer=customer, at=timezone.now())
    except services.TrialTransitionNotAllowed:
        trial.refresh_from_db()
        return _cancel_page(request, trial, action="", status=409)
    messages.success(
        request,
        _("Your trial of %(offer)s is cancelled. Nothing will be charged for it.") % {"offer": trial.offer.name},
    )
    return redirect(done)


@login_required
@require_http_methods(["GET", "POST"])
@rate_limited("cancel")
def trial_cancel(request, trial_id):
    trial = selectors.trial_get_for_customer(trial_id=trial_id, customer=request.user)
    if request.method == "POST" and trial.status in CANCELLABLE:
        return _cancel(request, trial, customer=request.user, done=reverse("me"))
    return _cancel_page(request, trial, action=request.path)


@require_http_methods(["GET", "POST"])
@rate_limited("signed_link", limit_get=True)
def trial_cancel_link(request, token):
    """The cancel link from an email: no login needed, the signature is the proof. A GET only
    shows the question (mail scanners open links); the button POSTs."""
    try:
        trial = links.trial_from_cancel_token(token)
    except links.LinkExpired:
        return render(request, "trials/link_refused.html", {"reason": "expired"}, status=410)
    except links.LinkInvalid:
        return render(request, "trials/link_refused.html", {"reason": "invalid"}, status=404)
    if request.method == "POST" and trial.status in CANCELLABLE:
        return _cancel(request, trial, customer=trial.customer, done=request.path)
    return _cancel_page(request, trial, action=request.path)


@login_required
@require_http_methods(["GET", "POST"])
def trial_feedback(request, trial_id):
    """The offer's one question, after the trial: did you get what we promised?"""
    from django.core.exceptions import ValidationError

    from trials.clock import survey_question
    from trials.forms import FeedbackForm

    trial = selectors.trial_get_for_customer(trial_id=trial_id, customer=request.user)
    answered = getattr(trial, "feedback", None)  # None until answered (a reverse one-to-one)
    form = FeedbackForm(request.POST or None)
    status = 200
    if request.method == "POST" and answered is None:
        if form.is_valid():
            try:
                services.feedback_give(trial_id=trial.pk, customer=request.user, at=timezone.now(), **form.cleaned_data)
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, _("Thank you for telling us how it went."))
                return redirect("me")
        status = 400
    return render(
        request,
        "trials/feedback.html",
        {
            "trial": trial,
            "form": form,
            "answered": answered,
            "question": survey_question(trial.offer, translation.get_language()),
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
@rate_limited("cancel")
def trial_pay(request, trial_id):
    """Completing a failed end step: the bank's 3-D Secure (``confirmCardPayment``, then a POST
    with ``payment_intent_id``), or another card (``confirmCardSetup``, then a POST with
    ``setup_intent_id``), through ``trials.services``. A trial with no payment waiting says so
    and charges nothing; another customer's trial is a 404."""
    from django.conf import settings

    from billing import gateway

    trial = selectors.trial_get_for_customer(trial_id=trial_id, customer=request.user)
    at = timezone.now()
    error = ""
    status = 200
    try:
        if request.method == "POST" and trial.status == Trial.Status.PAYMENT_FAILED:
            setup_intent_id = request.POST.get("setup_intent_id", "").strip()[:255]
            if setup_intent_id:
                outcome = services.trial_payment_retry(
                    trial_id=trial.pk, customer=request.user, setup_intent_id=setup_intent_id, at=at
                )
            else:
                outcome = services.trial_payment_authenticated(trial_id=trial.pk, customer=request.user, at=at)
            if outcome.outcome == "converted":
                messages.success(request, _("Thank you: the payment went through."))
                return redirect("me")
            status = 402
            error = {
                "declined": _("The card was declined. Nothing was charged. Please try another card."),
                "action_needed": _("Your bank still asks you to confirm the payment."),
            }.get(outcome.outcome, _("The payment is being processed. Please check again in a few minutes."))
        step = services.trial_payment_step(trial_id=trial.pk, customer=request.user, at=at)
    except services.PaymentNotPossible:
        return render(request, "trials/pay.html", {"trial": trial, "mode": "refused"}, status=400)
    except gateway.GatewayError:
        return render(request, "trials/pay.html", {"trial": trial, "mode": "unavailable"}, status=503)
    trial.refresh_from_db()
    return render(
        request,
        "trials/pay.html",
        {
            "trial": trial,
            "offer": trial.offer,
            "mode": step.mode,
            "client_secret": step.client_secret,
            "intent_id": step.intent_id,
            "error": error,
            "amount": money_format(trial.offer.product.price_amount, trial.offer.product.currency,
                                   translation.get_language()),
            "stripe_js_url": settings.STRIPE_JS_URL,
            "stripe_key": settings.STRIPE_PUBLISHABLE_KEY,
        },
        status=status,
    )  # fmt: skip
