"""Charts of metrics (notebook 01): latency quantiles over time with the CoreDNS histogram ceiling,
rates by label, and the before/after comparison of a change."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any, cast

import altair as alt
import polars as pl

from kit.charts._base import (
    _SERIES,
    _TS,
    _VALUE,
    _aware_utc,
    _bin,
    _check,
    _fit_time_axis,
    _fmt_s,
    _headroom_scale,
    _marks_note,
    _series_label,
    _time_marks,
    _title,
    _to_altair_data,
    _top_series,
)
from kit.charts.theme import _LEGEND, HEIGHT, WIDTH

#: Highest finite bucket of CoreDNS's latency histograms (``ExponentialBuckets(0.00025, 2, 16)``).
COREDNS_CEILING_S = 8.192


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
