"""Time concepts shared by every layer: the UTC dtype, the one duration parser, time bins.

Named ``timeutil`` rather than ``time`` so that no tool that puts ``kit/`` itself on ``sys.path``
(a script run from inside the folder) shadows the standard library's :mod:`time`.

One duration grammar serves the user's parameters (``every="100ms"``, ``"1m30s"``, ``"1d"``),
Corefile settings (Go ``time.Duration``: ``"1.5h"``, ``"500ms"``) and CoreDNS log fields
(``"981.518µs"``): a sequence of ``<number><unit>`` with units ``ns``, ``us``/``µs``/``μs``,
``ms``, ``s``, ``m`` (minutes), ``h`` and ``d`` (days, as polars reads them), an optional sign,
and the bare ``0``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import polars as pl

__all__ = [
    "UTC",
    "duration_s",
    "parse_duration",
    "polars_every",
    "time_bins",
]

#: The dtype of every timestamp column of the kit: microseconds, UTC.
UTC: pl.Datetime = pl.Datetime("us", "UTC")

#: Seconds per duration unit.
UNITS_S: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d)")


def duration_s(text: str | None) -> float | None:
    """Seconds in a duration (module grammar), or ``None`` if ``text`` is not one.

    For data (log fields, settings), where a value that is not a duration is reported by the
    caller as what it is. ``"10s"`` -> 10.0, ``"1m30s"`` -> 90.0, ``"981.518µs"`` -> 0.000981518.
    """
    if text is None:
        return None
    t = str(text).strip()
    if t in {"0", "+0", "-0"}:
        return 0.0
    sign = -1.0 if t.startswith("-") else 1.0
    t = t[1:] if t[:1] in "+-" and t else t
    pos, total = 0, 0.0
    for m in _PART.finditer(t):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * UNITS_S[m.group(2)]
        pos = m.end()
    if pos == 0 or pos != len(t):
        return None
    return sign * total


def parse_duration(text: str, *, what: str = "duration") -> float:
    """Seconds in a duration given as a parameter; raises on anything else.

    Raises
    ------
    ValueError
        ``text`` is not a duration of the module grammar (the message names ``what``).
    """
    seconds = duration_s(text)
    if seconds is None:
        raise ValueError(
            f"{what}={text!r}: expected a duration like '100ms', '5s', '1m30s', '1h' or '1d'"
        )
    return seconds


def polars_every(text: str, *, what: str = "every") -> str:
    """A positive duration as polars reads it (``"<n>us"``): for ``truncate`` / ``datetime_range``.

    ``"1.5s"`` -> ``"1500000us"``. Fixed widths only (no calendar months), aligned to the epoch.

    Raises
    ------
    ValueError
        Not a duration, or not at least one microsecond.
    """
    us = round(parse_duration(text, what=what) * 1_000_000)
    if us < 1:
        raise ValueError(f"{what}={text!r}: must be at least 1us")
    return f"{us}us"


def time_bins(
    df: pl.DataFrame, *, every: str = "1m", ts: str = "ts", by: Sequence[str] = ()
) -> pl.DataFrame:
    """Count rows per time bin (and group): the basis of every "per minute" series.

    Returns ``ts`` (bin start, UTC), ``by`` columns and ``count`` (UInt32). Bins with no rows
    inside the covered span are present with count 0, so a chart shows silence as zero rather than
    interpolating across it. Rows without a time are left out (a log copied without timestamps
    gives an empty frame); a null in a ``by`` column is a group of its own. ``every`` is any
    duration of the module grammar.
    """
    step = polars_every(every)
    timed = df.filter(pl.col(ts).is_not_null())
    if timed.is_empty():
        return pl.DataFrame(
            schema={
                ts: df.schema.get(ts, UTC),
                **{b: df.schema[b] for b in by},
                "count": pl.UInt32,
            }
        )
    binned = (
        timed.with_columns(pl.col(ts).dt.truncate(step).alias(ts))
        .group_by([ts, *by])
        .agg(pl.len().cast(pl.UInt32).alias("count"))
    )
    lo, hi = binned.select(pl.col(ts).min()).item(), binned.select(pl.col(ts).max()).item()
    grid = pl.DataFrame({ts: pl.datetime_range(lo, hi, step, eager=True)})
    if by:
        grid = grid.join(binned.select(list(by)).unique(), how="cross")
    return (
        grid.join(binned, on=[ts, *by], how="left", nulls_equal=True)
        .with_columns(pl.col("count").fill_null(0))
        .sort([ts, *by], nulls_last=True)
    )
