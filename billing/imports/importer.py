"""What every importer shares: rows taken in chunks, each chunk parsed row by row, then checked
against the database and written at once, and the errors counted by row."""

from collections.abc import Callable, Iterator
from datetime import datetime

from accounts.models import User
from billing.imports import values
from billing.imports.formats import ImportResult, RowError
from billing.imports.reading import Row
from billing.imports.writing import Lines, Statistics

CHUNK = 10_000  # rows parsed, checked and written at a time


class Importer:
    def __init__(self, *, result: ImportResult, source: str, place: str, at: datetime):
        self.result = result
        self.source = source
        self.place = place  # "line" for CSV, "item" for JSON
        self.at = at  # now, for the range of dates
        self.lines = Lines()
        self.statistics = Statistics()

    def run(self, rows: Iterator[Row]) -> None:
        chunk = []
        for row in rows:
            chunk.append(row)
            if len(chunk) == CHUNK:
                self._chunk(chunk)
                chunk = []
        if chunk:
            self._chunk(chunk)
        self.finish()

    def _chunk(self, chunk: list[Row]) -> None:
        self.result.rows += len(chunk)
        parsed = []
        for number, texts, problems in chunk:
            if problems:
                for name, message in problems:
                    self.bad(number, name, message)
                continue
            record = self.parse(number, [text.strip() for text in texts])
            if record is not None:
                parsed.append(record)
        if parsed:
            self.check_and_write(parsed)

    def bad(self, row: int, name: str, message: str) -> None:
        errors = self.result.errors
        if not errors or errors[-1].row != row:
            self.result.invalid += 1
        errors.append(RowError(row, name, message))

    def moment(self, row: int, name: str, text: str, *, missing: str = "") -> datetime | None:
        """The column's timestamp (None when empty), or None with the row marked bad: when it
        is not one, or when it is empty and ``missing`` (the message for that) is given."""
        if not text:
            if missing:
                self.bad(row, name, missing)
            return None
        moment = values.moment(text, at=self.at)
        if isinstance(moment, str):
            self.bad(row, name, moment)
            return None
        return moment

    def where(self, row: int) -> str:
        return f"{self.place} {row}"

    def repeat(
        self, row: int, name: str, *, same: bool, line: int | None, in_file: Callable[[str], str], before: str = ""
    ) -> None:
        """A record whose key is there already: higher up in this file or in the database. The
        same record again is unchanged; a different one is an error on ``name``, saying where the
        other is: ``in_file(where)`` when a line of this file (``line``) wrote it, else ``before``."""
        if same:
            self.result.unchanged += 1
        else:
            self.bad(row, name, before if line is None else in_file(self.where(line)))

    def parse(self, row: int, values: list[str]):
        """The row's record (a NamedTuple of its parsed values), or None with the row marked bad."""
        raise NotImplementedError

    def check_and_write(self, parsed: list) -> None:
        """Check a chunk's records against the database and the file so far; write the good ones."""
        raise NotImplementedError

    def finish(self) -> None:
        pass


class WithCustomers(Importer):
    """An importer whose rows name customers by their external id, all loaded once."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.customers = dict(
            User.objects.filter(external_id__isnull=False).values_list("external_id", "pk").iterator(10_000)
        )

    def customer_id(self, row: int, external_id: str) -> int | None:
        """Our id of the customer with this external id, or None with the row marked bad."""
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
