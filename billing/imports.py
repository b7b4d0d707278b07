"""History imports: customers, purchases and trial assignments, from CSV files or from the same
records as JSON lists. One implementation behind the three ways in: the ``import_history``
command, the console's upload page and the JSON API (DESIGN.md, "Public contracts").

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
"""

import csv
import io
import re
import sys
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO

from babel.numbers import get_currency_precision
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import IntegrityError, connection, transaction
from django.db.models import BooleanField, Case, DateTimeField, Max, QuerySet, Sum, Value, When
from django.db.models.expressions import RawSQL
from django.utils import timezone
from psycopg.copy import QueuedLibpqWriter

from accounts.models import User
from billing.models import Purchase
from offers.models import Offer, Product, Variant
from offers.money import MoneyError, countries, currency_check, to_major
from offers.rules import canonical_email
from trials.models import Assignment, Trial, TrialEvent
from trials.services import CONVERTIBLE

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
CHUNK = 10_000
ANALYZE_AFTER = 50_000  # rows written to a table before its statistics are refreshed
MAX_TEXT = 255  # external ids are varchar(255)
MAX_MINOR = 2**63 - 1  # Purchase.amount is a bigint
_AMOUNT = re.compile(r"(-?)([0-9]{1,20})(?:\.([0-9]{1,20}))?")
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
_BOM = b"\xef\xbb\xbf"


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


class _FileUnreadable(Exception):
    """The file cannot be read row by row at all; nothing after this point can be trusted."""

    def __init__(self, row: int | None, message: str):
        super().__init__(message)
        self.row, self.message = row, message


class _Refused(Exception):
    """Raised inside the transaction to roll it back."""


# --- Entry points --------------------------------------------------------------------------------
def history_import_csv(
    *,
    kind: str,
    file: IO[bytes],
    source: str = "import",
    skip_invalid: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import a CSV file (bytes; UTF-8, with a header row). ``progress`` is called with the
    number of bytes read since its last call."""
    _check_arguments(kind, source)
    return _run(kind, source, skip_invalid, "line", lambda: _csv_rows(file, COLUMNS[kind], progress))


def history_import_records(
    *, kind: str, records: list, source: str = "api", skip_invalid: bool = False
) -> ImportResult:
    """Import the same records as a JSON list of objects with the CSV's columns as keys. Every
    value is a string; null, or a key left out, is an empty value."""
    _check_arguments(kind, source)
    return _run(kind, source, skip_invalid, "item", lambda: _json_rows(records, COLUMNS[kind]))


def errors_csv(errors: Iterable[RowError], *, place: str = "line") -> str:
    """The errors as a CSV file, for people to open next to the file they imported."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([place, "field", "message"])
    writer.writerows(("" if error.row is None else error.row, error.field, error.message) for error in errors)
    return out.getvalue()


def _check_arguments(kind: str, source: str) -> None:
    if kind not in COLUMNS:
        raise ValueError(f"Unknown import kind {kind!r}: use {', '.join(KINDS)}.")
    if source not in SOURCES:
        raise ValueError(f"Unknown source {source!r}: use import or api.")


def _run(kind: str, source: str, skip_invalid: bool, place: str, rows: Callable[[], Iterator]) -> ImportResult:
    result = ImportResult(kind=kind)
    importer_class = {CUSTOMERS: _Customers, PURCHASES: _Purchases, ASSIGNMENTS: _Assignments}[kind]
    try:
        with transaction.atomic():
            importer = importer_class(result=result, source=source, place=place)
            try:
                importer.run(rows())
            except _FileUnreadable as exc:
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


# --- Reading -------------------------------------------------------------------------------------
def _utf8_lines(file: IO[bytes], progress: Callable[[int], None] | None) -> Iterator[str]:
    """The file's lines as text. Splitting on b"\\n" first keeps the line numbers exact (no
    UTF-8 character contains that byte) and lets a bad byte be reported on its own line."""
    unreported = 0
    for number, raw in enumerate(file, start=1):
        if number == 1 and raw.startswith(_BOM):  # Excel's "CSV UTF-8" starts with one
            raw = raw[len(_BOM) :]
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _FileUnreadable(
                number,
                f"The file is not UTF-8: line {number} has a byte (0x{raw[exc.start]:02X}) that is not UTF-8 text. "
                "Save the file as UTF-8 (in Excel: “CSV UTF-8”) and import it again.",
            ) from None
        if progress is not None:
            unreported += len(raw)
            if unreported >= 1 << 20:
                progress(unreported)
                unreported = 0
        yield line
    if progress is not None and unreported:
        progress(unreported)


def _csv_rows(file: IO[bytes], columns: tuple[str, ...], progress) -> Iterator[tuple[int, list[str] | None, list]]:
    """(line, values in the order of ``columns``, problems) for each row after the header."""
    reader = csv.reader(_utf8_lines(file, progress), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise _FileUnreadable(1, f"The file is empty. Its first line must be the header: {','.join(columns)}") from None
    except csv.Error as exc:
        raise _FileUnreadable(1, f"Line 1 is not valid CSV ({exc}).") from None
    header = [name.strip() for name in header]
    missing = [name for name in columns if name not in header]
    extra = [name for name in header if name not in columns]
    twice = sorted({name for name in header if header.count(name) > 1})
    if missing or extra or twice:
        problems = []
        if missing:
            problems.append(f"it lacks {', '.join(missing)}")
        if extra:
            problems.append(f"it has columns this import does not know: {', '.join(extra) or '(an empty name)'}")
        if twice:
            problems.append(f"it names {', '.join(twice)} twice")
        raise _FileUnreadable(
            1, f"The header is not right: {'; '.join(problems)}. It must be exactly: {','.join(columns)}"
        )
    order = None if header == list(columns) else [header.index(name) for name in columns]
    width = len(columns)
    last = reader.line_num
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line = last + 1
            raise _FileUnreadable(
                line,
                f"Line {line} is not valid CSV ({exc}). A field with a comma, a quote or a line break goes in "
                'double quotes, and a quote inside it is written twice ("").',
            ) from None
        line, last = last + 1, reader.line_num
        if not values:
            continue  # a blank line
        if len(values) != width:
            yield line, None, [("", f"This line has {len(values)} fields; the header has {width}.")]
        elif order is None:
            yield line, values, None
        else:
            yield line, [values[index] for index in order], None


def _json_rows(records, columns: tuple[str, ...]) -> Iterator[tuple[int, list[str] | None, list]]:
    if not isinstance(records, list):
        raise _FileUnreadable(None, "Send a JSON list of records, like [{...}, {...}].")
    names = ", ".join(columns)
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            yield index, None, [("", f"Each record is a JSON object with the keys {names}.")]
            continue
        problems = [(str(name), f"Unknown key; a record has {names}.") for name in record if name not in columns]
        values = []
        for name in columns:
            value = record.get(name)
            if value is None:
                value = ""
            elif not isinstance(value, str):
                problems.append((name, f"Give this as a string, like “{_example(name)}”."))
                continue
            else:
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    problems.append((name, "This text has characters that are not valid Unicode."))
                    continue
            values.append(value)
        yield index, (None if problems else values), problems or None


def _example(name: str) -> str:
    if name.endswith("_at"):
        return "2026-06-01T09:00:00+02:00"
    return {"amount": "12.50", "currency": "EUR", "country": "DE", "kind": "regular", "outcome": "converted"}.get(
        name, "abc-123"
    )


# --- Parsing one value ---------------------------------------------------------------------------
def _moment(value: str) -> datetime | str:
    """An aware datetime, or the reason the text is not one."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return f"“{value}” is not an ISO 8601 timestamp; write it like 2026-06-01T09:00:00+02:00."
    if moment.tzinfo is None:
        return f"“{value}” has no offset, so it could mean several moments; add one, like +02:00 or Z."
    if not 1900 <= moment.year <= 9998:
        return f"“{value}” is out of range (years 1900 to 9998)."
    return moment


def _external_id(value: str, what: str) -> str:
    """The reason an external id is not usable, or ""."""
    if not value:
        return f"Give the {what}."
    if len(value) > MAX_TEXT:
        return f"An external id has {MAX_TEXT} characters at most; this one has {len(value)}."
    if "\x00" in value:
        return "An external id cannot contain a NUL character."
    return ""


class _Scales(dict):
    """Currency code → (decimal places, 10**places), filled as currencies are first seen."""

    def problem(self, code: str) -> str:
        if code in self:
            return ""
        try:
            currency_check(code)
        except MoneyError as exc:
            return str(exc)
        places = get_currency_precision(code)
        self[code] = (places, 10**places)
        return ""


def _minor(value: str, currency: str, scale: tuple[int, int]) -> int | str:
    """Integer minor units of a decimal string in major units, like offers.money.to_minor, but
    without a Decimal per row; or the reason it is not an amount."""
    match = _AMOUNT.fullmatch(value)
    if match is None:
        return f"“{value}” is not an amount; write it as a decimal string in major units, like 12.50 or -12.50."
    sign, whole, fraction = match.groups()
    places, factor = scale
    fraction = (fraction or "").rstrip("0")
    if len(fraction) > places:
        return f"{currency} has {places} decimal places; “{value}” has more."
    minor = int(whole) * factor + (int(fraction.ljust(places, "0")) if fraction else 0)
    if minor > MAX_MINOR:
        return f"“{value}” is too large an amount."
    return -minor if sign else minor


def _money(minor: int, currency: str) -> str:
    return f"{to_major(minor, currency)} {currency}"


class _Lines:
    """Which line of this file wrote which row (by primary key), to name it in messages. Keys
    mostly come in increasing order, so two arrays of integers hold a million rows cheaply."""

    def __init__(self):
        self._keys = array("q")
        self._lines = array("q")
        self._other: dict[int, int] = {}

    def add(self, key: int, line: int) -> None:
        if not self._keys or key > self._keys[-1]:
            self._keys.append(key)
            self._lines.append(line)
        else:
            self._other[key] = line

    def get(self, key: int) -> int | None:
        index = bisect_left(self._keys, key)
        if index < len(self._keys) and self._keys[index] == key:
            return self._lines[index]
        return self._other.get(key)


def _batches(values: list, size: int) -> Iterator[list]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _where_in(queryset: QuerySet, name: str, values: Iterable) -> Iterator:
    """``queryset.filter(<name>__in=values)`` for thousands of values, in batches. On PostgreSQL
    each batch goes as one array parameter (a long IN list costs far more to compose and parse
    than to run), and batches stay small enough that the planner probes the index rather than
    reading the table, whose size it may underestimate. SQLite takes them below its limit on
    parameters."""
    values = list(values)
    if connection.vendor != "postgresql":
        for part in _batches(values, 900):
            yield from queryset.filter(**{f"{name}__in": part})
        return
    column = connection.ops.quote_name(queryset.model._meta.get_field(name).column)
    table = connection.ops.quote_name(queryset.model._meta.db_table)
    for part in _batches(values, 1000):
        # Only our own quoted table and column names go into the text; the values are a parameter.
        yield from queryset.filter(RawSQL(f"{table}.{column} = ANY(%s)", (part,), BooleanField()))  # noqa: S611


# --- The importers -------------------------------------------------------------------------------
class _Importer:
    columns: tuple[str, ...] = ()

    def __init__(self, *, result: ImportResult, source: str, place: str):
        self.result = result
        self.source = source
        self.place = place  # "line" for CSV, "item" for JSON
        self.lines = _Lines()
        self.growth: dict[str, list[int]] = {}  # table → [rows the planner knows of, rows written since]

    def run(self, rows: Iterator[tuple[int, list[str] | None, list]]) -> None:
        chunk = []
        for row in rows:
            chunk.append(row)
            if len(chunk) == CHUNK:
                self._chunk(chunk)
                chunk = []
        if chunk:
            self._chunk(chunk)
        self.finish()

    def _chunk(self, chunk: list) -> None:
        self.result.rows += len(chunk)
        parsed = []
        for row, values, problems in chunk:
            if problems:
                for name, message in problems:
                    self.bad(row, name, message)
                continue
            record = self.parse(row, [value.strip() for value in values])
            if record is not None:
                parsed.append(record)
        if parsed:
            self.check_and_write(parsed)

    def bad(self, row: int, name: str, message: str) -> None:
        errors = self.result.errors
        if not errors or errors[-1].row != row:
            self.result.invalid += 1
        errors.append(RowError(row, name, message))

    def customer_id(self, row: int, external_id: str) -> int | None:
        """Our id of the customer with this external id, or None with the row marked bad.
        (Used by the importers that load ``self.customers``.)"""
        customer_id = self.customers.get(external_id)
        if customer_id is None:
            self.bad(
                row,
                "customer_external_id",
                f"There is no customer with the external id “{external_id}”; import the customer first."
                if external_id
                else "Give the customer's external id.",
            )
        return customer_id

    def where(self, row: int) -> str:
        return f"{self.place} {row}"

    def parse(self, row: int, values: list[str]):
        raise NotImplementedError

    def check_and_write(self, parsed: list) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        pass

    def wrote(self, model, count: int) -> None:
        """Keep PostgreSQL's planner up to date with the rows this import wrote. It has no
        statistics on rows added in a transaction still open, so after a big first import into
        a small table it would keep planning each chunk's lookups for a small table, scanning
        everything written so far: quadratic. ANALYZE counts the transaction's own rows; it
        runs when the import has doubled a table, a few times at most, and so never for a
        table much bigger than the file. (It holds a lock that only VACUUM, ANALYZE and DDL wait
        for, until the import commits. A role that does not own the table gets a warning and
        the old statistics, not an error.)"""
        if connection.vendor != "postgresql" or not count:
            return
        table = model._meta.db_table
        with connection.cursor() as cursor:
            state = self.growth.get(table)
            if state is None:
                cursor.execute("SELECT GREATEST(reltuples, 0)::bigint FROM pg_class WHERE oid = %s::regclass", [table])
                state = self.growth[table] = [cursor.fetchone()[0], 0]
            state[1] += count
            if state[1] >= max(ANALYZE_AFTER, state[0]):
                cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")
                state[0], state[1] = state[0] + state[1], 0


def _customers_by_external_id() -> dict[str, int]:
    return dict(User.objects.filter(external_id__isnull=False).values_list("external_id", "pk").iterator(10_000))


# --- Customers -----------------------------------------------------------------------------------
class _Customers(_Importer):
    """Customers become users with no usable password (they set one with "forgot password").
    A customer whose canonical email already has an account without an external id is that
    account: the external id is attached to it, and nothing else of it changes.

    The content compared on a second import is the email (canonically: case, Gmail dots and
    +tags don't count) and the country where both have one; ``created_at`` only sets the
    date a new account joined, since an account that existed keeps its own."""

    columns = COLUMNS[CUSTOMERS]

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.email_valid = EmailValidator()
        self.countries = countries()

    def parse(self, row, values):
        external_id, email, created_at, country = values
        ok = True
        if problem := _external_id(external_id, "customer's external id (their id in your shop or till)"):
            ok = False
            self.bad(row, "external_id", problem)
        if not email:
            ok = False
            self.bad(row, "email", "Give the customer's email address.")
        else:
            try:
                self.email_valid(email)
                if len(email) > 254:
                    raise ValidationError("too long")
            except ValidationError:
                ok = False
                self.bad(row, "email", f"“{email}” is not an email address.")
        moment = _moment(created_at) if created_at else "Give the time the customer was created, with an offset."
        if isinstance(moment, str):
            ok = False
            self.bad(row, "created_at", moment)
        country = country.upper()
        if country and country not in self.countries:
            ok = False
            self.bad(
                row,
                "country",
                f"“{country}” is not a country code (ISO 3166-1 alpha-2, like DE or FR); or leave it empty.",
            )
        if not ok:
            return None
        return (row, external_id, User.objects.normalize_email(email), canonical_email(email), moment, country)

    def check_and_write(self, parsed):
        by_external_id: dict[str, tuple] = {}
        users = User.objects.values_list("pk", "external_id", "canonical_email", "country")
        for pk, external_id, canonical, country in _where_in(users, "external_id", {r[1] for r in parsed}):
            by_external_id[external_id] = (pk, canonical, country)
        by_canonical: dict[str, list[tuple]] = {}
        users = User.objects.values_list("pk", "canonical_email", "external_id")
        for pk, canonical, external_id in _where_in(users, "canonical_email", {r[3] for r in parsed}):
            by_canonical.setdefault(canonical, []).append((pk, external_id))
        for accounts in by_canonical.values():
            accounts.sort()  # the oldest account first

        seen: dict[str, tuple] = {}  # external id → record, for this chunk
        seen_email: dict[str, tuple] = {}  # canonical email → record, for this chunk
        attached_pks: set[int] = set()
        new, attach = [], []
        for record in parsed:
            row, external_id, email, canonical, _created_at, country = record
            earlier = seen.get(external_id)
            if earlier is not None:
                if earlier[3] == canonical and (not country or not earlier[5] or country == earlier[5]):
                    self.result.unchanged += 1
                else:
                    self.bad(
                        row,
                        "external_id",
                        f"The customer “{external_id}” is also on {self.where(earlier[0])} with another "
                        "email or country.",
                    )
                continue
            known = by_external_id.get(external_id)
            if known is not None:
                pk, known_canonical, known_country = known
                if known_canonical == canonical and (not country or not known_country or country == known_country):
                    self.result.unchanged += 1
                else:
                    self.bad(row, "external_id", self._differs(external_id, pk))
                continue
            other = seen_email.get(canonical)
            if other is not None:
                self.bad(
                    row,
                    "email",
                    f"{self.where(other[0]).capitalize()} has the same email for the customer "
                    f"“{other[1]}”; one email is one customer.",
                )
                continue
            accounts = by_canonical.get(canonical, [])
            free = [
                pk for pk, account_external_id in accounts if account_external_id is None and pk not in attached_pks
            ]
            if free:
                attached_pks.add(free[0])
                attach.append((free[0], external_id, row))
            elif accounts:
                pk, account_external_id = accounts[0]
                line = self.lines.get(pk)
                if line is not None:
                    self.bad(
                        row,
                        "email",
                        f"{self.where(line).capitalize()} has the same email for the customer "
                        f"“{account_external_id}”; one email is one customer.",
                    )
                else:
                    self.bad(
                        row,
                        "email",
                        f"The email {email} belongs to the customer “{account_external_id}” "
                        "(case, Gmail dots and +tags aside); one email is one customer.",
                    )
                continue
            else:
                new.append(record)
            seen[external_id] = record
            seen_email[canonical] = record

        self._write(new, attach)

    def _differs(self, external_id: str, pk: int) -> str:
        line = self.lines.get(pk)
        if line is not None:
            return f"The customer “{external_id}” is also on {self.where(line)} with another email or country."
        return (
            f"The customer “{external_id}” was imported before with another email or country; an import does "
            "not change customers."
        )

    def _write(self, new: list, attach: list) -> None:
        users = [
            User(
                email=email,
                canonical_email=canonical,
                external_id=external_id,
                date_joined=created_at,
                country=country,
                password=make_password(None),
            )
            for _row, external_id, email, canonical, created_at, country in new
        ]
        User.objects.bulk_create(users, batch_size=500)
        self.wrote(User, len(users))
        for user, record in zip(users, new, strict=True):
            self.lines.add(user.pk, record[0])
        self.result.created += len(users)
        for part in _batches(attach, 500):
            changed = User.objects.filter(pk__in=[pk for pk, _, _ in part], external_id__isnull=True).update(
                external_id=Case(*[When(pk=pk, then=Value(external_id)) for pk, external_id, _ in part])
            )
            if changed != len(part):
                raise IntegrityError("an account was given an external id by someone else meanwhile")
            for pk, _, row in part:
                self.lines.add(pk, row)
        self.result.attached += len(attach)


# --- Purchases -----------------------------------------------------------------------------------
class _Purchases(_Importer):
    """Purchases and refunds into the ledger (billing.models.Purchase), like
    billing.ledger.purchase_record and refund_record but a chunk at a time. A refund names the
    purchase it refunds (same source, in the ledger or higher up in the file), is negative, has
    the purchase's customer, product, kind and currency, and may not exceed what is left of it.
    New regular purchases convert open trials afterwards, all at once (``finish``)."""

    columns = COLUMNS[PURCHASES]
    table = Purchase._meta.db_table
    write_columns = (
        "id",
        "customer_id",
        "product_id",
        "kind",
        "amount",
        "currency",
        "purchased_at",
        "source",
        "external_id",
        "refund_of_id",
        "trial_id",
        "recorded_at",
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.customers = _customers_by_external_id()
        self.products = dict(Product.objects.values_list("sku", "pk"))
        self.kinds = frozenset(Purchase.Kind.values)
        self.scales = _Scales()
        self.recorded_at = timezone.now()
        self.postgres = connection.vendor == "postgresql"
        self.next_id: int | None = None
        # trial → (time, id) of the earliest new regular purchase that converts it
        self.conversions: dict[int, tuple[datetime, int]] = {}
        # customer → their open trials as (trial, product, claimed at), read once per import: a
        # trial claimed meanwhile is claimed after these purchases of the past anyway.
        self.open_trials: dict[int, tuple[tuple[int, int, datetime], ...]] = {}
        self.pending: ExitStack | None = None  # a COPY the server may still be working through
        self.pending_rows = 0
        if self.postgres:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [self.table])
                self.sequence = cursor.fetchone()[0]

    def parse(self, row, values):
        external_id, customer, sku, kind, amount, currency, purchased_at, refund_of = values
        currency = currency.upper()
        ok = True
        if problem := _external_id(external_id, "purchase's external id (its id in your shop or till)"):
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
        scale = self.scales.get(currency)
        if scale is None:
            problem = self.scales.problem(currency)
            if problem:
                ok = False
                self.bad(row, "currency", problem)
                minor = None
            else:
                scale = self.scales[currency]
        if scale is not None:
            minor = _minor(amount, currency, scale)
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
        moment = _moment(purchased_at) if purchased_at else "Give the time of the purchase, with an offset."
        if isinstance(moment, str):
            ok = False
            self.bad(row, "purchased_at", moment)
        if refund_of:
            if len(refund_of) > MAX_TEXT or "\x00" in refund_of:
                ok = False
                self.bad(row, "refund_of", "This is not an external id of a purchase.")
            elif refund_of == external_id:
                ok = False
                self.bad(row, "refund_of", "A purchase cannot refund itself.")
        if not ok:
            return None
        return (row, external_id, customer_id, product_id, kind, minor, currency, moment, refund_of)

    # The ledger as it stands, for one chunk ----------------------------------------------------
    def _recorded(self, external_ids: Iterable[str]) -> dict[str, tuple]:
        """external id → (id, customer, product, kind, amount, currency, purchased_at, refund_of's
        external id or "") for those of ``external_ids`` already in the ledger for this source."""
        recorded = Purchase.objects.filter(source=self.source).values_list(
            "external_id",
            "id",
            "customer_id",
            "product_id",
            "kind",
            "amount",
            "currency",
            "purchased_at",
            "refund_of_id",
        )
        found = {external_id: values for external_id, *values in _where_in(recorded, "external_id", external_ids)}
        # Refunds are few: their originals' external ids by primary key, not by a join that the
        # planner might answer by reading the whole ledger.
        originals = dict(
            _where_in(Purchase.objects.values_list("pk", "external_id"), "id", {v[-1] for v in found.values() if v[-1]})
        )
        return {external_id: (*values[:-1], originals.get(values[-1], "")) for external_id, values in found.items()}

    def _refunded(self, original_ids: list[int]) -> dict[int, int]:
        """How much of each original has been refunded already (a positive amount). The originals
        are locked first, as refund_record does, so that two imports cannot together refund
        more than was paid."""
        refunded: dict[int, int] = {}
        for part in _batches(original_ids, 900):
            list(Purchase.objects.select_for_update().filter(pk__in=part).values_list("pk", flat=True))
            for original_id, total in (
                Purchase.objects.filter(refund_of_id__in=part)
                .values("refund_of_id")
                .annotate(total=Sum("amount"))
                .values_list("refund_of_id", "total")
            ):
                refunded[original_id] = -total
        return refunded

    def check_and_write(self, parsed):
        self.settle()
        wanted = {record[1] for record in parsed}
        wanted.update(record[8] for record in parsed if record[8])
        recorded = self._recorded(wanted)
        originals = {recorded[record[8]][0] for record in parsed if record[8] in recorded}
        refunded = self._refunded(sorted(originals)) if originals else {}

        accepted: dict[str, tuple] = {}  # external id → (line, content), the new rows of this chunk
        written = []
        for record in parsed:
            row, external_id, customer_id, product_id, kind, amount, currency, at, refund_of = record
            content = (customer_id, product_id, kind, amount, currency, at, refund_of)
            earlier = accepted.get(external_id)
            if earlier is not None:
                if earlier[1] == content:
                    self.result.unchanged += 1
                else:
                    self.bad(
                        row,
                        "external_id",
                        f"The purchase “{external_id}” is also on {self.where(earlier[0])} with different content.",
                    )
                continue
            known = recorded.get(external_id)
            if known is not None:
                if known[1:] == content:
                    self.result.unchanged += 1
                else:
                    self.bad(row, "external_id", self._differs(external_id, known[0]))
                continue
            if refund_of and not self._refund_fits(record, accepted, recorded, refunded):
                continue
            accepted[external_id] = (row, content)
            written.append(record)
        if written:
            self._write(written, accepted, recorded)

    def _differs(self, external_id: str, pk: int) -> str:
        line = self.lines.get(pk)
        if line is not None:
            return f"The purchase “{external_id}” is also on {self.where(line)} with different content."
        return (
            f"The purchase “{external_id}” was recorded before with different content. The ledger is "
            "append-only: record a change as a refund or a new purchase."
        )

    def _refund_fits(self, record, accepted, recorded, refunded) -> bool:
        row, _external_id, customer_id, product_id, kind, amount, currency, _at, refund_of = record
        earlier = accepted.get(refund_of)
        if earlier is not None:
            key = refund_of  # a purchase of this chunk: nothing refunded before this file
            o_customer, o_product, o_kind, o_amount, o_currency, _, o_refund_of = earlier[1]
            done = refunded.get(key, 0)
        elif refund_of in recorded:
            o_id, o_customer, o_product, o_kind, o_amount, o_currency, _, o_refund_of = recorded[refund_of]
            key = o_id
            done = refunded.get(key, 0)
        else:
            self.bad(
                row,
                "refund_of",
                f"There is no {self.source} purchase “{refund_of}” to refund, neither in the "
                f"ledger nor higher up in this file.",
            )
            return False
        if o_refund_of:
            self.bad(row, "refund_of", f"“{refund_of}” is itself a refund; a refund cannot be refunded.")
            return False
        if (o_customer, o_product, o_kind, o_currency) != (customer_id, product_id, kind, currency):
            self.bad(
                row,
                "refund_of",
                f"A refund has the same customer, product, kind and currency as the purchase "
                f"it refunds; “{refund_of}” differs.",
            )
            return False
        if done - amount > o_amount:
            left = _money(o_amount - done, currency)
            self.bad(
                row,
                "amount",
                f"The refund of {_money(-amount, currency)} is more than is left to refund of “{refund_of}” ({left}).",
            )
            return False
        refunded[key] = done - amount
        return True

    # Writing -------------------------------------------------------------------------------------
    def _reserve(self, count: int) -> list[int]:
        """Ids for ``count`` new rows, so that a refund can point at a purchase of the same chunk
        and the rows written by this import are known without reading them back."""
        if self.postgres:
            with connection.cursor() as cursor:
                cursor.execute("SELECT nextval(%s::regclass) FROM generate_series(1, %s)", [self.sequence, count])
                return [pk for (pk,) in cursor.fetchall()]
        # SQLite: with the project's IMMEDIATE transactions this one holds the write lock, so no
        # one else takes an id meanwhile; were someone to, the insert fails and nothing is written.
        if self.next_id is None:
            self.next_id = (Purchase.objects.aggregate(top=Max("pk"))["top"] or 0) + 1
        ids = list(range(self.next_id, self.next_id + count))
        self.next_id += count
        return ids

    def _write(self, written: list, accepted: dict, recorded: dict) -> None:
        ids = self._reserve(len(written))
        id_of = {}
        for pk, record in zip(ids, written, strict=True):
            id_of[record[1]] = pk
            self.lines.add(pk, record[0])
        rows = []
        for pk, record in zip(ids, written, strict=True):
            _row, external_id, customer_id, product_id, kind, amount, currency, at, refund_of = record
            refund_of_id = None
            if refund_of:
                refund_of_id = id_of.get(refund_of) or recorded[refund_of][0]
            rows.append((pk, customer_id, product_id, kind, amount, currency, at, external_id, refund_of_id))
        self._find_conversions(rows)
        if self.postgres:
            self._copy(rows)
        else:
            Purchase.objects.bulk_create(
                [
                    Purchase(
                        id=pk,
                        customer_id=customer_id,
                        product_id=product_id,
                        kind=kind,
                        amount=amount,
                        currency=currency,
                        purchased_at=at,
                        source=self.source,
                        external_id=external_id,
                        refund_of_id=refund_of_id,
                    )
                    for pk, customer_id, product_id, kind, amount, currency, at, external_id, refund_of_id in rows
                ],
                batch_size=500,
            )
        self.result.created += len(rows)

    def _copy(self, rows: list[tuple]) -> None:
        """COPY in PostgreSQL's text format. Only the external id is free text; everything else
        was checked against a closed set or is a number or a timestamp."""
        source, recorded_at, null = self.source, self.recorded_at.isoformat(), "\\N"
        special = _COPY_SPECIAL.search
        lines = []
        for pk, customer_id, product_id, kind, amount, currency, at, external_id, refund_of_id in rows:
            if special(external_id):
                external_id = (
                    external_id.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
                )
            lines.append(
                f"{pk}\t{customer_id}\t{product_id}\t{kind}\t{amount}\t{currency}\t{at.isoformat()}\t{source}\t"
                f"{external_id}\t{null if refund_of_id is None else refund_of_id}\t{null}\t{recorded_at}\n"
            )
        columns = ", ".join(connection.ops.quote_name(name) for name in self.write_columns)
        statement = f"COPY {connection.ops.quote_name(self.table)} ({columns}) FROM STDIN"
        # The COPY is left open: a thread feeds it to the server while this one reads and checks
        # the next chunk, and it is closed (waiting for the server) before the next query.
        pending = ExitStack()
        try:
            cursor = pending.enter_context(connection.cursor())
            # Django's cursor does not wrap the raw one's COPY: turn psycopg's errors into Django's.
            pending.enter_context(connection.wrap_database_errors)
            copy = pending.enter_context(cursor.cursor.copy(statement, writer=QueuedLibpqWriter(cursor.cursor)))
            copy.write("".join(lines))
        except BaseException:
            pending.__exit__(*sys.exc_info())
            raise
        self.pending, self.pending_rows = pending, len(rows)

    def settle(self) -> None:
        """Wait for the COPY in flight, if any; the connection is free for queries again."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.close()
            self.wrote(Purchase, self.pending_rows)

    def run(self, rows) -> None:
        try:
            super().run(rows)
        except BaseException:
            if self.pending is not None:
                pending, self.pending = self.pending, None
                pending.__exit__(*sys.exc_info())  # abandons the COPY; the transaction rolls back
            raise

    def _find_conversions(self, rows: list[tuple]) -> None:
        """Which open trials these new rows convert, as billing.ledger.purchase_record decides
        for one purchase: trials of the same customer, of offers leading to the purchased
        product, claimed at or before a regular purchase. Found here with one indexed query per
        chunk (the customers' open trials) rather than with a join against the rows just
        written, whose statistics the planner does not have yet."""
        regular = [row for row in rows if row[3] == "regular" and row[8] is None]
        open_trials = self.open_trials
        unknown = {row[1] for row in regular if row[1] not in open_trials}
        for customer_id in unknown:
            open_trials[customer_id] = ()
        trials = Trial.objects.filter(status__in=CONVERTIBLE).values_list(
            "pk", "customer_id", "offer__product_id", "claimed_at"
        )
        for trial_id, customer_id, product_id, claimed_at in _where_in(trials, "customer", unknown):
            open_trials[customer_id] += ((trial_id, product_id, claimed_at),)
        conversions = self.conversions
        for pk, customer_id, product_id, _kind, _amount, _currency, at, _external_id, _refund_of_id in regular:
            for trial_id, trial_product_id, claimed_at in open_trials.get(customer_id, ()):
                if trial_product_id == product_id and claimed_at <= at:
                    earliest = conversions.get(trial_id)
                    if earliest is None or (at, pk) < earliest:
                        conversions[trial_id] = (at, pk)

    def finish(self) -> None:
        self.settle()
        if self.conversions:
            self.result.converted = _trials_convert(self.conversions)


def _trials_convert(conversions: dict[int, tuple[datetime, int]]) -> int:
    """Convert each trial at its purchase: ``conversions`` maps a trial to the time and id of
    the earliest new regular purchase that converts it. The trials are locked first and only
    those still open move, each with a TrialEvent, as trials.services.trial_convert does one by
    one; a trial that a job moved meanwhile keeps its new state."""
    converted = 0
    for part in _batches(sorted(conversions), 500):
        moving = dict(
            Trial.objects.select_for_update()
            .filter(pk__in=part, status__in=CONVERTIBLE)
            .order_by("pk")
            .values_list("pk", "status")
        )
        if not moving:
            continue
        Trial.objects.filter(pk__in=moving).update(
            status=Trial.Status.CONVERTED,
            converted_at=Case(
                *[When(pk=pk, then=Value(conversions[pk][0])) for pk in moving], output_field=DateTimeField()
            ),
        )
        TrialEvent.objects.bulk_create(
            TrialEvent(
                trial_id=pk,
                at=conversions[pk][0],
                from_status=status,
                to_status=Trial.Status.CONVERTED,
                note=f"purchase {conversions[pk][1]} (imported)",
            )
            for pk, status in moving.items()
        )
        converted += len(moving)
    return converted


# --- Assignments ---------------------------------------------------------------------------------
class _Assignments(_Importer):
    """Assignments (and, when claimed, their trials) from before Foretaste or from another tool,
    into offers of any status. The arm and the outcome are taken as given: they were decided
    elsewhere. Imported trials do not count against an offer's inventory; a pending one is an
    open trial like any other, which a purchase imported later converts."""

    columns = COLUMNS[ASSIGNMENTS]

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.customers = _customers_by_external_id()
        self.offers: dict[str, tuple[int, dict[str, int]]] = {}
        for offer_id, slug in Offer.objects.values_list("pk", "slug"):
            self.offers[slug] = (offer_id, {})
        by_id = {offer_id: variants for offer_id, variants in self.offers.values()}
        for offer_id, name, variant_id in Variant.objects.values_list("offer_id", "name", "pk"):
            by_id[offer_id][name] = variant_id

    def parse(self, row, values):
        customer, slug, arm, assigned_at, claimed_at, ends_at, outcome, converted_at = values
        ok = True
        customer_id = self.customer_id(row, customer)
        ok = ok and customer_id is not None
        offer = self.offers.get(slug)
        variant_id = None
        if offer is None:
            ok = False
            self.bad(row, "offer_slug", f"There is no offer “{slug}”." if slug else "Give the offer's slug.")
        elif arm != Assignment.HOLDOUT:
            variant_id = offer[1].get(arm)
            if variant_id is None:
                names = ", ".join(sorted(offer[1])) or "none"
                ok = False
                self.bad(row, "arm", f"“{arm}” is not an arm of {slug}: use a variant's name ({names}) or holdout.")
        moments = {}
        for name, value, needed in (
            ("assigned_at", assigned_at, True),
            ("claimed_at", claimed_at, False),
            ("trial_ends_at", ends_at, False),
            ("converted_at", converted_at, False),
        ):
            if not value:
                if needed:
                    ok = False
                    self.bad(row, name, "Give the time the customer was assigned, with an offset.")
                moments[name] = None
                continue
            moment = _moment(value)
            if isinstance(moment, str):
                ok = False
                self.bad(row, name, moment)
                moments[name] = None
            else:
                moments[name] = moment
        if outcome and outcome not in OUTCOMES:
            ok = False
            self.bad(row, "outcome", f"“{outcome}” is not an outcome: use {', '.join(OUTCOMES)}; or leave it empty.")
        if not ok:
            return None
        assigned, claimed, ends, converted = moments.values()
        if claimed is None:
            for name, value in (("trial_ends_at", ends_at), ("outcome", outcome), ("converted_at", converted_at)):
                if value:
                    ok = False
                    self.bad(row, name, "This is only for a claimed trial; with claimed_at empty, leave it empty.")
        elif arm == Assignment.HOLDOUT:
            ok = False
            self.bad(row, "claimed_at", "The holdout sees no offer, so a holdout customer cannot have claimed it.")
        else:
            if claimed < assigned:
                ok = False
                self.bad(row, "claimed_at", "The trial was claimed before the customer was assigned.")
            if ends is None:
                ok = False
                self.bad(row, "trial_ends_at", "A claimed trial needs the time it ends (or ended).")
            elif ends < claimed:
                ok = False
                self.bad(row, "trial_ends_at", "The trial ends before it was claimed.")
            if not outcome:
                ok = False
                self.bad(row, "outcome", f"A claimed trial needs its outcome: {', '.join(OUTCOMES)}.")
            elif outcome == "converted" and converted is None:
                ok = False
                self.bad(row, "converted_at", "A converted trial needs the time it converted.")
            elif outcome != "converted" and converted is not None:
                ok = False
                self.bad(row, "converted_at", "Only a converted trial has a conversion time.")
            elif converted is not None and converted < claimed:
                ok = False
                self.bad(row, "converted_at", "The trial converted before it was claimed.")
        if not ok:
            return None
        status = OUTCOMES[outcome] if claimed is not None else None
        return (row, offer[0], customer_id, arm, variant_id, assigned, claimed, ends, status, converted, customer, slug)

    def check_and_write(self, parsed):
        pairs = {(record[1], record[2]) for record in parsed}
        existing: dict[tuple[int, int], tuple] = {}
        assignments = Assignment.objects.filter(offer_id__in={offer_id for offer_id, _ in pairs}).values_list(
            "offer_id",
            "customer_id",
            "pk",
            "arm",
            "assigned_at",
            "trial__claimed_at",
            "trial__ends_at",
            "trial__status",
            "trial__converted_at",
        )
        for offer_id, customer_id, *values in _where_in(assignments, "customer", {c for _, c in pairs}):
            if (offer_id, customer_id) in pairs:
                existing[(offer_id, customer_id)] = tuple(values)

        accepted: dict[tuple[int, int], tuple] = {}
        written = []
        for record in parsed:
            row, offer_id, customer_id, arm, _variant_id, assigned, claimed, ends, status, converted, customer, slug = (
                record
            )
            key = (offer_id, customer_id)
            content = (arm, assigned, claimed, ends, status, converted)
            earlier = accepted.get(key)
            if earlier is not None:
                if _same_assignment(earlier[1], content):
                    self.result.unchanged += 1
                else:
                    self.bad(
                        row,
                        "customer_external_id",
                        f"The customer “{customer}” is also assigned to {slug} on "
                        f"{self.where(earlier[0])}, differently.",
                    )
                continue
            known = existing.get(key)
            if known is not None:
                if _same_assignment(known[1:], content):
                    self.result.unchanged += 1
                else:
                    line = self.lines.get(known[0])
                    self.bad(
                        row,
                        "customer_external_id",
                        f"The customer “{customer}” is also assigned to {slug} on {self.where(line)}, differently."
                        if line is not None
                        else f"The customer “{customer}” is already assigned to {slug}, differently (arm "
                        f"{known[1]}, since {known[2]:%Y-%m-%d %H:%M} UTC). An assignment never changes.",
                    )
                continue
            accepted[key] = (row, content)
            written.append(record)
        if written:
            self._write(written)

    def _write(self, written: list) -> None:
        assignments = [
            Assignment(
                offer_id=offer_id,
                customer_id=customer_id,
                variant_id=variant_id,
                arm=arm,
                assigned_at=assigned,
                source=self.source,
            )
            for _row, offer_id, customer_id, arm, variant_id, assigned, *_ in written
        ]
        Assignment.objects.bulk_create(assignments, batch_size=500)
        trials = []
        for assignment, record in zip(assignments, written, strict=True):
            self.lines.add(assignment.pk, record[0])
            _row, offer_id, customer_id, _arm, variant_id, _assigned, claimed, ends, status, converted, *_ = record
            if claimed is not None:
                trials.append(
                    Trial(
                        assignment=assignment,
                        offer_id=offer_id,
                        customer_id=customer_id,
                        variant_id=variant_id,
                        status=status,
                        claimed_at=claimed,
                        ends_at=ends,
                        converted_at=converted,
                        source=self.source,
                    )
                )
        Trial.objects.bulk_create(trials, batch_size=500)
        self.wrote(Assignment, len(assignments))
        self.wrote(Trial, len(trials))
        events = []
        for trial in trials:
            events.append(TrialEvent(trial=trial, at=trial.claimed_at, to_status=Trial.Status.ACTIVE, note="imported"))
            if trial.status != Trial.Status.ACTIVE:
                # The time of a cancellation is not in the file; the claim is the latest it can be sure of.
                at = {Trial.Status.CONVERTED: trial.converted_at, Trial.Status.CANCELLED: trial.claimed_at}.get(
                    trial.status, trial.ends_at
                )
                events.append(
                    TrialEvent(
                        trial=trial, at=at, from_status=Trial.Status.ACTIVE, to_status=trial.status, note="imported"
                    )
                )
        TrialEvent.objects.bulk_create(events, batch_size=500)
        self.result.created += len(assignments)
        self.result.trials += len(trials)


def _same_assignment(known: tuple, content: tuple) -> bool:
    """An assignment as recorded against one read from a file. A trial imported as pending
    (active) may have moved on since, by a purchase or a job: that is still the same record."""
    arm, assigned, claimed, ends, status, converted = content
    k_arm, k_assigned, k_claimed, k_ends, k_status, k_converted = known
    if (arm, assigned, claimed, ends) != (k_arm, k_assigned, k_claimed, k_ends):
        return False
    if claimed is None:
        return True
    if status == Trial.Status.ACTIVE:
        return True
    return (status, converted) == (k_status, k_converted)
