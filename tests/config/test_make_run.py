"""`make run` as a new user gets it: everything starts on the embedded defaults, the demo logins
are printed, localstripe's webhooks reach the app signed with its secret, and Ctrl-C stops every
process it started."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.support import ROOT, free_port, wait_for_http


def _get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback only)
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def running(tmp_path):
    web, stripe = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "EMAIL_URL", "DEBUG")}
    env.update(
        FORETASTE_ENV="development",
        FORETASTE_VAR_DIR=str(tmp_path / "var"),
        FORETASTE_PORT=str(web),
        FORETASTE_STRIPE_PORT=str(stripe),
    )
    log = (tmp_path / "run.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "scripts/devserver.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_http(f"http://127.0.0.1:{web}/", timeout=120, process=process)
        yield {"process": process, "web": web, "stripe": stripe, "var": tmp_path / "var", "log": tmp_path / "run.log"}
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


@pytest.mark.worker
def test_make_run_starts_everything_and_ctrl_c_stops_everything(running, tmp_path):
    web, stripe, var = running["web"], running["stripe"], running["var"]

    status, body = _get(f"http://127.0.0.1:{web}/healthz")
    assert status == 200, body
    assert json.loads(body)["down"] == []
    # The banner follows the web server's first answer by a moment.
    deadline = time.monotonic() + 30
    while "Press Ctrl-C" not in running["log"].read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    output = running["log"].read_text()
    for login in ("marketer@demo.test", "executive@demo.test", "customer@demo.test", "foretaste-demo"):
        assert login in output
    assert f"http://127.0.0.1:{web}/" in output
    assert "Debug pages: off" in output and "make run DEBUG=1" in output
    assert _get(f"http://127.0.0.1:{web}/o/espresso-sample/")[0] == 200
    # What a user would see: the styled 404, not Django's debug page listing every URL, and
    # the static files it links to (served by WhiteNoise with DEBUG off).
    status, body = _get(f"http://127.0.0.1:{web}/no/such/page/")
    assert status == 404
    assert b"We could not find that page" in body
    assert b"URLconf" not in body and b"DEBUG = True" not in body
    status, css = _get(f"http://127.0.0.1:{web}/static/css/foretaste.css")
    assert status == 200
    assert b".table-wrap" in css

    # A change at the offline Stripe comes back as a webhook the app accepts (signed with its secret).
    request = urllib.request.Request(
        f"http://127.0.0.1:{stripe}/v1/customers", data=b"email=webhook-check%40example.com", method="POST",
        headers={"Authorization": "Bearer sk_test_localstripe"},
    )  # fmt: skip
    urllib.request.urlopen(request, timeout=5).close()  # noqa: S310 (loopback only)
    deadline, stored = time.monotonic() + 30, 0
    while time.monotonic() < deadline and not stored:
        with sqlite3.connect(var / "foretaste.sqlite3", timeout=10) as db:
            stored = db.execute("SELECT count(*) FROM billing_stripeevent WHERE type = 'customer.created'").fetchone()[
                0
            ]
        time.sleep(0.5)
    assert stored == 1

    running["process"].send_signal(signal.SIGINT)
    time.sleep(0.3)
    if running["process"].poll() is None:
        running["process"].send_signal(signal.SIGINT)  # an impatient second Ctrl-C: still a clean stop
    assert running["process"].wait(timeout=30) == 0
    output = running["log"].read_text()
    assert "make run: everything stopped." in output
    assert "Traceback" not in output
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout.split()
    assert leftovers == []
    assert _get_refused(web) and _get_refused(stripe)


def _get_refused(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
    except OSError:
        return True
    return False
