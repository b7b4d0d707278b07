"""What every JSON API view shares: the base view, the shape of errors, and the
fields for money and moments.

Every error the API gives is ``{"errors": {"<field>": ["message", ...]}}``; messages that belong
to no one field are under ``non_field_errors``. The parser (config/api_parsers.py, apart because DRF's
APIView imports it while this module imports APIView) and the handler are DRF's defaults in
config/settings.py; a path under /api/v1/ that matches no route answers the same way
(``api_not_found``, routed in config/urls.py).
"""

import re
from datetime import UTC

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler

from accounts.api import RolePermission
from config.api_parsers import BodyTooLarge
from offers.money import AMOUNT_PATTERN, MoneyError, currency_check, to_major, to_minor

NOT_FOUND = "There is nothing at this address of the API; see /api/v1/openapi.json for the routes."


# --- Errors ------------------------------------------------------------------------------------
def _messages(detail, path: tuple = ()) -> list[str]:
    """DRF's nested error details as plain sentences: ``Item 2, weight: A valid integer is required.``"""
    if isinstance(detail, list) and not any(isinstance(item, dict | list) for item in detail):
        where = ", ".join(f"item {step + 1}" if isinstance(step, int) else str(step) for step in path)
        prefix = f"{where[:1].upper()}{where[1:]}: " if where else ""
        # A message may quote the input, and a lone surrogate in it could not be encoded as UTF-8.
        return [f"{prefix}{message}".encode(errors="backslashreplace").decode() for message in detail]
    if isinstance(detail, list):
        detail = dict(enumerate(detail))
    if isinstance(detail, dict):
        return [message for key, value in detail.items() for message in _messages(value, (*path, key))]
    return _messages([detail], path)


def api_exception_handler(exc, context):
    """DRF's handler, with every error reshaped to ``{"errors": {field: [messages]}}``."""
    if isinstance(exc, RequestDataTooBig):
        # Django's own limit on a body read in one piece: its HTML 400 is not the API's answer.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE / (1024 * 1024)
        exc = BodyTooLarge(f"The body is too large: this endpoint takes at most {limit:g} MB.")
    response = exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(data, dict) and set(data) == {"detail"} and not isinstance(exc, exceptions.ValidationError):
        errors = {"non_field_errors": [str(data["detail"])]}
    elif isinstance(data, dict):
        errors = {str(key): _messages(value) for key, value in data.items()}
    else:
        errors = {"non_field_errors": _messages(data)}
    response.data = {"errors": errors}
    return response


def rules_broken(by_field: dict[str, list[str]], *, renamed: dict[str, str] | None = None):
    """The services' errors (a ValidationError's message_dict) under the API's field names."""
    renamed = {"__all__": "non_field_errors", **(renamed or {})}
    errors: dict[str, list[str]] = {}
    for name, messages in by_field.items():
        errors.setdefault(renamed.get(name, name), []).extend(messages)
    return exceptions.ValidationError(errors)


@csrf_exempt  # a key, never a cookie, speaks to the API; a POST to nowhere is a 404, not a CSRF 403
def api_not_found(request, *args, **kwargs):
    """Any path under /api/v1/ that no route matches: the API's 404, not the site's HTML page."""
    return JsonResponse({"errors": {"non_field_errors": [NOT_FOUND]}}, status=404)


class ErrorsSerializer(serializers.Serializer):
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages by field; non_field_errors for those about the request as a whole.",
    )


def api_errors(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorsSerializer, description=description)


READ_ERRORS = {
    401: api_errors("No key, or a key that is not valid."),
    403: api_errors("The key's user has no role that may read this."),
    404: api_errors("Not found."),
}
WRITE_ERRORS = {
    400: api_errors("The body is not valid JSON, or breaks a rule; the messages say which field and why."),
    401: api_errors("No key, or a key that is not valid."),
    403: api_errors("Only marketers and staff may change the catalogue and offers."),
    413: api_errors("The body is too large."),
    415: api_errors("The body is not JSON (send Content-Type: application/json)."),
}


class ApiView(APIView):
    permission_classes = [RolePermission]

    @staticmethod
    def read_query(request, serializer_class) -> dict:
        """The query string, validated by ``serializer_class``: the values given, without defaults
        for those left out. A parameter given empty ("?as_of=") is refused with its name: DRF would
        read it as absent, or for a boolean as false, and quietly answer another question."""
        given = serializer_class(data=request.query_params)
        empty = {
            name: ["Give a value, or leave the parameter out for its default."]
            for name in given.fields
            if name in request.query_params and not request.query_params[name].strip()
        }
        if empty:
            raise exceptions.ValidationError(empty)
        given.is_valid(raise_exception=True)
        return dict(given.validated_data)


# --- Fields ------------------------------------------------------------------------------------
@extend_schema_field({"type": "string", "pattern": AMOUNT_PATTERN, "example": "24.00"})
class AmountField(serializers.Field):
    """An amount as a decimal string in major units (``"12.50"``). Floats are refused: they
    cannot hold most cents exactly. The text is checked here against the pattern the OpenAPI
    document gives; the serializer turns it into minor units with ``minor_units`` once the
    currency is known."""

    default_error_messages = {"invalid": "Write the amount as a decimal string in major units, like “12.50”."}

    def to_internal_value(self, data):
        if not isinstance(data, str) or not re.fullmatch(AMOUNT_PATTERN, data):
            self.fail("invalid")
        return data

    def to_representation(self, value):
        return str(value)


def minor_units(amount: str, currency: str, errors: dict, name: str, *, label: str = "") -> int | None:
    """``offers.money.to_minor`` (which bounds the amount by the column), its refusal filed
    under ``name`` in ``errors``."""
    try:
        return to_minor(amount, currency)
    except MoneyError as exc:
        errors.setdefault(name, []).append(f"{label}{exc}")
        return None


def major_units(minor: int | None, currency: str) -> str | None:
    return None if minor is None else str(to_major(minor, currency))


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 timestamp that carries its offset. A naive one is refused rather than
    guessed: the same wall-clock time is a different moment in each time zone. Whether the
    moment is in the range the product accepts is a rule (offers/validation.py)."""

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


def created(data, location: str) -> Response:
    return Response(data, status=status.HTTP_201_CREATED, headers={"Location": location})


def rule_text(*, max_length: int | None = None, pattern: str | None = None, required: bool = True, **options):
    """A string field whose limits the rules check (offers/validation.py), so that the console and
    the API refuse the same values in the same words; the OpenAPI document still states them.
    Whitespace is kept as sent, so that what the document allows is exactly what is checked."""
    schema: dict = {"type": "string"}
    if required:
        schema["minLength"] = 1
    if max_length is not None:
        schema["maxLength"] = max_length
    if pattern is not None:
        schema["pattern"] = pattern
    if options.get("allow_null"):
        schema["nullable"] = True
    field_class = extend_schema_field(schema)(type("RuleTextField", (serializers.CharField,), {}))
    return field_class(allow_blank=True, trim_whitespace=False, required=required, **options)


CURRENCY_PATTERN = r"^[A-Za-z]{3}$"


def currency_or_error(code: str, errors: dict, name: str = "currency") -> str | None:
    """The ISO 4217 code in capitals, or None with the reason filed in ``errors``."""
    try:
        if not re.fullmatch(CURRENCY_PATTERN, code or ""):
            raise MoneyError(f"“{code or '(empty)'}” is not a currency code in use (ISO 4217, e.g. EUR, USD, GBP).")
        return currency_check(code)
    except MoneyError as exc:
        errors.setdefault(name, []).append(str(exc))
        return None
