"""The web process freezes what it has loaded, and again after its first request
(config/startup.py), so that the garbage collector stops walking what lives as long as it does."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from analytics import charts
from tests.support import ROOT

# Run in a process of its own: a freeze in the test process would last for the whole run.
WEB_PROCESS = """
import gc, json, sys
import config.wsgi  # what gunicorn and runserver load
loaded = gc.get_freeze_count()
views = "analytics.views" in sys.modules and "plotly.graph_objects" in sys.modules
kept = [[number] for number in range(1000)]  # made after the first freeze, alive after the request
from django.core.signals import request_finished
request_finished.send(sender=None)
first = gc.get_freeze_count()
request_finished.send(sender=None)
print(json.dumps({"loaded": loaded, "views": views, "first": first, "second": gc.get_freeze_count()}))
"""


def test_the_web_process_freezes_its_objects_once_loaded_and_once_after_the_first_request():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "FORETASTE_ENV": "test"}
    result = subprocess.run(
        [sys.executable, "-c", WEB_PROCESS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout.strip().splitlines()[-1])

    # Every view was imported before the first freeze, which Django alone leaves to the first request.
    assert counts["views"] is True
    assert counts["loaded"] > 50_000
    # What the first request left alive is frozen too; later requests freeze nothing more.
    assert counts["first"] >= counts["loaded"] + 1000
    assert counts["second"] == counts["first"]


def test_the_warm_up_makes_every_kind_of_trace_the_charts_draw():
    # A kind of trace left out would have its checks made at a dashboard's first use, after the
    # freeze, and walked by every full collection after.
    drawn = set(re.findall(r"\bgo\.([A-Z]\w*)\(", Path(charts.__file__).read_text())) - {"Figure"}

    assert drawn == {trace.__name__ for trace in charts.TRACES}
