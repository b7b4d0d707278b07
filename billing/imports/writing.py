"""Bulk reading and writing for the importers: lookups of thousands of keys at once, COPY on
PostgreSQL, the planner's statistics kept up to date while a big import runs, and which line
wrote which row."""

import re
import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, nullcontext

from django.db import connection
from django.db.models import Model, QuerySet
from psycopg.copy import QueuedLibpqWriter
from rbloom import Bloom

import config.lookups  # noqa: F401 (field__any)
from config.batches import batches

ANALYZE_AFTER = 50_000  # rows written to a table before its statistics are refreshed
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")


def where_in(queryset: QuerySet, name: str, values: Iterable) -> Iterator:
    """``queryset.filter(<name>__in=values)`` for thousands of values, in batches, each batch as
    one parameter (``__any``, config/lookups.py: a long IN list costs far more to compose and parse
    than to run, and SQLite caps a statement's placeholders). Batches stay small enough that
    PostgreSQL's planner probes the index rather than reading the table, whose size it may
    underestimate."""
    for part in batches(list(values), 1000):
        yield from queryset.filter(**{f"{name}__any": part})


class MaybeWritten:
    """The keys an import has written so far, for "could this key be among them?": "no" is
    certain, "maybe" is wrong about once in 200 and is asked of the database. Bloom filters
    (rbloom): a million keys take 1.4 MB, where a set of them would take 60 MB or more. A filter
    is sized when it is made and a file's rows are not known until it ends, so each one that is
    full is followed by one four times bigger (a chain of a few, even for ten million keys)."""

    FIRST = 100_000
    FALSE_POSITIVES = 0.005

    def __init__(self):
        self._filters: list[Bloom] = []
        self._room = 0

    def update(self, keys: Sequence[str]) -> None:
        while keys:
            if not self._room:
                self._room = self.FIRST * 4 ** len(self._filters)
                self._filters.append(Bloom(self._room, self.FALSE_POSITIVES))
            taken, keys = keys[: self._room], keys[self._room :]
            self._filters[-1].update(taken)
            self._room -= len(taken)

    def __contains__(self, key: str) -> bool:
        return any(key in bloom for bloom in self._filters)


class Lines:
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


class Statistics:
    """Keep PostgreSQL's planner up to date with the rows an import writes. It has no
    statistics on rows added in a transaction still open, so after a big first import into a
    small table it would keep planning each chunk's lookups for a small table, scanning
    everything written so far: quadratic. ANALYZE counts the transaction's own rows; it runs
    when the import has doubled a table, a few times at most, and so never for a table much
    bigger than the file. (It holds a lock that only VACUUM, ANALYZE and DDL wait for, until the
    import commits. A role that does not own the table gets a warning and the old statistics,
    not an error.)"""

    def __init__(self):
        self.growth: dict[str, list[int]] = {}  # table → [rows the planner knows of, rows written since]

    def wrote(self, model: type[Model], count: int) -> None:
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


def copy_text(value: str) -> str:
    """Free text for COPY's text format, with its special characters escaped."""
    if _COPY_SPECIAL.search(value):
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return value


class Copy:
    """COPY rows into a table on PostgreSQL, one batch at a time, without waiting: a thread feeds
    each batch to the server while the caller reads and checks the next, and ``settle`` waits for
    it before the connection is used again."""

    def __init__(self, model: type[Model], columns: Sequence[str]):
        self.model = model
        quoted = ", ".join(connection.ops.quote_name(name) for name in columns)
        self.statement = f"COPY {connection.ops.quote_name(model._meta.db_table)} ({quoted}) FROM STDIN"
        self.pending: ExitStack | None = None
        self.pending_rows = 0

    def start(self, lines: list[str]) -> None:
        """Send ``lines`` (COPY text format, each ending in a newline); returns before the server
        has taken them."""
        pending = ExitStack()
        try:
            cursor = pending.enter_context(connection.cursor())
            # Django's cursor does not wrap the raw one's COPY: turn psycopg's errors into Django's,
            # and log the statement as Django's own cursor.copy() does when queries are logged.
            pending.enter_context(connection.wrap_database_errors)
            with cursor.debug_sql(self.statement) if hasattr(cursor, "debug_sql") else nullcontext():
                copy = pending.enter_context(
                    cursor.cursor.copy(self.statement, writer=QueuedLibpqWriter(cursor.cursor))
                )
            copy.write("".join(lines))
        except BaseException:
            pending.__exit__(*sys.exc_info())
            raise
        self.pending, self.pending_rows = pending, len(lines)

    def settle(self) -> int:
        """Wait for the COPY in flight, if any; returns how many rows it wrote."""
        if self.pending is None:
            return 0
        pending, self.pending = self.pending, None
        pending.close()
        return self.pending_rows

    def abandon(self) -> None:
        """Give up the COPY in flight after an error; the transaction rolls back."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.__exit__(*sys.exc_info())
