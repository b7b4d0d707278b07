"""Importing purchases and refunds into the ledger (billing.models.Purchase), like
billing.ledger.purchase_record and refund_record but a chunk at a time. A refund names the
purchase it refunds (same source, in the ledger or higher up in the file), is negative, has the
purchase's customer, product, kind and currency, and may not exceed what is left of it. New
regular purchases convert open trials afterwards, all at once (``finish``)."""

from datetime import datetime
from typing import NamedTuple

from django.db import connection
from django.db.models import Max, Sum

from billing.imports import values
from billing.imports.importer import WithCustomers
from billing.imports.writing import Copy, MaybeWritten, copy_text, where_in
from billing.models import Purchase
from config.batches import batches
from config.limits import MAX_EXTERNAL_ID
from offers.models import Product
from trials import services as trial_services
from trials.models import Trial


class Content(NamedTuple):
    """What a purchase is; the same external id with other content is an error."""

    customer_id: int
    product_id: int
    kind: str
    amount: int  # minor units; negative for a refund
    currency: str
    at: datetime
    refund_of: str  # the refunded purchase's external id, or ""


def _refund_key(content: Content) -> tuple:
    """What a refund shares with the purchase it refunds."""
    return (content.customer_id, content.product_id, content.kind, content.currency)


class Record(NamedTuple):
    """A purchase as read from the file."""

    row: int
    external_id: str
    content: Content
    # On PostgreSQL, its line of COPY text between the id and refund_of_id, which are known once
    # the chunk has been checked against the ledger: made while the server is still writing the
    # chunk before, so that only those two are left to put in afterwards (``_copy``).
    copy_middle: str = ""


class Recorded(NamedTuple):
    """A purchase already in the ledger."""

    pk: int
    content: Content


class NewPurchase(NamedTuple):
    """A ledger row about to be written, with the id reserved for it."""

    pk: int
    external_id: str
    content: Content
    refund_of_id: int | None
    copy_middle: str


class OpenTrial(NamedTuple):
    """A trial a regular purchase of its offer's product may convert."""

    pk: int
    product_id: int
    claimed_at: datetime
    status: str
    ends_at: datetime
    grace_days: int


class Conversion(NamedTuple):
    """The earliest new regular purchase that converts a trial."""

    at: datetime
    purchase_id: int


# The ledger's columns that hold a purchase's Content (refund_of aside).
CONTENT_COLUMNS = ("customer_id", "product_id", "kind", "amount", "currency", "purchased_at")
WRITE_COLUMNS = ("id", *CONTENT_COLUMNS, "source", "external_id", "refund_of_id", "trial_id", "recorded_at")


class PurchasesImporter(WithCustomers):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.products = dict(Product.objects.values_list("sku", "pk"))
        self.kinds = frozenset(Purchase.Kind.values)
        self.currencies = values.Currencies()
        self.postgres = connection.vendor == "postgresql"
        self.next_id: int | None = None
        self.conversions: dict[int, Conversion] = {}  # by trial
        # Each customer's open trials, read once per import: a trial claimed meanwhile is claimed
        # after these purchases of the past anyway.
        self.open_trials: dict[int, tuple[OpenTrial, ...]] = {}
        self.copy = Copy(Purchase, WRITE_COLUMNS) if self.postgres else None
        # External ids are unique per source. When the source had no row in the ledger as this
        # import began (a shop's first import of its history: the big one), only the rows this
        # import wrote can be there, so a chunk asks the ledger only about the ids it may have
        # written itself. Were another import or the API to write the same source's ids
        # meanwhile, the unique constraint still refuses a second row: this import is then
        # rolled back whole, saying so (billing.imports._run), and run again it asks about all.
        self.first_of_source = not Purchase.objects.filter(source=self.source).exists()
        self.written = MaybeWritten()
        if self.postgres:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [Purchase._meta.db_table])
                self.sequence = cursor.fetchone()[0]
                self.foreign_keys = [
                    connection.ops.quote_name(name)
                    for name, constraint in connection.introspection.get_constraints(
                        cursor, Purchase._meta.db_table
                    ).items()
                    if constraint["foreign_key"]
                ]
            # The ledger's foreign keys are checked at the end of each chunk's COPY rather than
            # all at the commit: the server then checks them while Python reads and checks the
            # next chunk, where at the commit nothing else happens (bench/bench_import.py). They
            # are deferred again in ``finish``, for the rest of the caller's transaction; a
            # rollback undoes the setting.
            self._foreign_keys_checked("IMMEDIATE")

    def parse(self, row, fields):
        external_id, customer, sku, kind, amount, currency, purchased_at, refund_of = fields
        currency = currency.upper()
        ok = True
        if problem := values.external_id_problem(external_id, "purchase's external id (its id in your shop or till)"):
            ok = False
            self.bad(row, "external_id", problem)
        customer_id = self.customer_id(row, customer)
        ok = ok and customer_id is not None
        product_id = self.products.get(sku)
        if product_id is None:
            ok = False
            self.bad(
                row, "product_sku", f"There is no product with the SKU “{sku}”." if sku else "Give the product's SKU."
            )
        if kind not in self.kinds:
            ok = False
            self.bad(row, "kind", f"“{kind}” is not a kind of purchase: use regular, trial_fee or sample.")
        minor = None
        if problem := self.currencies[currency]:
            ok = False
            self.bad(row, "currency", problem)
        else:
            minor = values.amount(amount, currency)
            if isinstance(minor, str):
                ok = False
                self.bad(row, "amount", minor)
            elif minor == 0:
                ok = False
                self.bad(row, "amount", "The amount cannot be zero.")
            elif minor < 0 and not refund_of:
                ok = False
                self.bad(row, "amount", "A negative amount is a refund: give refund_of, the purchase it refunds.")
            elif minor > 0 and refund_of:
                ok = False
                self.bad(row, "amount", "A refund's amount is negative (the money going back), like -12.50.")
        moment = self.moment(
            row, "purchased_at", purchased_at, missing="Give the time of the purchase, with an offset."
        )
        ok = ok and moment is not None
        if refund_of:
            if len(refund_of) > MAX_EXTERNAL_ID or "\x00" in refund_of:
                ok = False
                self.bad(row, "refund_of", "This is not an external id of a purchase.")
            elif refund_of == external_id:
                ok = False
                self.bad(row, "refund_of", "A purchase cannot refund itself.")
        if not ok:
            return None
        content = Content(customer_id, product_id, kind, minor, currency, moment, refund_of)
        middle = self._copy_middle(external_id, content) if self.copy is not None else ""
        return Record(row, external_id, content, middle)

    # The ledger as it stands, for one chunk ----------------------------------------------------
    def _recorded(self, external_ids: set[str], originals: set[str]) -> dict[str, Recorded]:
        """Those of the chunk's ``external_ids`` and of the ``originals`` its refunds name that are
        already in the ledger for this source. The originals, a few, are always asked about: one
        that someone else recorded meanwhile is then refunded as it should be."""
        if self.first_of_source:
            external_ids = {external_id for external_id in external_ids if external_id in self.written}
        external_ids = external_ids | originals
        recorded = Purchase.objects.filter(source=self.source).values_list(
            "external_id", "id", *CONTENT_COLUMNS, "refund_of_id"
        )
        found = {external_id: fields for external_id, *fields in where_in(recorded, "external_id", external_ids)}
        # Refunds are few: their originals' external ids by primary key, not by a join that the
        # planner might answer by reading the whole ledger.
        originals = dict(
            where_in(Purchase.objects.values_list("pk", "external_id"), "id", {f[-1] for f in found.values() if f[-1]})
        )
        return {
            external_id: Recorded(pk, Content(*content, originals.get(refund_of_id, "")))
            for external_id, (pk, *content, refund_of_id) in found.items()
        }

    def _refunded(self, original_ids: list[int]) -> dict[int, int]:
        """How much of each original has been refunded already (a positive amount). The originals
        are locked first, as refund_record does, so that two imports cannot together refund
        more than was paid."""
        refunded: dict[int, int] = {}
        for part in batches(original_ids, 900):
            list(Purchase.objects.select_for_update().filter(pk__in=part).values_list("pk", flat=True))
            for original_id, total in (
                Purchase.objects.filter(refund_of_id__in=part)
                .values("refund_of_id")
                .annotate(total=Sum("amount"))
                .values_list("refund_of_id", "total")
            ):
                refunded[original_id] = -total
        return refunded

    def check_and_write(self, parsed: list[Record]):
        self._settle()
        recorded = self._recorded(
            {record.external_id for record in parsed},
            {record.content.refund_of for record in parsed if record.content.refund_of},
        )
        originals = {recorded[r.content.refund_of].pk for r in parsed if r.content.refund_of in recorded}
        refunded = self._refunded(sorted(originals)) if originals else {}

        accepted: dict[str, Record] = {}  # the new rows of this chunk, by external id
        for record in parsed:
            row, external_id, content, _middle = record
            earlier, known = accepted.get(external_id), recorded.get(external_id)
            if earlier is not None or known is not None:
                self.repeat(
                    row,
                    "external_id",
                    same=(earlier or known).content == content,
                    line=earlier.row if earlier else self.lines.get(known.pk),
                    in_file=lambda where, external_id=external_id: (
                        f"The purchase “{external_id}” is also on {where} with different content."
                    ),
                    before=f"The purchase “{external_id}” was recorded before with different content. The ledger "
                    "is append-only: record a change as a refund or a new purchase.",
                )
                continue
            if content.refund_of and not self._refund_fits(record, accepted, recorded, refunded):
                continue
            accepted[external_id] = record
        if accepted:
            self._write(list(accepted.values()), recorded)

    def _refund_fits(self, record: Record, accepted, recorded, refunded) -> bool:
        content = record.content
        refund_of = content.refund_of
        earlier = accepted.get(refund_of)
        if earlier is not None:
            key, original = refund_of, earlier.content  # a purchase of this chunk: nothing refunded before
        elif refund_of in recorded:
            key, original = recorded[refund_of].pk, recorded[refund_of].content
        else:
            self.bad(
                record.row,
                "refund_of",
                f"There is no {self.source} purchase “{refund_of}” to refund, neither in the "
                f"ledger nor higher up in this file.",
            )
            return False
        done = refunded.get(key, 0)
        if original.refund_of:
            self.bad(record.row, "refund_of", f"“{refund_of}” is itself a refund; a refund cannot be refunded.")
            return False
        if _refund_key(original) != _refund_key(content):
            self.bad(
                record.row,
                "refund_of",
                f"A refund has the same customer, product, kind and currency as the purchase "
                f"it refunds; “{refund_of}” differs.",
            )
            return False
        if done - content.amount > original.amount:
            left = values.money(original.amount - done, content.currency)
            self.bad(
                record.row,
                "amount",
                f"The refund of {values.money(-content.amount, content.currency)} is more than is left to "
                f"refund of “{refund_of}” ({left}).",
            )
            return False
        refunded[key] = done - content.amount
        return True

    # Writing -------------------------------------------------------------------------------------
    def _reserve(self, count: int) -> list[int]:
        """Ids for ``count`` new rows, so that a refund can point at a purchase of the same chunk
        and the rows written by this import are known without reading them back."""
        if self.postgres:
            with connection.cursor() as cursor:
                # One array rather than a row per id: a tenth of the time to fetch.
                cursor.execute(
                    "SELECT array_agg(nextval(%s::regclass)) FROM generate_series(1, %s)", [self.sequence, count]
                )
                return sorted(cursor.fetchone()[0])
        # SQLite: with the project's IMMEDIATE transactions this one holds the write lock, so no
        # one else takes an id meanwhile; were someone to, the insert fails and nothing is written.
        if self.next_id is None:
            self.next_id = (Purchase.objects.aggregate(top=Max("pk"))["top"] or 0) + 1
        ids = list(range(self.next_id, self.next_id + count))
        self.next_id += count
        return ids

    def _write(self, written: list[Record], recorded: dict[str, Recorded]) -> None:
        ids = self._reserve(len(written))
        self.written.update([record.external_id for record in written])
        id_of = {}
        for pk, record in zip(ids, written, strict=True):
            id_of[record.external_id] = pk
            self.lines.add(pk, record.row)
        rows = [
            NewPurchase(
                pk,
                record.external_id,
                record.content,
                (id_of.get(record.content.refund_of) or recorded[record.content.refund_of].pk)
                if record.content.refund_of
                else None,
                record.copy_middle,
            )
            for pk, record in zip(ids, written, strict=True)
        ]
        self._find_conversions(rows)
        if self.copy is not None:
            self._copy(rows)
        else:
            Purchase.objects.bulk_create(
                [
                    Purchase(
                        id=row.pk,
                        customer_id=row.content.customer_id,
                        product_id=row.content.product_id,
                        kind=row.content.kind,
                        amount=row.content.amount,
                        currency=row.content.currency,
                        purchased_at=row.content.at,
                        source=self.source,
                        external_id=row.external_id,
                        refund_of_id=row.refund_of_id,
                    )
                    for row in rows
                ],
                batch_size=500,
            )
        self.result.created += len(rows)

    def _copy_middle(self, external_id: str, content: Content) -> str:
        """A row's COPY text (PostgreSQL's text format) from its customer to its external id.
        Only the external id is free text; everything else was checked against a closed set or
        is a number or a timestamp."""
        customer_id, product_id, kind, amount, currency, at, _refund_of = content
        return (
            f"\t{customer_id}\t{product_id}\t{kind}\t{amount}\t{currency}\t{at.isoformat()}\t{self.source}\t"
            f"{copy_text(external_id)}\t"
        )

    def _copy(self, rows: list[NewPurchase]) -> None:
        """COPY the rows: each one's id, its middle (``_copy_middle``), refund_of_id, no trial and
        the time of recording."""
        null = "\\N"
        end = f"\t{null}\t{self.at.isoformat()}\n"
        self.copy.start(
            [f"{row.pk}{row.copy_middle}{null if row.refund_of_id is None else row.refund_of_id}{end}" for row in rows]
        )

    def _settle(self) -> None:
        if self.copy is not None:
            self.statistics.wrote(Purchase, self.copy.settle())

    def run(self, rows) -> None:
        try:
            super().run(rows)
        except BaseException:
            if self.copy is not None:
                self.copy.abandon()
            raise

    def _find_conversions(self, rows: list[NewPurchase]) -> None:
        """Which open trials these new rows convert, as billing.ledger.purchase_record decides
        for one purchase: trials of the same customer, of offers leading to the purchased
        product, claimed at or before a regular purchase (an expired one only within its
        conversion window, trials.services.still_converts). Found here with one indexed query per
        chunk (the customers' open trials) rather than with a join against the rows just
        written, whose statistics the planner does not have yet."""
        regular = [row for row in rows if row.content.kind == Purchase.Kind.REGULAR and row.refund_of_id is None]
        open_trials = self.open_trials
        unknown = {row.content.customer_id for row in regular if row.content.customer_id not in open_trials}
        for customer_id in unknown:
            open_trials[customer_id] = ()
        trials = Trial.objects.filter(status__in=trial_services.CONVERTIBLE).values_list(
            "pk", "customer_id", "offer__product_id", "claimed_at", "status", "ends_at", "offer__grace_days"
        )
        for trial_id, customer_id, *fields in where_in(trials, "customer", unknown):
            open_trials[customer_id] += (OpenTrial(trial_id, *fields),)
        conversions = self.conversions
        for row in regular:
            at = row.content.at
            for trial in open_trials.get(row.content.customer_id, ()):
                if (
                    trial.product_id == row.content.product_id
                    and trial.claimed_at <= at
                    and trial_services.still_converts(
                        status=trial.status, ends_at=trial.ends_at, grace_days=trial.grace_days, at=at
                    )
                ):
                    earliest = conversions.get(trial.pk)
                    if earliest is None or (at, row.pk) < earliest:
                        conversions[trial.pk] = Conversion(at, row.pk)

    def finish(self) -> None:
        self._settle()
        if self.postgres:
            self._foreign_keys_checked("DEFERRED")
        if self.conversions:
            # A trial that a job moved meanwhile keeps its new state (trials_convert moves only
            # the trials still open).
            moved = trial_services.trials_convert(
                moves=[
                    trial_services.Move(trial_id, conversion.at, f"purchase {conversion.purchase_id} (imported)")
                    for trial_id, conversion in self.conversions.items()
                ]
            )
            self.result.converted = len(moved)

    def _foreign_keys_checked(self, mode: str) -> None:
        if self.foreign_keys:
            with connection.cursor() as cursor:
                cursor.execute(f"SET CONSTRAINTS {', '.join(self.foreign_keys)} {mode}")
