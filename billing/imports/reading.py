"""Reading a file row by row: CSV bytes (UTF-8, a header row) or a JSON list of objects, each
turned into the values of the kind's columns, in their order, with the line (or index) they
came from. A file that cannot be read as a whole raises FileUnreadable."""

import csv
from collections.abc import Callable, Iterator
from typing import IO, NamedTuple

_BOM = b"\xef\xbb\xbf"


class FileUnreadable(Exception):
    """The file cannot be read row by row at all; nothing after this point can be trusted."""

    def __init__(self, row: int | None, message: str):
        super().__init__(message)
        self.row, self.message = row, message


class Row(NamedTuple):
    """One row as read: its line (CSV) or index (JSON), and either its values in the order of
    the columns or the problems that kept them from being read (column, message)."""

    number: int
    values: list[str] | None
    problems: list[tuple[str, str]] | None


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
            raise FileUnreadable(
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


def _header_order(header: list[str], columns: tuple[str, ...]) -> list[int] | None:
    """Where each column is in the file's header (None: in the usual order), or FileUnreadable."""
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
        raise FileUnreadable(
            1, f"The header is not right: {'; '.join(problems)}. It must be exactly: {','.join(columns)}"
        )
    return None if header == list(columns) else [header.index(name) for name in columns]


def csv_rows(file: IO[bytes], columns: tuple[str, ...], progress: Callable[[int], None] | None) -> Iterator[Row]:
    """Each row after the header. ``progress`` is called with the bytes read since its last call."""
    reader = csv.reader(_utf8_lines(file, progress), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise FileUnreadable(1, f"The file is empty. Its first line must be the header: {','.join(columns)}") from None
    except csv.Error as exc:
        raise FileUnreadable(1, f"Line 1 is not valid CSV ({exc}).") from None
    order = _header_order(header, columns)
    width = len(columns)
    last = reader.line_num
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line = last + 1
            raise FileUnreadable(
                line,
                f"Line {line} is not valid CSV ({exc}). A field with a comma, a quote or a line break goes in "
                'double quotes, and a quote inside it is written twice ("").',
            ) from None
        line, last = last + 1, reader.line_num
        if not values:
            continue  # a blank line
        if len(values) != width:
            yield Row(line, None, [("", f"This line has {len(values)} fields; the header has {width}.")])
        elif order is None:
            yield Row(line, values, None)
        else:
            yield Row(line, [values[index] for index in order], None)


def json_rows(records, columns: tuple[str, ...]) -> Iterator[Row]:
    """Each record of a JSON list of objects whose keys are the columns and whose values are
    strings (null, or a key left out, is an empty value)."""
    if not isinstance(records, list):
        raise FileUnreadable(None, "Send a JSON list of records, like [{...}, {...}].")
    names = ", ".join(columns)
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            yield Row(index, None, [("", f"Each record is a JSON object with the keys {names}.")])
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
        yield Row(index, (None if problems else values), problems or None)


def _example(name: str) -> str:
    if name.endswith("_at"):
        return "2026-06-01T09:00:00+02:00"
    return {"amount": "12.50", "currency": "EUR", "country": "DE", "kind": "regular", "outcome": "converted"}.get(
        name, "abc-123"
    )
