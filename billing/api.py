"""History imports through the JSON API: ``POST /api/v1/customers``, ``/api/v1/purchases`` and
``/api/v1/assignments``, each with a JSON list of records shaped like the rows of the CSV files
(docs/architecture.md, "Public contracts"). The same implementation as the command and the console
(billing.imports), with the source ``api``.

A refused import answers 400 with ``{"errors": {"non_field_errors": [...], "rows": [{"row": 3,
"field": "amount", "message": "..."}, ...]}}``, where ``row`` is the record's index in the list,
from 0. An import that went through answers 201 when it wrote something and 200 when everything
was there already, with the counts and, with ``?skip_invalid=true``, the records it left out.
"""

from dataclasses import asdict

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response

from billing.imports import ASSIGNMENTS, COLUMNS, CUSTOMERS, OUTCOMES, PURCHASES, ImportResult, history_import_records
from config.api import ApiView
from config.api_parsers import LargeJSONBodyParser

MAX_RECORDS = 100_000
MAX_BODY_BYTES = 100 * 1024 * 1024
TIMESTAMP = "ISO 8601 with an offset, like 2026-06-01T09:00:00+02:00."


# --- The records, for the OpenAPI document (the checks themselves are billing.imports') -------
def _text(help_text: str = ""):
    """Every key of a record may be missing or null (both mean empty), as the CSV's cells may be
    empty; whether a value may be empty is a rule of billing.imports, reported on its row. The
    words of those rules (an enum of outcomes, say) are in the help text, not the schema: with
    skip_invalid=true a record that breaks them is left out and reported, not refused."""
    return serializers.CharField(required=False, allow_null=True, allow_blank=True, help_text=help_text or None)


class CustomerRecordSerializer(serializers.Serializer):
    external_id = _text("The customer's id in your system; the import is idempotent by it.")
    email = _text("An existing account with this email (case, Gmail dots aside) is used.")
    created_at = _text(f"When the customer was created: {TIMESTAMP}")
    country = _text("ISO 3166-1 alpha-2, or empty.")


class PurchaseRecordSerializer(serializers.Serializer):
    external_id = _text("The purchase's id in your system; unique per source.")
    customer_external_id = _text("An imported customer's external_id.")
    product_sku = _text()
    # Not an enum in the document: "kind" names the offers' kinds there already.
    kind = _text("regular, trial_fee or sample.")
    amount = _text("Decimal string in major units, like “12.50”; negative for a refund.")
    currency = _text("ISO 4217, like EUR.")
    purchased_at = _text(TIMESTAMP)
    refund_of = _text("For a refund, the external_id of the purchase it refunds (sent through the API, earlier).")


class AssignmentRecordSerializer(serializers.Serializer):
    customer_external_id = _text()
    offer_slug = _text("An offer of any status, ended ones included.")
    arm = _text("A variant's name, or holdout.")
    assigned_at = _text(TIMESTAMP)
    claimed_at = _text("Empty if not.")
    trial_ends_at = _text()
    outcome = _text(f"For a claimed trial: {', '.join(OUTCOMES)}.")
    converted_at = _text()


class RowErrorSerializer(serializers.Serializer):
    row = serializers.IntegerField(allow_null=True, help_text="The record's index in the list, from 0.")
    field = serializers.CharField(help_text="The key at fault; empty for the record as a whole.")
    message = serializers.CharField()


class ImportSummarySerializer(serializers.Serializer):
    kind = serializers.CharField()
    records = serializers.IntegerField(help_text="Records in the list.")
    created = serializers.IntegerField()
    attached = serializers.IntegerField(help_text="Customers: existing accounts that got their external_id.")
    unchanged = serializers.IntegerField(help_text="Records that were there already, exactly so.")
    invalid = serializers.IntegerField(help_text="Records left out (only with skip_invalid=true).")
    trials_created = serializers.IntegerField(help_text="Assignments: trials written with claimed assignments.")
    trials_converted = serializers.IntegerField(help_text="Purchases: open trials the new purchases converted.")
    invalid_rows = RowErrorSerializer(many=True, help_text="Why each left-out record was left out.")


class ImportErrorsDetailSerializer(serializers.Serializer):
    # Not required: an error about one parameter (skip_invalid) is filed under its name.
    non_field_errors = serializers.ListField(child=serializers.CharField(), required=False)
    rows = RowErrorSerializer(many=True, required=False)


class ImportErrorsSerializer(serializers.Serializer):
    errors = ImportErrorsDetailSerializer()


def _errors(description: str) -> OpenApiResponse:
    return OpenApiResponse(ImportErrorsSerializer, description=description)


SKIP_INVALID = OpenApiParameter(
    "skip_invalid",
    OpenApiTypes.BOOL,
    OpenApiParameter.QUERY,
    description="true: write the valid records and report the others. Otherwise (the default) any invalid "
    "record means nothing is written.",
)
RESPONSES = {
    200: OpenApiResponse(ImportSummarySerializer, description="Nothing new: every valid record was there already."),
    201: OpenApiResponse(ImportSummarySerializer, description="Imported."),
    400: _errors("Not a JSON list, or invalid records (each one named, with its index); nothing was written."),
    401: _errors("No key, or a key that is not valid."),
    403: _errors("Only marketers and staff may import."),
    413: _errors(f"The body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MB."),
    415: _errors("The body is not JSON (send Content-Type: application/json)."),
}
DESCRIPTION = (
    "A JSON list of records with the columns of {file} as keys; every value a string (null or a missing key is "
    "empty). Idempotent: the same record again changes nothing, and the same {key} with other content is an "
    "error. All or nothing unless skip_invalid=true. At most {limit:,} records and {size} MB per request; use "
    "`manage.py import_history` for bigger files."
)


# --- Views ---------------------------------------------------------------------------------------
class ImportQuerySerializer(serializers.Serializer):
    skip_invalid = serializers.BooleanField(required=False, error_messages={"invalid": "Use true or false."})


MALFORMED = "{count} records are not shaped as documented (a JSON object of strings or nulls), so nothing was written."


def _malformed(records: list, columns: tuple[str, ...]) -> list[dict]:
    """Where the records are not what the document describes: not an object, or a value that
    is neither a string nor null. (A missing key is documented as empty; values are checked by
    billing.imports.)"""
    rows = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            rows.append(
                {
                    "row": index,
                    "field": "",
                    "message": f"Each record is a JSON object with the keys {', '.join(columns)}.",
                }
            )
            continue
        for name in columns:
            if record.get(name) is not None and not isinstance(record[name], str):
                rows.append({"row": index, "field": name, "message": "Give this as a string (or null for empty)."})
    return rows


def _summary(result: ImportResult) -> dict:
    return {
        "kind": result.kind,
        "records": result.rows,
        "created": result.created,
        "attached": result.attached,
        "unchanged": result.unchanged,
        "invalid": result.invalid,
        "trials_created": result.trials,
        "trials_converted": result.converted,
        "invalid_rows": [asdict(error) for error in result.errors],
    }


class _ImportView(ApiView):
    kind = ""
    # MAX_RECORDS records are far more than Django's DATA_UPLOAD_MAX_MEMORY_SIZE: these views
    # read the body with their own cap (about 1 kB a record), and answer 413 beyond it.
    parser_classes = [LargeJSONBodyParser]
    max_body_bytes = MAX_BODY_BYTES

    def post(self, request):
        skip_invalid = self.read_query(request, ImportQuerySerializer).get("skip_invalid", False)
        records = request.data
        if not isinstance(records, list):
            raise exceptions.ValidationError(
                {"non_field_errors": ["Send a JSON list of records, like [{...}, {...}], even for one record."]}
            )
        if len(records) > MAX_RECORDS:
            raise exceptions.ValidationError(
                {"non_field_errors": [f"Send at most {MAX_RECORDS:,} records at once; this list has {len(records):,}."]}
            )
        malformed = _malformed(records, COLUMNS[self.kind]) if skip_invalid else []
        if malformed:
            # Not what the OpenAPI document describes: a client's bug, refused even with
            # skip_invalid (which leaves out records whose values break the rules). Without
            # skip_invalid the import itself reports these with every other bad record.
            return Response(
                {"errors": {"non_field_errors": [MALFORMED.format(count=len(malformed))], "rows": malformed}},
                status=status.HTTP_400_BAD_REQUEST,
            )
        result = history_import_records(kind=self.kind, records=records, source="api", skip_invalid=skip_invalid)
        if result.refused:
            whole = [error.message for error in result.errors if error.row is None]
            if result.invalid:
                whole.insert(
                    0,
                    f"{result.invalid} of {result.rows} records are not valid, so nothing was written. Fix them, "
                    "or send ?skip_invalid=true to write the valid ones.",
                )
            rows = [asdict(error) for error in result.errors if error.row is not None]
            return Response({"errors": {"non_field_errors": whole, "rows": rows}}, status=status.HTTP_400_BAD_REQUEST)
        wrote = result.created or result.attached
        return Response(_summary(result), status=status.HTTP_201_CREATED if wrote else status.HTTP_200_OK)


def _schema(*, kind: str, record, key: str, summary: str, example: dict):
    return extend_schema(
        operation_id=f"{kind}_import",
        tags=["imports"],
        summary=summary,
        description=DESCRIPTION.format(
            file=f"{kind}.csv", key=key, limit=MAX_RECORDS, size=MAX_BODY_BYTES // (1024 * 1024)
        ),
        parameters=[SKIP_INVALID],
        request=record(many=True),
        responses=RESPONSES,
        examples=[OpenApiExample(f"One {kind[:-1]}", value=example, request_only=True)],
    )


class CustomerImportView(_ImportView):
    kind = CUSTOMERS

    @_schema(
        kind=CUSTOMERS, record=CustomerRecordSerializer, key="external_id", summary="Import customers",
        example={"external_id": "C-1001", "email": "ann@example.com", "created_at": "2024-03-01T10:00:00+01:00",
                 "country": "DE"},
    )  # fmt: skip
    def post(self, request):
        return super().post(request)


class PurchaseImportView(_ImportView):
    kind = PURCHASES

    @_schema(
        kind=PURCHASES, record=PurchaseRecordSerializer, key="external_id", summary="Import purchases and refunds",
        example={"external_id": "O-5001", "customer_external_id": "C-1001", "product_sku": "beans-1kg",
                 "kind": "regular", "amount": "24.00", "currency": "EUR",
                 "purchased_at": "2024-03-02T12:30:00+01:00", "refund_of": None},
    )  # fmt: skip
    def post(self, request):
        return super().post(request)


class AssignmentImportView(_ImportView):
    kind = ASSIGNMENTS

    @_schema(
        kind=ASSIGNMENTS, record=AssignmentRecordSerializer, key="offer and customer",
        summary="Import assignments and trials from before Foretaste",
        example={"customer_external_id": "C-1001", "offer_slug": "coffee-sampler", "arm": "default",
                 "assigned_at": "2024-03-01T10:05:00+01:00", "claimed_at": "2024-03-01T10:06:00+01:00",
                 "trial_ends_at": "2024-03-15T10:06:00+01:00", "outcome": "converted",
                 "converted_at": "2024-03-15T10:06:00+01:00"},
    )  # fmt: skip
    def post(self, request):
        return super().post(request)
