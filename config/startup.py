"""What a web process does once it has loaded and once it has answered its first request, so that
the garbage collector stops walking what lives as long as the process.

A dashboard request builds hundreds of thousands of short-lived objects (figures, tables, the
overview's data), which make the collector run its full collection every few requests; each one
walked every object of the process as well, the modules, views, translations, templates and
Plotly's validators among them: 160 to 200 ms, so that one overview in six took 230 ms where
the others took 60 (bench/bench_rollups.py, figure 4). Objects frozen with ``gc.freeze``
(Python 3.7+) are never walked again; everything made later is collected as before.

Two freezes: when the process has loaded (every view imported, which Django leaves to the first
request), and once more after that first request, which fills the lazy parts (compiled
templates, translation catalogues, the validators of each kind of chart) for good. A frozen
object that becomes garbage in a reference cycle is never collected; the few that the first
request leaves (its request and response) are a one-time cost.
"""

import gc

from django.core.signals import request_finished
from django.urls import get_resolver


def loaded() -> None:
    """Import every view now, then freeze what the process holds; the next freeze waits for the
    end of the first request."""
    get_resolver().url_patterns  # noqa: B018 (reading it imports every URLconf and its views)
    gc.freeze()
    request_finished.connect(_first_request_finished, dispatch_uid="config.startup")


def _first_request_finished(**kwargs) -> None:
    request_finished.disconnect(dispatch_uid="config.startup")
    gc.collect()
    gc.freeze()
