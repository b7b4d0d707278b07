from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import OuterRef, Subquery
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _
from post_office.admin import EmailAdmin as PostOfficeEmailAdmin
from post_office.admin import LogInline
from post_office.models import STATUS, Email, Log

from accounts.emails import outbox_resend
from accounts.models import OutboxMessage, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ("email",)
    list_display = ("email", "first_name", "last_name", "country", "is_staff", "date_joined")
    search_fields = ("email", "first_name", "last_name")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name", "country", "preferred_language")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)


class OutboxMessageInline(admin.StackedInline):
    model = OutboxMessage
    can_delete = False
    fields = ("purpose", "user", "address", "language", "about_type", "about_id", "due_at", "sent_at", "attempts")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.action(description=_("Resend selected failed messages"))
def resend_failed(modeladmin, request, queryset):
    requested = queryset.count()
    resent = outbox_resend(email_ids=list(queryset.values_list("pk", flat=True)), at=timezone.now())
    modeladmin.message_user(
        request,
        _("%(resent)d of %(requested)d queued again.") % {"resent": resent, "requested": requested},
        messages.SUCCESS,
    )
    if resent < requested:
        modeladmin.message_user(
            request,
            _("Only failed messages are resent; sent and queued ones were left alone, so nobody gets one twice."),
            messages.WARNING,
        )


admin.site.unregister(Email)


@admin.register(Email)
class OutboxEmailAdmin(PostOfficeEmailAdmin):
    """post_office's Email admin, made safe for the outbox: its "requeue" action and "Resend"
    button sent even delivered mail again; here only failed messages can be resent, through the
    outbox's claim, and nothing is edited by hand (a changed status could send a message twice)."""

    list_display = ("to_display", "shortened_subject", "status", "purpose", "attempts", "last_error", "last_updated")
    list_filter = ("status", "outbox__purpose")
    actions = [resend_failed]
    inlines = [OutboxMessageInline, LogInline]

    def get_queryset(self, request):
        last_error = Log.objects.filter(email=OuterRef("pk"), status=STATUS.failed).order_by("-date", "-pk")
        return (
            super()
            .get_queryset(request)
            .select_related("outbox")
            .annotate(last_error_message=Subquery(last_error.values("message")[:1]))
        )

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Email._meta.fields] + list(super().get_readonly_fields(request, obj))

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # the history behind "emails we sent you" and "Promises kept"

    @admin.display(description=_("purpose"), ordering="outbox__purpose")
    def purpose(self, instance):
        outbox = getattr(instance, "outbox", None)
        return outbox.get_purpose_display() if outbox else "—"

    @admin.display(description=_("attempts"), ordering="outbox__attempts")
    def attempts(self, instance):
        outbox = getattr(instance, "outbox", None)
        return outbox.attempts if outbox else "—"

    @admin.display(description=_("last error"))
    def last_error(self, instance):
        return Truncator(instance.last_error_message or "").chars(120)

    def resend(self, request, pk):
        instance = self._get_object_or_deny(request, pk, "view")
        if outbox_resend(email_ids=[instance.pk], at=timezone.now()):
            self.message_user(request, _("The message is queued again."), messages.SUCCESS)
        else:
            self.message_user(request, _("Only a failed message can be resent; this one was not."), messages.WARNING)
        return HttpResponseRedirect(reverse("admin:post_office_email_change", args=[instance.pk]))
