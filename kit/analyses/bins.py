"""Bin widths for the per-time-bin series: a width that suits the span of the data, and its label."""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Sequence

import polars as pl

from kit.timeutil import UTC as _UTC
from kit.timeutil import parse_duration

log = logging.getLogger(__name__)

__all__ = ["bin_every", "bin_label", "span_every"]


_NICE_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)  # fmt: skip


def bin_every(ts: pl.Series, every: str = "1m", *, max_bins: int = 1000) -> str:
    """A bin width for counts over ``ts``: ``every``, or a coarser nice width if ``every`` would
    give more than ``max_bins`` bins over the span of ``ts`` (a log spanning months).

    Parameters
    ----------
    ts
        Timestamps (nulls ignored).
    every
        The wanted width, a polars duration of seconds, minutes, hours or days (``"10s"``,
        ``"1m"``, ``"1h"``, ``"1d"``).
    max_bins
        Most bins acceptable.

    Returns
    -------
    str
        ``every`` itself, or the smallest of 1 s, 2 s, 5 s, 10 s, 15 s, 30 s, 1 min... 1 day (then
        whole days) that keeps the span within ``max_bins`` bins, as ``"<n>s"``.

    Raises
    ------
    ValueError
        ``every`` is not a duration of the forms above.
    """
    want = _whole_s(every)
    t = ts.drop_nulls()
    if t.len() < 2 or want <= 0:
        return every
    lo, hi = t.min(), t.max()
    assert isinstance(lo, dt.datetime) and isinstance(hi, dt.datetime)
    span = (hi - lo).total_seconds()
    if span / want <= max_bins:
        return every
    need = span / max_bins
    for w in _NICE_S:
        if w >= need:
            return f"{w}s"
    return f"{math.ceil(need / 86400) * 86400}s"


def span_every(
    *frames: pl.DataFrame | None,
    every: str = "5s",
    columns: Sequence[str] = ("ts",),
    max_bins: int = 1000,
) -> str:
    """A bin width for one chart over several inputs: ``every``, or coarser when the inputs
    together span more than ``max_bins`` bins (log excerpts from several years, a capture of days).

    Parameters
    ----------
    frames
        Frames (None skipped) holding time columns; e.g. ``CoreDNSLog.errors``,
        ``CoreDNSLog.queries``, ``Capture.meta``.
    every
        The wanted width (``"5s"``, ``"1m"``).
    columns
        Time columns to look at, in every frame that has them (e.g. ``("ts", "first_ts",
        "last_ts")``).
    max_bins
        Most bins acceptable.

    Returns
    -------
    str
        As :func:`bin_every` over all those timestamps together.
    """
    series = [
        f[c].cast(_UTC).rename("ts")
        for f in frames
        if f is not None
        for c in columns
        if c in f.columns
    ]
    ts = pl.concat(series) if series else pl.Series("ts", [], dtype=_UTC)
    return bin_every(ts, every, max_bins=max_bins)


def bin_label(every: str) -> str:
    """A bin width as a person reads it: ``"10s"`` -> ``"10 s"``, ``"21600s"`` -> ``"6 h"``.

    Parameters
    ----------
    every
        A width as :func:`bin_every` gives it (``"<n>s"``) or as a parameter (``"1m"``, ``"1h"``).

    Returns
    -------
    str
        The width in the largest unit that divides it: ``"<n> d"``, ``"<n> h"``, ``"<n> min"`` or
        ``"<n> s"``.
    """
    seconds = _whole_s(every)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _whole_s(every: str) -> int:
    """Seconds in a bin width (:func:`kit.timeutil.parse_duration`), a whole number of them."""
    seconds = parse_duration(every, what="every")
    if seconds < 1 or not float(seconds).is_integer():
        raise ValueError(f"every={every!r}: must be a whole number of seconds (10s, 1m, 1h, 1d)")
    return int(seconds)
