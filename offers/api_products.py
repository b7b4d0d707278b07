"""The catalogue through the JSON API: ``POST /api/v1/products`` and ``GET /api/v1/products/<sku>``.

The view turns JSON into what the console's form produces (the price in minor units) and calls
the same service, so both give the same answers in the same words (offers/validation.py).
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers
from rest_framework.response import Response

from config.api import (
    CURRENCY_PATTERN,
    READ_ERRORS,
    WRITE_ERRORS,
    AmountField,
    ApiView,
    created,
    currency_or_error,
    major_units,
    minor_units,
    rule_text,
    rules_broken,
)
from offers import selectors, services
from offers.models import Product
from offers.validation import MAX_DESCRIPTION, MAX_NAME, MAX_SKU, SLUG


class ProductInputSerializer(serializers.Serializer):
    sku = rule_text(
        max_length=MAX_SKU, pattern=SLUG.pattern, help_text="Lower-case letters, digits and hyphens, like beans-1kg."
    )
    name = rule_text(max_length=MAX_NAME)
    description = rule_text(max_length=MAX_DESCRIPTION, required=False)
    price = AmountField(help_text="The paid price in major units, like “24.00”.")
    currency = rule_text(pattern=CURRENCY_PATTERN, help_text="ISO 4217 code, like EUR.")
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
        return major_units(product.price_amount, product.currency)

    def get_interval(self, product: Product) -> str | None:
        return product.interval or None


def _product_arguments(data: dict) -> dict:
    errors: dict[str, list[str]] = {}
    arguments = {
        "sku": data["sku"],
        "name": data["name"],
        "description": data.get("description", ""),
        "interval": data.get("interval") or "",
    }
    currency = currency_or_error(data["currency"], errors)
    if currency is not None:
        arguments["currency"] = currency
        arguments["price_amount"] = minor_units(data["price"], currency, errors, "price")
    if errors:
        raise exceptions.ValidationError(errors)
    return arguments


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
        try:
            product = services.product_create(**_product_arguments(given.validated_data))
        except DjangoValidationError as exc:
            raise rules_broken(exc.message_dict) from None
        return created(ProductSerializer(product).data, reverse("api_product", kwargs={"sku": product.sku}))


class ProductDetailView(ApiView):
    @extend_schema(
        operation_id="products_retrieve",
        tags=["catalogue"],
        summary="Read one product",
        responses={200: ProductSerializer, **READ_ERRORS},
    )
    def get(self, request, sku):
        return Response(ProductSerializer(selectors.product_get(sku=sku)).data)
