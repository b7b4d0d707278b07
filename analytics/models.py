"""The rollups the dashboards read (analytics/rollups.py says why they have this shape)."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class UnitRollup(models.Model):
    """One unit (a customer's assignment to an offer, METRICS.md) reduced to what every dashboard
    figure needs: its arm and times, its trial's times and state, and its purchases over the two
    90-day windows (count, revenue, rows with no rate) and by week since the trial's end.

    Derived data: ``rebuild_rollups`` can always make it again from the ledger, trials and
    assignments. ``folded_at`` is the moment the row was computed (refunds made after it are not
    in it yet).

    Its keys have no foreign key constraint in the database (``db_constraint=False``): every row
    is written by a fold that has just read its assignment and offer, and checking them again
    cost a refresh of 10,000 units 0.5 s of its 2.7 s, at commit (bench/README.md). Deleting
    an assignment or an offer through Django still deletes its rows (``on_delete``). Nor has
    ``offer`` an index of its own: (offer, assigned_at) serves every read by offer."""

    assignment = models.OneToOneField(
        "trials.Assignment",
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="rollup",
        db_constraint=False,
    )
    offer = models.ForeignKey(
        "offers.Offer", on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    arm = models.CharField(max_length=40)
    assigned_at = models.DateTimeField()
    # The claimed trial (analytics.queries.CLAIMED_STATUSES): empty and null when there is none.
    status = models.CharField(max_length=15, blank=True)
    claimed_at = models.DateTimeField(null=True)
    ends_at = models.DateTimeField(null=True)
    converted_at = models.DateTimeField(null=True)
    # [assigned_at, assigned_at + N): purchases, revenue (minor units of the offer's currency,
    # refunds negative) and ledger rows left out for want of a rate.
    itt_purchases = models.PositiveIntegerField(default=0)
    itt_revenue = models.DecimalField(max_digits=40, decimal_places=12, default=0)
    itt_unconverted = models.PositiveIntegerField(default=0)
    # [ends_at, ends_at + N) for the claimed trial; ``post_unconverted_outside`` counts only the
    # rows outside the itt window, so that a row is never counted as unconverted twice.
    post_purchases = models.PositiveIntegerField(default=0)
    post_revenue = models.DecimalField(max_digits=40, decimal_places=12, default=0)
    post_unconverted = models.PositiveIntegerField(default=0)
    post_unconverted_outside = models.PositiveIntegerField(default=0)
    # Bit k: a purchase in week k after the trial's end (the cohort heatmap, weeks 0 to 12).
    cohort_weeks = models.PositiveIntegerField(default=0)
    folded_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["offer", "assigned_at"])]
        verbose_name = _("unit rollup")

    def __str__(self):
        return f"rollup of assignment {self.assignment_id}"


class RollupState(models.Model):
    """The one row (pk 1) that says how far the rollups have read: the moment they are as of, and
    the last id folded of each source table. ``gaps`` holds, per source, ids below its watermark
    that were missing when it passed (a transaction that had its id but had not committed yet),
    each with when it was first missed, so that a late commit is still folded."""

    as_of = models.DateTimeField()
    built_at = models.DateTimeField()
    assignment_id = models.BigIntegerField(default=0)
    purchase_id = models.BigIntegerField(default=0)
    event_id = models.BigIntegerField(default=0)
    rate_id = models.BigIntegerField(default=0)
    gaps = models.JSONField(default=dict)

    class Meta:
        verbose_name = _("rollup state")

    def __str__(self):
        return f"rollups as of {self.as_of:%Y-%m-%d %H:%M:%S}"
