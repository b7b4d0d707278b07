"""What a web process does once it has loaded and once it has answered its first request, so that
the garbage collector stops walking what lives as long as the process.

A dashboard request builds many short-lived objects (figures, tables, the overview's
data), which make the collector run its full collection every few requests; each one
walked every object of the process as well, the modules, views, translations, templates and
Plotly's validators among them: 160 to 210 ms, so that one overview in six took 230 to 270 ms
where the others took 60 (bench/bench_rollups.py, figure 4). Objects frozen with ``gc.freeze``
(Python 3.7+) are never walked again; everything made later is collected as before.

Two freezes. The first when the process has loaded, after it has made what Django and Plotly
otherwise make at first use: every view imported, our templates compiled, and Plotly's checks
of each kind of trace the charts draw (about 21,000 objects, of the 170,000 or so frozen then).
The second after the first request, whatever it was (often a health probe), for what is left:
the catalogue of its language, the caches it filled. A frozen object that becomes garbage in a
reference cycle is never collected; the few that the first request leaves (its request and
response) are a one-time cost.
"""

import gc

from django.conf import settings
from django.core.signals import request_finished
from django.template.loader import get_template
from django.urls import get_resolver

from analytics import charts


def loaded() -> None:
    """Import every view, compile our templates and make Plotly's property checks for every kind
    of chart now, then freeze what the process holds; the next freeze waits for the end of the
    first request."""
    get_resolver().url_patterns  # noqa: B018 (reading it imports every URLconf and its views)
    for folder in settings.TEMPLATES[0]["DIRS"]:
        for path in sorted(folder.rglob("*.html")):
            get_template(path.relative_to(folder).as_posix())
    charts.warm_up()
    gc.freeze()
    request_finished.connect(_first_request_finished, dispatch_uid="config.startup")


def _first_request_finished(**kwargs) -> None:
    request_finished.disconnect(dispatch_uid="config.startup")
    gc.collect()
    gc.freeze()
