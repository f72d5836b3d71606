"""Charts of resolver logs (notebooks 02-03): counts over time (errors, connect failures), the
slowest groups, the duration histogram with its modes, and the change marker any time chart can
take."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, cast

import altair as alt
import polars as pl

from kit.charts._base import (
    _SERIES,
    _TS,
    _VALUE,
    _bin,
    _check,
    _fit_time_axis,
    _fmt_s,
    _fmt_short,
    _series_label,
    _time_marks,
    _title,
    _to_altair_data,
)
from kit.charts._histogram import _log_domain, _rule_label_layout, _rule_layers, _symlog_counts
from kit.charts.theme import _LEGEND, HEIGHT, WIDTH


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
