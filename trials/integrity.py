"""What the database holds of trials beyond Django's own constraints: a trial is of its
assignment's offer (the analytics read an offer's trials by the trial's own offer,
analytics.queries.unit_trial).

On PostgreSQL it is a composite foreign key (trials/migrations/0007). SQLite cannot add a foreign
key to a table, so there it is three triggers; and since SQLite remakes a table for most changes
of a later migration, dropping its triggers, they are made again after every ``migrate``
(``TrialsConfig.ready``)."""

_REFUSE = "SELECT RAISE(ABORT, 'trial_of_its_assignments_offer: a trial is of its assignment''s offer')"
_ASTRAY = "NEW.offer_id IS NOT (SELECT offer_id FROM trials_assignment WHERE id = NEW.assignment_id)"
SQLITE_TRIGGERS = {
    "trial_of_its_assignments_offer_insert": (
        f"BEFORE INSERT ON trials_trial FOR EACH ROW WHEN {_ASTRAY} BEGIN {_REFUSE}; END"
    ),
    "trial_of_its_assignments_offer_update": (
        f"BEFORE UPDATE OF assignment_id, offer_id ON trials_trial FOR EACH ROW WHEN {_ASTRAY} BEGIN {_REFUSE}; END"
    ),
    "assignment_offer_of_its_trial": (
        "BEFORE UPDATE OF offer_id ON trials_assignment FOR EACH ROW WHEN NEW.offer_id IS NOT OLD.offer_id "  # noqa: S608
        f"AND EXISTS (SELECT 1 FROM trials_trial WHERE assignment_id = NEW.id) BEGIN {_REFUSE}; END"
    ),
}


def sqlite_triggers_ensure(connection) -> None:
    """Make the triggers that are missing (SQLite only; nothing elsewhere)."""
    if connection.vendor != "sqlite":
        return
    tables = set(connection.introspection.table_names())
    if not {"trials_trial", "trials_assignment"} <= tables:
        return
    with connection.cursor() as cursor:
        for name, body in SQLITE_TRIGGERS.items():
            cursor.execute(f"CREATE TRIGGER IF NOT EXISTS {name} {body}")


def sqlite_triggers_drop(connection) -> None:
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        for name in SQLITE_TRIGGERS:
            cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
