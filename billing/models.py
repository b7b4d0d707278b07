"""Stripe's events as we received them, the purchases ledger, and our mirror of subscriptions."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class StripeEvent(models.Model):
    """Every Stripe event we learn of, stored before it is handled, with its outcome.

    Unique on Stripe's event id, so a delivery that comes twice (or is found again by
    reconciliation) is stored once and handled once.
    """

    class Status(models.TextChoices):
        RECEIVED = "received", "received"
        PROCESSING = "processing", "processing"
        PROCESSED = "processed", "processed"
        FAILED = "failed", "failed"

    class Source(models.TextChoices):
        WEBHOOK = "webhook", "webhook"
        RECONCILIATION = "reconciliation", "reconciliation"

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=255, blank=True)
    stripe_created = models.DateTimeField()
    payload = models.JSONField()
    source = models.CharField(max_length=15, choices=Source.choices, default=Source.WEBHOOK)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    received_at = models.DateTimeField()
    processed_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["stripe_created"]),
            models.Index(fields=["object_id"]),
        ]

    def __str__(self):
        return f"{self.type} {self.event_id} ({self.status})"


class Purchase(models.Model):
    """The purchases ledger. Append-only: a row is never updated or deleted, and a refund is a
    new, negative row that points at the purchase it refunds.

    Every paid purchase, trial fee and sample charge is one row, from Stripe, an import or the
    API; ``external_id`` is unique per source, so ingesting the same record again changes
    nothing. Amounts are integer minor units of ``currency``.
    """

    class Kind(models.TextChoices):
        REGULAR = "regular", "regular"
        TRIAL_FEE = "trial_fee", "trial fee"
        SAMPLE = "sample", "sample"

    class Source(models.TextChoices):
        STRIPE = "stripe", "Stripe"
        IMPORT = "import", "import"
        API = "api", "API"

    # No index of its own: (customer, purchased_at) below serves every lookup by customer.
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="purchases", db_index=False
    )
    # No index: no query reads the ledger by product. Deleting a product (the admin; refused by
    # PROTECT once it has sales) is the one reader, and a rare staff action may scan.
    product = models.ForeignKey("offers.Product", on_delete=models.PROTECT, related_name="purchases", db_index=False)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    purchased_at = models.DateTimeField()
    source = models.CharField(max_length=10, choices=Source.choices)
    external_id = models.CharField(max_length=255)
    refund_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="refunds")
    trial = models.ForeignKey("trials.Trial", null=True, blank=True, on_delete=models.PROTECT, related_name="purchases")
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # Ingesting the same record twice must change nothing, even when two deliveries race.
            models.UniqueConstraint(fields=["source", "external_id"], name="purchase_external_id_unique_per_source"),
            models.CheckConstraint(
                condition=(Q(refund_of__isnull=True) & Q(amount__gt=0))
                | (Q(refund_of__isnull=False) & Q(amount__lt=0)),
                name="purchase_refunds_negative_others_positive",
            ),
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="purchase_currency_iso"),
        ]
        # Every index slows every insert (the import, webhooks), so the ledger keeps only those a
        # query reads (bench/bench_import.py times the import against them). Besides the primary
        # key and the unique (source, external_id), read by every ingest to stay idempotent:
        # - (customer, purchased_at), carrying what the purchase windows read of each row: each
        #   unit's windows (analytics.queries, the metrics API, and the rollups' fold) then read
        #   the index alone, not a heap page for each of a customer's rows, which lie wherever
        #   they were written (bench/bench_rollups.py); also a customer's own purchases
        #   (trials.selectors) and the FK check when a user is deleted;
        # - refund_of (the FK's own index): a purchase's refunds (billing.ledger, the import, the
        #   engine's "no refund points at it");
        # - trial (the FK's own index): a trial's charges (trials.services, the promises panel,
        #   the trial page);
        # - purchased_at of refunds only: the refunds that came due since the last refresh
        #   (analytics.rollups._refunds_come_due), a few percent of the rows.
        indexes = [
            models.Index(
                fields=["customer", "purchased_at"],
                include=["id", "kind", "amount", "currency"],
                name="purchase_customer_time",
            ),
            models.Index(
                fields=["purchased_at"], condition=Q(refund_of__isnull=False), name="purchase_refunds_by_time"
            ),
        ]

    def __str__(self):
        return f"{self.kind} {self.amount} {self.currency} ({self.source}:{self.external_id})"


class Subscription(models.Model):
    """Our copy of a Stripe subscription's state. ``stripe_updated`` is the time of the newest
    event applied, so an older event that arrives late never overwrites a newer state."""

    stripe_id = models.CharField(max_length=255, unique=True)
    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="subscriptions")
    product = models.ForeignKey("offers.Product", null=True, blank=True, on_delete=models.PROTECT)
    trial = models.ForeignKey("trials.Trial", null=True, blank=True, on_delete=models.SET_NULL)
    status = models.CharField(max_length=30)
    stripe_updated = models.DateTimeField()
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # The customer asked, from /me/, to end it at the end of the paid period
    # (``billing.services.subscription_cancel``): when they asked, and the end Stripe gave.
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.stripe_id} ({self.status})"


class Checkout(models.Model):
    """One attempt by a customer to buy a product on Foretaste (``billing.services``, "Buying").

    A row of its own, persisted before Stripe is called, because the attempt needs an identity
    that outlives the request: its id is the idempotency key of every Stripe write it makes, so a
    reload or a double submit repeats the same write at Stripe instead of charging again, and its
    status is the conditional-update guard that localstripe (which ignores idempotency keys) needs.

        open ──claim──▶ charging ──▶ paid (the ledger row written, ``purchase`` set)
          ▲                 ├──────▶ action (the bank asks for 3-D Secure) ──▶ paid
          └─ Stripe down ───┤
                            └──────▶ failed (declined: nothing recorded; the next visit starts anew)

    One open attempt per customer and product (a constraint), so two tabs share one attempt.
    """

    class Status(models.TextChoices):
        OPEN = "open", "open"
        CHARGING = "charging", "charging"
        ACTION = "action", "action"
        PAID = "paid", "paid"
        FAILED = "failed", "failed"

    UNFINISHED = (Status.OPEN, Status.CHARGING, Status.ACTION)

    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="checkouts")
    offer = models.ForeignKey("offers.Offer", on_delete=models.PROTECT, related_name="checkouts")
    product = models.ForeignKey("offers.Product", on_delete=models.PROTECT, related_name="checkouts")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    # The price as shown when the attempt began: what the customer agreed to pay.
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    language = models.CharField(max_length=10, blank=True)
    stripe_setup_intent_id = models.CharField(max_length=255, blank=True)
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True)
    stripe_subscription_id = models.CharField(max_length=255, blank=True)
    purchase = models.OneToOneField(Purchase, null=True, blank=True, on_delete=models.PROTECT, related_name="checkout")
    failure = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "product"],
                condition=Q(status__in=["open", "charging", "action"]),
                name="checkout_one_unfinished_per_product",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="checkout_amount_positive"),
        ]

    def __str__(self):
        return f"checkout {self.pk} ({self.status})"


class ImportJob(models.Model):
    """A history file uploaded in the console, imported by a Celery task rather than in the
    request, so that a large file is not cut off by the web server's timeout.

        queued ──claim──▶ running ──▶ done (imported, or refused with its errors)
                              └──────▶ failed (the import raised; nothing was written)

    A claim is a conditional UPDATE with a lease as long as the task may run, so a task that
    is delivered twice imports once, and a job whose worker died is taken again (or shown as
    stopped) once its lease has run out. The import is one transaction: a run cut short has
    written nothing. The uploaded file is deleted once the import has finished."""

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    kind = models.CharField(max_length=15)
    skip_invalid = models.BooleanField(default=False)
    file = models.FileField(upload_to="imports/%Y/%m/", blank=True)
    file_name = models.CharField(max_length=255)
    size = models.BigIntegerField()  # bytes
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="import_jobs")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    progress = models.BigIntegerField(default=0)  # bytes read so far (PostgreSQL only; see import_job_run)
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    progress_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    # The counts of billing.imports.ImportResult and its first errors; every error is in errors_file.
    result = models.JSONField(null=True, blank=True)
    errors_file = models.FileField(upload_to="imports/errors/%Y/%m/", blank=True)
    error = models.TextField(blank=True)  # why a failed job failed

    class Meta:
        indexes = [models.Index(fields=["uploaded_by", "created_at"])]

    def __str__(self):
        return f"import {self.pk}: {self.kind} {self.file_name} ({self.status})"


class ExchangeRate(models.Model):
    """What one unit of ``currency`` was worth in ``to_currency`` (both in major units), from
    ``valid_from`` until the pair's next row. The metrics convert a ledger row in another
    currency than its offer's with the rate in force when it was made (analytics/metrics.py);
    a row with no rate in force is left out of revenue and counted, never guessed. Only the
    direct pair is used: a EUR→USD row does not stand in for USD→EUR."""

    currency = models.CharField(max_length=3)
    to_currency = models.CharField(max_length=3)
    rate = models.DecimalField(max_digits=20, decimal_places=10)
    valid_from = models.DateTimeField()

    class Meta:
        ordering = ["currency", "to_currency", "-valid_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["currency", "to_currency", "valid_from"], name="exchange_rate_once_per_pair_and_time"
            ),
            models.CheckConstraint(condition=Q(rate__gt=0), name="exchange_rate_positive"),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[A-Z]{3}$") & Q(to_currency__regex=r"^[A-Z]{3}$"),
                name="exchange_rate_currency_iso",
            ),
            models.CheckConstraint(condition=~Q(currency=models.F("to_currency")), name="exchange_rate_two_currencies"),
        ]

    def __str__(self):
        return f"1 {self.currency} = {self.rate} {self.to_currency} from {self.valid_from:%Y-%m-%d %H:%M}"
