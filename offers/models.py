"""The catalogue (products and their prices) and offers: who may claim what, on which terms."""

import secrets

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from offers import rules


class Product(models.Model):
    """A paid product an offer leads to: one-off, or a subscription by the month or year."""

    class Interval(models.TextChoices):
        ONE_OFF = "", _("one-off")
        MONTH = "month", _("month")
        YEAR = "year", _("year")

    sku = models.SlugField(_("SKU"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    image = models.ImageField(_("image"), upload_to="products/", blank=True)
    price_amount = models.PositiveIntegerField(_("price (minor units)"))
    currency = models.CharField(_("currency"), max_length=3)
    interval = models.CharField(_("billing interval"), max_length=5, choices=Interval.choices, blank=True)
    stripe_price_id = models.CharField(max_length=100, blank=True, editable=False)
    stripe_synced_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(price_amount__gt=0), name="product_price_positive"),
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="product_currency_iso"),
        ]

    def __str__(self):
        return f"{self.name} ({self.sku})"

    @property
    def is_recurring(self) -> bool:
        return bool(self.interval)


def new_salt() -> str:
    return secrets.token_hex(8)


class Offer(models.Model):
    """A sampler: a kind of trial of one product, for eligible customers, within limits and a
    schedule, split between variants and a holdout."""

    class Kind(models.TextChoices):
        FREE_TRIAL = "free_trial", _("Free trial (card required)")
        FREE_TRIAL_NO_CARD = "free_trial_no_card", _("Free trial (no card)")
        PAID_TRIAL = "paid_trial", _("Paid trial")
        SAMPLE = "sample", _("Sample")
        DISCOUNT = "discount", _("Discount on the first purchase")

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        SCHEDULED = "scheduled", _("Scheduled")
        LIVE = "live", _("Live")
        PAUSED = "paused", _("Paused")
        ENDED = "ended", _("Ended")

    class Eligibility(models.TextChoices):
        ANYONE = "anyone", _("Anyone")
        NEW_CUSTOMERS = "new_customers", _("New customers only (no purchase ever)")
        NO_RECENT_PURCHASE = "no_recent_purchase", _("No purchase in the last N days")

    slug = models.SlugField(_("slug"), max_length=80, unique=True)
    name = models.CharField(_("name"), max_length=200)
    promise = models.CharField(
        _("promised experience"),
        max_length=200,
        blank=True,
        help_text=_("One line: what the customer should get from the sample. The feedback survey asks about it."),
    )
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    physical = models.BooleanField(_("physical sample"), default=False, help_text=_("Asks for a shipping address."))
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="offers", verbose_name=_("product"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.DRAFT)

    trial_days = models.PositiveSmallIntegerField(_("trial length (days)"))
    trial_price = models.PositiveIntegerField(_("trial price (minor units)"), default=0)
    currency = models.CharField(_("currency"), max_length=3)

    eligibility = models.CharField(max_length=20, choices=Eligibility.choices, default=Eligibility.ANYONE)
    recent_purchase_days = models.PositiveSmallIntegerField(_("N days"), null=True, blank=True)
    allowed_countries = models.JSONField(_("allowed countries"), default=list, blank=True)

    inventory = models.PositiveIntegerField(_("total claims (inventory)"), null=True, blank=True)
    daily_limit = models.PositiveIntegerField(_("claims per day"), null=True, blank=True)
    # Written only with F() by the claim service, inside the claim's transaction.
    claimed_count = models.PositiveIntegerField(default=0, editable=False)

    starts_at = models.DateTimeField(_("starts"))
    ends_at = models.DateTimeField(_("ends"), null=True, blank=True)
    grace_days = models.PositiveSmallIntegerField(_("conversion grace (days)"), default=7)
    sample_cost = models.PositiveIntegerField(_("cost of one sample (minor units)"), default=0)
    reminder_days = models.JSONField(_("reminders (days before the end)"), default=list, blank=True)
    feedback_survey = models.BooleanField(_("send a feedback survey after the trial"), default=True)

    holdout_percent = models.PositiveSmallIntegerField(_("holdout (%)"), default=0)
    salt = models.CharField(max_length=32, default=new_salt)

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    launched_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    # What a launched offer may no longer change: the terms customers were promised (kind,
    # product, trial length and price, currency) and the experiment (holdout, salt, and the
    # variants with their weights and overrides; changing those would mix two experiments'
    # numbers). The one list: the admin's read-only fields, the console's locked fields and
    # offers.validation's refusal (so the API refuses them too) all read it.
    LOCKED_AT_LAUNCH = (
        "kind",
        "product",
        "trial_days",
        "trial_price",
        "currency",
        "holdout_percent",
        "salt",
        "variants",
    )
    # The model fields among them (``variants`` is the related rows).
    LOCKED_FIELDS_AT_LAUNCH = tuple(name for name in LOCKED_AT_LAUNCH if name != "variants")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "starts_at"]), models.Index(fields=["status", "ends_at"])]
        constraints = [
            # The real guard against overselling: two claims racing for the last unit cannot
            # both commit, whatever the code checked before.
            models.CheckConstraint(
                condition=Q(inventory__isnull=True) | Q(claimed_count__lte=F("inventory")),
                name="offer_claims_within_inventory",
            ),
            models.CheckConstraint(condition=Q(holdout_percent__lt=100), name="offer_holdout_below_100"),
            models.CheckConstraint(
                condition=Q(ends_at__isnull=True) | Q(ends_at__gt=F("starts_at")), name="offer_ends_after_start"
            ),
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="offer_currency_iso"),
        ]

    def __str__(self):
        return self.name

    @property
    def is_locked(self) -> bool:
        """Weights, holdout and salt are fixed once launched: changing them starts a new experiment."""
        return self.launched_at is not None

    @property
    def remaining(self) -> int | None:
        return None if self.inventory is None else max(self.inventory - self.claimed_count, 0)


class Variant(models.Model):
    """One arm of an offer's experiment, with optional overrides of the offer's terms."""

    offer = models.ForeignKey(Offer, on_delete=models.CASCADE, related_name="variants")
    name = models.SlugField(_("name"), max_length=40)
    weight = models.PositiveIntegerField(_("weight"), default=1)
    kind = models.CharField(_("kind"), max_length=20, choices=Offer.Kind.choices, blank=True)
    trial_days = models.PositiveSmallIntegerField(_("trial length (days)"), null=True, blank=True)
    trial_price = models.PositiveIntegerField(_("trial price (minor units)"), null=True, blank=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["offer", "name"], name="variant_name_unique_per_offer"),
            models.CheckConstraint(condition=~Q(name=rules.HOLDOUT), name="variant_name_not_holdout"),
        ]

    def __str__(self):
        return f"{self.offer.slug}/{self.name}"

    @property
    def effective_kind(self) -> str:
        return self.kind or self.offer.kind

    def get_effective_kind_display(self) -> str:
        return str(dict(Offer.Kind.choices).get(self.effective_kind, self.effective_kind))

    @property
    def effective_trial_days(self) -> int:
        return self.trial_days if self.trial_days is not None else self.offer.trial_days

    @property
    def effective_trial_price(self) -> int:
        return self.trial_price if self.trial_price is not None else self.offer.trial_price


class OfferChange(models.Model):
    """Who changed what on an offer, and when. Append-only: rows are never updated or deleted."""

    offer = models.ForeignKey(Offer, on_delete=models.CASCADE, related_name="changes")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    at = models.DateTimeField()
    action = models.CharField(max_length=20)
    # {"field": [old, new], …} for edits; {} for transitions.
    changes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self):
        return f"{self.offer.slug}: {self.action} at {self.at:%Y-%m-%d %H:%M}"
