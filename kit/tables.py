"""Tables formatted for reading: the HTML the report shows for every polars frame.

polars' own HTML (``DataFrame._repr_html_``) is made for a notebook session: a ``shape:`` line,
a dtype row, quoted strings, every float at full precision and timestamps to the microsecond.
:func:`frame_html` renders a frame for a reader instead:

- no shape line, no dtype row; column names may break after ``_`` so a narrow column stays narrow;
- text left-aligned and unquoted, numbers right-aligned (tabular digits);
- durations (columns named ``*_s``, the house rule, and ``Duration`` columns) with a unit and 3
  significant digits: ``127 µs``, ``12.3 ms``, ``8.00 s``, ``2.50 min``;
- timestamps in UTC to the millisecond (``2026-11-26 06:09:05.784``);
- shares (columns named ``share`` or ``*_share``) as percentages, other floats to 3 significant
  digits (whole numbers from 1,000 on);
- at most ``max_rows`` rows, then one line saying how many more there are;
- a frame wider than ``transpose_above`` columns with at most ``transpose_rows`` rows is shown
  transposed (one row per column); any other wide frame wraps its cells, so no column is cut.

Every data string is HTML-escaped and its control characters are made visible (``\\x1b``): a
``<script>`` name is text.

:func:`register` makes IPython display every ``pl.DataFrame`` with :func:`frame_html` as well,
under :data:`TABLE_MIMETYPE` (the report's set-up cell calls it, and the report shows that table
instead of polars' own), so notebook code stays as it is.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import re
from collections.abc import Sequence
from typing import Any

import polars as pl

__all__ = [
    "DEFAULT_MAX_ROWS",
    "TABLE_MIMETYPE",
    "TRANSPOSE_ABOVE",
    "format_cell",
    "format_duration",
    "format_number",
    "format_timestamp",
    "frame_cells",
    "frame_html",
    "register",
    "visible",
]

DEFAULT_MAX_ROWS = 20
"""Rows shown before the "N more rows" line."""

TRANSPOSE_ABOVE = 7
"""A frame with more columns than this and at most :data:`TRANSPOSE_ROWS` rows is transposed."""

TRANSPOSE_ROWS = 3

MAX_TEXT = 300
"""Characters of one text cell shown before an ellipsis (the whole value is in its tooltip)."""


def visible(value: Any) -> str:
    """Any value as text that survives any byte: undecodable bytes and control characters shown
    as escapes (``\\x1b``, ``\\n``), never raw."""
    s = value if isinstance(value, str) else str(value)
    s = s.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(
        c if c.isprintable() or c == " " else c.encode("unicode_escape").decode() for c in s
    )


def _sig(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits, without exponent for ordinary magnitudes."""
    if x == 0:
        return "0"
    exp = math.floor(math.log10(abs(x)))
    decimals = max(0, digits - 1 - exp)
    out = f"{x:.{decimals}f}"
    # 9.996 -> "10.00": one digit too many after rounding up
    if decimals and len(out.replace("-", "").replace(".", "").lstrip("0")) > digits:
        out = f"{x:.{decimals - 1}f}"
    return out


def format_duration(seconds: float | None) -> str:
    """Seconds as a duration with a unit and 3 significant digits.

    ``0.000127`` -> ``127 µs``, ``0.0123`` -> ``12.3 ms``, ``8`` -> ``8.00 s``, ``150`` ->
    ``2.50 min``, ``7200`` -> ``2.00 h``; ``None`` -> ``""``; NaN and infinities as ``NaN``/``∞``.
    """
    if seconds is None:
        return ""
    s = float(seconds)
    if math.isnan(s):
        return "NaN"
    if math.isinf(s):
        return "∞" if s > 0 else "-∞"
    a = abs(s)
    if a == 0:
        return "0 s"
    # (unit, seconds per unit, largest shown value before the next unit)
    units = (
        ("ns", 1e-9, 1000),
        ("µs", 1e-6, 1000),
        ("ms", 1e-3, 1000),
        ("s", 1.0, 100),
        ("min", 60.0, 100),
    )
    for unit, per, top in units:
        text = _sig(s / per)
        if abs(float(text)) < top:  # after rounding: 999.96 µs shows as 1.00 ms
            return f"{text} {unit}"
    return f"{_sig(s / 3600)} h"


def format_number(value: float | int | None, *, share: bool = False) -> str:
    """A number for reading: integers as they are, floats to 3 significant digits (whole numbers
    with thousands separators from 1,000 on), a share (0..1) as a percentage."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    x = float(value)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if share:
        return f"{_sig(x * 100)} %" if x else "0 %"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if x == int(x):
        return f"{x:.0f}"
    return _sig(x)


def format_timestamp(value: dt.datetime | dt.date | dt.time | None) -> str:
    """A timestamp in UTC to the millisecond (``2026-11-26 06:09:05.784``); dates and times
    as ISO text."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    if isinstance(value, dt.time):
        return value.strftime("%H:%M:%S.%f")[:-3]
    return value.isoformat()


_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:?\d{2}|Z)?$")


def format_cell(value: Any, column: str = "", dtype: Any = None) -> str:
    """One value as display text (not escaped), by column name and polars dtype.

    ``*_s`` numbers and timedeltas are durations (:func:`format_duration`), datetimes and ISO-8601
    timestamp strings are shown to the millisecond in UTC, ``share``/``*_share`` as percentages,
    lists joined with ``", "``, ``None`` as ``""``.
    """
    if value is None:
        return ""
    if isinstance(value, dt.timedelta):
        return format_duration(value.total_seconds())
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return format_timestamp(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if column.endswith("_s") and not isinstance(value, bool):
            return format_duration(value)
        return format_number(value, share=column == "share" or column.endswith("_share"))
    if isinstance(value, list | tuple | pl.Series):
        return ", ".join(format_cell(v, "", None) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={format_cell(v, str(k), None)}" for k, v in value.items())
    if isinstance(value, str) and _ISO.match(value):
        try:
            return format_timestamp(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return value
    return str(value)


def _is_numeric(dtype: Any) -> bool:
    return bool(dtype.is_numeric() or isinstance(dtype, pl.Duration))


def frame_cells(
    df: pl.DataFrame, *, max_rows: int = DEFAULT_MAX_ROWS
) -> tuple[list[str], list[str], list[list[str]], int]:
    """A frame as display text: ``(columns, aligns, rows, more)``.

    ``aligns`` holds ``"r"`` for numeric columns and ``"l"`` for the others; ``rows`` the first
    ``max_rows`` rows as texts from :func:`format_cell` (not escaped); ``more`` how many rows
    were left out.
    """
    columns = list(df.columns)
    aligns = ["r" if _is_numeric(df.schema[c]) else "l" for c in columns]
    shown = df.head(max_rows)
    rows = [
        [format_cell(v, c, df.schema[c]) for v, c in zip(row, columns, strict=True)]
        for row in shown.iter_rows()
    ]
    return columns, aligns, rows, max(0, df.height - shown.height)


def _header(name: str) -> str:
    # allow a break after each "_" so a long name does not widen its column
    return "_<wbr>".join(html.escape(visible(p)) for p in name.split("_"))


def _td(text: str, align: str, tag: str = "td") -> str:
    full = visible(text)
    shown = full if len(full) <= MAX_TEXT else full[: MAX_TEXT - 1] + "…"
    title = f" title='{html.escape(full, quote=True)}'" if shown != full else ""
    cls = " class='dnskit-num'" if align == "r" else ""
    return f"<{tag}{cls}{title}>{html.escape(shown)}</{tag}>"


def cells_html(
    columns: Sequence[str],
    aligns: Sequence[str],
    rows: Sequence[Sequence[str]],
    more: int = 0,
    *,
    caption: str | None = None,
    transpose_above: int = TRANSPOSE_ABOVE,
    transpose_rows: int = TRANSPOSE_ROWS,
) -> str:
    """HTML of a table given as display texts (see :func:`frame_cells`); every text escaped."""
    cap = f"<caption>{html.escape(visible(caption))}</caption>" if caption else ""
    if not columns:
        return "<p class='dnskit-empty'>(empty table)</p>"
    if not rows:
        return (
            f"<p class='dnskit-empty'>{html.escape(visible(caption)) + ': ' if caption else ''}"
            f"no rows ({len(columns)} column(s): "
            f"{html.escape(visible(', '.join(columns[:6])))}{', …' if len(columns) > 6 else ''})."
            "</p>"
        )
    if len(columns) > transpose_above and len(rows) <= transpose_rows and not more:
        head = "<th>column</th>" + (
            "".join(f"<th class='dnskit-num'>row {i + 1}</th>" for i in range(len(rows)))
            if len(rows) > 1
            else "<th>value</th>"
        )
        body = "".join(
            f"<tr><th>{_header(c)}</th>" + "".join(_td(r[j], "l") for r in rows) + "</tr>"
            for j, c in enumerate(columns)
        )
        return (
            f"<table class='dnskit-frame dnskit-transposed'>{cap}<thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>"
        )
    wide = " dnskit-wide" if len(columns) > transpose_above else ""
    head = "".join(
        f"<th{' class=dnskit-num' if a == 'r' else ''}>{_header(c)}</th>"
        for c, a in zip(columns, aligns, strict=True)
    )
    body = "".join(
        "<tr>" + "".join(_td(v, a) for v, a in zip(r, aligns, strict=True)) + "</tr>" for r in rows
    )
    foot = (
        f"<tfoot><tr><td colspan='{len(columns)}' class='dnskit-more'>{more:,} more "
        f"row{'s' if more != 1 else ''} (of {len(rows) + more:,})</td></tr></tfoot>"
        if more
        else ""
    )
    return (
        f"<table class='dnskit-frame{wide}'>{cap}<thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody>{foot}</table>"
    )


def frame_html(
    df: pl.DataFrame,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    caption: str | None = None,
    transpose_above: int = TRANSPOSE_ABOVE,
) -> str:
    """A polars frame as an HTML table for reading (see the module's rules); every text escaped.

    Parameters
    ----------
    df
        Any frame.
    max_rows
        Rows shown; the rest is counted in a last line ("12 more rows (of 32)").
    caption
        Optional caption (escaped).
    transpose_above
        More columns than this with at most 3 rows: shown transposed.

    Returns
    -------
    str
        A ``<table class="dnskit-frame">`` (``dnskit-wide`` when it has many columns: its cells
        wrap), or one ``<p class="dnskit-empty">`` line for a frame with no rows.
    """
    columns, aligns, rows, more = frame_cells(df, max_rows=max_rows)
    return cells_html(columns, aligns, rows, more, caption=caption, transpose_above=transpose_above)


def _series_html(s: pl.Series) -> str:
    return frame_html(s.to_frame())


TABLE_MIMETYPE = "application/vnd.dnskit.table+html"
"""Media type of the formatted table a frame is displayed with next to polars' own ``text/html``:
the report shows it in place of polars' table; the executed notebook keeps both (so code that
reads polars' HTML from an executed notebook, and Jupyter, see what they always saw)."""


def register(ipython: Any = None) -> bool:
    """Display polars frames and series with :func:`frame_html` too, as :data:`TABLE_MIMETYPE`.

    Adds an IPython formatter for that media type to the session (polars' ``text/html`` and the
    plain text are left as they are). Returns False (and does nothing) outside IPython.
    """
    if ipython is None:
        try:
            from IPython import get_ipython
        except ImportError:  # pragma: no cover - IPython is a dependency of the notebooks
            return False
        ipython = get_ipython()
    if ipython is None:
        return False
    from IPython.core.formatters import BaseFormatter
    from traitlets import ObjectName, Unicode

    class TableFormatter(BaseFormatter):  # type: ignore[misc]
        """IPython formatter for :data:`TABLE_MIMETYPE` (text: the HTML of the table)."""

        format_type = Unicode(TABLE_MIMETYPE)
        print_method = ObjectName("_repr_dnskit_table_")

    formatters = ipython.display_formatter.formatters
    if TABLE_MIMETYPE not in formatters:
        formatters[TABLE_MIMETYPE] = TableFormatter(parent=ipython.display_formatter)
    formatters[TABLE_MIMETYPE].for_type(pl.DataFrame, frame_html)
    formatters[TABLE_MIMETYPE].for_type(pl.Series, _series_html)
    return True
