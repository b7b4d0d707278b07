"""Migration operations the apps share."""

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations


class _ConcurrentlyOnPostgreSQL:
    """PostgreSQL's CONCURRENTLY form of an index operation; elsewhere (SQLite) ``plain``, the
    operation without it. The migration must say ``atomic = False``."""

    plain: type[migrations.operations.base.Operation]

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        return self.plain.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        return self.plain.database_backwards(self, app_label, schema_editor, from_state, to_state)


class AddIndexWithoutBlocking(_ConcurrentlyOnPostgreSQL, AddIndexConcurrently):
    """CREATE INDEX CONCURRENTLY: on a large table that writes keep coming to (the ledger, the
    assignments) a plain CREATE INDEX would hold every write for the whole build."""

    plain = migrations.AddIndex


class RemoveIndexWithoutBlocking(_ConcurrentlyOnPostgreSQL, RemoveIndexConcurrently):
    """DROP INDEX CONCURRENTLY: a plain DROP INDEX waits for every query on the table and holds
    every other one meanwhile."""

    plain = migrations.RemoveIndex
