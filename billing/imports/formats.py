"""What an import takes and what it answers: the kinds of file and their columns, the outcomes
of an imported trial, and the result with its errors."""

from dataclasses import dataclass, field

from trials.models import Trial

CUSTOMERS, PURCHASES, ASSIGNMENTS = "customers", "purchases", "assignments"
COLUMNS = {
    CUSTOMERS: ("external_id", "email", "created_at", "country"),
    PURCHASES: (
        "external_id",
        "customer_external_id",
        "product_sku",
        "kind",
        "amount",
        "currency",
        "purchased_at",
        "refund_of",
    ),
    ASSIGNMENTS: (
        "customer_external_id",
        "offer_slug",
        "arm",
        "assigned_at",
        "claimed_at",
        "trial_ends_at",
        "outcome",
        "converted_at",
    ),
}
KINDS = tuple(COLUMNS)
SOURCES = ("import", "api")  # the same words in Purchase.Source and Assignment.Source
OUTCOMES = {
    "converted": Trial.Status.CONVERTED,
    "cancelled": Trial.Status.CANCELLED,
    "expired": Trial.Status.EXPIRED,
    "payment_failed": Trial.Status.PAYMENT_FAILED,
    "pending": Trial.Status.ACTIVE,
}


@dataclass(frozen=True)
class RowError:
    """One problem with one row: ``row`` is the CSV line (header = 1) or the JSON item's index
    (from 0), or None for the import as a whole; ``field`` the column, or "" for the whole row."""

    row: int | None
    field: str
    message: str


@dataclass
class ImportResult:
    kind: str
    rows: int = 0  # rows (CSV, after the header) or items (JSON) read
    created: int = 0
    unchanged: int = 0
    invalid: int = 0
    attached: int = 0  # customers: accounts that existed without an external id and now have one
    trials: int = 0  # assignments: trials written with their claimed assignments
    converted: int = 0  # purchases: open trials that the new regular purchases converted
    refused: bool = False  # nothing was written
    errors: list[RowError] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.created} created"]
        if self.kind == CUSTOMERS:
            parts.append(f"{self.attached} attached to existing accounts")
        parts += [f"{self.unchanged} unchanged", f"{self.invalid} invalid"]
        if self.kind == ASSIGNMENTS:
            parts.append(f"{self.trials} trials")
        if self.kind == PURCHASES:
            parts.append(f"{self.converted} trials converted")
        outcome = "refused, nothing was written" if self.refused else "done"
        return f"{self.kind}: {', '.join(parts)} ({outcome})."
