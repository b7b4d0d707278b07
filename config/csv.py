"""Every CSV file we write goes through this writer. A spreadsheet runs a cell that starts with
=, +, -, @ (or a tab or carriage return before one) as a formula, and a value we write may come
from someone else: a field of an imported file, quoted in an error message. Such a cell gets a
leading apostrophe, which spreadsheets show as text and do not run (OWASP, "CSV Injection").
Numbers are written as they are; only text is at risk."""

import csv
import io
from collections.abc import Iterable
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """The value as a cell a spreadsheet shows and does not run."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class Writer:
    """csv.writer, with every text cell neutralized."""

    def __init__(self, file, **options):
        self._writer = csv.writer(file, **options)

    def writerow(self, row: Iterable) -> None:
        self._writer.writerow([cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable]) -> None:
        for row in rows:
            self.writerow(row)


def csv_text(header: Iterable, rows: Iterable[Iterable]) -> str:
    """A whole CSV file as text: the header, then the rows."""
    out = io.StringIO()
    writer = Writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()
