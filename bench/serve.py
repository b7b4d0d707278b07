"""gunicorn on this machine for the HTTP benches (bench_landing.py, bench_claim.py): the product's
WSGI app under the bench's settings module, on a free loopback port, against the database the
bench built, until the block ends."""

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from django.db import connection

from tests.support import free_port, wait_for_http

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
PATIENCE = 60


def database_url() -> str:
    """The URL of the database this process is connected to (the bench's throw-away one)."""
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@contextmanager
def gunicorn(*, workers: int, settings_module: str = "landing_bench_settings", env: dict | None = None):
    """Start gunicorn with ``workers`` sync workers; yield its base URL once /bench/hello/
    answers; stop it."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "-w", str(workers), "-b", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": settings_module,
            "DATABASE_URL": database_url(),
            "PYTHONPATH": f"{BENCH}{os.pathsep}{ROOT}",
            **(env or {}),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/bench/hello/", timeout=PATIENCE, process=server)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)
