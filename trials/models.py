"""Assignments (which arm a customer is in) and trials (a claimed offer and its clock)."""

from django.conf import settings
from django.contrib.contenttypes.fields import GenericRelation
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

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

    # No index of its own: (offer, assigned_at), (offer, customer) and (offer, visitor) begin with it.
    offer = models.ForeignKey("offers.Offer", on_delete=models.PROTECT, related_name="assignments", db_index=False)
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
            # What a trial's composite foreign key (assignment, offer) points at, so that the
            # database holds a trial to its assignment's offer (migration 0007): the analytics
            # then read an offer's trials through the trials' own offer index.
            models.UniqueConstraint(fields=["id", "offer"], name="assignment_id_with_offer"),
            models.CheckConstraint(
                condition=(Q(arm=rules.HOLDOUT) & Q(variant__isnull=True))
                | (~Q(arm=rules.HOLDOUT) & Q(variant__isnull=False)),
                name="assignment_arm_matches_variant",
            ),
        ]
        indexes = [
            # An offer's units, by time: with the columns the analytics read of each (their
            # customer, arm, and whether it was superseded), so that an offer's ten thousand
            # units come from the index alone, not from as many pages of the table.
            models.Index(
                fields=["offer", "assigned_at"],
                include=["id", "customer", "superseded_by", "arm"],
                name="assignment_offer_time",
            )
        ]

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
        # A claim in progress: a unit is held for it while Stripe is called (trials/services.py).
        RESERVED = "reserved", "reserved"

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
    # Set by the claim (trials/services.py, "Claims"): the local day whose daily unit it holds,
    # the language its terms were written in, where a physical sample goes, and its Stripe ids.
    claim_day = models.DateField(null=True, blank=True)
    language = models.CharField(max_length=10, blank=True)
    shipping_address = models.JSONField(default=dict, blank=True)
    stripe_setup_intent_id = models.CharField(max_length=255, blank=True)
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True)
    # Why the end step has not charged yet (a promised reminder not sent): the trial says why.
    waiting_reason = models.CharField(max_length=200, blank=True)
    # The end step's charge (trials/services.py, "Conversion"): which attempt it is (0 the
    # automatic one, then one per card the customer tries; the idempotency key names it), its
    # PaymentIntent and, for a subscription product, the first invoice, which the customer's page
    # completes; and when a charge Stripe did not answer is tried again.
    charge_attempt = models.PositiveSmallIntegerField(default=0)
    conversion_payment_intent_id = models.CharField(max_length=255, blank=True)
    conversion_invoice_id = models.CharField(max_length=255, blank=True)
    charge_retry_at = models.DateTimeField(null=True, blank=True)
    claim_ip = models.GenericIPAddressField(null=True, blank=True)
    claim_user_agent = models.CharField(max_length=500, blank=True)
    # The emails about this trial (``OutboxMessage.about``), so that a query over the outbox can
    # join its trials ("Promises kept", analytics/promises.py) instead of probing them one by one.
    outbox_messages = GenericRelation(
        "accounts.OutboxMessage", content_type_field="about_type", object_id_field="about_id",
        related_query_name="trial",
    )  # fmt: skip

    class Meta:
        indexes = [
            models.Index(fields=["status", "ends_at"]),
            models.Index(fields=["offer", "status"]),
            models.Index(fields=["status", "claimed_at"]),
        ]
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


class ClaimIdentity(models.Model):
    """One way of telling a person apart (their canonical email, their card's fingerprint, their
    normalized shipping address) held by one trial of one offer.

    The unique (offer, kind, value) is the guard of "one trial per person": two claims racing
    with the same email, card or address cannot both insert their row, whatever either read
    before. A reservation inserts its email and address rows; the confirmation adds the card's.
    Releasing a reservation deletes its rows, so the person may claim again."""

    class Kind(models.TextChoices):
        EMAIL = "email", "email"
        CARD = "card", "card"
        ADDRESS = "address", "address"

    offer = models.ForeignKey("offers.Offer", on_delete=models.PROTECT, related_name="claim_identities")
    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="identities")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    value = models.CharField(max_length=500)

    class Meta:
        constraints = [
            # Guards against two concurrent claims by one person both succeeding.
            models.UniqueConstraint(fields=["offer", "kind", "value"], name="claim_identity_once_per_offer"),
        ]

    def __str__(self):
        return f"{self.offer_id}/{self.kind}: trial {self.trial_id}"


class DailyClaims(models.Model):
    """How many units of an offer the claims of one local day hold, for its daily limit.

    Written only by conditional UPDATEs (``claimed < limit``) in the claim's transaction, so two
    claims racing for the day's last unit cannot both take it; the row for a day is created
    once, under its unique constraint."""

    offer = models.ForeignKey("offers.Offer", on_delete=models.CASCADE, related_name="daily_claims")
    day = models.DateField()
    claimed = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["offer", "day"], name="daily_claims_once_per_day")]

    def __str__(self):
        return f"{self.offer_id} on {self.day}: {self.claimed}"


class ClaimRefusal(models.Model):
    """How many claims of an offer were refused, per reason (sold out, daily limit, and the rule
    that caught a second trial by the same person: ``same_email``, ``same_card``,
    ``same_address``). A counter, incremented with F() after the refused claim rolled back."""

    offer = models.ForeignKey("offers.Offer", on_delete=models.CASCADE, related_name="claim_refusals")
    reason = models.CharField(max_length=30)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["offer", "reason"], name="claim_refusal_once_per_reason")]

    def __str__(self):
        return f"{self.offer_id}: {self.reason}: {self.count}"


class ConsentRecord(models.Model):
    """What a customer agreed to when they claimed a trial, exactly as they were shown it.
    Append-only: written once by the claim's confirmation, never updated or deleted (the admin
    shows it read-only). ``terms_sha256`` is the SHA-256 of ``terms_text`` as UTF-8."""

    trial = models.OneToOneField(Trial, on_delete=models.PROTECT, related_name="consent")
    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="consents")
    offer = models.ForeignKey("offers.Offer", on_delete=models.PROTECT, related_name="consents")
    variant = models.ForeignKey("offers.Variant", on_delete=models.PROTECT, related_name="consents")
    # The offer's version: the id of its latest change (offers.OfferChange) when the terms were
    # made, and the terms-bearing fields of the offer and the variant as they were.
    offer_version = models.PositiveBigIntegerField(default=0)
    offer_snapshot = models.JSONField(default=dict)
    variant_snapshot = models.JSONField(default=dict)
    terms_text = models.TextField()
    terms_sha256 = models.CharField(max_length=64)
    language = models.CharField(max_length=10)
    consented_at = models.DateTimeField()
    recorded_at = models.DateTimeField()
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    trial_price = models.PositiveIntegerField()
    price_after = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    trial_ends_at = models.DateTimeField()
    card_last4 = models.CharField(max_length=4, blank=True)
    card_fingerprint = models.CharField(max_length=100, blank=True)
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    stripe_setup_intent_id = models.CharField(max_length=255, blank=True)
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True)
    stripe_payment_method_id = models.CharField(max_length=255, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(terms_sha256__regex=r"^[0-9a-f]{64}$"), name="consent_sha256_hex")
        ]

    def __str__(self):
        return f"consent of trial {self.trial_id} at {self.consented_at:%Y-%m-%d %H:%M}"


class Feedback(models.Model):
    """A customer's answer to the offer's one question after the trial: did they get what the
    offer promised? And a marketer's answer to it (an apology, a refund), with its time. One
    per trial; the customer's part is never changed once given."""

    class PromiseMet(models.TextChoices):
        YES = "yes", _("Yes")
        PARTLY = "partly", _("Partly")
        NO = "no", _("No")

    trial = models.OneToOneField(Trial, on_delete=models.PROTECT, related_name="feedback")
    promise_met = models.CharField(max_length=10, choices=PromiseMet.choices)
    rating = models.PositiveSmallIntegerField()
    comment = models.TextField(blank=True, max_length=2000)
    answered_at = models.DateTimeField()
    response = models.TextField(blank=True, max_length=4000)
    responded_at = models.DateTimeField(null=True, blank=True)
    responded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(rating__gte=1) & Q(rating__lte=5), name="feedback_rating_1_to_5"),
        ]
        indexes = [models.Index(fields=["rating", "answered_at"])]

    def __str__(self):
        return f"feedback on trial {self.trial_id}: {self.promise_met}, {self.rating}/5"
