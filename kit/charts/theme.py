"""Static SVG rendering and the report theme: the one place the kit changes Altair's renderer, the
chart size, the legend width and the right padding every chart gets."""

from __future__ import annotations

import logging

import altair as alt

log = logging.getLogger(__name__)


WIDTH = 640
HEIGHT = 260


_LEGEND = alt.Legend(labelLimit=400)
"""Series legends: labels such as ``upstream=10.0.0.10:53, transport=tcp`` are the evidence, so
they get 400 px instead of Vega-Lite's default 160 px before an ellipsis."""


def use_report_renderer() -> None:
    """Render charts as static SVG through vl-convert, so reports open offline (no JS, no CDN).

    The one place the kit changes Altair's global renderer; call it once, before the first chart.
    """
    alt.renderers.enable("svg")
    alt.theme.register(REPORT_THEME, enable=True)(_report_theme)
    log.debug("altair renderer: svg (vl-convert), theme %s", REPORT_THEME)


REPORT_THEME = "dnskit-report"
#: Room (px) right of every static chart: vl-convert sizes the SVG with its own font metrics, and
#: the viewer's browser draws the text in its font, often wider (Chromium's DejaVu Sans on Debian:
#: ~14 % wider). Legend labels (``capture=node1, dst_ip=169.254.169.253``) ran ~20 px past the
#: SVG's edge and were cut; a label at the full 400 px ``labelLimit`` needs ~56 px.
REPORT_RIGHT_PADDING = 64


def label_padding(label_limit: int) -> dict[str, int]:
    """The padding of a chart whose axis labels left of the plot may reach ``label_limit`` px
    (names of queries or workloads on a y axis): the browser draws them up to ~16 % wider than
    vl-convert measured them (see :data:`REPORT_RIGHT_PADDING`), and on the left they would be
    cut at the SVG's edge, so the left gets that much room; the rest is the theme's."""
    return {
        "left": 5 + -(-label_limit * 16 // 100),
        "top": 5,
        "right": REPORT_RIGHT_PADDING,
        "bottom": 5,
    }


def _report_theme() -> alt.theme.ThemeConfig:
    """Altair's default theme plus :data:`REPORT_RIGHT_PADDING` on the right of every chart."""
    return alt.theme.ThemeConfig(
        config={"view": {"continuousWidth": 300, "continuousHeight": 300}},
        padding={"left": 5, "top": 5, "right": REPORT_RIGHT_PADDING, "bottom": 5},
    )
