"""The operator's view of trials and consent records, read-only: a trial changes only through
trials/services.py, and consent records and trial events are append-only."""

from django.contrib import admin

from trials.models import ClaimRefusal, ConsentRecord, Feedback, Trial, TrialEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class TrialEventInline(admin.TabularInline):
    model = TrialEvent
    fields = ("at", "from_status", "to_status", "note")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Trial)
class TrialAdmin(ReadOnlyAdmin):
    list_display = ("pk", "offer", "customer", "variant", "status", "claimed_at", "ends_at", "cancelled_at")
    list_filter = ("status", "offer")
    search_fields = ("customer__email", "offer__slug", "stripe_setup_intent_id", "stripe_payment_intent_id")
    list_select_related = ("offer", "customer", "variant")
    date_hierarchy = "claimed_at"
    inlines = [TrialEventInline]


@admin.register(ConsentRecord)
class ConsentRecordAdmin(ReadOnlyAdmin):
    list_display = ("trial", "customer", "offer", "variant", "consented_at", "card_last4", "terms_sha256")
    list_filter = ("offer",)
    search_fields = ("customer__email", "terms_sha256", "card_fingerprint", "stripe_setup_intent_id")
    list_select_related = ("trial", "customer", "offer", "variant")


@admin.register(ClaimRefusal)
class ClaimRefusalAdmin(ReadOnlyAdmin):
    list_display = ("offer", "reason", "count")
    list_filter = ("reason",)


@admin.register(Feedback)
class FeedbackAdmin(ReadOnlyAdmin):
    """Answered in the console (Feedback, on each offer's trials page), where the apology is sent."""

    list_display = ("trial", "rating", "promise_met", "answered_at", "responded_at")
    list_filter = ("rating", "promise_met")
    search_fields = ("trial__customer__email",)
