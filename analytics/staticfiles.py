"""plotly.js for the dashboards, served from the pinned ``plotly`` Python package so that the
figures built with ``plotly.graph_objects`` and the script that draws them are the same release.

A staticfiles finder, so that everything that serves or collects static files sees it the same
way: WhiteNoise's finders in development and tests (``make run``, the live server), and
``collectstatic`` for production. Nothing is copied into the repository and no CDN is involved.
"""

from pathlib import Path

import plotly
from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

PLOTLY_JS = "vendor/plotly.min.js"  # the static path the dashboards' pages load
_PACKAGE_DATA = Path(plotly.__file__).resolve().parent / "package_data"


class PlotlyFinder(BaseFinder):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.storage = FileSystemStorage(location=_PACKAGE_DATA)
        # collectstatic and WhiteNoise put a storage's files under its ``prefix``.
        self.storage.prefix = str(Path(PLOTLY_JS).parent)

    def check(self, **kwargs):
        return []

    def find(self, path, find_all=False, **kwargs):
        found = str(_PACKAGE_DATA / Path(PLOTLY_JS).name)
        if path != PLOTLY_JS:
            return [] if find_all else None
        return [found] if find_all else found

    def list(self, ignore_patterns):
        yield Path(PLOTLY_JS).name, self.storage
