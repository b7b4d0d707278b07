"""``{% plotly_styles %}``: the stylesheet plotly.js would otherwise inject inline, with the ids
that tell it the styles are already there (analytics/staticfiles.py), for a strict CSP."""

from functools import cache

from django import template
from django.templatetags.static import static
from django.utils.html import format_html, format_html_join

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
