"""Offers through the JSON API: ``/api/v1/offers``, ``/api/v1/offers/<slug>`` and its launch.

The views turn JSON into the values the console's forms produce (amounts in minor units, aware
datetimes, a product object) and call the same services, so both give the same answers in the
same words (offers/validation.py). Nothing is written unless the whole request is valid.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response

from billing.gateway import GatewayError, GatewayUnavailable
from config.api import (
    CURRENCY_PATTERN,
    READ_ERRORS,
    WRITE_ERRORS,
    AmountField,
    ApiView,
    AwareDateTimeField,
    api_errors,
    created,
    currency_or_error,
    major_units,
    minor_units,
    rule_text,
    rules_broken,
)
from config.limits import INT_MAX, SMALLINT_MAX
from offers import selectors, services
from offers.models import Offer, Variant
from offers.validation import (
    MAX_NAME,
    MAX_PROMISE,
    MAX_REMINDERS,
    MAX_SKU,
    MAX_SLUG,
    MAX_VARIANTS,
    OFFER_FIELDS,
    SLUG,
    VARIANT_NAME,
    VariantSpec,
)


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the offer."


class PaymentsUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The payment provider could not be reached; nothing was changed. Try again in a minute."


class PaymentsRefused(exceptions.APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_detail = "The payment provider refused to set up the product's price; nothing was changed."


# --- Input ---------------------------------------------------------------------------------------
class VariantInputSerializer(serializers.Serializer):
    name = rule_text(
        pattern=VARIANT_NAME.pattern, help_text="Lower-case letters, digits, - and _ (40 at most); not “holdout”."
    )
    weight = serializers.IntegerField(required=False, default=1, max_value=INT_MAX)
    kind = serializers.ChoiceField(
        choices=Offer.Kind.choices, required=False, allow_blank=True, allow_null=True,
        help_text="Overrides the offer's kind for this arm; empty or null to keep it.",
    )  # fmt: skip
    trial_days = serializers.IntegerField(required=False, allow_null=True)
    trial_price = AmountField(required=False, allow_null=True, help_text="Overrides the offer's trial price.")


class OfferInputSerializer(serializers.Serializer):
    slug = rule_text(
        max_length=MAX_SLUG, pattern=SLUG.pattern, help_text="The address /o/<slug>/, like coffee-sampler."
    )
    name = rule_text(max_length=MAX_NAME)
    promise = rule_text(
        max_length=MAX_PROMISE, required=False, help_text="One line: what the customer should get from the sample."
    )
    kind = serializers.ChoiceField(choices=Offer.Kind.choices)
    physical = serializers.BooleanField(required=False)
    product_sku = rule_text(max_length=MAX_SKU, help_text="The SKU of the paid product the offer leads to.")
    trial_days = serializers.IntegerField(help_text="From 1 to 366.")
    trial_price = AmountField(required=False, help_text="In major units; “0.00” (the default) for free.")
    currency = rule_text(pattern=CURRENCY_PATTERN, help_text="ISO 4217; the product's currency.")
    eligibility = serializers.ChoiceField(choices=Offer.Eligibility.choices, required=False)
    recent_purchase_days = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=SMALLINT_MAX
    )
    allowed_countries = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="ISO 3166 codes; empty for everywhere."
    )
    inventory = serializers.IntegerField(required=False, allow_null=True, max_value=INT_MAX)
    daily_limit = serializers.IntegerField(required=False, allow_null=True, max_value=INT_MAX)
    starts_at = AwareDateTimeField(help_text="From 2000 to at most 10 years ahead.")
    ends_at = AwareDateTimeField(required=False, allow_null=True, help_text="After the start; at most 10 years ahead.")
    grace_days = serializers.IntegerField(required=False, help_text="From 0 to 90.")
    sample_cost = AmountField(required=False)
    reminder_days = serializers.ListField(
        child=serializers.IntegerField(), required=False, allow_null=True,
        help_text=f"Days before the trial's end, at most {MAX_REMINDERS}; null for the default schedule.",
    )  # fmt: skip
    feedback_survey = serializers.BooleanField(required=False)
    holdout_percent = serializers.IntegerField(required=False, help_text="From 0 to 99.")
    variants = VariantInputSerializer(
        many=True, required=False, help_text=f"From 1 to {MAX_VARIANTS}; kept by name when an offer changes."
    )


# --- Output --------------------------------------------------------------------------------------
class VariantSerializer(serializers.Serializer):
    name = serializers.CharField()
    weight = serializers.IntegerField()
    kind = serializers.SerializerMethodField()
    trial_days = serializers.IntegerField(allow_null=True)
    trial_price = serializers.SerializerMethodField()
    effective_kind = serializers.CharField()
    effective_trial_days = serializers.IntegerField()
    effective_trial_price = serializers.SerializerMethodField()

    def get_kind(self, variant: Variant) -> str | None:
        return variant.kind or None

    def get_trial_price(self, variant: Variant) -> str | None:
        return major_units(variant.trial_price, variant.offer.currency)

    def get_effective_trial_price(self, variant: Variant) -> str:
        return major_units(variant.effective_trial_price, variant.offer.currency)


class OfferSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    promise = serializers.CharField()
    kind = serializers.CharField()
    physical = serializers.BooleanField()
    product_sku = serializers.CharField(source="product.sku")
    status = serializers.CharField()
    trial_days = serializers.IntegerField()
    trial_price = serializers.SerializerMethodField()
    currency = serializers.CharField()
    eligibility = serializers.CharField()
    recent_purchase_days = serializers.IntegerField(allow_null=True)
    allowed_countries = serializers.ListField(child=serializers.CharField())
    inventory = serializers.IntegerField(allow_null=True)
    daily_limit = serializers.IntegerField(allow_null=True)
    claimed_count = serializers.IntegerField()
    remaining = serializers.IntegerField(allow_null=True, help_text="Claims left; null when there is no inventory.")
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField(allow_null=True)
    grace_days = serializers.IntegerField()
    sample_cost = serializers.SerializerMethodField()
    reminder_days = serializers.ListField(child=serializers.IntegerField())
    feedback_survey = serializers.BooleanField()
    holdout_percent = serializers.IntegerField()
    variants = VariantSerializer(many=True, source="variants.all")
    launched_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_trial_price(self, offer: Offer) -> str:
        return major_units(offer.trial_price, offer.currency)

    def get_sample_cost(self, offer: Offer) -> str:
        return major_units(offer.sample_cost, offer.currency)


def _offer_arguments(data: dict, *, offer: Offer | None = None) -> tuple[dict, list[VariantSpec] | None]:
    """The API's fields as the services take them: a product object instead of its SKU, and
    amounts in minor units of the offer's currency."""
    errors: dict[str, list[str]] = {}
    values = {name: value for name, value in data.items() if name in OFFER_FIELDS}
    if "product_sku" in data:
        values["product"] = selectors.product_find(sku=data["product_sku"])
    currency = currency_or_error(data["currency"], errors) if "currency" in data else offer.currency
    if currency is None:
        raise exceptions.ValidationError(errors)
    if "currency" in data:
        values["currency"] = currency
    for name in ("trial_price", "sample_cost"):
        if name in data:
            values[name] = minor_units(data[name], currency, errors, name)
    variants = None
    if "variants" in data:
        variants = []
        for number, variant in enumerate(data["variants"], start=1):
            name = variant.get("name", "")
            price = variant.get("trial_price")
            label = f"Variant {number} (“{name}”): "
            variants.append(
                VariantSpec(
                    name=name,
                    weight=variant.get("weight", 1),
                    kind=variant.get("kind") or "",
                    trial_days=variant.get("trial_days"),
                    trial_price=None
                    if price is None
                    else minor_units(price, currency, errors, "variants", label=label),
                )
            )
    if errors:
        raise exceptions.ValidationError(errors)
    return values, variants


def _offer_rules_broken(exc: DjangoValidationError, data: dict) -> exceptions.ValidationError:
    broken = rules_broken(exc.message_dict, renamed={"product": "product_sku"})
    if "product_sku" in broken.detail and "product_sku" in data:
        # The console picks from a list; through the API the usual cause is a mistyped SKU.
        broken.detail["product_sku"] = [
            f"The product “{data['product_sku']}” does not exist; create it with POST /api/v1/products first."
        ]
    return broken


def _read(offer: Offer) -> dict:
    return OfferSerializer(selectors.offer_get(slug=offer.slug)).data


# --- Views ---------------------------------------------------------------------------------------
class OfferListView(ApiView):
    @extend_schema(
        operation_id="offers_create",
        tags=["offers"],
        summary="Create a draft offer",
        description="Validated exactly as in the console. A window in the past is allowed, to import history.",
        request=OfferInputSerializer,
        responses={201: OfferSerializer, **WRITE_ERRORS},
    )
    def post(self, request):
        given = OfferInputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        values, variants = _offer_arguments(given.validated_data)
        try:
            offer = services.offer_create(actor=request.user, values=values, variants=variants)
        except DjangoValidationError as exc:
            raise _offer_rules_broken(exc, given.validated_data) from None
        return created(_read(offer), reverse("api_offer", kwargs={"slug": offer.slug}))


class OfferDetailView(ApiView):
    @extend_schema(
        operation_id="offers_retrieve",
        tags=["offers"],
        summary="Read one offer, its status, variants and claims",
        responses={200: OfferSerializer, **READ_ERRORS},
    )
    def get(self, request, slug):
        return Response(OfferSerializer(selectors.offer_get(slug=slug)).data)

    @extend_schema(
        operation_id="offers_partial_update",
        tags=["offers"],
        summary="Change an offer's configuration",
        description=(
            "Give only the fields to change. `variants`, when given, is the whole new list, matched by name: "
            "a variant keeps its customers under its name, a new name adds one, and a variant customers are "
            "assigned to cannot be removed or renamed. Once launched, the holdout and the variants' weights "
            "are locked."
        ),
        request=OfferInputSerializer,
        responses={200: OfferSerializer, **WRITE_ERRORS, 404: api_errors("Not found.")},
    )
    def patch(self, request, slug):
        offer = selectors.offer_get(slug=slug)
        given = OfferInputSerializer(data=request.data, partial=True)
        given.is_valid(raise_exception=True)
        values, variants = _offer_arguments(given.validated_data, offer=offer)
        try:
            offer = services.offer_update(offer=offer, actor=request.user, values=values, variants=variants)
        except DjangoValidationError as exc:
            raise _offer_rules_broken(exc, given.validated_data) from None
        return Response(_read(offer))


class OfferLaunchView(ApiView):
    @extend_schema(
        operation_id="offers_launch",
        tags=["offers"],
        summary="Launch a draft offer",
        description=(
            "Scheduled if it starts later, live if it has started, ended at once if its whole window "
            "is past. The holdout and the variants' weights lock from here on."
        ),
        request=None,
        responses={
            200: OfferSerializer,
            **READ_ERRORS,
            403: api_errors("Only marketers and staff may launch offers."),
            409: api_errors("The offer is not a draft, or its configuration no longer passes the rules."),
            502: api_errors("The payment provider refused to set up the product's price."),
            503: api_errors("The payment provider could not be reached."),
        },
    )
    def post(self, request, slug):
        offer = selectors.offer_get(slug=slug)
        try:
            offer = services.offer_launch(offer=offer, actor=request.user)
        except services.TransitionNotAllowed as exc:
            raise Conflict({"status": [str(exc)]}) from None
        except DjangoValidationError as exc:
            # The request itself is fine; the offer, as it stands, cannot be launched.
            raise Conflict(rules_broken(exc.message_dict, renamed={"product": "product_sku"}).detail) from None
        except GatewayUnavailable:
            raise PaymentsUnavailable() from None
        except GatewayError:
            raise PaymentsRefused() from None
        return Response(_read(offer))
