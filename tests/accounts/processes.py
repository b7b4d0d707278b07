"""Running the app in another process against the test database: a real worker, or a request
made with a broker that is down."""

import os
from urllib.parse import quote

from django.db import connection


def test_database_url() -> str:
    """The URL of the database this test runs on, for a child process to use the same one."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def child_env(**overrides) -> dict:
    return {**os.environ, "FORETASTE_ENV": "test", "DATABASE_URL": test_database_url(), **overrides}
