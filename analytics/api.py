"""The metrics API: ``GET /api/v1/offers/<slug>/metrics`` (one offer, METRICS.md's document)
and ``GET /api/v1/metrics/offers`` (every offer's headline figures).

Executives and marketers read it with a key or with their logged-in session (a dashboard page
may fetch it); customers get 403. The views parse the query, call the engine
(analytics/metrics.py) and return its ``as_json()``; the serializers below only describe that
document to the OpenAPI schema, with METRICS.md's example.
"""

import re
from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.response import Response

from analytics import metrics, queries
from config.api import READ_ERRORS, ApiView, AwareDateTimeField, api_errors
from offers import selectors
from offers.money import countries
from offers.rules import HOLDOUT

MAX_DAYS = 3650
# How far ahead an as-of may be: a client's clock a little ahead of ours, or a time zone's
# "today", is not a mistake; a date weeks ahead is.
AS_OF_SLACK = timedelta(days=1)
# A "+" in a query string arrives as a space: "…T00:00:00 02:00" is the "+02:00" that was sent.
_SPACE_FOR_PLUS = re.compile(r"^(.+T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}(?::?\d{2})?)$")


class AsOfField(AwareDateTimeField):
    def to_internal_value(self, value):
        if isinstance(value, str):
            value = _SPACE_FOR_PLUS.sub(r"\1+\2", value.strip())
        moment = super().to_internal_value(value)
        if moment > timezone.now() + AS_OF_SLACK:
            raise serializers.ValidationError("The as-of time is more than a day in the future; nothing is known yet.")
        return moment


def _days(help_text: str) -> serializers.IntegerField:
    return serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_DAYS,
        help_text=help_text,
        error_messages={
            "min_value": f"Give a number of days from 1 to {MAX_DAYS}.",
            "max_value": f"Give a number of days from 1 to {MAX_DAYS}.",
            "invalid": f"Give a whole number of days from 1 to {MAX_DAYS}.",
        },
    )


class OverviewQuerySerializer(serializers.Serializer):
    as_of = AsOfField(
        required=False, help_text="ISO 8601 with an offset (URL-encode the “+”); now by default. At most a day ahead."
    )
    window_days = _days("The repeat-purchase window N, 90 by default.")
    grace_days = _days("The conversion grace G; the offer's own (7 unless configured) by default.")


class MetricsQuerySerializer(OverviewQuerySerializer):
    variant = serializers.CharField(
        required=False, help_text="Only this arm (a variant's name, or holdout) and the holdout it is compared with."
    )
    country = serializers.CharField(required=False, help_text="Only customers of this country (ISO 3166-1 alpha-2).")

    def validate_country(self, value: str) -> str:
        code = value.strip().upper()
        if code not in countries():
            raise serializers.ValidationError(f"“{value}” is not a country code (ISO 3166-1 alpha-2, like DE or IT).")
        return code


# --- The documents, for the schema -------------------------------------------------------------
def _nullable_float(**options):
    return serializers.FloatField(allow_null=True, **options)


def _interval(**options):
    return serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2, allow_null=True, **options)


Conversion = inline_serializer(
    "MetricsConversion",
    {
        "mature": serializers.IntegerField(help_text="Claimed, with D = trial end + grace at or before as_of."),
        "converted": serializers.IntegerField(help_text="Mature, converted by D."),
        "pending": serializers.IntegerField(help_text="Claimed, not converted by as_of, D still ahead."),
        "rate": _nullable_float(help_text="converted / mature; null when nothing is mature."),
        "ci95": _interval(help_text="Wilson's 95% interval of the rate."),
    },
    allow_null=True,
)
Outcomes = inline_serializer(
    "MetricsOutcomes",
    {name: serializers.IntegerField() for name in ("converted", "cancelled", "expired", "payment_failed", "pending")},
    allow_null=True,
)
KmCumulative = inline_serializer(
    "MetricsKmCumulative",
    {str(days): _nullable_float(help_text=f"F({days} days)") for days in metrics.KM_DAYS},
)
TimeToConvert = inline_serializer(
    "MetricsTimeToConvert",
    {
        "converters": serializers.IntegerField(),
        "median_days": _nullable_float(),
        "p25_days": _nullable_float(),
        "p75_days": _nullable_float(),
        "km_cumulative": KmCumulative,
    },
    allow_null=True,
)
Itt = inline_serializer(
    "MetricsItt",
    {
        "mature": serializers.IntegerField(help_text="Assigned at least window_days before as_of."),
        "buyers": serializers.IntegerField(),
        "buyer_rate": _nullable_float(),
        "buyer_rate_ci95": _interval(),
        "repeat_buyers": serializers.IntegerField(),
        "repeat_rate": _nullable_float(),
        "repeat_rate_ci95": _interval(),
        "purchases_per_customer": _nullable_float(),
        "revenue_per_customer": _nullable_float(help_text="Major units of currency."),
        "revenue_sd": _nullable_float(help_text="Sample standard deviation; null below two customers."),
    },
)
PostTrial = inline_serializer(
    "MetricsPostTrial",
    {
        "mature": serializers.IntegerField(),
        "buyers": serializers.IntegerField(),
        "repeat_buyers": serializers.IntegerField(),
        "repeat_rate": _nullable_float(),
        "purchases_per_customer": _nullable_float(),
        "revenue_per_customer": _nullable_float(),
    },
    allow_null=True,
)
Arm = inline_serializer(
    "MetricsArm",
    {
        "arm": serializers.CharField(),
        "is_holdout": serializers.BooleanField(),
        "weight": serializers.FloatField(help_text="The configured share of customers."),
        "assigned": serializers.IntegerField(),
        "claimed": serializers.IntegerField(),
        "claim_rate": _nullable_float(),
        "conversion": Conversion,
        "outcomes": Outcomes,
        "time_to_convert": TimeToConvert,
        "itt": Itt,
        "post_trial": PostTrial,
    },
)
UpliftEntry = inline_serializer(
    "MetricsUplift",
    {
        "arm": serializers.CharField(),
        "vs": serializers.CharField(),
        "metric": serializers.ChoiceField(choices=metrics.UPLIFT_METRICS),
        "diff": _nullable_float(),
        "ci95": _interval(help_text="Newcombe's interval for rates, Welch's for means."),
        "p_value": _nullable_float(),
        "p_value_bh": _nullable_float(help_text="Benjamini-Hochberg adjusted."),
        "per_claimer": _nullable_float(help_text="diff / claim_rate: the effect on those who claimed."),
    },
)
Srm = inline_serializer(
    "MetricsSrm",
    {"p_value": _nullable_float(help_text="Null under a variant filter."), "flag": serializers.BooleanField()},
)
OfferMetricsDocument = inline_serializer(
    "OfferMetrics",
    {
        "offer": serializers.CharField(),
        "as_of": serializers.DateTimeField(),
        "window_days": serializers.IntegerField(),
        "grace_days": serializers.IntegerField(),
        "currency": serializers.CharField(),
        "unconverted_rows": serializers.IntegerField(help_text="Ledger rows left out of revenue: no exchange rate."),
        "arms": Arm.__class__(many=True),
        "uplift": UpliftEntry.__class__(many=True),
        "srm": Srm,
        "observational": serializers.BooleanField(help_text="True when the offer has no holdout."),
    },
)
HeadlineArm = inline_serializer(
    "MetricsHeadlineArm",
    {
        "arm": serializers.CharField(),
        "is_holdout": serializers.BooleanField(),
        "assigned": serializers.IntegerField(),
        "claimed": serializers.IntegerField(),
        "claim_rate": _nullable_float(),
        "conversion": Conversion,
        "itt": inline_serializer(
            "MetricsHeadlineItt",
            {"mature": serializers.IntegerField(), "repeat_rate": _nullable_float(), "repeat_rate_ci95": _interval()},
        ),
    },
)
OverviewDocument = inline_serializer(
    "OffersOverview",
    {
        "as_of": serializers.DateTimeField(),
        "window_days": serializers.IntegerField(),
        "grace_days": serializers.IntegerField(allow_null=True, help_text="Null: each offer's own."),
        "offers": inline_serializer(
            "OfferHeadline",
            {
                "offer": serializers.CharField(),
                "name": serializers.CharField(),
                "status": serializers.CharField(),
                "currency": serializers.CharField(),
                "grace_days": serializers.IntegerField(),
                "observational": serializers.BooleanField(),
                "srm": Srm,
                "arms": HeadlineArm.__class__(many=True),
                "uplift": UpliftEntry.__class__(
                    many=True, help_text="Repeat rate only; p_value_bh adjusted across every offer listed."
                ),
            },
            many=True,
        ),
    },
)

_EXAMPLE_ARM = {
    "arm": "default", "is_holdout": False, "weight": 0.9, "assigned": 9000, "claimed": 2700, "claim_rate": 0.3,
    "conversion": {"mature": 2500, "converted": 600, "pending": 150, "rate": 0.24, "ci95": [0.2237, 0.2571]},
    "outcomes": {"converted": 640, "cancelled": 900, "expired": 950, "payment_failed": 60, "pending": 150},
    "time_to_convert": {
        "converters": 600, "median_days": 14.0, "p25_days": 13.5, "p75_days": 15.2,
        "km_cumulative": {"7": 0.01, "14": 0.12, "30": 0.25, "60": 0.26, "90": 0.26},
    },
    "itt": {
        "mature": 8000, "buyers": 2400, "buyer_rate": 0.3, "buyer_rate_ci95": [0.29, 0.31],
        "repeat_buyers": 1200, "repeat_rate": 0.15, "repeat_rate_ci95": [0.142, 0.158],
        "purchases_per_customer": 0.61, "revenue_per_customer": 18.4, "revenue_sd": 41.0,
    },
    "post_trial": {
        "mature": 2300, "buyers": 700, "repeat_buyers": 420, "repeat_rate": 0.183,
        "purchases_per_customer": 0.9, "revenue_per_customer": 27.0,
    },
}  # fmt: skip
_EXAMPLE_HOLDOUT = {
    "arm": "holdout", "is_holdout": True, "weight": 0.1, "assigned": 1000, "claimed": 0, "claim_rate": 0.0,
    "conversion": None, "outcomes": None, "time_to_convert": None, "post_trial": None,
    "itt": {
        "mature": 890, "buyers": 210, "buyer_rate": 0.236, "buyer_rate_ci95": [0.209, 0.265],
        "repeat_buyers": 98, "repeat_rate": 0.110, "repeat_rate_ci95": [0.091, 0.132],
        "purchases_per_customer": 0.42, "revenue_per_customer": 12.9, "revenue_sd": 35.5,
    },
}  # fmt: skip
_EXAMPLE_UPLIFT = {
    "arm": "default", "vs": "holdout", "metric": "repeat_rate", "diff": 0.04, "ci95": [0.018, 0.059],
    "p_value": 0.0012, "p_value_bh": 0.004, "per_claimer": 0.133,
}  # fmt: skip
EXAMPLE = {
    "offer": "coffee-sampler", "as_of": "2026-06-30T00:00:00+00:00",
    "window_days": 90, "grace_days": 7, "currency": "EUR", "unconverted_rows": 0,
    "arms": [_EXAMPLE_ARM, _EXAMPLE_HOLDOUT],
    "uplift": [_EXAMPLE_UPLIFT],
    "srm": {"p_value": 0.62, "flag": False},
    "observational": False,
}  # fmt: skip
_HEADLINE_KEYS = ("arm", "is_holdout", "assigned", "claimed", "claim_rate", "conversion")
_HEADLINE_ITT = ("mature", "repeat_rate", "repeat_rate_ci95")
OVERVIEW_EXAMPLE = {
    "as_of": "2026-06-30T00:00:00+00:00", "window_days": 90, "grace_days": None,
    "offers": [{
        "offer": "coffee-sampler", "name": "Coffee sampler", "status": "live", "currency": "EUR", "grace_days": 7,
        "observational": False, "srm": {"p_value": 0.62, "flag": False},
        "arms": [
            {key: arm[key] for key in _HEADLINE_KEYS} | {"itt": {key: arm["itt"][key] for key in _HEADLINE_ITT}}
            for arm in (_EXAMPLE_ARM, _EXAMPLE_HOLDOUT)
        ],
        "uplift": [_EXAMPLE_UPLIFT],
    }],
}  # fmt: skip

METRICS_ERRORS = {
    400: api_errors("A parameter is not valid: as_of, window_days, grace_days, variant or country."),
    401: READ_ERRORS[401],
    403: api_errors("Only executives, marketers and staff may read metrics."),
}


# --- Views -------------------------------------------------------------------------------------
class MetricsView(ApiView):
    # A logged-in executive's browser may read it too. Token first: a request with neither is
    # answered 401 with its WWW-Authenticate, as everywhere else in the API.
    authentication_classes = [TokenAuthentication, SessionAuthentication]

    def query(self, request, serializer_class) -> dict:
        values = self.read_query(request, serializer_class)
        values.setdefault("as_of", timezone.now())
        values.setdefault("window_days", 90)
        return values


class OfferMetricsView(MetricsView):
    @extend_schema(
        operation_id="offers_metrics",
        tags=["metrics"],
        summary="An offer's metrics, as of a moment",
        description=(
            "Every figure of METRICS.md per arm (conversion, outcomes, time to convert, repeat purchases from "
            "assignment and after the trial), the uplift of each variant against the holdout, the sample-ratio "
            "check and the observational label. Money is in major units of `currency`; a proportion whose "
            "denominator is zero is null, never 0."
        ),
        parameters=[MetricsQuerySerializer],
        responses={
            200: OfferMetricsDocument,
            **METRICS_ERRORS,
            404: api_errors("There is no offer with this slug."),
        },
        examples=[OpenApiExample("Sampler with a holdout", value=EXAMPLE, response_only=True)],
    )
    @queries.analytic_read()
    def get(self, request, slug):
        offer = selectors.offer_get(slug=slug)
        values = self.query(request, MetricsQuerySerializer)
        variant = values.pop("variant", None)
        arms = [v.name for v in offer.variants.all()] + [HOLDOUT]
        if variant is not None and variant not in arms:
            raise exceptions.ValidationError(
                {"variant": [f"The offer “{offer.slug}” has no arm “{variant}”; its arms are {', '.join(arms)}."]}
            )
        return Response(metrics.offer_metrics(offer=offer, variant=variant, **values).as_json())


class OffersOverviewView(MetricsView):
    @extend_schema(
        operation_id="metrics_offers",
        tags=["metrics"],
        summary="Every offer's headline figures",
        description=(
            "Per offer, newest first: each arm's claims, conversion (with its interval and pending count) and "
            "repeat rate, and each variant's repeat-rate uplift against the holdout, with Benjamini-Hochberg "
            "adjusted p-values across all the offers listed."
        ),
        parameters=[OverviewQuerySerializer],
        responses={200: OverviewDocument, **METRICS_ERRORS},
        examples=[OpenApiExample("One offer", value=OVERVIEW_EXAMPLE, response_only=True)],
    )
    @queries.analytic_read()
    def get(self, request):
        values = self.query(request, OverviewQuerySerializer)
        return Response(metrics.offers_overview(**values).as_json())
