"""History imports: customers, purchases and trial assignments, from CSV files or from the same
records as JSON lists. One implementation behind the three ways in: the ``import_history``
command, the console's upload page (in a background job) and the JSON API (docs/architecture.md, "Public
contracts").

The rules:

- Idempotent by external id (customers: ``external_id``; purchases: source and ``external_id``;
  assignments: offer and customer). The same record again changes nothing; the same id with
  different content is an error on that row, never an overwrite.
- All or nothing per file: every row is checked, and every bad row is reported with where it is
  (CSV: its line, the header being line 1; JSON: the item's index, from 0) and a plain reason.
  If any row is bad nothing is written, unless ``skip_invalid`` is given: then the good rows are
  written and the bad ones reported. A file that cannot be read as a whole (not UTF-8, broken
  CSV, a wrong header) is always refused.

How, so that a million purchases go in at the pace of the database: the file is streamed in
chunks of 10,000 rows. Each chunk is checked in Python against lookups loaded once (products,
offers, customers by external id, currencies) and batched queries for the chunk's external ids,
and its good rows are written at once: COPY on PostgreSQL for purchases (fed by a thread while
the next chunk is read and checked), bulk_create otherwise. All of it happens in one
transaction, and each chunk is written before the next is checked, so a later row sees an
earlier one exactly as it sees the ledger (a refund of a purchase higher up in the file, the
same id twice), and memory stays flat. A refused file is rolled back as a whole: nothing is
half-written.

The package, by subject: ``formats`` (kinds, columns, the result), ``reading`` (the file, row by
row), ``values`` (one value at a time), ``writing`` (bulk lookups, COPY, statistics),
``importer`` (the chunk loop), and one importer each in ``customers``, ``purchases`` and
``assignments``.
"""

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import IO

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.imports.assignments import AssignmentsImporter
from billing.imports.customers import CustomersImporter
from billing.imports.formats import (
    ASSIGNMENTS,
    COLUMNS,
    CUSTOMERS,
    KINDS,
    OUTCOMES,
    PURCHASES,
    SOURCES,
    ImportResult,
    RowError,
)
from billing.imports.purchases import PurchasesImporter
from billing.imports.reading import FileUnreadable, Row, csv_rows, json_rows
from config.csv import csv_text

__all__ = [
    "ASSIGNMENTS",
    "COLUMNS",
    "CUSTOMERS",
    "KINDS",
    "OUTCOMES",
    "PURCHASES",
    "SOURCES",
    "ImportResult",
    "RowError",
    "errors_csv",
    "history_import_csv",
    "history_import_records",
]

IMPORTERS = {CUSTOMERS: CustomersImporter, PURCHASES: PurchasesImporter, ASSIGNMENTS: AssignmentsImporter}


class _Refused(Exception):
    """Raised inside the transaction to roll it back."""


def history_import_csv(
    *,
    kind: str,
    file: IO[bytes],
    source: str = "import",
    skip_invalid: bool = False,
    progress: Callable[[int], None] | None = None,
    at: datetime | None = None,
) -> ImportResult:
    """Import a CSV file (bytes; UTF-8, with a header row). ``progress`` is called with the
    number of bytes read since its last call. ``at`` is now, for the range of dates accepted."""
    _check_arguments(kind, source)
    return _run(kind, source, skip_invalid, "line", lambda: csv_rows(file, COLUMNS[kind], progress), at)


def history_import_records(
    *, kind: str, records: list, source: str = "api", skip_invalid: bool = False, at: datetime | None = None
) -> ImportResult:
    """Import the same records as a JSON list of objects with the CSV's columns as keys. Every
    value is a string; null, or a key left out, is an empty value."""
    _check_arguments(kind, source)
    return _run(kind, source, skip_invalid, "item", lambda: json_rows(records, COLUMNS[kind]), at)


def errors_csv(errors: Iterable[RowError], *, place: str = "line") -> str:
    """The errors as a CSV file, for people to open next to the file they imported."""
    rows = (("" if error.row is None else error.row, error.field, error.message) for error in errors)
    return csv_text([place, "field", "message"], rows)


def _check_arguments(kind: str, source: str) -> None:
    if kind not in COLUMNS:
        raise ValueError(f"Unknown import kind {kind!r}: use {', '.join(KINDS)}.")
    if source not in SOURCES:
        raise ValueError(f"Unknown source {source!r}: use import or api.")


def _run(
    kind: str, source: str, skip_invalid: bool, place: str, rows: Callable[[], Iterator[Row]], at: datetime | None
) -> ImportResult:
    result = ImportResult(kind=kind)
    try:
        with transaction.atomic():
            importer = IMPORTERS[kind](result=result, source=source, place=place, at=at or timezone.now())
            try:
                importer.run(rows())
            except FileUnreadable as exc:
                result.errors.append(RowError(exc.row, "", exc.message))
                raise _Refused() from None
            if result.errors and not skip_invalid:
                raise _Refused()
    except _Refused:
        _refused(result)
    except IntegrityError as exc:
        # The checks found no conflict, so something else (another import, a payment, a deleted
        # customer) changed the same records while this one ran. The constraints held.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "a constraint"
        result.errors.append(
            RowError(
                None,
                "",
                f"Something else changed the same records while this import ran ({reason}). "
                "Nothing was written; run the import again.",
            )
        )
        _refused(result)
    result.errors.sort(key=lambda error: -1 if error.row is None else error.row)
    return result


def _refused(result: ImportResult) -> None:
    result.refused = True
    result.created = result.attached = result.trials = result.converted = 0
