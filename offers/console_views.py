"""The marketer console at /console/. Marketers (and staff) manage; executives read."""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.roles import EXECUTIVE, MARKETER, has_role, role_required
from analytics.planning import planning_table
from billing.gateway import GatewayError
from offers import selectors, services
from offers.forms import OfferForm, ProductForm, VariantFormSet, variant_initial
from offers.models import Offer, Product

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


def _planning_context(form: OfferForm) -> dict:
    def number(name, default, cast):
        try:
            return cast(form.data.get(name) or default) if form.is_bound else default
        except (TypeError, ValueError):
            return default

    weekly = number("expected_weekly", 1000, int)
    baseline = number("baseline_percent", 15.0, float)
    holdout = number("holdout_percent", form.initial.get("holdout_percent", 10), int)
    try:
        rows = planning_table(weekly_eligible=weekly, baseline=baseline / 100, holdout_percent=holdout)
    except ValueError as exc:
        rows, error = [], str(exc)
    else:
        error = ""
    return {"weekly": weekly, "baseline": baseline, "rows": rows, "error": error}


def _offer_form_page(request, *, offer: Offer | None):
    if request.method == "POST":
        form = OfferForm(request.POST, offer=offer)
        variants = VariantFormSet(request.POST, prefix="variants")
        if form.is_valid() and variants.is_valid():
            form.validate_with(variants)
            if not form.errors and not form.variant_errors:
                try:
                    if offer is None:
                        offer = services.offer_create(
                            actor=request.user, values=form.values, variants=form.variant_specs
                        )
                        messages.success(request, _("Draft saved. Preview it, then launch it when it is right."))
                    else:
                        services.offer_update(
                            offer=offer, actor=request.user, values=form.values, variants=form.variant_specs
                        )
                        messages.success(request, _("Changes saved."))
                    return redirect("console:offer", slug=offer.slug)
                except ValidationError as exc:  # a concurrent change made it invalid after all
                    form.apply_problems(exc.message_dict)
    else:
        form = OfferForm(offer=offer)
        variants = VariantFormSet(
            prefix="variants",
            initial=variant_initial(offer) if offer else [{"name": "default", "weight": 1}],
        )
    if offer is not None and offer.is_locked:
        for variant_form in variants:
            for name in ("name", "weight", "kind"):
                variant_form.fields[name].widget.attrs["readonly"] = True
    return render(
        request,
        "console/offer_form.html",
        {
            "form": form,
            "variants": variants,
            "offer": offer,
            "locked": offer is not None and offer.is_locked,
            "planning": _planning_context(form),
        },
        status=400 if form.is_bound and (form.errors or form.variant_errors or not variants.is_valid()) else 200,
    )


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
            "changes": offer.changes.select_related("actor")[:100],
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
@require_POST
def offer_action(request, slug, action):
    offer = selectors.offer_get(slug=slug)
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
    with translation.override(language):
        context = landing_context(offer=offer, variant=variant, language=language, at=timezone.now())
        context.update(
            {
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
    """The minimum-detectable-effect table for the offer form, recomputed as fields change."""
    try:
        weekly = int(request.GET.get("weekly", "1000"))
        baseline = float(request.GET.get("baseline", "15")) / 100
        holdout = float(request.GET.get("holdout", "10"))
        rows = planning_table(weekly_eligible=weekly, baseline=baseline, holdout_percent=holdout)
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
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
            if product is None:
                services.product_create(**values)
            else:
                services.product_update(product=product, **values)
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
