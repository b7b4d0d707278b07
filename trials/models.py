"""Assignments (which arm a customer is in) and trials (a claimed offer and its clock)."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from offers import rules


class Assignment(models.Model):
    """A visitor's one arm of one offer's experiment: written before they see anything, never
    changed afterwards. ``arm`` is a variant's name or ``holdout``.

    An anonymous visitor is known by ``visitor``, the random id in their cookie; when they sign
    up or log in, their row gets the ``customer`` too (trials.services.assignments_join). The
    arm itself never changes: it is the hash of the salt and the key the row was made for
    (``visitor`` when it has one, else the customer's key). ``first_seen_at`` is the first
    exposure (the holdout's too); ``assigned_at`` is when the arm was decided, which an import
    may give from before Foretaste.
    """

    HOLDOUT = rules.HOLDOUT

    class Source(models.TextChoices):
        WEB = "web", "web"
        IMPORT = "import", "import"
        API = "api", "api"

    offer = models.ForeignKey("offers.Offer", on_delete=models.PROTECT, related_name="assignments")
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="assignments"
    )
    visitor = models.CharField(max_length=64, null=True, blank=True)
    variant = models.ForeignKey("offers.Variant", null=True, blank=True, on_delete=models.PROTECT)
    arm = models.CharField(max_length=40)
    assigned_at = models.DateTimeField()
    first_seen_at = models.DateTimeField(null=True, blank=True)
    # An anonymous row whose visitor logged in to an account that already had an assignment for
    # the offer: the older one stands, and this one points at it, so that counts of units (one
    # per person and offer, METRICS.md) can leave it out and still see it happened.
    superseded_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="superseded", editable=False
    )
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.WEB)

    class Meta:
        constraints = [
            # One assignment per customer per offer, even when two requests race to assign.
            models.UniqueConstraint(fields=["offer", "customer"], name="assignment_once_per_offer"),
            # And once per anonymous visitor: the guard when two first views of one browser race.
            models.UniqueConstraint(
                fields=["offer", "visitor"], condition=Q(visitor__isnull=False), name="assignment_once_per_visitor"
            ),
            models.CheckConstraint(
                condition=Q(customer__isnull=False) | Q(visitor__isnull=False), name="assignment_has_someone"
            ),
            models.CheckConstraint(
                condition=(Q(arm=rules.HOLDOUT) & Q(variant__isnull=True))
                | (~Q(arm=rules.HOLDOUT) & Q(variant__isnull=False)),
                name="assignment_arm_matches_variant",
            ),
        ]
        indexes = [models.Index(fields=["offer", "assigned_at"])]

    def __str__(self):
        return f"{self.customer_id or self.visitor} → {self.offer_id}/{self.arm}"

    @property
    def is_holdout(self) -> bool:
        return self.arm == self.HOLDOUT


class Trial(models.Model):
    """A claimed offer. Foretaste owns its clock: ``ends_at`` is ours, whatever the kind."""

    class Status(models.TextChoices):
        ACTIVE = "active", "active"
        CONVERTING = "converting", "converting"
        CONVERTED = "converted", "converted"
        PAYMENT_FAILED = "payment_failed", "payment failed"
        CANCELLED = "cancelled", "cancelled"
        EXPIRED = "expired", "expired"
        ABANDONED = "abandoned", "abandoned"

    assignment = models.OneToOneField(Assignment, on_delete=models.PROTECT, related_name="trial")
    offer = models.ForeignKey("offers.Offer", on_delete=models.PROTECT, related_name="trials")
    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="trials")
    variant = models.ForeignKey("offers.Variant", on_delete=models.PROTECT, related_name="trials")
    status = models.CharField(max_length=15, choices=Status.choices, default=Status.ACTIVE)
    claimed_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    converted_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=Assignment.Source.choices, default=Assignment.Source.WEB)

    class Meta:
        indexes = [models.Index(fields=["status", "ends_at"]), models.Index(fields=["offer", "status"])]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gte=models.F("claimed_at")), name="trial_ends_after_claim")
        ]

    def __str__(self):
        return f"trial {self.pk} ({self.status})"


class TrialEvent(models.Model):
    """The history of a trial. Append-only: rows are never updated or deleted."""

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="events")
    at = models.DateTimeField()
    from_status = models.CharField(max_length=15, blank=True)
    to_status = models.CharField(max_length=15)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self):
        return f"trial {self.trial_id}: {self.from_status or '-'} → {self.to_status} at {self.at:%Y-%m-%d %H:%M}"
