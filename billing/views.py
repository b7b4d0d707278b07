"""Buying on Foretaste (``/o/<slug>/buy/``) and ending a subscription from ``/me/``, through
``billing.services``. The card step is the claim's: the same Stripe.js script
(static/js/claim.js) and the same 3-D Secure page (templates/trials/claim_authenticate.html)."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from billing import selectors, services
from config.ratelimit import rate_limited
from offers.models import Offer
from offers.terms import long_date, paid_price
from trials.claim_views import email_verified


def _offer(slug: str) -> Offer:
    return get_object_or_404(Offer.objects.select_related("product").exclude(status=Offer.Status.DRAFT), slug=slug)


def _page(request, offer: Offer, *, status: int = 200, **extra):
    language = translation.get_language()
    context = {"offer": offer, "product": offer.product, "price": paid_price(offer.product, language), **extra}
    return render(request, "billing/buy.html", context, status=status)


def _unavailable(request, offer: Offer):
    return render(request, "trials/claim_unavailable.html", {"offer": offer}, status=503)


def _stripe_context(checkout, step: services.CardStep) -> dict:
    return {
        "checkout": checkout,
        "client_secret": step.client_secret,
        "setup_intent_id": step.setup_intent_id,
        "payment_intent_id": step.payment_intent_id,
        "stripe_js_url": settings.STRIPE_JS_URL,
        "stripe_key": settings.STRIPE_PUBLISHABLE_KEY,
        "confirm_url": reverse("offer_buy_pay", args=[checkout.offer.slug, checkout.pk]),
    }


def _authenticate_page(request, checkout, step: services.CardStep):
    lead = _(
        "Your bank asks you to confirm this payment. Follow its steps; your purchase is complete as soon as it is done."
    )
    return render(
        request,
        "trials/claim_authenticate.html",
        {"offer": checkout.offer, "lead": lead, **_stripe_context(checkout, step)},
    )


@require_http_methods(["GET"])
@login_required
def buy(request, slug):
    """The product, its price and the card form. Where the holdout's buy button, the landing
    page, /me/ and the "buy now" email lead. A reload finds the same checkout and SetupIntent."""
    offer = _offer(slug)
    if not email_verified(request.user):
        return _page(request, offer, unverified=True)
    at = timezone.now()
    try:
        checkout = services.checkout_start(
            customer=request.user, offer=offer, language=translation.get_language(), at=at
        )
        step = services.checkout_card(checkout=checkout, at=at)
    except services.BuyRefused as refusal:
        if refusal.code == "card_declined":
            # That attempt is over; this page starts the next one.
            messages.error(request, refusal.message)
            return redirect("offer_buy", slug=slug)
        return _page(request, offer, status=409, refusal=refusal.message)
    except services.BuyUnavailable:
        return _unavailable(request, offer)
    if step.mode == "payment":
        return _authenticate_page(request, checkout, step)
    return _page(request, offer, **_stripe_context(checkout, step))


@require_POST
@login_required
@rate_limited("buy")
def buy_pay(request, slug, checkout_id):
    """The card was saved (or 3-D Secure completed) in the browser: charge and record, once."""
    checkout = selectors.checkout_get_for_customer(checkout_id=checkout_id, customer=request.user, slug=slug)
    try:
        checkout = services.checkout_pay(
            checkout=checkout,
            setup_intent_id=request.POST.get("setup_intent_id", "").strip()[:255] or None,
            payment_intent_id=request.POST.get("payment_intent_id", "").strip()[:255] or None,
            at=timezone.now(),
        )
    except services.BuyAction as action:
        step = services.CardStep(
            "payment", action.client_secret, checkout.stripe_setup_intent_id, action.payment_intent_id
        )
        return _authenticate_page(request, checkout, step)
    except services.BuyRefused as refusal:
        messages.error(request, refusal.message)
        return redirect("offer_buy", slug=slug)
    except services.BuyUnavailable:
        return _unavailable(request, checkout.offer)
    messages.success(
        request,
        _("Thank you: you bought %(product)s. Your receipt is on its way by email.")
        % {"product": checkout.product.name},
    )
    return redirect("me")


@require_http_methods(["GET", "POST"])
@login_required
@rate_limited("cancel")
def subscription_cancel(request, subscription_id):
    """One click from /me/ to this page, which says when the subscription ends; its button POSTs."""
    subscription = selectors.subscription_get_for_customer(subscription_id=subscription_id, customer=request.user)
    language = translation.get_language()
    context = {"subscription": subscription, "product_name": subscription.product.name if subscription.product else ""}
    if subscription.cancel_requested_at is not None or subscription.status not in selectors.CANCELLABLE:
        context["state"] = "already" if subscription.cancel_requested_at else "ended"
        context["ends_on"] = long_date(subscription.ends_at, language) if subscription.ends_at else ""
        return render(request, "billing/subscription_cancel.html", context)
    try:
        if request.method == "POST":
            subscription = services.subscription_cancel(subscription=subscription, at=timezone.now())
            messages.success(
                request,
                _("Your subscription stays active until %(date)s, then ends. Nothing more will be charged.")
                % {"date": long_date(subscription.ends_at, language)},
            )
            return redirect("me")
        ends_at = services.subscription_period_end(subscription=subscription)
    except services.BuyUnavailable:
        context["state"] = "unavailable"
        return render(request, "billing/subscription_cancel.html", context, status=503)
    context.update(state="ask", ends_on=long_date(ends_at, language))
    return render(request, "billing/subscription_cancel.html", context)
