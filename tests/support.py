"""Helpers the tests share: free ports, waiting for a server, starting localstripe."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, *, timeout: float = 20.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the process serving {url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback only)
                if response.status == 200:
                    return
        except OSError as exc:
            last_error = exc
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s: {last_error}")


@contextmanager
def localstripe_running(*, webhook_url: str | None = None, webhook_secret: str | None = None):
    """Start localstripe on a free loopback port; yield its base URL; stop it."""
    port = free_port()
    command = [sys.executable, str(ROOT / "scripts" / "localstripe_server.py"), "--port", str(port)]
    if webhook_url:
        command += ["--webhook-url", webhook_url, "--webhook-secret", webhook_secret]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/js.stripe.com/v3/", process=process)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# Test cards understood by Stripe and localstripe alike.
CARD_OK = "4242424242424242"
CARD_OK_OTHER = "5555555555554444"
CARD_DECLINES_OFF_SESSION = "4000000000000341"
CARD_NEEDS_3DS = "4000002760003184"


@contextmanager
def localstripe_as_stripe(**options):
    """Start localstripe on a free loopback port and point the gateway at it while it runs."""
    from django.conf import settings

    with localstripe_running(**options) as base:
        previous = settings.STRIPE_API_BASE
        settings.STRIPE_API_BASE = base
        try:
            yield base
        finally:
            settings.STRIPE_API_BASE = previous


def api_as(user):
    """A DRF test client that speaks for ``user`` with a token (anonymous when None)."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def post(client, url, body):
    return client.post(url, data=json.dumps(body), content_type="application/json")
