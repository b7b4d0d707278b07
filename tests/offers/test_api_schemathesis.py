"""The OpenAPI document tells the truth: schemathesis reads /api/v1/openapi.json from a live
server and sends what it allows and what it does not, with every check on. A marketer's key
authenticates it, so it reaches the rules behind the authentication.

One allowance, said here: a request the document allows may still break a rule it cannot express
(a trial price below the product's price, a slug already taken, a date more than ten years
ahead), so positive_data_acceptance also accepts 400. Every other check runs as schemathesis
ships it. Kept small (8 examples per operation) to stay near a minute.
"""

import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token

from tests import factories
from tests.factories import NOW

pytestmark = [pytest.mark.schemathesis, pytest.mark.django_db(transaction=True)]

EXAMPLES = 8  # per operation and phase; raise it (or run `st run` by hand) to search deeper
CONFIG = """
[generation]
max-examples = {examples}
database = "none"

[phases.coverage]
# Two methods a route lacks are enough to check the 405s (tests/offers/test_api_errors.py walks them all).
unexpected-methods = ["DELETE", "PUT"]

[checks.positive_data_acceptance]
expected-statuses = ["2xx", "400", "401", "403", "404", "409"]
"""


def test_the_api_keeps_every_promise_of_its_openapi_document(live_server, marketer, tmp_path: Path):
    offer = factories.offer(actor=marketer, starts_at=NOW, ends_at=None)  # and the product beans-1kg
    key = Token.objects.create(user=marketer).key
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG.format(examples=EXAMPLES))
    command = [
        str(Path(sys.executable).parent / "st"),
        "--config-file", str(config), "--no-color",
        "run", f"{live_server.url}/api/v1/openapi.json",
        "--checks", "all",
        "--header", f"Authorization: Token {key}",
        "--workers", "1",  # its coverage phase is not thread-safe in 4.32 (a KeyError with 2)
        "--request-timeout", "20",
        "--suppress-health-check", "all",
        "--warnings", "off",
    ]  # fmt: skip

    # In tmp_path: schemathesis keeps its own files (.schemathesis/) in the working directory.
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False)

    assert run.returncode == 0, run.stdout[-20_000:] + run.stderr[-5_000:]
    assert "openapi.json" in run.stdout
    assert offer.slug  # the data it fuzzed against
