"""Altair charts for the notebooks: tidy polars frames in, ``alt.Chart`` out.

Every chart aggregates before plotting: at most ``max_series`` lines (the ones with the highest peak;
the title says how many were left out) and at most ``max_points`` rows in the chart data (time bins
of a "nice" width, maximum per bin for latencies so spikes survive, mean for rates). Data values
(instance names, rcodes, qnames...) only ever travel as *data*, under fixed field names, never as
field names, titles or Vega expressions, so a label like ``<script>`` or one with quotes is drawn
as text.

Readability rules shared by every chart:

- Time axes (every chart with ``ts`` on x, and :func:`with_change_marker`) use a UTC scale with
  ticks at whole multiples of a step chosen from the span, labelled with seconds only when the
  step is under a minute, ``%H:%M`` for minutes and hours, the date when the span crosses a UTC
  day (:func:`_fit_time_axis`); tooltips show UTC as well.
- Histograms on a log axis draw each bin over its full width and empty bins at zero (bars, or
  step outlines that fall to zero between runs of non-empty bins), never a line across a gap.
- Labelled vertical rules (latency modes, thresholds, SYN timers) get their labels laid out in
  rows, each on a white box, so close rules never have overlapping labels, and the y scale
  leaves room above the data for those rows.

Nothing here sets renderers or data transformers, except :func:`use_report_renderer`, which the
report runner (or a notebook's first cell) calls once.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Sequence
from typing import Any, cast

import altair as alt
import polars as pl

from kit.sources.timeline import Timeline

__all__ = [
    "COREDNS_CEILING_S",
    "before_after_chart",
    "count_chart",
    "duration_histogram_chart",
    "io_graph_chart",
    "ladder_chart",
    "latency_histogram_chart",
    "latency_quantiles_chart",
    "rate_chart",
    "slow_answers_chart",
    "slow_by_chart",
    "syn_retransmissions_chart",
    "use_report_renderer",
    "with_change_marker",
]

log = logging.getLogger(__name__)

#: Highest finite bucket of CoreDNS's latency histograms (``ExponentialBuckets(0.00025, 2, 16)``).
COREDNS_CEILING_S = 8.192

WIDTH = 640
HEIGHT = 260
_NICE_BINS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]  # fmt: skip
_TS = "ts"
_VALUE = "value"
_SERIES = "series"


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


def _report_theme() -> alt.theme.ThemeConfig:
    """Altair's default theme plus :data:`REPORT_RIGHT_PADDING` on the right of every chart."""
    return alt.theme.ThemeConfig(
        config={"view": {"continuousWidth": 300, "continuousHeight": 300}},
        padding={"left": 5, "top": 5, "right": REPORT_RIGHT_PADDING, "bottom": 5},
    )


def _series_label(df: pl.DataFrame, by: Sequence[str]) -> pl.Expr:
    if not by:
        return pl.lit("all")
    parts = [pl.col(c).cast(pl.String).fill_null("(none)") for c in by]
    if len(by) == 1:
        return parts[0]
    return pl.concat_str(
        [pl.concat_str([pl.lit(f"{c}="), p]) for c, p in zip(by, parts, strict=True)],
        separator=", ",
    )


def _check(df: pl.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"{what}: frame lacks column(s) {missing} (has {df.columns})")


def _top_series(df: pl.DataFrame, max_series: int) -> tuple[pl.DataFrame, int]:
    """Keep the ``max_series`` series with the highest peak; return the frame and how many were dropped."""
    peaks = (
        df.group_by(_SERIES)
        .agg(pl.col(_VALUE).filter(pl.col(_VALUE).is_finite()).max().alias("_peak"))
        .sort(["_peak", _SERIES], descending=[True, False], nulls_last=True)
    )
    if peaks.height <= max_series:
        return df, 0
    keep = peaks.head(max_series)[_SERIES]
    return df.filter(pl.col(_SERIES).is_in(keep.implode())), peaks.height - max_series


def _bin_width_s(df: pl.DataFrame, groups: int, max_points: int) -> int | None:
    """A nice bin width such that ``groups`` lines stay under ``max_points`` rows (None: no binning)."""
    if df.height <= max_points:
        return None
    lo, hi = df[_TS].min(), df[_TS].max()
    assert isinstance(lo, dt.datetime) and isinstance(hi, dt.datetime)
    span = max((hi - lo).total_seconds(), 1.0)
    per_line = max(max_points // max(groups, 1) - 1, 1)
    need = span / per_line
    for w in _NICE_BINS_S:
        if w >= need:
            return w
    return math.ceil(need / 86400) * 86400


def _bin(
    df: pl.DataFrame, keys: Sequence[str], aggs: Sequence[pl.Expr], max_points: int
) -> tuple[pl.DataFrame, int | None]:
    groups = df.select(keys).n_unique() if keys else 1
    width = _bin_width_s(df, groups, max_points)
    if width is None:
        return df, None
    out = (
        df.with_columns(pl.col(_TS).dt.truncate(f"{width}s"))
        .group_by([_TS, *keys])
        .agg(aggs)
        .sort([*keys, _TS])
    )
    return out, width


def _fmt_s(x: float) -> str:
    return f"{x:g} s" if x >= 1 else f"{x * 1000:g} ms"


def _fmt_short(x: float) -> str:
    """Three significant digits: ``1.02 s``, ``7.11 s``, ``250 ms``."""
    return f"{x:.3g} s" if x >= 1 else f"{x * 1000:.3g} ms"


def _title(text: str, notes: list[str]) -> alt.TitleParams:
    return alt.TitleParams(text, subtitle=notes or alt.Undefined, anchor="start")


def _to_altair_data(df: pl.DataFrame) -> pl.DataFrame:
    # NaN/Inf are not JSON: turn them into nulls (gaps) before Altair serialises the data
    floats = [c for c, t in df.schema.items() if t == pl.Float64]
    return df.with_columns(
        [pl.when(pl.col(c).is_finite()).then(pl.col(c)).otherwise(None).alias(c) for c in floats]
    )


# --- time axes
# One helper for every time chart: tick positions are computed here (whole multiples of a "nice"
# step, in UTC) and labelled with a format that follows the span, so a 100 s run reads 06:09:10,
# 06:09:20... and a week reads Nov 26, Nov 27... never "06:09 06:09". The x scale is "utc", so the
# labels are UTC whatever the time zone of the machine that renders the chart.

#: Candidate tick steps in seconds, finest first (each divides the next larger unit).
_TICK_STEPS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 2 * 86400, 7 * 86400, 14 * 86400, 28 * 86400]  # fmt: skip
_LABEL_CHAR_PX = 6.5  # upper estimate of the axis label font's (10 px) average digit/letter width
_LABEL_GAP_PX = 18


def _time_format(step_s: int, lo: dt.datetime, hi: dt.datetime) -> str:
    """d3 time format for ticks ``step_s`` apart between ``lo`` and ``hi`` (UTC)."""
    if step_s >= 86400:
        return "%b %d" if lo.year == hi.year else "%Y-%m-%d"
    clock = "%H:%M:%S" if step_s < 60 else "%H:%M"
    if lo.date() == hi.date():
        return clock
    return f"%b %d {clock}" if lo.year == hi.year else f"%Y-%m-%d {clock}"


def _time_ticks(
    lo: dt.datetime, hi: dt.datetime, *, width: int = WIDTH
) -> tuple[list[dt.datetime], str]:
    """Tick times and their d3 format for a time axis from ``lo`` to ``hi`` drawn ``width`` px wide.

    Parameters
    ----------
    lo, hi
        The extent of the axis (aware datetimes; naive = UTC).
    width
        Axis length in pixels: the step is the finest whose labels fit side by side.

    Returns
    -------
    tuple[list[datetime.datetime], str]
        Ticks at whole multiples of a step of 1 s ... 28 days (UTC, so hours and days start at
        midnight UTC), and the format: seconds (``%H:%M:%S``) only when the step is under a
        minute, ``%H:%M`` for steps of minutes and hours, the date in front when the extent
        crosses a UTC day (``%b %d``; ``%Y-%m-%d`` across years), dates alone for steps of days.
        Labels are distinct by construction. An extent under a second gives no ticks (the
        renderer's default ticks, format ``%H:%M:%S``).
    """
    lo, hi = _aware_utc(lo), _aware_utc(hi)
    if hi < lo:
        lo, hi = hi, lo
    span = (hi - lo).total_seconds()
    if span < 1:
        return [], "%H:%M:%S"
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    lo_s, hi_s = (lo - epoch).total_seconds(), (hi - epoch).total_seconds()
    for step in _TICK_STEPS_S + [28 * 86400 * k for k in (2, 3, 6, 12, 24, 60, 120)]:
        fmt = _time_format(step, lo, hi)
        first, last = math.ceil(lo_s / step), math.floor(hi_s / step)
        n = last - first + 1
        label_px = len(lo.strftime(fmt)) * _LABEL_CHAR_PX + _LABEL_GAP_PX
        if n * label_px <= width:
            ticks = [epoch + dt.timedelta(seconds=k * step) for k in range(first, last + 1)]
            return ticks, fmt
    return [lo, hi], "%Y-%m-%d"  # spans of centuries: the ends only


def _aware_utc(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def _layers(chart: Any, data: Any = alt.Undefined) -> list[tuple[Any, Any]]:
    """The chart and, recursively, its layers, each with its data (inherited when Altair moved
    the data of a layer up to the enclosing layer chart)."""
    own = getattr(chart, "data", alt.Undefined)
    data = data if own is alt.Undefined else own
    out = [(chart, data)]
    for sub in getattr(chart, "layer", None) or []:
        out += _layers(sub, data)
    return out


def _temporal_x_fields(chart: Any) -> list[str]:
    enc = getattr(chart, "encoding", alt.Undefined)
    if enc is alt.Undefined:
        return []
    fields = []
    for channel in ("x", "x2"):
        ch: Any = getattr(enc, channel, alt.Undefined)
        if ch is alt.Undefined:
            continue
        spec = ch.to_dict()
        if channel == "x" and spec.get("type") != "temporal":
            return []
        if "field" in spec:
            fields.append(spec["field"])
    return fields


_UTC_SECONDS = "utcyearmonthdatehoursminutesseconds"


def _fit_time_axis(chart: Any, *times: dt.datetime | None, width: int | None = None) -> Any:
    """Give every layer of a time chart the same UTC scale and span-aware ticks (:func:`_time_ticks`).

    The extent is the union of the temporal x/x2 columns of every layer's (polars) data and of
    ``times`` (e.g. a change time outside the data). Temporal tooltips get a UTC time unit, so a
    browser in another time zone still shows UTC. When a layer's data is not a polars frame (a
    pandas frame or a URL given to :func:`with_change_marker`), the extent is unknown and the
    axis keeps its ticks and format; only the scale becomes UTC. Modifies and returns ``chart``.
    """
    extent: list[dt.datetime] = [_aware_utc(t) for t in times if t is not None]
    known = True
    layers = [(c, data) for c, data in _layers(chart) if _temporal_x_fields(c)]
    for c, data in layers:
        if not isinstance(data, pl.DataFrame):
            known = False
            continue
        for f in _temporal_x_fields(c):
            col = data[f].drop_nulls() if f in data.columns else pl.Series([])
            if col.len() and isinstance(col.dtype, pl.Datetime):
                extent += [_aware_utc(col.min()), _aware_utc(col.max())]  # type: ignore[arg-type]
    if width is None:
        own = getattr(chart, "width", alt.Undefined)
        width = own if isinstance(own, int) and own > 0 else WIDTH
    ticks, fmt = _time_ticks(min(extent), max(extent), width=width) if extent else ([], "%H:%M:%S")
    values = [t.timestamp() * 1000 for t in ticks] if ticks else alt.Undefined
    for c, _ in _layers(chart):
        enc: Any = getattr(c, "encoding", alt.Undefined)
        tips = alt.Undefined if enc is alt.Undefined else enc.tooltip
        for tip in tips if isinstance(tips, list) else []:
            spec: Any = tip.to_dict() if isinstance(tip, alt.Tooltip) else {}
            if spec.get("type") == "temporal" and "timeUnit" not in spec:
                tip["timeUnit"] = _UTC_SECONDS
    for c, _ in layers:
        x = c.encoding.x
        x.scale = alt.Scale(type="utc")
        if known:
            x.axis = alt.Axis(format=fmt, values=values, labelOverlap=True, labelFlush=True)
        if x.title is alt.Undefined:
            x.title = "time (UTC)"
    return chart


#: Pixels kept free at the top of a time chart for the change/fix labels (two rows) and the
#: label of a horizontal rule drawn at the highest value (bucket ceiling, packet limit).
_TOP_ROOM_PX = 48


def _headroom_scale(
    values: pl.Series, extra: float | None, *, log_scale: bool, height: int = HEIGHT
) -> alt.Scale:
    """A y scale whose highest value (data or ``extra``, e.g. the ceiling) sits ``_TOP_ROOM_PX``
    under the top of the plot.

    Linear: domain ``[0, top]`` with ``top = max * height / (height - room)``. Log: the bottom is
    the decade under the smallest positive value (as Vega's ``nice`` would give) and ``top``
    solves ``height * log(top / max) / log(top / bottom) = room``. Without positive values it is
    Vega's default scale.
    """
    pos = values.filter(values.is_finite() & (values > 0))
    candidates = [float(cast(float, pos.min())), float(cast(float, pos.max()))] if pos.len() else []
    if extra is not None and extra > 0:
        candidates.append(float(extra))
    hi = max(candidates, default=0.0)
    if hi <= 0:
        return alt.Scale(type="log") if log_scale else alt.Scale(zero=True)
    a = _TOP_ROOM_PX / height
    if not log_scale:
        return alt.Scale(zero=True, domain=[0, hi / (1 - a)], nice=False)
    bottom = 10.0 ** math.floor(math.log10(min(candidates)))
    if bottom >= hi:
        bottom = hi / 10
    top = 10.0 ** ((math.log10(hi) - a * math.log10(bottom)) / (1 - a))
    return alt.Scale(type="log", domain=[bottom, top], nice=False)


def latency_quantiles_chart(
    quantiles: pl.DataFrame,
    *,
    by: Sequence[str] = ("instance",),
    ceiling: float | None = COREDNS_CEILING_S,
    title: str = "DNS latency quantiles",
    log_scale: bool = True,
    max_series: int = 12,
    max_points: int = 3000,
) -> alt.LayerChart:
    """Latency quantiles over time, one colour per instance, one dash per quantile, ceiling drawn.

    Parameters
    ----------
    quantiles
        Tidy quantile frame as returned by :func:`kit.promql.quantile_series` (or by
        ``kit.promql.evaluate(df, "histogram_quantile(0.99, ...)", bounds=True)``): ``ts`` (Datetime),
        the ``by`` label columns, ``quantile`` (Float64, e.g. 0.99), ``value`` (Float64 seconds),
        and optionally ``at_ceiling`` (Boolean) and ``bucket_upper``. NaN values (no traffic) are
        gaps.
    by
        Label columns that identify a line (besides the quantile).
    ceiling
        Highest finite bucket bound in seconds, drawn as a rule: a quantile there means "at least
        this slow", not a measurement. Default: CoreDNS's 8.192 s. Rows with ``at_ceiling`` override
        it with their value; ``None`` draws no rule unless such rows exist.
    title
        Chart title (units are added to the axes).
    log_scale
        Logarithmic y axis (latencies span 0.1 ms to 8 s).
    max_series, max_points
        Aggregation bounds: at most ``max_series`` instances (highest peak first) and at most
        ``max_points`` data rows (time bins, maximum per bin so spikes are kept).

    Returns
    -------
    altair.LayerChart
        Lines (x ``ts`` UTC, y ``value`` in seconds, colour ``series``, dash ``quantile_label`` such
        as ``p99``), points where a quantile sits at the ceiling, and the ceiling rule with its label.
    """
    _check(quantiles, [_TS, "quantile", _VALUE, *by], "latency_quantiles_chart")
    pinned_col = "at_ceiling" in quantiles.columns
    df = quantiles.select(
        pl.col(_TS),
        _series_label(quantiles, by).alias(_SERIES),
        pl.format(
            "p{}", (pl.col("quantile") * 100).round(3).cast(pl.String).str.replace(r"\.0$", "")
        ).alias("quantile_label"),
        pl.col(_VALUE).cast(pl.Float64),
        (pl.col("at_ceiling").fill_null(False) if pinned_col else pl.lit(False)).alias(
            "at_ceiling"
        ),
    )
    notes: list[str] = []
    df, dropped = _top_series(df, max_series)
    if dropped:
        notes.append(
            f"{max_series} slowest of {max_series + dropped} {'/'.join(by) or 'series'} shown"
        )
    df, width = _bin(
        df,
        [_SERIES, "quantile_label"],
        [pl.col(_VALUE).max(), pl.col("at_ceiling").any()],
        max_points,
    )
    if width:
        notes.append(f"maximum per {width} s bin")
    pinned = df.filter(pl.col("at_ceiling"))
    if pinned.height:
        ceiling = float(pinned[_VALUE].max())  # type: ignore[arg-type]
    drawn_ceiling = ceiling if ceiling is not None and math.isfinite(ceiling) else None
    y_scale = _headroom_scale(df[_VALUE], drawn_ceiling, log_scale=log_scale)
    data = _to_altair_data(df)
    if log_scale:
        data = data.with_columns(pl.when(pl.col(_VALUE) > 0).then(pl.col(_VALUE)).alias(_VALUE))
    base = alt.Chart(data).encode(
        x=alt.X(f"{_TS}:T", title="time (UTC)"),
        y=alt.Y(f"{_VALUE}:Q", title="latency (s)", scale=y_scale),
        color=alt.Color(f"{_SERIES}:N", title=", ".join(by) or "series", legend=_LEGEND),
    )
    tooltip = [
        alt.Tooltip(f"{_SERIES}:N", title=", ".join(by) or "series"),
        alt.Tooltip("quantile_label:N", title="quantile"),
        alt.Tooltip(f"{_TS}:T", title="time (UTC)", format="%Y-%m-%d %H:%M:%S"),
        alt.Tooltip(f"{_VALUE}:Q", title="seconds", format=".4~g"),
    ]
    lines = base.mark_line(strokeWidth=1.5).encode(
        strokeDash=alt.StrokeDash("quantile_label:N", title="quantile"), tooltip=tooltip
    )
    layers: list[Any] = [lines]
    if pinned.height:
        layers.append(
            alt.Chart(_to_altair_data(pinned))
            .mark_point(shape="triangle-up", filled=True, size=40)
            .encode(
                x=f"{_TS}:T",
                y=alt.Y(f"{_VALUE}:Q", scale=y_scale),
                color=alt.Color(f"{_SERIES}:N", legend=_LEGEND),
                tooltip=tooltip,
            )
        )
        # say it once per pinned line, where it starts: "p99 = 8.192 s (ceiling of the last finite bucket)"
        first = (
            pinned.sort(_TS)
            .group_by([_SERIES, "quantile_label"], maintain_order=True)
            .first()
            .with_columns(
                pl.format(
                    "{} = {} (ceiling of the last finite bucket)",
                    pl.col("quantile_label"),
                    pl.col(_VALUE).map_elements(_fmt_s, return_dtype=pl.String),
                ).alias("note")
            )
        )
        layers.append(
            alt.Chart(_to_altair_data(first))
            .mark_text(align="right", baseline="top", dx=-4, dy=4, fontSize=10)
            .encode(
                x=f"{_TS}:T",
                y=alt.Y(f"{_VALUE}:Q", scale=y_scale),
                text="note:N",
                color=alt.Color(f"{_SERIES}:N", legend=_LEGEND),
            )
        )
    if ceiling is not None and math.isfinite(ceiling):
        label = f"bucket ceiling {_fmt_s(ceiling)}: a quantile here means at least this slow"
        rule_data = pl.DataFrame({"ceiling": [ceiling], "label": [label]})
        rule = (
            alt.Chart(rule_data)
            .mark_rule(color="firebrick", strokeDash=[6, 3])
            .encode(y=alt.Y("ceiling:Q", scale=y_scale))
        )
        text = (
            alt.Chart(rule_data)
            .mark_text(align="left", baseline="bottom", dx=4, dy=-2, color="firebrick", fontSize=10)
            .encode(y=alt.Y("ceiling:Q", scale=y_scale), text="label:N", x=alt.value(0))
        )
        layers += [rule, text]
        notes.append(f"ceiling {_fmt_s(ceiling)}")
    chart = alt.layer(*layers).properties(width=WIDTH, height=HEIGHT, title=_title(title, notes))
    return cast(alt.LayerChart, _fit_time_axis(chart))


def rate_chart(
    rates: pl.DataFrame,
    *,
    by: Sequence[str] = ("rcode",),
    title: str = "Responses per second by rcode",
    y_title: str = "per second",
    stacked: bool = False,
    max_series: int = 12,
    max_points: int = 3000,
) -> alt.Chart:
    """Request or response rate over time, one line (or stacked area) per label combination.

    Parameters
    ----------
    rates
        Tidy frame such as ``kit.promql.evaluate(df, 'sum by (rcode) (rate(coredns_dns_responses_total[5m]))')``:
        ``ts`` (Datetime), ``value`` (Float64, per second), and the ``by`` label columns.
    by
        Label columns that identify a line.
    title, y_title
        Chart title and y-axis title (say the unit, e.g. ``"responses/s"``).
    stacked
        Stacked areas (shares of a total) instead of lines.
    max_series, max_points
        Aggregation bounds: at most ``max_series`` lines (highest peak first) and ``max_points`` rows
        (time bins, mean per bin).

    Returns
    -------
    altair.Chart
        x ``ts`` (UTC), y ``value``, colour ``series`` (the ``by`` values).
    """
    _check(rates, [_TS, _VALUE, *by], "rate_chart")
    df = rates.select(
        pl.col(_TS), _series_label(rates, by).alias(_SERIES), pl.col(_VALUE).cast(pl.Float64)
    )
    # several input rows per (ts, series), e.g. by=("rcode",) over a per-instance frame: sum them
    df = df.group_by([_TS, _SERIES]).agg(pl.col(_VALUE).sum()).sort([_SERIES, _TS])
    notes: list[str] = []
    df, dropped = _top_series(df, max_series)
    if dropped:
        notes.append(f"{max_series} busiest of {max_series + dropped} series shown")
    df, width = _bin(df, [_SERIES], [pl.col(_VALUE).mean()], max_points)
    if width:
        notes.append(f"mean per {width} s bin")
    chart = alt.Chart(_to_altair_data(df))
    mark = chart.mark_area(opacity=0.8) if stacked else chart.mark_line(strokeWidth=1.5)
    chart = mark.encode(
        x=alt.X(f"{_TS}:T", title="time (UTC)"),
        y=alt.Y(f"{_VALUE}:Q", title=y_title, stack="zero" if stacked else None),
        color=alt.Color(f"{_SERIES}:N", title=", ".join(by) or "series", legend=_LEGEND),
        tooltip=[
            alt.Tooltip(f"{_SERIES}:N", title=", ".join(by) or "series"),
            alt.Tooltip(f"{_TS}:T", title="time (UTC)", format="%Y-%m-%d %H:%M:%S"),
            alt.Tooltip(f"{_VALUE}:Q", title=y_title, format=".4~g"),
        ],
    ).properties(width=WIDTH, height=HEIGHT, title=_title(title, notes))
    return cast(alt.Chart, _fit_time_axis(chart))


def before_after_chart(
    frame: pl.DataFrame,
    change_time: dt.datetime,
    *,
    by: Sequence[str] = (),
    title: str = "Before and after the change",
    y_title: str = "value",
    change_label: str = "change",
    fix_time: dt.datetime | None = None,
    fix_label: str = "fix",
    log_scale: bool | None = None,
    max_series: int = 8,
    max_points: int = 3000,
) -> alt.LayerChart:
    """A metric around a change (and fix): the series, rules at the times, the mean of each period.

    Parameters
    ----------
    frame
        Tidy frame with ``ts`` (Datetime UTC), ``value`` (Float64) and the ``by`` columns, e.g. the
        p99 from :func:`kit.promql.quantile_series` filtered to one quantile, or a rate from
        :func:`kit.promql.evaluate`. Non-finite values (no traffic) are left out.
    change_time
        When the change happened (aware datetime, or naive = UTC), e.g. the rollout of
        ``force_tcp``.
    by
        Label columns that identify a line.
    title, y_title, change_label, fix_label
        Texts (titles carry units; the labels are drawn next to the rules).
    fix_time
        When the fix was rolled out (e.g. ``Timeline.fix_time``); ``None``: no fix in the data. With
        it the periods are ``before`` (ts < change), ``after`` (change <= ts < fix) and
        ``after fix`` (ts >= fix); without it ``before`` and ``after``. Must not precede
        ``change_time``.
    log_scale
        Symmetric-log y axis (zero stays drawable, ticks at 0 and whole decades): ``None`` (default)
        chooses it when the positive values span 100x or more (a node at milliseconds next to one
        at tens of seconds), ``True`` forces it, ``False`` keeps a linear axis.
    max_series, max_points
        Aggregation bounds (highest peak first; mean per time bin).

    Returns
    -------
    altair.LayerChart
        Lines (x ``ts``, y ``value``, colour ``series``); per series and period a thick
        horizontal segment at the period's mean, drawn from the period's first to its last point
        (data columns ``series``, ``period``, ``mean``, ``points``, ``start``, ``end``); dashed
        rules at the change and fix times with their labels (data ``at``, ``mark``). The subtitle
        says what the segments are and which scale the y axis uses.

    Raises
    ------
    ValueError
        If ``fix_time`` is before ``change_time``.
    """
    _check(frame, [_TS, _VALUE, *by], "before_after_chart")
    change_utc = _aware_utc(change_time)
    fix_utc = _aware_utc(fix_time) if fix_time is not None else None
    if fix_utc is not None and fix_utc < change_utc:
        raise ValueError(
            f"before_after_chart: fix_time {fix_utc:%Y-%m-%d %H:%M:%S} is before change_time "
            f"{change_utc:%Y-%m-%d %H:%M:%S}; pass them in the order they happened"
        )
    df = frame.select(
        pl.col(_TS).cast(pl.Datetime("us", "UTC")),
        _series_label(frame, by).alias(_SERIES),
        pl.col(_VALUE).cast(pl.Float64),
    )
    df = df.filter(pl.col(_VALUE).is_finite())
    notes: list[str] = []
    df, dropped = _top_series(df, max_series)
    if dropped:
        notes.append(f"{max_series} of {max_series + dropped} series shown")
    before = pl.col(_TS) < pl.lit(change_utc).cast(pl.Datetime("us", "UTC"))
    period: pl.Expr
    if fix_utc is not None:
        until_fix = pl.col(_TS) < pl.lit(fix_utc).cast(pl.Datetime("us", "UTC"))
        period = (
            pl.when(before)
            .then(pl.lit("before"))
            .when(until_fix)
            .then(pl.lit("after"))
            .otherwise(pl.lit("after fix"))
        )
        names = ["before", "after", "after fix"]
    else:
        period = pl.when(before).then(pl.lit("before")).otherwise(pl.lit("after"))
        names = ["before", "after"]
    periods = (
        df.with_columns(period.alias("period"))
        .group_by([_SERIES, "period"])
        .agg(
            pl.col(_VALUE).mean().alias("mean"),
            pl.len().alias("points"),
            pl.col(_TS).min().alias("start"),
            pl.col(_TS).max().alias("end"),
        )
        .with_columns(pl.col("period").cast(pl.Enum(names)))
        .sort([_SERIES, "period"])
        .with_columns(pl.col("period").cast(pl.String))
    )
    positive = df.filter(pl.col(_VALUE) > 0)[_VALUE]
    lo_pos = float(positive.min()) if positive.len() else None  # type: ignore[arg-type]
    hi_pos = float(positive.max()) if positive.len() else None  # type: ignore[arg-type]
    if log_scale is None:
        log_scale = lo_pos is not None and hi_pos is not None and hi_pos >= 100 * lo_pos
    df, width = _bin(df, [_SERIES], [pl.col(_VALUE).mean()], max_points)
    if width:
        notes.append(f"mean per {width} s bin")
    y_scale, y_axis = alt.Scale(zero=True), alt.Axis()
    if log_scale and lo_pos is not None and hi_pos is not None:
        # symlog keeps zeros; its constant is the decade under the smallest positive value, and
        # the ticks are 0 and the whole decades (Vega's own symlog ticks are linear: all at the top)
        low = math.floor(math.log10(lo_pos))
        high = max(math.ceil(math.log10(hi_pos)), low + 1)
        decades = [10.0**k for k in range(low, high + 1)]
        y_scale = alt.Scale(type="symlog", constant=decades[0], domain=[0, decades[-1]])
        # no tick at the constant itself: it sits too close to 0 for two labels
        y_axis = alt.Axis(values=[0.0, *decades[1:]], format="~r", labelOverlap="greedy")
        scale_note = "y: symmetric log scale (values span orders of magnitude)"
    else:
        scale_note = "y: linear scale"
    notes.append(f"thick segments: mean per period ({', '.join(names)}); {scale_note}")
    notes += _marks_note(change_utc, fix_utc)
    color = alt.Color(f"{_SERIES}:N", title=", ".join(by) or "series", legend=_LEGEND)
    lines = (
        alt.Chart(_to_altair_data(df))
        .mark_line(strokeWidth=1.2, opacity=0.7)
        .encode(
            x=alt.X(f"{_TS}:T", title="time (UTC)"),
            y=alt.Y(f"{_VALUE}:Q", title=y_title, scale=y_scale, axis=y_axis),
            color=color,
            tooltip=[
                alt.Tooltip(f"{_SERIES}:N", title=", ".join(by) or "series"),
                alt.Tooltip(f"{_TS}:T", title="time (UTC)", format="%Y-%m-%d %H:%M:%S"),
                alt.Tooltip(f"{_VALUE}:Q", title=y_title, format=".4~g"),
            ],
        )
    )
    means = (
        alt.Chart(_to_altair_data(periods))
        .mark_rule(strokeWidth=3)
        .encode(
            x=alt.X("start:T", title="time (UTC)"),
            x2="end:T",
            y=alt.Y("mean:Q", scale=y_scale),
            color=color,
            tooltip=[
                alt.Tooltip(f"{_SERIES}:N", title=", ".join(by) or "series"),
                alt.Tooltip("period:N"),
                alt.Tooltip("mean:Q", title=f"mean {y_title}", format=".4~g"),
                alt.Tooltip("points:Q"),
            ],
        )
    )
    layers = [lines, means, *_time_marks(change_utc, fix_utc, change_label, fix_label)]
    chart = alt.layer(*layers).properties(width=WIDTH, height=HEIGHT, title=_title(title, notes))
    return cast(alt.LayerChart, _fit_time_axis(chart))


# --- captures (notebooks 04-05)
# Charts of the frames of kit.analyses.upstream and kit.sources.capture: log-binned latency histograms (with the SYN
# retransmission ladder), slow answers and SYN retransmissions over time, the I/O graph against a
# packet limit. Time charts mark the change (and fix) time; histograms split by phase instead.


def _as_utc(t: dt.datetime | None) -> dt.datetime | None:
    if t is None:
        return None
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def _time_marks(
    change_time: dt.datetime | None,
    fix_time: dt.datetime | None,
    change_label: str = "change",
    fix_label: str = "fix",
) -> list[Any]:
    """Dashed vertical rules at the change and fix times, each labelled at the top of the plot.

    One rule layer (data ``at``, ``mark``: the label) and one text layer per label row: the change
    label in the first row, the fix label in the second, so the two never overlap however close
    the times are. Empty when both times are ``None``.
    """
    rows = [
        (_aware_utc(t), label)
        for t, label in ((change_time, change_label), (fix_time, fix_label))
        if t is not None
    ]
    if not rows:
        return []
    marks = pl.DataFrame(
        {"at": [r[0] for r in rows], "mark": [r[1] for r in rows]},
        schema={"at": pl.Datetime("us", "UTC"), "mark": pl.String},
    )
    layers: list[Any] = [
        alt.Chart(marks).mark_rule(color="black", strokeDash=[4, 4]).encode(x="at:T")
    ]
    for i in range(marks.height):
        layers.append(
            alt.Chart(marks.slice(i, 1))
            .mark_text(align="left", baseline="top", dx=4, dy=4 + 14 * i, fontSize=11)
            .encode(x="at:T", y=alt.value(0), text="mark:N")
        )
    return layers


def _marks_note(change_time: dt.datetime | None, fix_time: dt.datetime | None) -> list[str]:
    notes = []
    for t, label in ((_as_utc(change_time), "change"), (_as_utc(fix_time), "fix")):
        if t is not None:
            notes.append(f"{label} at {t:%H:%M:%S} UTC (dashed)")
    return notes


# --- log-scale histograms: explicit zero bins and rule labels that do not collide

_RULE_FONT_PX = 10
_RULE_ROW_PX = _RULE_FONT_PX + 4
_RULE_PAD_PX = 3


def _text_px(text: str, font_px: float = _RULE_FONT_PX) -> float:
    """Upper estimate of the width of ``text`` in a sans-serif font (the SVG says "sans-serif",
    so the viewer picks the font): narrow glyphs 0.32 em, m/w/M/W/@ 1 em, other capitals
    0.78 em, anything else 0.64 em (DejaVu Sans digits are 0.636 em, Liberation Sans 0.556 em).
    """
    em = 0.0
    for ch in text:
        if ch in "ijlrtf.,:;|!'` ()[]":
            em += 0.32
        elif ch in "mwMW@%":
            em += 1.0
        elif ch.isupper():
            em += 0.78
        else:
            em += 0.64
    return em * font_px


def _log_domain(*values: pl.Series | Sequence[float]) -> tuple[float, float] | None:
    """Whole decades around the positive finite values (what Vega's ``nice`` log domain gives)."""
    xs = [float(v) for vals in values for v in vals if v is not None and math.isfinite(v) and v > 0]
    if not xs:
        return None
    lo, hi = math.floor(math.log10(min(xs))), math.ceil(math.log10(max(xs)))
    return 10.0**lo, 10.0 ** max(hi, lo + 1)


def _rule_label_layout(
    rules: Sequence[tuple[float, str]], domain: tuple[float, float], width: int = WIDTH
) -> pl.DataFrame:
    """Place the labels of vertical rules on a log x axis in rows so that no two overlap.

    Each label sits at the top of the plot next to its rule (right of it, or left when it would
    run past the plot's right edge), in the first row where its box (width from :func:`_text_px`) keeps ``_RULE_PAD_PX`` from every label already there. Identical
    (position, text) pairs are drawn once.

    Returns
    -------
    polars.DataFrame
        ``x`` (Float64, seconds), ``label`` (String), ``px`` (Float64, the rule's pixel position),
        ``row`` (Int64, 0 = top), ``side`` (String: ``"right"``: label right of the rule,
        ``"left"``), ``x0_px``, ``x1_px`` (Float64, the label's estimated horizontal extent).
    """
    lo, hi = (math.log10(d) for d in domain)
    seen: set[tuple[float, str]] = set()
    placed: list[dict[str, Any]] = []
    rows: list[list[tuple[float, float]]] = []
    for x, label in sorted(rules, key=lambda r: (r[0], r[1])):
        if (x, label) in seen or not (math.isfinite(x) and x > 0):
            continue
        seen.add((x, label))
        px = width * (math.log10(x) - lo) / (hi - lo)
        w = _text_px(label)
        side = "right" if px + _RULE_PAD_PX + w <= width else "left"
        x0 = px + _RULE_PAD_PX if side == "right" else px - _RULE_PAD_PX - w
        x1 = x0 + w
        row = next(
            (
                i
                for i, boxes in enumerate(rows)
                if all(x1 + _RULE_PAD_PX <= b0 or b1 + _RULE_PAD_PX <= x0 for b0, b1 in boxes)
            ),
            len(rows),
        )
        if row == len(rows):
            rows.append([])
        rows[row].append((x0, x1))
        placed.append(
            {"x": x, "label": label, "px": px, "row": row, "side": side, "x0_px": x0, "x1_px": x1}
        )
    return pl.DataFrame(
        placed,
        schema={
            "x": pl.Float64,
            "label": pl.String,
            "px": pl.Float64,
            "row": pl.Int64,
            "side": pl.String,
            "x0_px": pl.Float64,
            "x1_px": pl.Float64,
        },
    )


def _symlog_counts(
    max_count: float, layout: pl.DataFrame, height: int = HEIGHT
) -> tuple[alt.Scale, alt.Axis]:
    """A symlog y scale and axis for counts, with room at the top for the label rows of ``layout``.

    Vega maps ``y`` to ``height * log1p(y) / log1p(top)``; the tallest value ``max_count`` must
    stay below the rows (``rows * _RULE_ROW_PX + 4`` px), so ``top = expm1(log1p(max_count) *
    height / (height - rows_px))``. Ticks: 0 and the powers of ten up to ``top`` (with 2 and 5
    times them when there are at most two decades), as Vega's own symlog ticks are linear and
    crowd at the top.
    """
    if not (max_count > 0):
        return alt.Scale(type="symlog"), alt.Axis()
    top = float(max_count)
    if layout.height:
        rows_px = (int(cast(int, layout["row"].max())) + 1) * _RULE_ROW_PX + 4
        top = math.expm1(math.log1p(max_count) * height / max(height - rows_px, height / 3))
    decades = math.floor(math.log10(top)) if top >= 1 else 0
    steps = (1, 2, 5) if decades <= 2 else (1,)
    values = [0.0] + [
        float(m * 10**k) for k in range(decades + 1) for m in steps if m * 10**k <= top
    ]
    scale = alt.Scale(type="symlog", domain=[0, top], nice=False)
    return scale, alt.Axis(values=values, format=",~r")


def _rule_layers(layout: pl.DataFrame, x_scale: alt.Scale) -> list[Any]:
    """Dashed red rules at the layout's x positions and their labels (rows from
    :func:`_rule_label_layout`, so no two overlap), each on a white box."""
    if not layout.height:
        return []
    layers: list[Any] = [
        alt.Chart(layout.select("x", "label"))
        .mark_rule(color="firebrick", strokeDash=[6, 3])
        .encode(x=alt.X("x:Q", scale=x_scale), tooltip=["label:N"])
    ]
    # a white box under each label, so the rules and lines it crosses do not strike it through
    boxes = layout.select(
        "label",
        (pl.col("x0_px") - 1).alias("x0_px"),
        (pl.col("x1_px") + 1).alias("x1_px"),
        (1 + _RULE_ROW_PX * pl.col("row")).cast(pl.Float64).alias("y0_px"),
        (1 + _RULE_ROW_PX * pl.col("row") + _RULE_FONT_PX + 3).cast(pl.Float64).alias("y1_px"),
    )
    layers.append(
        alt.Chart(boxes)
        .mark_rect(color="white", opacity=0.85)
        .encode(
            x=alt.X("x0_px:Q", scale=None),
            x2="x1_px:Q",
            y=alt.Y("y0_px:Q", scale=None),
            y2="y1_px:Q",
        )
    )
    for (row, side), part in layout.group_by(["row", "side"], maintain_order=True):
        layers.append(
            alt.Chart(part.select("x", "label", "row", "side"))
            .mark_text(
                align="left" if side == "right" else "right",
                baseline="top",
                dx=_RULE_PAD_PX if side == "right" else -_RULE_PAD_PX,
                dy=2 + _RULE_ROW_PX * int(cast(int, row)),
                color="firebrick",
                fontSize=_RULE_FONT_PX,
            )
            .encode(x=alt.X("x:Q", scale=x_scale), y=alt.value(0), text="label:N")
        )
    return layers


def _step_outline(df: pl.DataFrame, keys: Sequence[str]) -> pl.DataFrame:
    """Vertices of a histogram outline drawn with ``interpolate="step-after"``, zero across gaps.

    ``df`` has one row per non-empty bin (``lower_s``, ``upper_s``, ``count`` and ``keys``). Each
    run of adjacent bins starts with a vertex at ``(lower_s, 0)`` and ends with one at
    ``(upper_s, 0)``, so an empty bin (a gap between runs) is drawn on the zero line, never as a
    slope, and every bin shows its full width. Returns ``keys``, ``edge_s``, ``count`` and
    ``order`` (the drawing order within a line).
    """
    tol = 1e-9
    d = df.sort([*keys, "lower_s"]).with_columns(
        pl.int_range(pl.len()).over(keys).alias("_i")
        if keys
        else pl.int_range(pl.len()).alias("_i")
    )
    prev_upper = pl.col("upper_s").shift(1)
    next_lower = pl.col("lower_s").shift(-1)
    if keys:
        prev_upper, next_lower = prev_upper.over(keys), next_lower.over(keys)
    d = d.with_columns(
        (
            prev_upper.is_null()
            | ((pl.col("lower_s") - prev_upper).abs() > tol * pl.col("lower_s"))
        ).alias("_start"),
        (
            next_lower.is_null()
            | ((next_lower - pl.col("upper_s")).abs() > tol * pl.col("upper_s"))
        ).alias("_end"),
    )
    cols = [*keys]
    starts = d.filter("_start").select(
        *cols, pl.col("lower_s").alias("edge_s"), pl.lit(0, pl.Int64).alias("count"),
        (pl.col("_i") * 3).alias("order"),
    )  # fmt: skip
    tops = d.select(
        *cols, pl.col("lower_s").alias("edge_s"), pl.col("count").cast(pl.Int64),
        (pl.col("_i") * 3 + 1).alias("order"),
    )  # fmt: skip
    ends = d.filter("_end").select(
        *cols, pl.col("upper_s").alias("edge_s"), pl.lit(0, pl.Int64).alias("count"),
        (pl.col("_i") * 3 + 2).alias("order"),
    )  # fmt: skip
    return pl.concat([starts, tops, ends]).sort([*keys, "order"])


def latency_histogram_chart(
    hist: pl.DataFrame,
    *,
    by: Sequence[str] = ("capture",),
    dash: str | None = None,
    ladder: pl.DataFrame | None = None,
    modes: pl.DataFrame | None = None,
    title: str = "Client-side DNS latency distribution",
    x_title: str = "latency (s, log scale)",
    y_title: str = "queries per bin",
) -> alt.LayerChart:
    """A log-binned latency histogram as step outlines on a log x axis, optionally with the SYN ladder.

    Parameters
    ----------
    hist
        Output of :func:`kit.analyses.upstream.log_histogram`: the group columns, ``lower_s``, ``upper_s``
        (Float64 seconds) and ``count``. Already aggregated (one row per non-empty bin; bins not
        listed are empty and drawn at zero).
    by
        Group columns drawn as colours (e.g. ``("capture",)``: node1 vs node2).
    dash
        A further group column drawn as dashes, e.g. ``"phase"`` (from :func:`kit.sources.timeline.with_phase`)
        so the distribution before and after the change can be compared; nulls show as ``(none)``.
    ladder
        Output of :func:`kit.analyses.upstream.syn_ladder`: each ``timer_s`` drawn as a vertical rule with its
        ``label`` (the 1/3/7/15 s SYN retransmission timers); labels of close rules are put in
        separate rows so they never overlap.
    modes
        Output of :func:`kit.analyses.upstream.latency_modes_by` (columns ``mode_s``, ``count`` and the ``by``
        columns): drawn as diamonds at the top of each mode.
    title, x_title, y_title
        Texts (units in the axis titles).

    Returns
    -------
    altair.LayerChart
        First layer: the outline of each histogram (``mark_line``, ``interpolate="step-after"``;
        data ``series``, ``dash``, ``edge_s`` the bin edge in seconds, ``count``, ``order``): it
        rises at the first bin of each run of adjacent non-empty bins and falls to zero after its
        last, so an empty bin reads as zero, not as a slope. Second layer: one dot per non-empty
        bin at its geometric centre (data ``series``, ``lower_s``, ``upper_s``, ``mid_s``,
        ``count``; tooltips). Then the mode diamonds, the ladder rules and their labels. x log
        scale over whole decades, y symlog.
    """
    _check(hist, [*by, "lower_s", "upper_s", "count"], "latency_histogram_chart")
    if dash is not None:
        _check(hist, [dash], "latency_histogram_chart")
    cols = [
        _series_label(hist, by).alias(_SERIES),
        # a log axis cannot show 0: a first bin [0, u) is drawn from u/10
        pl.when(pl.col("lower_s") > 0)
        .then(pl.col("lower_s"))
        .otherwise(pl.col("upper_s") / 10)
        .cast(pl.Float64)
        .alias("lower_s"),
        pl.col("upper_s").cast(pl.Float64),
        pl.col("count").cast(pl.Int64),
    ]
    keys = [_SERIES]
    if dash is not None:
        cols.append(pl.col(dash).cast(pl.String).fill_null("(none)").alias("dash"))
        keys.append("dash")
    df = hist.select(cols).filter(pl.col("count") > 0).sort([*keys, "lower_s"])
    lad = pl.DataFrame(schema={"timer_s": pl.Float64, "label": pl.String})
    if ladder is not None and ladder.height:
        _check(ladder, ["timer_s", "label"], "latency_histogram_chart(ladder)")
        lad = ladder.select(pl.col("timer_s").cast(pl.Float64), pl.col("label").cast(pl.String))
    m = pl.DataFrame(schema={_SERIES: pl.String, "mode_s": pl.Float64, "count": pl.Int64})
    if modes is not None and modes.height:
        _check(modes, [*by, "mode_s", "count"], "latency_histogram_chart(modes)")
        m = modes.select(
            _series_label(modes, by).alias(_SERIES),
            pl.col("mode_s").cast(pl.Float64),
            pl.col("count").cast(pl.Int64),
        )
    domain = _log_domain(df["lower_s"], df["upper_s"], lad["timer_s"], m["mode_s"])
    x_scale = (
        alt.Scale(type="log", domain=list(domain), nice=False) if domain else alt.Scale(type="log")
    )
    layout = _rule_label_layout(
        list(zip(lad["timer_s"], lad["label"], strict=True)) if domain else [],
        domain or (1.0, 10.0),
    )
    y_scale, y_axis = _symlog_counts(float(cast(float, df["count"].max() or 0)), layout)
    legend = ", ".join(by) or "series"
    color = alt.Color(f"{_SERIES}:N", title=legend, legend=_LEGEND)
    outline = _step_outline(df, keys)
    enc: dict[str, Any] = {
        "x": alt.X("edge_s:Q", title=x_title, scale=x_scale),
        "y": alt.Y("count:Q", title=y_title, scale=y_scale, axis=y_axis),
        "color": color,
        "order": alt.Order("order:Q"),
    }
    tooltip = [
        alt.Tooltip(f"{_SERIES}:N", title=legend),
        alt.Tooltip("lower_s:Q", title="from (s)", format=".4~g"),
        alt.Tooltip("upper_s:Q", title="to (s)", format=".4~g"),
        alt.Tooltip("count:Q", title=y_title),
    ]
    notes = [f"{int(df['count'].sum())} values in {df.height} log-spaced bins (empty bins at 0)"]
    if dash is not None:
        enc["strokeDash"] = alt.StrokeDash("dash:N", title=dash)
        tooltip.append(alt.Tooltip("dash:N", title=dash))
    dots = df.with_columns((pl.col("lower_s") * pl.col("upper_s")).sqrt().alias("mid_s"))
    layers: list[Any] = [
        alt.Chart(outline).mark_line(interpolate="step-after", strokeWidth=1.5).encode(**enc),
        alt.Chart(_to_altair_data(dots))
        .mark_point(filled=True, size=16)
        .encode(
            x=alt.X("mid_s:Q", scale=x_scale),
            y=alt.Y("count:Q", scale=y_scale),
            color=color,
            tooltip=tooltip,
        ),
    ]
    if m.height:
        layers.append(
            alt.Chart(m)
            .mark_point(shape="diamond", filled=True, size=80)
            .encode(
                x=alt.X("mode_s:Q", scale=x_scale),
                y=alt.Y("count:Q", scale=y_scale),
                color=color,
                tooltip=[
                    alt.Tooltip(f"{_SERIES}:N", title=legend),
                    alt.Tooltip("mode_s:Q", title="mode (s)", format=".4~g"),
                    alt.Tooltip("count:Q", title="values in the mode"),
                ],
            )
        )
        notes.append("diamonds: latency modes")
    if lad.height and domain:
        layers += _rule_layers(layout, x_scale)
        notes.append("red rules: SYN retransmission timers")
    chart = alt.layer(*layers).properties(width=WIDTH, height=HEIGHT, title=_title(title, notes))
    return cast(alt.LayerChart, chart)


def ladder_chart(
    hist: pl.DataFrame,
    ladder: pl.DataFrame,
    modes: pl.DataFrame | None = None,
    *,
    by: Sequence[str] = ("capture",),
    min_s: float = 0.2,
    title: str = "Client latency modes against the SYN retransmission ladder",
) -> alt.LayerChart:
    """The slow tail (``lower_s >= min_s``) of a latency histogram with the SYN timers as rules.

    Same inputs as :func:`latency_histogram_chart`; only bins from ``min_s`` seconds up are drawn, so
    the piles at 1, 3 and 7 s (one, two, three lost SYNs) line up with the rules.
    """
    _check(hist, [*by, "lower_s", "upper_s", "count"], "ladder_chart")
    tail = hist.filter(pl.col("upper_s") > min_s)
    return latency_histogram_chart(
        tail,
        by=by,
        ladder=ladder,
        modes=modes,
        title=title,
        x_title=f"latency (s, log scale, from {_fmt_s(min_s)})",
    )


def _time_series_layer(
    df: pl.DataFrame, *, by: Sequence[str], y_title: str, bars: bool
) -> alt.Chart:
    legend = ", ".join(by) or "series"
    chart = alt.Chart(_to_altair_data(df))
    mark = chart.mark_bar(opacity=0.8) if bars else chart.mark_line(strokeWidth=1.5, point=True)
    return mark.encode(
        x=alt.X(f"{_TS}:T", title="time (UTC)"),
        y=alt.Y(f"{_VALUE}:Q", title=y_title, stack="zero" if bars else None),
        color=alt.Color(f"{_SERIES}:N", title=legend, legend=_LEGEND),
        tooltip=[
            alt.Tooltip(f"{_SERIES}:N", title=legend),
            alt.Tooltip(f"{_TS}:T", title="bin start (UTC)", format="%Y-%m-%d %H:%M:%S"),
            alt.Tooltip(f"{_VALUE}:Q", title=y_title, format=".4~g"),
        ],
    )


def slow_answers_chart(
    slow: pl.DataFrame,
    *,
    by: Sequence[str] = ("capture",),
    change_time: dt.datetime | None = None,
    fix_time: dt.datetime | None = None,
    title: str = "Slow or unanswered client queries over time",
    max_points: int = 3000,
) -> alt.LayerChart:
    """Slow plus unanswered queries per time bin, one line per group, change/fix times marked.

    Parameters
    ----------
    slow
        Output of :func:`kit.analyses.upstream.slow_over_time`: ``ts``, the ``by`` columns, ``slow`` and
        ``unanswered`` (UInt32 per bin).
    by
        Group columns (colours).
    change_time, fix_time
        Drawn as dashed rules (``None``: not drawn).
    title
        Chart title.
    max_points
        At most this many rows (bins are summed into wider ones above it).

    Returns
    -------
    altair.LayerChart
        x ``ts`` (UTC), y ``value`` = ``slow + unanswered`` queries per bin, colour ``series``.
    """
    _check(slow, [_TS, "slow", "unanswered", *by], "slow_answers_chart")
    df = slow.select(
        pl.col(_TS),
        _series_label(slow, by).alias(_SERIES),
        (pl.col("slow") + pl.col("unanswered")).cast(pl.Float64).alias(_VALUE),
    )
    df, width = _bin(df, [_SERIES], [pl.col(_VALUE).sum()], max_points)
    notes = [f"summed per {width} s bin"] if width else []
    notes += _marks_note(change_time, fix_time)
    layers = [
        _time_series_layer(df, by=by, y_title="slow or unanswered queries per bin", bars=False),
        *_time_marks(change_time, fix_time),
    ]
    chart = alt.layer(*layers).properties(width=WIDTH, height=HEIGHT, title=_title(title, notes))
    return cast(alt.LayerChart, _fit_time_axis(chart))


def syn_retransmissions_chart(
    syn: pl.DataFrame,
    *,
    by: Sequence[str] = ("capture", "dst_ip"),
    change_time: dt.datetime | None = None,
    fix_time: dt.datetime | None = None,
    title: str = "Retransmitted SYNs towards the upstream",
    max_points: int = 3000,
) -> alt.LayerChart:
    """Retransmitted SYNs per time bin, stacked bars per capture and upstream, change/fix marked.

    Parameters
    ----------
    syn
        Output of :func:`kit.analyses.upstream.syn_retransmissions`: ``ts``, the ``by`` columns,
        ``retransmitted_syns`` and ``syns`` (UInt32 per bin).
    by, change_time, fix_time, title, max_points
        As in :func:`slow_answers_chart`.

    Returns
    -------
    altair.LayerChart
        x ``ts`` (UTC), y ``value`` = retransmitted SYNs per bin, colour ``series``; the subtitle
        gives the totals (retransmitted of all SYNs).
    """
    _check(syn, [_TS, "retransmitted_syns", "syns", *by], "syn_retransmissions_chart")
    df = syn.select(
        pl.col(_TS),
        _series_label(syn, by).alias(_SERIES),
        pl.col("retransmitted_syns").cast(pl.Float64).alias(_VALUE),
    )
    df, width = _bin(df, [_SERIES], [pl.col(_VALUE).sum()], max_points)
    notes = [
        f"{int(syn['retransmitted_syns'].sum())} of {int(syn['syns'].sum())} SYNs were retransmissions"
    ]
    if width:
        notes.append(f"summed per {width} s bin")
    notes += _marks_note(change_time, fix_time)
    layers = [
        _time_series_layer(df, by=by, y_title="retransmitted SYNs per bin", bars=True),
        *_time_marks(change_time, fix_time),
    ]
    chart = alt.layer(*layers).properties(width=WIDTH, height=HEIGHT, title=_title(title, notes))
    return cast(alt.LayerChart, _fit_time_axis(chart))


def io_graph_chart(
    rates: pl.DataFrame,
    *,
    by: Sequence[str] = ("capture", "dst_ip"),
    limit_pps: float = 1024.0,
    change_time: dt.datetime | None = None,
    fix_time: dt.datetime | None = None,
    title: str = "Packets per second towards the upstream (I/O graph)",
    max_points: int = 3000,
) -> alt.LayerChart:
    """Packet rate per group with the packet limit drawn as a rule and the share of bins above it.

    Parameters
    ----------
    rates
        Output of :func:`kit.analyses.rates.packet_rates`: ``bin`` (Datetime UTC), the ``by`` columns,
        ``pps`` (Float64 packets per second).
    by
        Group columns (colours).
    limit_pps
        The limit (packets per second, default 1024: the AWS VPC resolver's per-interface limit),
        drawn as a red rule; the y axis always reaches it, with 48 px above the limit (or the
        peak) for the labels of the change/fix rules and of the limit.
    change_time, fix_time, title
        As in :func:`slow_answers_chart`.
    max_points
        At most this many rows (maximum per wider bin above it, so peaks survive).

    Returns
    -------
    altair.LayerChart
        x ``ts`` (UTC), y ``value`` pps, colour ``series``, the limit rule; the subtitle says the
        peak and how many bins (and which share) lie above the limit.
    """
    _check(rates, ["bin", "pps", *by], "io_graph_chart")
    df = rates.select(
        pl.col("bin").alias(_TS),
        _series_label(rates, by).alias(_SERIES),
        pl.col("pps").cast(pl.Float64).alias(_VALUE),
    )
    total = rates.height
    above = int((rates["pps"] > limit_pps).sum()) if total else 0
    peak = float(rates["pps"].max()) if total else 0.0  # type: ignore[arg-type]
    share = above / total if total else 0.0
    notes = [f"peak {peak:.4g} pps; {above} of {total} bins ({share:.1%}) above {limit_pps:g} pps"]
    df, width = _bin(df, [_SERIES], [pl.col(_VALUE).max()], max_points)
    if width:
        notes.append(f"maximum per {width} s bin")
    notes += _marks_note(change_time, fix_time)
    legend = ", ".join(by) or "series"
    # the limit (or the peak) stays _TOP_ROOM_PX under the top: the change/fix labels (two rows)
    # and the limit's own label above its rule never meet
    y_scale = alt.Scale(domain=[0, max(peak, limit_pps) * HEIGHT / (HEIGHT - _TOP_ROOM_PX)])
    lines = (
        alt.Chart(_to_altair_data(df))
        .mark_line(strokeWidth=1.5)
        .encode(
            x=alt.X(f"{_TS}:T", title="time (UTC)"),
            y=alt.Y(f"{_VALUE}:Q", title="packets per second", scale=y_scale),
            color=alt.Color(f"{_SERIES}:N", title=legend, legend=_LEGEND),
            tooltip=[
                alt.Tooltip(f"{_SERIES}:N", title=legend),
                alt.Tooltip(f"{_TS}:T", title="bin start (UTC)", format="%Y-%m-%d %H:%M:%S"),
                alt.Tooltip(f"{_VALUE}:Q", title="pps", format=".4~g"),
            ],
        )
    )
    limit = pl.DataFrame({"limit": [float(limit_pps)], "label": [f"limit {limit_pps:g} pps"]})
    rule = (
        alt.Chart(limit)
        .mark_rule(color="firebrick", strokeDash=[6, 3])
        .encode(y=alt.Y("limit:Q", scale=y_scale))
    )
    text = (
        alt.Chart(limit)
        .mark_text(align="left", baseline="bottom", dx=4, dy=-2, color="firebrick", fontSize=10)
        .encode(y=alt.Y("limit:Q", scale=y_scale), x=alt.value(0), text="label:N")
    )
    layers = [lines, rule, text, *_time_marks(change_time, fix_time)]
    chart = alt.layer(*layers).properties(width=WIDTH, height=HEIGHT, title=_title(title, notes))
    return cast(alt.LayerChart, _fit_time_axis(chart))


# --- resolver logs and metric overview (notebooks 01-03)


def with_change_marker(
    chart: alt.Chart | alt.LayerChart,
    change_time: dt.datetime | None,
    fix_time: dt.datetime | None = None,
    *,
    change_label: str = "change",
    fix_label: str = "fix",
) -> alt.Chart | alt.LayerChart:
    """Add dashed vertical rules (with their labels) at the change time and the fix time.

    Parameters
    ----------
    chart
        A time chart whose x axis is ``ts`` (UTC), e.g. :func:`latency_quantiles_chart`.
    change_time, fix_time
        Aware datetimes (naive = UTC), e.g. ``kit.sources.timeline.timeline(...).change_time``; None
        draws nothing for that time (and the chart is returned unchanged when both are None).
    change_label, fix_label
        Texts drawn next to the rules (the change label in a first row at the top of the plot,
        the fix label in a second row under it, so they never overlap).

    Returns
    -------
    altair.Chart | altair.LayerChart
        ``alt.layer(chart, rules, labels)`` with the chart's size and title kept (rules' data:
        ``at``, ``mark``); the time axis is refitted to the data and both times.
    """
    marks = _time_marks(change_time, fix_time, change_label, fix_label)
    if not marks:
        return chart
    props = {k: chart[k] for k in ("width", "height", "title") if chart[k] is not alt.Undefined}
    inner = chart.copy(deep=True)
    for k in props:
        setattr(inner, k, alt.Undefined)
    return cast(alt.LayerChart, _fit_time_axis(alt.layer(inner, *marks).properties(**props)))


def count_chart(
    counts: pl.DataFrame,
    *,
    value: str = "count",
    by: Sequence[str] = (),
    change_time: dt.datetime | None = None,
    fix_time: dt.datetime | None = None,
    title: str = "Events per minute",
    y_title: str = "events per minute",
    max_series: int = 10,
) -> alt.Chart | alt.LayerChart:
    """Counts per time bin (errors per minute, slow queries per 10 s...) as stacked bars.

    Parameters
    ----------
    counts
        Tidy, already binned frame: ``ts`` (bin start, UTC), the ``value`` column (counts) and the
        ``by`` columns, e.g. :func:`kit.sources.coredns.error_counts`, :func:`kit.analyses.resolver_logs.slow_over_time`,
        :func:`kit.analyses.resolver_logs.connect_failures`.
    value
        The count column.
    by
        Columns whose values colour the bars (e.g. ``("upstream", "transport")``); the values are
        data, never field names.
    change_time, fix_time
        Marked with rules (:func:`with_change_marker`) when given.
    title, y_title
        Texts; say the bin width in ``y_title`` ("per minute").
    max_series
        At most this many colours (largest totals first); the title says how many were left out.

    Returns
    -------
    altair.Chart | altair.LayerChart
        Bars: x ``ts`` (UTC), y ``value`` stacked, colour ``series``.
    """
    _check(counts, [_TS, value, *by], "count_chart")
    df = counts.select(
        pl.col(_TS), _series_label(counts, by).alias(_SERIES), pl.col(value).cast(pl.Float64)
    ).rename({value: _VALUE})
    df = df.group_by([_TS, _SERIES]).agg(pl.col(_VALUE).sum()).sort([_SERIES, _TS])
    notes: list[str] = []
    totals = (
        df.group_by(_SERIES)
        .agg(pl.col(_VALUE).sum().alias("_t"))
        .sort(["_t", _SERIES], descending=[True, False])
    )
    if totals.height > max_series:
        keep = totals.head(max_series)[_SERIES]
        notes.append(f"{max_series} largest of {totals.height} series shown")
        df = df.filter(pl.col(_SERIES).is_in(keep.implode()))
    if df.height > 3000:
        df, width = _bin(df, [_SERIES], [pl.col(_VALUE).sum()], 3000)
        if width:
            notes.append(f"summed per {width} s bin")
    # bars span their bin: the bin width is the smallest step between bin starts
    steps = df.select(pl.col(_TS).unique().sort().diff().dt.total_microseconds()).to_series()
    step_us = int(steps.drop_nulls().min() or 60_000_000)  # type: ignore[arg-type]
    df = df.with_columns((pl.col(_TS) + pl.duration(microseconds=step_us)).alias("ts_end"))
    chart = (
        alt.Chart(_to_altair_data(df))
        .mark_bar(orient="vertical")
        .encode(
            x=alt.X(f"{_TS}:T", title="time (UTC)"),
            x2="ts_end:T",
            y=alt.Y(f"{_VALUE}:Q", title=y_title, stack="zero"),
            color=alt.Color(f"{_SERIES}:N", title=", ".join(by) or "series", legend=_LEGEND),
            tooltip=[
                alt.Tooltip(f"{_SERIES}:N", title=", ".join(by) or "series"),
                alt.Tooltip(f"{_TS}:T", title="bin start (UTC)", format="%Y-%m-%d %H:%M:%S"),
                alt.Tooltip(f"{_VALUE}:Q", title=y_title, format=".4~g"),
            ],
        )
        .properties(width=WIDTH, height=HEIGHT, title=_title(title, notes))
    )
    return with_change_marker(_fit_time_axis(chart), change_time, fix_time)


def slow_by_chart(
    breakdown: pl.DataFrame,
    by: str,
    *,
    title: str | None = None,
) -> alt.Chart:
    """Slow queries per group as horizontal bars, with the group's share of all queries as a tick.

    Parameters
    ----------
    breakdown
        :func:`kit.analyses.resolver_logs.slow_by` output for one column ``by`` (already limited to the top groups).
    by
        The grouping column (``qtype``, ``rcode``, ``client_ip``, ``qname``...); its values are
        drawn as data (labels), never interpreted.
    title
        Chart title; default "Slow queries by <by>".

    Returns
    -------
    altair.Chart
        Layer of bars (x ``share_of_slow`` percent) and ticks (x ``share_of_all`` percent) per
        group (y, in the frame's order): a bar far beyond its tick is a pattern.
    """
    _check(breakdown, [by, "queries", "slow", "share_of_slow", "share_of_all"], "slow_by_chart")
    df = breakdown.select(
        pl.col(by).cast(pl.String).fill_null("(none)").alias("group"),
        "queries",
        "slow",
        "share_of_slow",
        "share_of_all",
    )
    order = df["group"].to_list()
    y = alt.Y("group:N", title=by, sort=order)
    tooltip = [
        alt.Tooltip("group:N", title=by),
        alt.Tooltip("queries:Q"),
        alt.Tooltip("slow:Q", title="slow queries"),
        alt.Tooltip("share_of_slow:Q", title="% of slow queries", format=".3~g"),
        alt.Tooltip("share_of_all:Q", title="% of all queries", format=".3~g"),
    ]
    base = alt.Chart(_to_altair_data(df))
    bars = base.mark_bar(color="firebrick", opacity=0.7).encode(
        x=alt.X("share_of_slow:Q", title="% of slow queries (bar) vs % of all queries (tick)"),
        y=y,
        tooltip=tooltip,
    )
    ticks = base.mark_tick(color="black", thickness=2).encode(
        x="share_of_all:Q", y=y, tooltip=tooltip
    )
    chart = alt.layer(bars, ticks).properties(
        width=WIDTH,
        height=max(60, 18 * max(len(order), 1)),
        title=_title(title or f"Slow queries by {by}", []),
    )
    return cast(alt.Chart, chart)


def duration_histogram_chart(
    hist: pl.DataFrame,
    *,
    modes: pl.DataFrame | None = None,
    by: Sequence[str] = (),
    threshold_s: float | None = None,
    title: str = "How long queries took",
) -> alt.LayerChart:
    """Log-binned durations (:func:`kit.analyses.resolver_logs.duration_histogram`) with latency modes marked.

    Parameters
    ----------
    hist
        ``lower_s``, ``upper_s`` (seconds), ``count`` and the ``by`` columns.
    modes
        :func:`kit.analyses.latency.latency_modes` output (``mode_s``), drawn as rules labelled
        ``mode <3 significant digits>`` (labels of close rules in separate rows): piles at
        1 s, 3 s, 7 s are TCP SYN retransmission timers.
    by
        Columns whose values colour the bars (one histogram each, overlaid).
    threshold_s
        The slow threshold, drawn as a rule.
    title
        Chart title.

    Returns
    -------
    altair.LayerChart
        Bars from ``lower_s`` to ``upper_s`` on a log x axis over whole decades (seconds), y
        count of queries (symlog, ticks at 0 and powers of ten, room at the top for the rule
        labels), plus the rules (data ``x``, ``label``) and their labels.
    """
    _check(hist, ["lower_s", "upper_s", "count", *by], "duration_histogram_chart")
    df = hist.select(
        _series_label(hist, by).alias(_SERIES),
        # a log axis cannot start at 0: the first bin [0, min) is drawn from min/10
        pl.when(pl.col("lower_s") > 0)
        .then(pl.col("lower_s"))
        .otherwise(pl.col("upper_s") / 10)
        .alias("lower_s"),
        "upper_s",
        pl.col("count").cast(pl.Float64),
    )
    rules: list[tuple[float, str]] = []
    if modes is not None and modes.height:
        rules += [(float(m), f"mode {_fmt_short(float(m))}") for m in modes["mode_s"].to_list()]
    if threshold_s is not None and threshold_s > 0:
        rules.append((float(threshold_s), f"slow ≥ {_fmt_s(float(threshold_s))}"))
    domain = _log_domain(df["lower_s"], df["upper_s"], [r[0] for r in rules])
    x_scale = (
        alt.Scale(type="log", domain=list(domain), nice=False) if domain else alt.Scale(type="log")
    )
    x = alt.X("lower_s:Q", title="duration (s), log scale", scale=x_scale)
    layout = _rule_label_layout(rules if domain else [], domain or (1.0, 10.0))
    y_scale, y_axis = _symlog_counts(float(cast(float, df["count"].max() or 0)), layout)
    bars = (
        alt.Chart(_to_altair_data(df))
        .mark_rect(opacity=0.6)
        .encode(
            x=x,
            x2="upper_s:Q",
            y=alt.Y("count:Q", title="queries (symlog scale)", scale=y_scale, axis=y_axis),
            y2=alt.datum(0),
            color=alt.Color(f"{_SERIES}:N", title=", ".join(by) or "series", legend=_LEGEND),
            tooltip=[
                alt.Tooltip(f"{_SERIES}:N", title=", ".join(by) or "series"),
                alt.Tooltip("lower_s:Q", title="from (s)", format=".4~g"),
                alt.Tooltip("upper_s:Q", title="to (s)", format=".4~g"),
                alt.Tooltip("count:Q", title="queries"),
            ],
        )
    )
    layers: list[Any] = [bars]
    if rules and domain:
        layers += _rule_layers(layout, x_scale)
    chart = alt.layer(*layers).properties(width=WIDTH, height=HEIGHT, title=_title(title, []))
    return cast(alt.LayerChart, chart)


# --- the report's headline chart


def headline_chart(
    series: pl.DataFrame,
    change_time: dt.datetime | None = None,
    fix_time: dt.datetime | None = None,
    *,
    title: str = "Client-side p99 latency per node",
    y_title: str = "p99 (s)",
    threshold_s: float | None = 1.0,
    width: int = 560,
    height: int = 170,
    max_series: int = 6,
) -> alt.LayerChart:
    """The one chart of the report's summary card: the symptom over time, annotated.

    Parameters
    ----------
    series
        Tidy frame ``ts`` (Datetime UTC), ``series`` (node or source, String), ``value`` (Float64
        seconds), e.g. :func:`kit.findings.headline_series`. Non-finite values are left out.
    change_time, fix_time
        Dashed rules labelled "change" and "fix" (either may be ``None``).
    title, y_title
        Texts; the y axis is in seconds on a symmetric-log scale when values span 100x or more.
    threshold_s
        A dotted grey rule labelled "slow (≥ N s)" at this latency; ``None`` draws none.
    width, height
        Plot size in pixels (small: the chart sits next to the headline numbers).
    max_series
        At most this many series (highest peak first).

    Returns
    -------
    altair.LayerChart
        Lines with points (colour ``series``), the peak labelled with its value ("peak 31.0 s"),
        the threshold rule and the change/fix rules.
    """
    _check(series, [_TS, _SERIES, _VALUE], "headline_chart")
    df = series.select(
        pl.col(_TS).cast(pl.Datetime("us", "UTC")),
        pl.col(_SERIES).cast(pl.String),
        pl.col(_VALUE).cast(pl.Float64),
    ).filter(pl.col(_VALUE).is_finite())
    df, dropped = _top_series(df, max_series)
    notes = [f"{max_series} of {max_series + dropped} series shown"] if dropped else []
    notes += _marks_note(change_time, fix_time)
    positive = df.filter(pl.col(_VALUE) > 0)[_VALUE]
    y_scale, y_axis = alt.Scale(zero=True), alt.Axis(format="~s")
    if positive.len():
        lo, hi = float(positive.min()), float(positive.max())  # type: ignore[arg-type]
        if threshold_s is not None:
            hi = max(hi, threshold_s)
        if hi >= 100 * lo:
            low = math.floor(math.log10(lo))
            high = max(math.ceil(math.log10(hi)), low + 1)
            decades = [10.0**k for k in range(low, high + 1)]
            y_scale = alt.Scale(type="symlog", constant=decades[0], domain=[0, decades[-1]])
            y_axis = alt.Axis(values=[0.0, *decades[1:]], format="~r", labelOverlap="greedy")
            notes.append("y: log scale")
    color = alt.Color(f"{_SERIES}:N", title="node", legend=_LEGEND)
    data = _to_altair_data(df)
    layers: list[Any] = [
        alt.Chart(data)
        .mark_line(strokeWidth=1.5, point=alt.OverlayMarkDef(size=12))
        .encode(
            x=alt.X(f"{_TS}:T", title="time (UTC)"),
            y=alt.Y(f"{_VALUE}:Q", title=y_title, scale=y_scale, axis=y_axis),
            color=color,
        )
    ]
    if df.height:
        peak = df.sort(_VALUE, descending=True).head(1)
        label = f"peak {_fmt_short(float(peak[_VALUE][0]))} ({peak[_SERIES][0]})"
        layers.append(
            alt.Chart(_to_altair_data(peak.with_columns(label=pl.lit(label))))
            .mark_text(align="right", baseline="bottom", dx=-6, dy=-4, fontSize=11)
            .encode(x=f"{_TS}:T", y=alt.Y(f"{_VALUE}:Q", scale=y_scale), text="label:N")
        )
    if threshold_s is not None:
        th = pl.DataFrame({"y": [threshold_s], "label": [f"slow (≥ {_fmt_s(threshold_s)})"]})
        layers.append(
            alt.Chart(th)
            .mark_rule(color="grey", strokeDash=[2, 3])
            .encode(y=alt.Y("y:Q", scale=y_scale))
        )
        layers.append(
            alt.Chart(th)
            .mark_text(align="left", baseline="bottom", dx=2, dy=-2, fontSize=10, color="grey")
            .encode(x=alt.value(0), y=alt.Y("y:Q", scale=y_scale), text="label:N")
        )
    layers += _time_marks(change_time, fix_time)
    chart = alt.layer(*layers).properties(
        width=width, height=height, title=_title(title, ["; ".join(notes)] if notes else [])
    )
    return cast(alt.LayerChart, _fit_time_axis(chart, change_time, fix_time, width=width))


def symptom_chart(series: pl.DataFrame, timeline: Timeline | None = None) -> Any:
    """Chart of :func:`kit.findings.symptom_series`, the change marked when the timeline has one.

    Uses :func:`before_after_chart` (a rule at the change, and at the fix when the
    timeline has one; the mean of each period) when ``timeline.change_time`` is known, else
    :func:`rate_chart`. Titles carry the unit (events per second). Returns an Altair chart.
    """
    title = "Symptoms over time (events per second)"
    if timeline is not None and timeline.change_time is not None:
        return before_after_chart(
            series,
            timeline.change_time,
            by=("series",),
            title=title,
            y_title="events/s",
            fix_time=timeline.fix_time,
        )
    return rate_chart(series, by=("series",), title=title, y_title="events/s")
