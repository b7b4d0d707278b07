"""The operator's view of billing: Stripe events (with replay), the exchange rates the metrics
convert revenue with, and the ledger, subscriptions and background imports, read-only. The
ledger is append-only, so nobody adds, edits or deletes a row here; a correction is a refund or
an import."""

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.translation import ngettext

from billing import webhooks
from billing.models import Checkout, ExchangeRate, ImportJob, Purchase, StripeEvent, Subscription


class HasErrorFilter(admin.SimpleListFilter):
    title = "error"
    parameter_name = "has_error"

    def lookups(self, request, model_admin):
        return (("yes", "with an error or note"), ("no", "without"))

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(error="")
        if self.value() == "no":
            return queryset.filter(error="")
        return queryset


class AttemptsFilter(admin.SimpleListFilter):
    title = "attempts"
    parameter_name = "attempts"

    def lookups(self, request, model_admin):
        return (
            ("0", "not tried yet"),
            ("1", "once"),
            ("2-7", "2 to 7 times"),
            ("max", f"{webhooks.MAX_ATTEMPTS} or more (no more automatic retries)"),
        )

    def queryset(self, request, queryset):
        value = self.value()
        if value in ("0", "1"):
            return queryset.filter(attempts=int(value))
        if value == "2-7":
            return queryset.filter(attempts__gte=2, attempts__lt=webhooks.MAX_ATTEMPTS)
        if value == "max":
            return queryset.filter(attempts__gte=webhooks.MAX_ATTEMPTS)
        return queryset


@admin.register(StripeEvent)
class StripeEventAdmin(admin.ModelAdmin):
    """Events are Stripe's record of what happened: they are read here, never edited. A failed
    one is replayed once its cause (a missing customer or product, say) is fixed."""

    list_display = (
        "event_id",
        "type",
        "status",
        "attempts",
        "source",
        "stripe_created",
        "next_attempt_at",
        "short_error",
    )
    list_filter = ("status", "type", AttemptsFilter, HasErrorFilter, "source")
    search_fields = ("event_id", "object_id", "error")
    date_hierarchy = "stripe_created"
    ordering = ("-stripe_created", "-pk")
    actions = ["replay"]
    readonly_fields = [f.name for f in StripeEvent._meta.fields]

    @admin.display(description="error")
    def short_error(self, obj):
        return obj.error if len(obj.error) <= 80 else f"{obj.error[:79]}…"

    @admin.action(description="Replay selected events", permissions=["change"])
    def replay(self, request, queryset):
        count = webhooks.events_replay(event_pks=list(queryset.values_list("pk", flat=True)), at=timezone.now())
        skipped = queryset.count() - count
        self.message_user(
            request, ngettext("%d event queued again.", "%d events queued again.", count) % count, messages.SUCCESS
        )
        if skipped:
            self.message_user(request, f"{skipped} left alone: a worker is handling them right now.", messages.WARNING)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Purchase)
class PurchaseAdmin(ReadOnlyAdmin):
    list_display = ("external_id", "source", "kind", "amount", "currency", "customer", "product", "purchased_at")
    list_filter = ("source", "kind", "currency")
    search_fields = ("external_id", "customer__email", "product__sku")
    list_select_related = ("customer", "product")
    date_hierarchy = "purchased_at"
    ordering = ("-purchased_at", "-pk")
    raw_id_fields = ("customer", "refund_of", "trial")


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin):
    list_display = ("stripe_id", "customer", "product", "status", "stripe_updated", "ends_at", "cancelled_at")
    list_filter = ("status",)
    search_fields = ("stripe_id", "customer__email")
    list_select_related = ("customer", "product")


@admin.register(Checkout)
class CheckoutAdmin(ReadOnlyAdmin):
    """Each attempt to buy on Foretaste, with its Stripe ids and, for a decline, why."""

    list_display = ("pk", "customer", "product", "status", "amount", "currency", "created_at", "failure")
    list_filter = ("status",)
    search_fields = ("customer__email", "stripe_payment_intent_id", "stripe_subscription_id")
    list_select_related = ("customer", "product")
    raw_id_fields = ("customer", "offer", "product", "purchase")


@admin.register(ImportJob)
class ImportJobAdmin(ReadOnlyAdmin):
    """Console uploads imported in the background: who, what, how it went, and a failure's reason."""

    list_display = ("pk", "kind", "file_name", "uploaded_by", "status", "attempts", "created_at", "finished_at")
    list_filter = ("status", "kind")
    search_fields = ("file_name", "uploaded_by__email")
    date_hierarchy = "created_at"


@admin.register(ExchangeRate)
class ExchangeRateAdmin(admin.ModelAdmin):
    """Rates are kept by hand (or by a script through this model). A new rate is a new row with
    its own ``valid_from``, so the revenue already reported for earlier purchases does not move."""

    list_display = ("currency", "to_currency", "rate", "valid_from")
    list_filter = ("to_currency", "currency")
    ordering = ("currency", "to_currency", "-valid_from")
