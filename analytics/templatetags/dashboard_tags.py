"""``{% plotly_styles %}``: the stylesheet plotly.js would otherwise inject inline, with the ids
that tell it the styles are already there (analytics/staticfiles.py), for a strict CSP.
``{% table_rows chart %}``: the rows of a chart's table for screen readers."""

from functools import cache

from django import template
from django.templatetags.static import static
from django.utils.html import conditional_escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from analytics.staticfiles import PLOTLY_CSS, plotly_script, style_ids

register = template.Library()


@cache
def _ids() -> tuple[str, ...]:
    return tuple(style_ids(plotly_script()))


@register.simple_tag
def plotly_styles():
    link = format_html(
        '<link rel="stylesheet" id="plotly.js-style-global" class="no-inline-styles" href="{}">', static(PLOTLY_CSS)
    )
    markers = format_html_join("", '<meta id="{}" name="plotly-bundled-style">', ((value,) for value in _ids()))
    return link + markers


@register.simple_tag
def table_rows(chart) -> SafeString:
    """The ``<tr>`` of every row of the chart's table, each cell escaped. Written here rather
    than as two nested template loops: an offer's page has thousands of cells, and under a
    profiler those loops were a third of its server time (bench/bench_rollups.py)."""
    return mark_safe(  # noqa: S308 (every cell is escaped)
        "".join(
            "<tr>" + "".join(f"<td>{conditional_escape(cell)}</td>" for cell in row) + "</tr>" for row in chart.table()
        )
    )
