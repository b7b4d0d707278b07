"""The claim on the web: the landing page's form, then reserve → (card page → Stripe.js) →
confirm, all through ``trials.services``. The arm always comes from the stored assignment; the
form only carries consent and, for a physical sample, the address."""

import re

from allauth.account.models import EmailAddress
from babel import Locale
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from config.ratelimit import client_ip, rate_limited
from offers.models import Offer
from trials import selectors, services
from trials.models import Trial

# Postal codes of the countries we ship to most. A table of patterns rather than a library:
# the ones on PyPI either pull in large data sets or only format addresses; a wrong match here
# only asks the customer to look again. Other countries: any 2-10 letters, digits, spaces, dashes.
# The examples are shown to the customer, so they are in the page's language (lazily: this table
# is built once, at import, before any request has chosen a language).
POSTAL_CODES = {
    "DE": (r"\d{5}", gettext_lazy("5 digits, e.g. 10115")),
    "FR": (r"\d{5}", gettext_lazy("5 digits, e.g. 75001")),
    "IT": (r"\d{5}", gettext_lazy("5 digits, e.g. 00100")),
    "PL": (r"\d{2}-\d{3}", gettext_lazy("2 digits, a dash and 3 digits, e.g. 00-950")),
    "GB": (r"[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}", gettext_lazy("e.g. SW1A 1AA")),
    "US": (r"\d{5}(-\d{4})?", gettext_lazy("5 digits, or 5+4, e.g. 10001 or 10001-1234")),
    "RU": (r"\d{6}", gettext_lazy("6 digits, e.g. 101000")),
}
OTHER_POSTAL_CODE = r"[A-Z0-9][A-Z0-9 -]{1,9}"


_NOT_COUNTRIES = {"EU", "EZ", "UN", "QO", "XA", "XB", "ZZ"}


def _countries() -> list[tuple[str, str]]:
    # Country names in the page's language from Babel's CLDR data (Babel is pinned already);
    # only the two-letter codes, not regions such as "001" or "EU".
    locale = Locale.parse(translation.to_locale(translation.get_language() or "en"))
    names = {
        code: name
        for code, name in locale.territories.items()
        if len(code) == 2 and code.isalpha() and code not in _NOT_COUNTRIES
    }
    return sorted(names.items(), key=lambda item: item[1])


def email_verified(user) -> bool:
    return EmailAddress.objects.filter(user=user, email__iexact=user.email, verified=True).exists()


class ClaimForm(forms.Form):
    consent = forms.BooleanField(
        label=gettext_lazy("I have read the terms above and agree to them."),
        required=True,
        error_messages={"required": gettext_lazy("Please tick the box to agree to the terms.")},
    )

    def __init__(self, *args, offer: Offer, **kwargs):
        super().__init__(*args, **kwargs)
        self.offer = offer
        if offer.physical:
            allowed = [code.upper() for code in (offer.allowed_countries or [])]
            choices = [("", "—")] + [(code, name) for code, name in _countries() if not allowed or code in allowed]
            self.fields["line1"] = forms.CharField(label=gettext_lazy("Street and number"), max_length=200)
            self.fields["line2"] = forms.CharField(label=gettext_lazy("Address line 2"), max_length=200, required=False)
            self.fields["postal_code"] = forms.CharField(label=gettext_lazy("Postal code"), max_length=20)
            self.fields["city"] = forms.CharField(label=gettext_lazy("City"), max_length=200)
            self.fields["country"] = forms.ChoiceField(label=gettext_lazy("Country"), choices=choices)

    def clean(self):
        data = super().clean()
        code = (data.get("postal_code") or "").strip().upper()
        country = data.get("country")
        if self.offer.physical and code and country:
            pattern, example = POSTAL_CODES.get(country, (OTHER_POSTAL_CODE, ""))
            if not re.fullmatch(pattern, code):
                message = _("This postal code does not look right for the country chosen.")
                if example:
                    message += " " + _("Expected: %(example)s.") % {"example": example}
                self.add_error("postal_code", message)
            else:
                data["postal_code"] = code
        return data

    def address(self) -> dict | None:
        if not self.offer.physical:
            return None
        return {name: self.cleaned_data.get(name, "") for name in services.ADDRESS_FIELDS}


def claim_state(*, request, offer: Offer) -> dict:
    """What the landing page's claim section shows a logged-in customer: the form, or why not."""
    user = request.user
    if not user.is_authenticated:
        return {}
    if not email_verified(user):
        return {"claim_unverified": True}
    form = getattr(request, "claim_form", None) or ClaimForm(offer=offer)
    return {"claim_form": form, "claim_url": reverse("offer_claim", args=[offer.slug])}


def _landing_again(request, slug: str, form: ClaimForm, *, status: int, message: str = ""):
    """The landing page once more, with the form as sent (its errors) or the refusal's message."""
    from offers.views import offer_landing

    request.claim_form = form
    if message:
        messages.error(request, message)
    response = offer_landing(request, slug)
    response.status_code = status
    return response


def _unavailable(request, offer: Offer):
    return render(request, "trials/claim_unavailable.html", {"offer": offer}, status=503)


def _done(request):
    messages.success(request, _("Your trial has started. You can see it, and cancel it, here."))
    return redirect("me")


@require_POST
@login_required
@rate_limited("claim")
def claim(request, slug):
    offer = get_object_or_404(Offer.objects.select_related("product").exclude(status=Offer.Status.DRAFT), slug=slug)
    assignment = selectors.assignment_get(offer_id=offer.pk, customer_id=request.user.pk)
    if assignment is None:
        # Never shown the page (and so never assigned): show it, which assigns.
        return redirect("offer_landing", slug=slug)
    form = ClaimForm(request.POST, offer=offer)
    if not email_verified(request.user):
        return _landing_again(request, slug, form, status=400, message=_("Please verify your email address first."))
    if not form.is_valid():
        return _landing_again(request, slug, form, status=400)
    at = timezone.now()
    try:
        trial = services.claim_reserve(
            assignment=assignment, customer=request.user, ip=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", ""), address=form.address(),
            language=translation.get_language(), at=at,
        )  # fmt: skip
        payment = services.claim_payment_start(trial_id=trial.pk, at=at)
        if not payment.setup_intent_id:
            services.claim_confirm(trial_id=trial.pk, at=at)
            return _done(request)
    except services.ClaimRefused as refusal:
        return _landing_again(request, slug, form, status=409, message=refusal.message)
    except services.ClaimUnavailable:
        return _unavailable(request, offer)
    return redirect("offer_claim_card", slug=slug, trial_id=trial.pk)


def _own_trial(request, slug: str, trial_id: int) -> Trial:
    trial = selectors.trial_get_for_customer(trial_id=trial_id, customer=request.user)
    if trial.offer.slug != slug:
        raise Http404
    return trial


def _stripe_page(request, trial: Trial, *, template: str, client_secret: str, status: int = 200, **extra):
    return render(
        request,
        template,
        {
            "trial": trial,
            "offer": trial.offer,
            "client_secret": client_secret,
            "stripe_js_url": settings.STRIPE_JS_URL,
            "stripe_key": settings.STRIPE_PUBLISHABLE_KEY,
            "confirm_url": reverse("offer_claim_confirm", args=[trial.offer.slug, trial.pk]),
            **extra,
        },
        status=status,
    )


@require_http_methods(["GET"])
@login_required
def claim_card(request, slug, trial_id):
    trial = _own_trial(request, slug, trial_id)
    if trial.status != Trial.Status.RESERVED:
        return redirect("me")
    at = timezone.now()
    try:
        # A reload finds the SetupIntent made before.
        payment = services.claim_payment_start(trial_id=trial.pk, at=at)
    except services.ClaimRefused as refusal:
        messages.error(request, refusal.message)
        return redirect("offer_landing", slug=slug)
    except services.ClaimUnavailable:
        return _unavailable(request, trial.offer)
    from offers.terms import offer_terms

    terms = offer_terms(offer=trial.offer, variant=trial.variant, language=trial.language, at=trial.claimed_at)
    return _stripe_page(
        request, trial, template="trials/claim_card.html", client_secret=payment.setup_client_secret,
        terms_text=terms.text,
    )  # fmt: skip


@require_POST
@login_required
@rate_limited("claim")
def claim_confirm(request, slug, trial_id):
    trial = _own_trial(request, slug, trial_id)
    setup_intent_id = request.POST.get("setup_intent_id", "").strip()[:255] or None
    payment_intent_id = request.POST.get("payment_intent_id", "").strip()[:255] or None
    try:
        services.claim_confirm(
            trial_id=trial.pk, setup_intent_id=setup_intent_id, payment_intent_id=payment_intent_id,
            at=timezone.now(),
        )  # fmt: skip
    except services.ClaimPaymentAction as action:
        return _stripe_page(
            request, trial, template="trials/claim_authenticate.html", client_secret=action.client_secret,
            payment_intent_id=action.payment_intent_id, setup_intent_id=setup_intent_id or "",
        )  # fmt: skip
    except services.ClaimRefused as refusal:
        messages.error(request, refusal.message)
        return redirect("offer_landing", slug=slug)
    except services.ClaimUnavailable:
        return _unavailable(request, trial.offer)
    return _done(request)
