from django.apps import AppConfig
from django.db import connections
from django.db.migrations.recorder import MigrationRecorder
from django.db.models.signals import post_migrate

from trials.integrity import sqlite_triggers_ensure

# The migration that brings the SQLite triggers (trials/integrity.py).
TRIGGERS_FROM = "0007_trial_of_its_assignments_offer"


def _integrity(sender, using, **kwargs):
    """After every ``migrate``: on SQLite, the triggers a later migration's table remake dropped,
    made again (once the migration that brings them has run: migrating back past it leaves none)."""
    connection = connections[using]
    if connection.vendor == "sqlite" and (
        MigrationRecorder(connection).migration_qs.filter(app="trials", name=TRIGGERS_FROM).exists()
    ):
        sqlite_triggers_ensure(connection)


class TrialsConfig(AppConfig):
    name = "trials"

    def ready(self):
        post_migrate.connect(_integrity, sender=self, dispatch_uid="trials-integrity")
