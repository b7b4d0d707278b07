from django.contrib import admin
from modeltranslation.admin import TranslationAdmin

from offers.models import Offer, OfferChange, Product, Variant


# django-modeltranslation's TranslationAdmin: a box per language for each translated field (the
# English one first, the main text), as in the console. Not its tabbed variants: they load jQuery
# UI from Google's CDN, which our Content-Security-Policy (script-src 'self') blocks; the plain
# one needs no script at all.
@admin.register(Product)
class ProductAdmin(TranslationAdmin):
    list_display = ("sku", "name", "price_amount", "currency", "interval", "stripe_price_id", "stripe_synced_at")
    search_fields = ("sku", "name")
    list_filter = ("currency", "interval")
    readonly_fields = ("stripe_price_id", "stripe_synced_at", "created_at", "updated_at")


class VariantInline(admin.TabularInline):
    """Read-only once the offer has launched: the variants are in Offer.LOCKED_AT_LAUNCH."""

    model = Variant
    extra = 0

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.is_locked:
            fields += [f.name for f in Variant._meta.fields if f.editable and f.name not in ("id", "offer")]
        return fields

    def has_add_permission(self, request, obj=None):
        return (obj is None or not obj.is_locked) and super().has_add_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return (obj is None or not obj.is_locked) and super().has_delete_permission(request, obj)


class OfferChangeInline(admin.TabularInline):
    """Read-only: the history is append-only."""

    model = OfferChange
    extra = 0
    can_delete = False
    readonly_fields = ("at", "actor", "action", "changes")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Offer)
class OfferAdmin(TranslationAdmin):
    """For operators. Marketers use the console, which validates and records history; edits here
    bypass both, so the fields that carry promises are read-only once an offer has launched."""

    list_display = ("slug", "name", "kind", "status", "starts_at", "ends_at", "claimed_count", "inventory")
    list_filter = ("status", "kind")
    search_fields = ("slug", "name")
    list_select_related = ("product",)
    inlines = [VariantInline, OfferChangeInline]
    readonly_fields = ("claimed_count", "launched_at", "ended_at", "created_at", "updated_at", "created_by")

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.is_locked:
            # The status moves only through the console's and the API's actions once launched.
            fields += ["status", *Offer.LOCKED_FIELDS_AT_LAUNCH]
        return fields
