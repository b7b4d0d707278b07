"""The catalogue and offers through the JSON API: ``/api/v1/products`` and ``/api/v1/offers``.

The views turn JSON into the values the console's forms produce (amounts in minor units, aware
datetimes, a product object) and call the same services, so both give the same answers. Every
error comes back as ``{"errors": {"<field>": ["message", ...]}}``; messages that belong to no
one field are under ``non_field_errors``. Nothing is written unless the whole request is valid.
"""

import re
from datetime import UTC

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api import RolePermission
from billing.gateway import GatewayError, GatewayUnavailable
from offers import services
from offers.models import Offer, Product, Variant
from offers.money import MoneyError, currency_check, to_major, to_minor
from offers.validation import OFFER_FIELDS, VariantSpec

# The columns' limits, so that no number the rules let through can overflow the database.
SMALLINT_MAX = 32767
INT_MAX = 2147483647
AMOUNT = re.compile(r"-?[0-9]{1,20}(\.[0-9]{1,20})?")


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the offer."


class PaymentsUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The payment provider could not be reached; nothing was changed. Try again in a minute."


class PaymentsRefused(exceptions.APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_detail = "The payment provider refused to set up the product's price; nothing was changed."


def _rules_broken(exc: DjangoValidationError, *, renamed: dict[str, str] | None = None) -> exceptions.ValidationError:
    """The services' errors under the API's field names."""
    renamed = {"__all__": "non_field_errors", **(renamed or {})}
    errors: dict[str, list[str]] = {}
    for name, messages in exc.message_dict.items():
        errors.setdefault(renamed.get(name, name), []).extend(messages)
    return exceptions.ValidationError(errors)


# --- Fields ------------------------------------------------------------------------------------
@extend_schema_field({"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$", "example": "24.00"})
class AmountField(serializers.Field):
    """An amount as a decimal string in major units (``"12.50"``). Floats are refused: they
    cannot hold most cents exactly."""

    default_error_messages = {"invalid": "Write the amount as a decimal string in major units, like “12.50”."}

    def to_internal_value(self, data):
        if not isinstance(data, str) or not AMOUNT.fullmatch(data.strip()):
            self.fail("invalid")
        return data.strip()

    def to_representation(self, value):
        return str(value)


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 timestamp that carries its offset. A naive one is refused rather than
    guessed: the same wall-clock time is a different moment in each time zone."""

    default_error_messages = {
        "invalid": "Give an ISO 8601 timestamp with an offset, like 2026-06-01T09:00:00+02:00 or 2026-06-01T07:00:00Z.",
        "naive": "This timestamp has no offset, so it could mean several moments; add one, like +02:00 or Z.",
        "range": "This timestamp is out of range.",
    }

    def to_internal_value(self, value):
        if not isinstance(value, str):
            self.fail("invalid")
        try:
            parsed = parse_datetime(value.strip())
        except ValueError:
            parsed = None
        if parsed is None:
            self.fail("invalid")
        if parsed.utcoffset() is None:
            self.fail("naive")
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            self.fail("range")


def _amount(minor: int | None, currency: str) -> str | None:
    return None if minor is None else str(to_major(minor, currency))


# --- Products ----------------------------------------------------------------------------------
class ProductInputSerializer(serializers.Serializer):
    sku = serializers.CharField(allow_blank=True, help_text="Lower-case letters, digits and hyphens, like beans-1kg.")
    name = serializers.CharField(allow_blank=True, max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    price = AmountField(help_text="The paid price in major units, like “24.00”.")
    currency = serializers.CharField(help_text="ISO 4217 code, like EUR.")
    interval = serializers.ChoiceField(
        choices=[("month", "month"), ("year", "year")], required=False, allow_null=True, allow_blank=True,
        help_text="null (or absent) for a one-off product; month or year for a subscription.",
    )  # fmt: skip


class ProductSerializer(serializers.Serializer):
    sku = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    price = serializers.SerializerMethodField()
    currency = serializers.CharField()
    interval = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_price(self, product: Product) -> str:
        return _amount(product.price_amount, product.currency)

    def get_interval(self, product: Product) -> str | None:
        return product.interval or None


def _product_arguments(data: dict) -> dict:
    errors = {}
    currency = data["currency"]
    arguments = {"sku": data["sku"], "name": data["name"], "description": data.get("description", "")}
    arguments["interval"] = data.get("interval") or ""
    try:
        currency = currency_check(currency)
    except MoneyError as exc:
        errors["currency"] = [str(exc)]
    else:
        arguments["price_amount"] = _minor(data["price"], currency, "price", errors)
    if errors:
        raise exceptions.ValidationError(errors)
    arguments["currency"] = currency
    return arguments


def _minor(amount: str, currency: str, name: str, errors: dict, label: str = "") -> int | None:
    try:
        minor = to_minor(amount, currency)
    except MoneyError as exc:
        errors.setdefault(name, []).append(f"{label}{exc}")
        return None
    if abs(minor) > INT_MAX:
        errors.setdefault(name, []).append(f"{label}“{amount}” is too large an amount.")
        return None
    return minor


# --- Offers ------------------------------------------------------------------------------------
class VariantInputSerializer(serializers.Serializer):
    name = serializers.CharField(allow_blank=True, help_text="Lower-case letters, digits, - and _; not “holdout”.")
    weight = serializers.IntegerField(required=False, default=1, max_value=INT_MAX)
    kind = serializers.ChoiceField(
        choices=Offer.Kind.choices, required=False, allow_blank=True, allow_null=True,
        help_text="Overrides the offer's kind for this arm; empty or null to keep it.",
    )  # fmt: skip
    trial_days = serializers.IntegerField(required=False, allow_null=True)
    trial_price = AmountField(required=False, allow_null=True, help_text="Overrides the offer's trial price.")


class OfferInputSerializer(serializers.Serializer):
    slug = serializers.CharField(allow_blank=True, help_text="The address /o/<slug>/, like coffee-sampler.")
    name = serializers.CharField(allow_blank=True, max_length=200)
    promise = serializers.CharField(
        required=False, allow_blank=True, max_length=200,
        help_text="One line: what the customer should get from the sample.",
    )  # fmt: skip
    kind = serializers.ChoiceField(choices=Offer.Kind.choices)
    physical = serializers.BooleanField(required=False)
    product_sku = serializers.CharField(allow_blank=True, help_text="The SKU of the paid product the offer leads to.")
    trial_days = serializers.IntegerField()
    trial_price = AmountField(required=False, help_text="In major units; “0.00” (the default) for free.")
    currency = serializers.CharField(help_text="ISO 4217; the product's currency.")
    eligibility = serializers.ChoiceField(choices=Offer.Eligibility.choices, required=False)
    recent_purchase_days = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=SMALLINT_MAX
    )
    allowed_countries = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="ISO 3166 codes; empty for everywhere."
    )
    inventory = serializers.IntegerField(required=False, allow_null=True, max_value=INT_MAX)
    daily_limit = serializers.IntegerField(required=False, allow_null=True, max_value=INT_MAX)
    starts_at = AwareDateTimeField()
    ends_at = AwareDateTimeField(required=False, allow_null=True)
    grace_days = serializers.IntegerField(required=False)
    sample_cost = AmountField(required=False)
    reminder_days = serializers.ListField(
        child=serializers.IntegerField(), required=False, allow_null=True,
        help_text="Days before the trial's end; null for the default schedule.",
    )  # fmt: skip
    feedback_survey = serializers.BooleanField(required=False)
    holdout_percent = serializers.IntegerField(required=False)
    variants = VariantInputSerializer(many=True, required=False)


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
        return _amount(variant.trial_price, variant.offer.currency)

    def get_effective_trial_price(self, variant: Variant) -> str:
        return _amount(variant.effective_trial_price, variant.offer.currency)


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
        return _amount(offer.trial_price, offer.currency)

    def get_sample_cost(self, offer: Offer) -> str:
        return _amount(offer.sample_cost, offer.currency)


def _offer_arguments(data: dict, *, offer: Offer | None = None) -> tuple[dict, list[VariantSpec] | None]:
    """The API's fields as the services take them: a product object instead of its SKU, and
    amounts in minor units of the offer's currency."""
    errors: dict[str, list[str]] = {}
    values = {name: value for name, value in data.items() if name in OFFER_FIELDS}
    if "product_sku" in data:
        values["product"] = Product.objects.filter(sku=data["product_sku"]).first()
    try:
        currency = currency_check(data.get("currency") or getattr(offer, "currency", ""))
    except MoneyError as exc:
        raise exceptions.ValidationError({"currency": [str(exc)]}) from None
    if "currency" in data:
        values["currency"] = currency
    for name in ("trial_price", "sample_cost"):
        if name in data:
            values[name] = _minor(data[name], currency, name, errors)
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
                    trial_price=None if price is None else _minor(price, currency, "variants", errors, label),
                )
            )
    if errors:
        raise exceptions.ValidationError(errors)
    return values, variants


def _offer_rules_broken(exc: DjangoValidationError, data: dict) -> exceptions.ValidationError:
    broken = _rules_broken(exc, renamed={"product": "product_sku"})
    if "product_sku" in broken.detail and "product_sku" in data:
        # The console picks from a list; through the API the usual cause is a mistyped SKU.
        broken.detail["product_sku"] = [
            f"The product “{data['product_sku']}” does not exist; create it with POST /api/v1/products first."
        ]
    return broken


def _offer_get(slug: str) -> Offer:
    offer = Offer.objects.select_related("product").prefetch_related("variants").filter(slug=slug).first()
    if offer is None:
        raise exceptions.NotFound(f"There is no offer with the slug “{slug}”.")
    return offer


# --- Views -------------------------------------------------------------------------------------
class ErrorsSerializer(serializers.Serializer):
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages by field; non_field_errors for those about the request as a whole.",
    )


def _errors(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorsSerializer, description=description)


READ_ERRORS = {
    401: _errors("No key, or a key that is not valid."),
    403: _errors("The key's user has no role that may read this."),
    404: _errors("Not found."),
}
WRITE_ERRORS = {
    400: _errors("The body is not valid JSON, or breaks a rule; the messages say which field and why."),
    401: _errors("No key, or a key that is not valid."),
    403: _errors("Only marketers and staff may change the catalogue and offers."),
}


class ApiView(APIView):
    permission_classes = [RolePermission]


class ProductListView(ApiView):
    @extend_schema(
        operation_id="products_create",
        tags=["catalogue"],
        summary="Add a product to the catalogue",
        request=ProductInputSerializer,
        responses={201: ProductSerializer, **WRITE_ERRORS},
    )
    def post(self, request):
        given = ProductInputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        arguments = _product_arguments(given.validated_data)
        try:
            product = services.product_create(**arguments)
        except DjangoValidationError as exc:
            raise _rules_broken(exc) from None
        except IntegrityError:
            # Another request created the same SKU between the check and the insert.
            if not Product.objects.filter(sku=arguments["sku"]).exists():
                raise
            raise exceptions.ValidationError(
                {"sku": [f"There is already a product with the SKU “{arguments['sku']}”."]}
            ) from None
        return Response(
            ProductSerializer(product).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": reverse("api_product", kwargs={"sku": product.sku})},
        )


class ProductDetailView(ApiView):
    @extend_schema(
        operation_id="products_retrieve",
        tags=["catalogue"],
        summary="Read one product",
        responses={200: ProductSerializer, **READ_ERRORS},
    )
    def get(self, request, sku):
        product = Product.objects.filter(sku=sku).first()
        if product is None:
            raise exceptions.NotFound(f"There is no product with the SKU “{sku}”.")
        return Response(ProductSerializer(product).data)


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
        except IntegrityError:
            # Another request took the same slug between the check and the insert.
            if not Offer.objects.filter(slug=values["slug"]).exists():
                raise
            raise exceptions.ValidationError(
                {"slug": [f"The address /o/{values['slug']}/ is taken by another offer; choose another slug."]}
            ) from None
        return Response(
            OfferSerializer(_offer_get(offer.slug)).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": reverse("api_offer", kwargs={"slug": offer.slug})},
        )


class OfferDetailView(ApiView):
    @extend_schema(
        operation_id="offers_retrieve",
        tags=["offers"],
        summary="Read one offer, its status, variants and claims",
        responses={200: OfferSerializer, **READ_ERRORS},
    )
    def get(self, request, slug):
        return Response(OfferSerializer(_offer_get(slug)).data)

    @extend_schema(
        operation_id="offers_partial_update",
        tags=["offers"],
        summary="Change an offer's configuration",
        description=(
            "Give only the fields to change; `variants`, when given, replaces them all. "
            "Once launched, the holdout and the variants' weights are locked."
        ),
        request=OfferInputSerializer,
        responses={200: OfferSerializer, **WRITE_ERRORS, 404: _errors("Not found.")},
    )
    def patch(self, request, slug):
        offer = _offer_get(slug)
        given = OfferInputSerializer(data=request.data, partial=True)
        given.is_valid(raise_exception=True)
        values, variants = _offer_arguments(given.validated_data, offer=offer)
        try:
            offer = services.offer_update(offer=offer, actor=request.user, values=values, variants=variants)
        except DjangoValidationError as exc:
            raise _offer_rules_broken(exc, given.validated_data) from None
        except IntegrityError:
            if "slug" not in values or not Offer.objects.filter(slug=values["slug"]).exclude(pk=offer.pk).exists():
                raise
            raise exceptions.ValidationError(
                {"slug": [f"The address /o/{values['slug']}/ is taken by another offer; choose another slug."]}
            ) from None
        return Response(OfferSerializer(_offer_get(offer.slug)).data)


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
            403: _errors("Only marketers and staff may launch offers."),
            409: _errors("The offer is not a draft, or its configuration no longer passes the rules."),
            502: _errors("The payment provider refused to set up the product's price."),
            503: _errors("The payment provider could not be reached."),
        },
    )
    def post(self, request, slug):
        offer = _offer_get(slug)
        try:
            offer = services.offer_launch(offer=offer, actor=request.user)
        except services.TransitionNotAllowed as exc:
            raise Conflict({"status": [str(exc)]}) from None
        except DjangoValidationError as exc:
            # The request itself is fine; the offer, as it stands, cannot be launched.
            raise Conflict(_rules_broken(exc, renamed={"product": "product_sku"}).detail) from None
        except GatewayUnavailable:
            raise PaymentsUnavailable() from None
        except GatewayError:
            raise PaymentsRefused() from None
        return Response(OfferSerializer(_offer_get(offer.slug)).data)
