"""Charts of captures (notebooks 04-05): log-binned latency histograms with the SYN retransmission
ladder, slow answers and SYN retransmissions over time, the I/O graph against a packet limit.
Time charts mark the change (and fix) time; histograms split by phase instead."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, cast

import altair as alt
import polars as pl

from kit.charts._base import (
    _SERIES,
    _TOP_ROOM_PX,
    _TS,
    _VALUE,
    _bin,
    _check,
    _fit_time_axis,
    _fmt_s,
    _marks_note,
    _series_label,
    _time_marks,
    _title,
    _to_altair_data,
)
from kit.charts._histogram import (
    _log_domain,
    _rule_label_layout,
    _rule_layers,
    _step_outline,
    _symlog_counts,
)
from kit.charts.theme import _LEGEND, HEIGHT, WIDTH


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
