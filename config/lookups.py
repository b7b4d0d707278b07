"""``field__any=[...]``: membership in a long list of values, sent as one parameter.

``field__in`` puts one placeholder per value in the statement. For the thousands of ids a
refresh of the rollups or an import asks about, composing, binding and parsing that list costs
more than the lookup itself (bench/bench_rollups.py: 1.3 s against 0.36 s to delete 10,000 unit
rows), and SQLite caps a statement's placeholders. Django has no such lookup, hence this one:
PostgreSQL takes the values as one array (``= ANY(%s)``), SQLite as one JSON text
(``IN (SELECT value FROM json_each(%s))``).
"""

import json

from django.db.models import Field, ForeignObject, Lookup


class AnyOf(Lookup):
    lookup_name = "any"
    prepare_rhs = False

    def get_db_prep_lookup(self, value, connection):
        if isinstance(value, str | bytes):
            raise TypeError("__any takes a list of values, not one string")
        # As __in does: None matches nothing (and would make NOT … ANY(…) match nothing either),
        # and each value is the field's own (an int for an id given as "5").
        field = self.lhs.output_field
        return "%s", [[field.get_db_prep_value(item, connection) for item in value if item is not None]]

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} = ANY({rhs})", [*lhs_params, *rhs_params]

    def as_sqlite(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        _rhs, (values,) = self.process_rhs(compiler, connection)
        # The column is the compiler's; the values go as a parameter.
        return f"{lhs} IN (SELECT value FROM json_each(%s))", [*lhs_params, json.dumps(values)]  # noqa: S608


Field.register_lookup(AnyOf)
# A foreign key keeps a lookup list of its own: there the values are the target's (ids).
ForeignObject.register_lookup(AnyOf)
