"""plotly.js for the dashboards, served from the pinned ``plotly`` Python package so that the
figures built with ``plotly.graph_objects`` and the script that draws them are the same release.

plotly.js writes its own stylesheet into a ``<style>`` element, which the site's
Content-Security-Policy (``style-src 'self'``) refuses. It skips that when the page already has
an element ``#plotly.js-style-global.no-inline-styles``: the dashboards link ``vendor/plotly.css``
with that id and class, and this module writes that file from the rules inside the same
plotly.min.js, so the two never disagree. The stylesheets bundled with plotly.js's libraries
(MapLibre's) are injected the same way, unless an element with their id is already there: their
text goes into vendor/plotly.css too, and the page carries an empty element with each id
(``style_ids``, through the ``plotly_styles`` template tag).

A staticfiles finder, so that everything that serves or collects static files sees it the same
way: WhiteNoise's finders in development and tests (``make run``, the live server), and
``collectstatic`` for production. Nothing is copied into the repository and no CDN is involved.
"""

import re
from pathlib import Path

import plotly
from django.conf import settings
from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

PLOTLY_JS = "vendor/plotly.min.js"  # the static paths the dashboards' pages load
PLOTLY_CSS = "vendor/plotly.css"
_PACKAGE_DATA = Path(plotly.__file__).resolve().parent / "package_data"
# plotly.js's rules: an object literal of "selector": "declarations", X standing for the plot
# and Y for its notifier, handed one by one to its addStyleRule.
_RULES = re.compile(r"""\{"X,X div":.*?\}(?=;for\()""", re.S)
_STRING = r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'"""
_RULE = re.compile(rf"({_STRING})\s*:\s*({_STRING})")
_BUNDLED = re.compile(
    r"""document\.getElementById\("(?P<id>[0-9a-f]{64})"\)\)\{var (?P<v>\w+)=document\.createElement\("style"\);"""
    r"""(?P=v)\.id="(?P=id)",(?P=v)\.textContent='(?P<css>(?:[^'\\]|\\.)*)'"""
)


def plotly_css(script: str) -> str:
    """The stylesheet plotly.js would have injected, from the text of plotly.min.js."""
    found = _RULES.search(script)
    if found is None:
        raise ValueError(
            "plotly.min.js no longer holds its style rules where expected: update analytics/staticfiles.py"
        )
    lines = []
    for selector, declarations in _RULE.findall(found.group(0)):
        selector = selector[1:-1].replace("X", ".js-plotly-plot .plotly").replace("Y", ".plotly-notifier")
        lines.append(f"{selector} {{{declarations[1:-1]}}}")
    lines += [bundled.group("css") for bundled in _BUNDLED.finditer(script)]
    return "\n".join(lines) + "\n"


def style_ids(script: str) -> list[str]:
    """The ids whose presence stops plotly.js's bundled libraries from injecting their styles."""
    return [bundled.group("id") for bundled in _BUNDLED.finditer(script)]


def plotly_script() -> str:
    return (_PACKAGE_DATA / Path(PLOTLY_JS).name).read_text(encoding="utf-8")


def _css_file() -> Path:
    """vendor/plotly.css, written next to the other generated files (var/) when it is missing or
    out of date, so that a new plotly release brings its own rules."""
    folder = Path(settings.VAR_DIR) / "plotly"
    target = folder / Path(PLOTLY_CSS).name
    css = plotly_css(plotly_script())
    if not target.exists() or target.read_text(encoding="utf-8") != css:
        folder.mkdir(parents=True, exist_ok=True)
        target.write_text(css, encoding="utf-8")
    return target


class PlotlyFinder(BaseFinder):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.files = {PLOTLY_JS: _PACKAGE_DATA / Path(PLOTLY_JS).name, PLOTLY_CSS: _css_file()}

    def check(self, **kwargs):
        return []

    def find(self, path, find_all=False, **kwargs):
        found = self.files.get(path)
        if found is None:
            return [] if find_all else None
        return [str(found)] if find_all else str(found)

    def list(self, ignore_patterns):
        for path, file in self.files.items():
            storage = FileSystemStorage(location=file.parent)
            # collectstatic and WhiteNoise put a storage's files under its ``prefix``.
            storage.prefix = str(Path(path).parent)
            yield file.name, storage
