"""The report's headline chart and the symptom chart of notebook 06."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, cast

import altair as alt
import polars as pl

from kit.charts._base import (
    _SERIES,
    _TS,
    _VALUE,
    _check,
    _fit_time_axis,
    _fmt_s,
    _fmt_short,
    _marks_note,
    _time_marks,
    _title,
    _to_altair_data,
    _top_series,
)
from kit.charts.metrics import before_after_chart, rate_chart
from kit.charts.theme import _LEGEND
from kit.sources.timeline import Timeline


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
