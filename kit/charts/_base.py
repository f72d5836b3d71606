"""What every chart shares: series labels and the top series, time bins of a nice width, number
formats, titles, Altair-safe data, and the time axes (UTC ticks labelled after the span, the
change and fix marks, headroom above the data)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any, cast

import altair as alt
import polars as pl

from kit.charts.theme import HEIGHT, WIDTH

_NICE_BINS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]  # fmt: skip
_TS = "ts"
_VALUE = "value"
_SERIES = "series"


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
