"""The marketer console at /console/. Marketers (and staff) manage; executives read."""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from accounts.roles import EXECUTIVE, MARKETER, has_role, role_required
from billing.gateway import GatewayError
from offers import selectors, services
from offers.forms import (
    LockedVariantFormSet,
    OfferForm,
    PlanningForm,
    ProductForm,
    VariantFormSet,
    lock_variant_forms,
    variant_initial,
)
from offers.history import history_entries
from offers.models import Offer, Product
from offers.translation import fell_back, words_set

readers = role_required(MARKETER, EXECUTIVE)
managers = role_required(MARKETER)
PAGE_SIZE = 50


def _can_manage(user) -> bool:
    return has_role(user, MARKETER)


@readers
@require_GET
def home(request):
    status = request.GET.get("status", "")
    if status not in Offer.Status.values:
        status = ""
    search = request.GET.get("q", "").strip()[:100]
    offers = selectors.offer_list_with_counters(status=status or None, search=search)
    page = Paginator(offers, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "console/home.html",
        {
            "page": page,
            "offers": page.object_list,
            "status": status,
            "q": search,
            "statuses": Offer.Status.choices,
            "can_manage": _can_manage(request.user),
        },
    )


def _planning_context(request, form: OfferForm) -> dict:
    """The calculator beside the holdout. Its inputs are not part of the offer: a refused one
    is explained at its box and never stops the offer from being saved."""
    if form.is_bound:
        posted = {"weekly": "expected_weekly", "baseline": "baseline_percent", "holdout": "holdout_percent"}
        data = {name: request.POST[field] for name, field in posted.items() if field in request.POST}
    else:
        data = {"holdout": str(form.initial.get("holdout_percent", 10))}
    planning_form = PlanningForm(data)
    rows = planning_form.table()
    errors = planning_form.errors if rows is None else {}
    return {
        "weekly": planning_form.data["weekly"],
        "baseline": planning_form.data["baseline"],
        "rows": rows or [],
        "weekly_errors": errors.get("weekly", []),
        "baseline_errors": errors.get("baseline", []),
        # The holdout's own problem is on the holdout field; here it explains the empty table.
        "error": " ".join(errors.get("holdout", [])),
    }


def _offer_form_page(request, *, offer: Offer | None):
    locked = offer is not None and offer.is_locked
    formset = LockedVariantFormSet if locked else VariantFormSet
    if request.method == "POST":
        form = OfferForm(request.POST, offer=offer)
        variants = formset(request.POST, prefix="variants")
        form.validate_with(variants)
        if form.complete:
            try:
                with transaction.atomic():  # the offer and its translations, or neither
                    if offer is None:
                        offer = services.offer_create(
                            actor=request.user, values=form.values, variants=form.variant_specs
                        )
                        saved = _("Draft saved. Preview it, then launch it when it is right.")
                    else:
                        services.offer_update(
                            offer=offer, actor=request.user, values=form.values, variants=form.variant_specs
                        )
                        saved = _("Changes saved.")
                    words_set(obj=offer, words=form.words())
                messages.success(request, saved)
                return redirect("console:offer", slug=offer.slug)
            except ValidationError as exc:  # a concurrent change made it invalid after all
                form.apply_problems(exc.message_dict)
    else:
        form = OfferForm(offer=offer)
        variants = formset(
            prefix="variants",
            initial=variant_initial(offer) if offer else [{"name": "default", "weight": 1}],
        )
    if locked:
        lock_variant_forms(variants)
    planning_context = _planning_context(request, form)
    return render(
        request,
        "console/offer_form.html",
        {
            "form": form,
            "variants": variants,
            "offer": offer,
            "locked": locked,
            "planning": planning_context,
            "error_summary": _offer_error_summary(form, variants, planning_context) if form.is_bound else [],
        },
        status=400 if form.is_bound and not form.complete else 200,
    )


def _offer_error_summary(form: OfferForm, variants, planning_context: dict) -> list[dict]:
    """Every field at fault, in page order, each with the id of its element (#id_<field>)."""
    items = form.error_summary()
    for name, label in (("weekly", _("Eligible customers per week")), ("baseline", _("Baseline repeat rate (%)"))):
        if planning_context[f"{name}_errors"]:
            target = "id_expected_weekly" if name == "weekly" else "id_baseline_percent"
            items.append({"target": target, "label": label, "errors": planning_context[f"{name}_errors"]})
    if form.variant_errors or variants.non_form_errors():
        items.append(
            {
                "target": "variants-errors",
                "label": _("Variants"),
                "errors": [*form.variant_errors, *variants.non_form_errors()],
            }
        )
    for number, variant_form in enumerate(variants, start=1):
        for bound in variant_form:
            if bound.errors:
                label = _("%(field)s of variant %(number)s") % {"field": bound.label, "number": number}
                items.append({"target": bound.auto_id, "label": label, "errors": list(bound.errors)})
    return items


@managers
@require_http_methods(["GET", "POST"])
def offer_new(request):
    if not selectors.product_list().exists():
        messages.info(request, _("Add the paid product first: every offer leads to one."))
        return redirect("console:product_new")
    return _offer_form_page(request, offer=None)


@managers
@require_http_methods(["GET", "POST"])
def offer_edit(request, slug):
    offer = selectors.offer_get(slug=slug)
    if offer.status == Offer.Status.ENDED:
        messages.error(request, _("This offer has ended; duplicate it to run it again."))
        return redirect("console:offer", slug=slug)
    return _offer_form_page(request, offer=offer)


@readers
@require_GET
def offer_detail(request, slug):
    offer = selectors.offer_get(slug=slug)
    counters = selectors.offer_list_with_counters().get(pk=offer.pk)
    return render(
        request,
        "console/offer_detail.html",
        {
            "offer": offer,
            "counters": counters,
            "variants": list(offer.variants.all()),
            "history": history_entries(offer.changes.select_related("actor")[:100], offer=offer),
            "languages": settings.LANGUAGES,
            "can_manage": _can_manage(request.user),
            "actions": _actions_for(offer),
        },
    )


def _actions_for(offer: Offer) -> list[tuple[str, str]]:
    by_status = {
        Offer.Status.DRAFT: [("launch", _("Launch"))],
        Offer.Status.SCHEDULED: [("end", _("End"))],
        Offer.Status.LIVE: [("pause", _("Pause")), ("end", _("End"))],
        Offer.Status.PAUSED: [("resume", _("Resume")), ("end", _("End"))],
        Offer.Status.ENDED: [],
    }
    return [*by_status[offer.status], ("duplicate", _("Duplicate"))]


ACTIONS = {
    "launch": services.offer_launch,
    "pause": services.offer_pause,
    "resume": services.offer_resume,
    "end": services.offer_end,
}


@managers
@require_http_methods(["GET", "POST"])
def offer_action(request, slug, action):
    offer = selectors.offer_get(slug=slug)
    if request.method == "GET":
        # Only launching asks first: it locks the experiment for good. Every other action is a
        # POST from the offer's page.
        if action != "launch":
            return HttpResponseNotAllowed(["POST"])
        return _launch_confirmation(request, offer)
    if action == "duplicate":
        copy = services.offer_duplicate(offer=offer, actor=request.user)
        messages.success(request, _("A draft copy was made. Its experiment starts fresh when you launch it."))
        return redirect("console:offer_edit", slug=copy.slug)
    service = ACTIONS.get(action)
    if service is None:
        raise Http404("No such action")
    try:
        service(offer=offer, actor=request.user, at=timezone.now())
    except services.TransitionNotAllowed as exc:
        messages.error(request, str(exc))
    except ValidationError as exc:
        for field_messages in exc.message_dict.values():
            for message in field_messages:
                messages.error(request, message)
    except GatewayError:
        messages.error(request, _("Stripe could not be reached to set up the product's price; try again shortly."))
    else:
        messages.success(request, _("Offer is now %(status)s.") % {"status": offer.get_status_display().lower()})
    return redirect("console:offer", slug=slug)


def _launch_confirmation(request, offer: Offer):
    if offer.status != Offer.Status.DRAFT:
        messages.error(
            request,
            _("A %(status)s offer cannot be launched.") % {"status": offer.get_status_display().lower()},
        )
        return redirect("console:offer", slug=offer.slug)
    variants = list(offer.variants.all())
    total = sum(v.weight for v in variants) or 1
    return render(
        request,
        "console/offer_launch.html",
        {
            "offer": offer,
            "variants": [(v, v.weight / total * (100 - offer.holdout_percent)) for v in variants],
            "starts_later": offer.starts_at > timezone.now(),
        },
    )


# What the preview calls each of the offer's own words when it says which are not translated.
WORD_LABELS = {
    ("offer", "name"): lambda: _("the offer's name"),
    ("offer", "promise"): lambda: _("the promise"),
    ("product", "name"): lambda: _("the product's name"),
    ("product", "description"): lambda: _("the product's description"),
}


@readers
@require_GET
def offer_preview(request, slug):
    """The landing page exactly as a customer sees it, for any variant and language."""
    from offers.landing import landing_context  # built with the public landing page

    offer = selectors.offer_get(slug=slug)
    variants = list(offer.variants.all())
    variant = next((v for v in variants if v.name == request.GET.get("variant")), variants[0])
    languages = dict(settings.LANGUAGES)
    language = request.GET.get("lang") if request.GET.get("lang") in languages else translation.get_language()
    with translation.override(language):  # the whole preview page is in the language it shows
        # The offer's own words that have no translation in this language, and so show the
        # main (English) text: the marketer sees what is left to translate.
        untranslated = [WORD_LABELS["offer", f]() for f in fell_back(offer, language)]
        untranslated += [WORD_LABELS["product", f]() for f in fell_back(offer.product, language)]
        context = landing_context(offer=offer, variant=variant, language=language, at=timezone.now())
        context.update(
            {
                "fell_back": untranslated,
                "offer": offer,
                "preview_variant": variant,
                "preview_language": language,
                "variants": variants,
                "languages": settings.LANGUAGES,
                "preview": True,
            }
        )
        return render(request, "console/offer_preview.html", context)


@readers
@require_GET
def planning(request):
    """The minimum-detectable-effect table for the offer form, recomputed as fields change.
    A refused input is a 400 with ``{"errors": {"<parameter>": ["message"]}}`` saying what is
    allowed, and ``error``, the same words in one line for the form's table."""
    form = PlanningForm(request.GET)
    rows = form.table()
    if rows is None:
        errors = {name: list(messages) for name, messages in form.errors.items()}
        return JsonResponse({"errors": errors, "error": " ".join(m for ms in errors.values() for m in ms)}, status=400)
    return JsonResponse({"rows": [row.__dict__ for row in rows]})


# --- Products --------------------------------------------------------------------------------
@readers
@require_GET
def product_list(request):
    return render(
        request,
        "console/product_list.html",
        {"products": selectors.product_list(), "can_manage": _can_manage(request.user)},
    )


def _product_form_page(request, *, product: Product | None):
    posted = request.method == "POST"
    form = ProductForm(request.POST if posted else None, request.FILES if posted else None, product=product)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        values = {
            "sku": data["sku"],
            "name": data["name"],
            "description": data["description"],
            "price_amount": data["price_amount"],
            "currency": data["currency"],
            "interval": data["interval"],
        }
        if data.get("image"):
            values["image"] = data["image"]
        try:
            with transaction.atomic():  # the product and its translations, or neither
                if product is None:
                    product = services.product_create(**values)
                else:
                    product = services.product_update(product=product, **values)
                words_set(obj=product, words=form.words())
        except ValidationError as exc:
            for name, field_messages in exc.message_dict.items():
                for message in field_messages:
                    form.add_error(name if name in form.fields else None, message)
        else:
            messages.success(request, _("Product saved. Its price is being set up at Stripe."))
            return redirect("console:products")
    return render(
        request,
        "console/product_form.html",
        {"form": form, "product": product},
        status=400 if form.is_bound and form.errors else 200,
    )


@managers
@require_http_methods(["GET", "POST"])
def product_new(request):
    return _product_form_page(request, product=None)


@managers
@require_http_methods(["GET", "POST"])
def product_edit(request, sku):
    return _product_form_page(request, product=selectors.product_get(sku=sku))
